"""The number grammar every user-facing parser shares: ASCII decimal, in range.

``int()`` alone accepts far more than the grammar says: ``0x10`` (with base 0),
``1_000``, surrounding blanks, and non-ASCII digits such as ``٣``.  Every
option, fault spec and command argument that takes a whole number goes
through :func:`parse_decimal` instead, so a typo is refused, never read as
something else (or wrapped to fit a field).
"""
from __future__ import annotations

import re

from protocol.errors import UsageError

_DECIMAL = re.compile(r"-?[0-9]+", re.ASCII)
_DECIMAL_FRACTION = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", re.ASCII)
#: numbers longer than this are refused before int() sees them (CPython's own
#: limit is 4300 digits, and a bound must not depend on it)
MAX_DIGITS = 40
INT64_MAX = (1 << 63) - 1
#: a seed, wherever one is given (`colo run --seed`, the REPL's `set seed`, a recording's
#: header): 0 … 2**64 - 1, what random.Random takes and a recording carries
SEED_MAX = (1 << 64) - 1


def _shown(text) -> object:
    """`text` as an error message quotes it: long input cut to 60 characters."""
    return text if not isinstance(text, str) or len(text) <= 60 else text[:57] + "..."


def parse_decimal(text: str, what: str, lo: int = 0, hi: int = INT64_MAX) -> int:
    """``text`` as an int in ``lo … hi``; UsageError naming ``what`` otherwise."""
    if not isinstance(text, str) or len(text) > MAX_DIGITS or not _DECIMAL.fullmatch(text):
        raise UsageError(f"{what} must be a whole number in decimal ASCII digits, "
                         f"not {_shown(text)!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise UsageError(f"{what} must be between {show_number(lo)} and "
                         f"{show_number(hi)}, not {show_number(value)}")
    return value


def parse_decimal_number(text: str, what: str, lo: float = 0.0,
                         hi: float = float(INT64_MAX)) -> float:
    """``text`` (ASCII digits with an optional decimal point: ``2``, ``0.5``, ``.5``)
    as a float in ``lo … hi``; no sign, exponent, ``_``, ``inf`` or ``nan``."""
    if not isinstance(text, str) or len(text) > MAX_DIGITS \
            or not _DECIMAL_FRACTION.fullmatch(text):
        raise UsageError(f"{what} must be a decimal number in ASCII digits (e.g. 2 or "
                         f"0.5), not {_shown(text)!r}")
    value = float(text)
    if not lo <= value <= hi:
        raise UsageError(f"{what} must be between {show_number(lo)} and "
                         f"{show_number(hi)}, not {text}")
    return value


def show_number(x: float) -> str:
    """A number as a reader writes it: whole numbers grouped in thousands
    ('3,600,000', never '3.6e+06' nor a rounded '2.14748e+09'), others as short as
    they are exact ('0.25', '1e-09').  Every front end's messages use it."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x == int(x) and abs(x) < 1e18:
        return f"{int(x):,}"
    return f"{x:,}" if abs(x) >= 1e-4 else repr(x)
