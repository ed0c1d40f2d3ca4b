"""Event kinds' ``__init__``: the compiled twin if it loads, else the pure-Python one
(`protocol.twins.load`; ``COLO_NO_EXTENSIONS=1`` forces "py").  The spec is
`protocol.core._eventinit_py`; the compiled twin writes the slots from C, and its
``build`` skips the class call (an event is built per transition and per wire
message).

A compiled twin built from an older .pyx (another SPEC_VERSION) is not used:
`LOAD_ERROR` says "stale build" and a RuntimeWarning is issued.
"""
from __future__ import annotations

import warnings

from protocol.twins import load

_impl, IMPLEMENTATION, LOAD_ERROR = load(__name__)
if IMPLEMENTATION == "c":
    from protocol.core import _eventinit_py as _spec
    if _impl.SPEC_VERSION != _spec.SPEC_VERSION:
        LOAD_ERROR = (f"stale build: protocol.core._eventinit_c has SPEC_VERSION "
                      f"{_impl.SPEC_VERSION}, not {_spec.SPEC_VERSION} (rebuild it: "
                      "python setup.py build_ext --inplace)")
        warnings.warn(f"{LOAD_ERROR}; using the pure-Python twin", RuntimeWarning,
                      stacklevel=2)
        _impl, IMPLEMENTATION = _spec, "py"

make_kind = _impl.make_kind

__all__ = ["IMPLEMENTATION", "LOAD_ERROR", "make_kind"]
