"""Small word helpers for the messages every front end prints (cheap imports only)."""
from __future__ import annotations

from protocol.core.grammar import show_number


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and its noun, grouped in thousands: '1 checkpoint', '0 checkpoints',
    '12,000 events'; `nouns` where adding an 's' is wrong ('1 match', '2 matches')."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


#: a number as a reader writes it ('3,600,000', '0.25'): the protocol's, for one wording
number = show_number
