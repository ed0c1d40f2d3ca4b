"""A module imported on first use, then kept: for the core's hot paths that need a
heavy module (the migration stream brings numpy) only once there is RAM to move.

A function-level ``from … import …`` runs the import machinery at every call (a
compiled module pays it too); ``module(name)`` is one dict lookup after the first.
"""
from __future__ import annotations

import importlib
from types import ModuleType

_LOADED: dict[str, ModuleType] = {}


def module(name: str) -> ModuleType:
    mod = _LOADED.get(name)
    if mod is None:
        mod = _LOADED[name] = importlib.import_module(name)
    return mod
