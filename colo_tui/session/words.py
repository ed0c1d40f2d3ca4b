"""Small word helpers for the messages every front end prints (no imports: cheap)."""
from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and its noun, grouped in thousands: '1 checkpoint', '0 checkpoints',
    '12,000 events'; `nouns` where adding an 's' is wrong ('1 match', '2 matches')."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


def number(x: float) -> str:
    """A number as a reader writes it: whole numbers in thousands ('3,600,000', not
    '3.6e+06'), others as short as they are exact ('0.25', '1e-09')."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x == int(x) and abs(x) < 1e18:
        return f"{int(x):,}"
    return f"{x:,}" if abs(x) >= 1e-4 else repr(x)
