"""Page-diff core: the compiled twin if it loads, else the pure-Python one.

`IMPLEMENTATION` is "c" or "py".  `COLO_NO_EXTENSIONS=1` forces "py".  A failed
import of `_pagediff_c` is never hidden: `LOAD_ERROR` says why (it stays None
when the twin loaded or was disabled), and if a built `_pagediff_c*.so` is there
but broken a RuntimeWarning is issued too.
"""

from __future__ import annotations

import os
import warnings

LOAD_ERROR: str | None = None

if os.environ.get("COLO_NO_EXTENSIONS") == "1":
    from protocol.guest import _pagediff_py as _impl
else:
    try:
        from protocol.guest import _pagediff_c as _impl
    except ImportError as exc:
        LOAD_ERROR = f"{type(exc).__name__}: {exc}"
        if any(name.startswith("_pagediff_c.") and name.endswith((".so", ".pyd"))
               for name in os.listdir(os.path.dirname(os.path.abspath(__file__)))):
            warnings.warn(f"protocol.guest._pagediff_c is built but did not load "
                          f"({LOAD_ERROR}); using the pure-Python twin",
                          RuntimeWarning, stacklevel=2)
        from protocol.guest import _pagediff_py as _impl

IMPLEMENTATION: str = "c" if _impl.__name__.endswith("_c") else "py"

changed_pages = _impl.changed_pages
zero_pages = _impl.zero_pages
scatter_pages = _impl.scatter_pages
copy_pages = _impl.copy_pages
hash_pages = _impl.hash_pages
build_bytes = _impl.build_bytes
xbzrle_encode = _impl.xbzrle_encode
xbzrle_decode = _impl.xbzrle_decode
xbzrle_decode_into = _impl.xbzrle_decode_into

__all__ = ["IMPLEMENTATION", "LOAD_ERROR", "changed_pages", "zero_pages", "scatter_pages",
           "copy_pages", "hash_pages", "build_bytes", "xbzrle_encode", "xbzrle_decode",
           "xbzrle_decode_into"]
