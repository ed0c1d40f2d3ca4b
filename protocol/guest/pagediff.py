"""Page-diff core: the compiled twin if it loads, else the pure-Python one
(the selection is `protocol.twins.load`, shared by every compiled module).
A compiled twin built from an older .pyx (lacking a function of the spec, or of
another SPEC_VERSION: a changed signature) is not used either: `LOAD_ERROR` says
"stale build" and a RuntimeWarning is issued.

`IMPLEMENTATION` is "c" or "py".  `COLO_NO_EXTENSIONS=1` forces "py".  A failed
import of `_pagediff_c` is never hidden: `LOAD_ERROR` says why (it stays None
when the twin loaded or was disabled), and if a built `_pagediff_c*.so` is there
but broken a RuntimeWarning is issued too.
"""

from __future__ import annotations

import warnings

from protocol.twins import load

_impl, IMPLEMENTATION, LOAD_ERROR = load(__name__)
if IMPLEMENTATION == "c":
    from protocol.guest import _pagediff_py as _spec
    _missing = [name for name in _spec.__all__ if not hasattr(_impl, name)]
    if not _missing and _impl.SPEC_VERSION != _spec.SPEC_VERSION:   # same names, new signatures
        _missing = [f"SPEC_VERSION {_spec.SPEC_VERSION} (it has {_impl.SPEC_VERSION})"]
    if _missing:        # a shared object built from an older .pyx: never half of each
        LOAD_ERROR = (f"stale build: protocol.guest._pagediff_c lacks {', '.join(_missing)} "
                      "(rebuild it: python setup.py build_ext --inplace)")
        warnings.warn(f"{LOAD_ERROR}; using the pure-Python twin", RuntimeWarning,
                      stacklevel=2)
        _impl, IMPLEMENTATION = _spec, "py"

changed_pages = _impl.changed_pages
zero_pages = _impl.zero_pages
scatter_pages = _impl.scatter_pages
copy_pages = _impl.copy_pages
hash_pages = _impl.hash_pages
copy_pages_hashed = _impl.copy_pages_hashed
gather_pages_hashed = _impl.gather_pages_hashed
gather_pages = _impl.gather_pages
zero_pages_at = _impl.zero_pages_at
build_bytes = _impl.build_bytes
xbzrle_encode = _impl.xbzrle_encode
xbzrle_decode = _impl.xbzrle_decode
xbzrle_decode_into = _impl.xbzrle_decode_into

__all__ = ["IMPLEMENTATION", "LOAD_ERROR", "changed_pages", "zero_pages", "scatter_pages",
           "copy_pages", "hash_pages", "copy_pages_hashed", "gather_pages_hashed",
           "gather_pages", "zero_pages_at", "build_bytes", "xbzrle_encode", "xbzrle_decode",
           "xbzrle_decode_into"]
