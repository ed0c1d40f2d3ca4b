"""The `pagediff` fixture: every page-diff test runs on both twins.

The "c" twin is skipped only when `_pagediff_c` was never built (no shared
object next to the module); a built twin that fails to import is an error.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import protocol.guest

GUEST_DIR = Path(protocol.guest.__file__).parent


def built_c_twin() -> list[Path]:
    return sorted(GUEST_DIR.glob("_pagediff_c*.so")) + sorted(GUEST_DIR.glob("_pagediff_c*.pyd"))


@pytest.fixture(params=["py", "c"])
def pagediff(request):
    if request.param == "c" and not built_c_twin():
        pytest.skip("protocol.guest._pagediff_c was never built "
                    "(run: python setup.py build_ext --inplace)")
    return importlib.import_module(f"protocol.guest._pagediff_{request.param}")
