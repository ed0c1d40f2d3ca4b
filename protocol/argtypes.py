"""argparse types over the one number grammar (`protocol.core.grammar`), for every
command line: colo's subcommands (`colo_tui.session.argtypes` builds on these) and
the benchmarks' (`protocol.bench`).  A bad value is a one-line usage error naming
the option; ``0x10``, ``1_000``, ``٣``, ``nan`` and ``inf`` are refused rather than
read as numbers.

Numbers are written out in digits: ``1.25e4`` is refused (as by the REPL and the
fault grammar), with the digits to write instead; help texts write their numbers
out the same way.  A negative number is refused for what it is, out of range.
"""
from __future__ import annotations

import argparse
import re
from decimal import Decimal

from protocol.core.grammar import INT64_MAX, parse_decimal, parse_decimal_number, show_number
from protocol.errors import UsageError

#: a signed number (``-5``, ``-0.5``): refused for its range, not its spelling
_SIGNED = re.compile(r"[-+](?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
#: exponent notation (``1e6``, ``1.25E+4``): refused, with the digits to write instead
_EXPONENT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]{1,3}", re.ASCII)
#: longest digits suggested in place of exponent notation (1e400 gets no suggestion)
_SUGGEST_MAX = 40


def _refusal(text: str, lo: float, hi: float, whole: bool) -> str | None:
    """A clearer message than the grammar's for a number merely spelt otherwise (a
    sign, an exponent), or None to let the grammar's message stand."""
    if not isinstance(text, str) or len(text) > 60:
        return None
    if _SIGNED.fullmatch(text) and text[0] == "-" and lo >= 0:
        return f"the value must be between {show_number(lo)} and {show_number(hi)}, not {text}"
    if _EXPONENT.fullmatch(text):
        digits = format(Decimal(text), "f")
        if "." in digits:
            digits = digits.rstrip("0").rstrip(".")
        if len(digits) > _SUGGEST_MAX:
            return None
        if whole and "." in digits:
            return (f"the value must be a whole number in decimal ASCII digits, not {text!r} "
                    f"(that is {digits})")
        return (f"the value must be written out in ASCII digits, without an exponent: "
                f"{digits}, not {text!r}")
    return None


def int_in(lo: int, hi: int = INT64_MAX):
    """An argparse type: a decimal whole number in lo … hi."""
    def parse(text: str) -> int:
        try:
            return parse_decimal(text, "the value", lo, hi)
        except UsageError as exc:
            why = _refusal(text, lo, hi, whole=True) or str(exc)
            raise argparse.ArgumentTypeError(why) from None
    parse.__name__ = "integer"        # argparse names the type in its message
    return parse


def number_in(lo: float, hi: float):
    """An argparse type: a decimal number (ASCII digits, optional point) in lo … hi."""
    def parse(text: str) -> float:
        try:
            return parse_decimal_number(text, "the value", lo, hi)
        except UsageError as exc:
            why = _refusal(text, lo, hi, whole=False) or str(exc)
            raise argparse.ArgumentTypeError(why) from None
    parse.__name__ = "number"
    return parse
