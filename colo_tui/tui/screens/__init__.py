"""Modal screens of the Textual app (help, fault menu, prompts) and the palette.

Each name is imported from its module on first use (PEP 562): the app paints its
first frame before any screen is needed."""
from __future__ import annotations

import importlib

_WHERE = {"FaultMenu": "fault_menu", "build_spec": "fault_menu", "HelpScreen": "help",
          "ColoCommands": "palette", "Palette": "palette", "BY_KEY": "presets", "PRESETS": "presets",
          "Preset": "presets", "config_changes": "presets", "ChoicePrompt": "prompt",
          "NumberPrompt": "prompt"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
