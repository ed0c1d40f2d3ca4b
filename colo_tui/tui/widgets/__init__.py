"""Dumb Textual views: each shows a view object (see models.py) and posts messages up.

Each name is imported from its module on first use (PEP 562): the lower half (event
log, explanation, failover diagram) is mounted after the first frame, and so are
its modules loaded."""
from __future__ import annotations

import importlib

_WHERE = {"EventLog": "event_log", "LogLines": "event_log", "ExplainPane": "explain_pane",
          "FailoverDiagram": "failover", "KeyBar": "keybar", "LadderView": "ladder",
          "SidePanel": "side_panel", "StatusBar": "status"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
