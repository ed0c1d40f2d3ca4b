"""argparse types over the one number grammar (`protocol.core.grammar`), for every
command line: colo's subcommands (`colo_tui.session.argtypes` builds on these) and
the benchmarks' (`protocol.bench`).  A bad value is a one-line usage error naming
the option; ``0x10``, ``1_000``, ``٣``, ``nan`` and ``inf`` are refused rather than
read as numbers."""
from __future__ import annotations

import argparse

from protocol.core.grammar import INT64_MAX, parse_decimal, parse_decimal_number
from protocol.errors import UsageError


def int_in(lo: int, hi: int = INT64_MAX):
    """An argparse type: a decimal whole number in lo … hi."""
    def parse(text: str) -> int:
        try:
            return parse_decimal(text, "the value", lo, hi)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = "integer"        # argparse names the type in its message
    return parse


def number_in(lo: float, hi: float):
    """An argparse type: a decimal number (ASCII digits, optional point) in lo … hi."""
    def parse(text: str) -> float:
        try:
            return parse_decimal_number(text, "the value", lo, hi)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = "number"
    return parse
