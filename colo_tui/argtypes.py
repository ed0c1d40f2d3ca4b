"""argparse types shared by every subcommand: a bad value is a one-line usage error."""
from __future__ import annotations

import argparse
import math


def add_guest_argument(p: argparse.ArgumentParser) -> None:
    """`--guest` of the two interactive UIs: the guest model unless told otherwise."""
    p.add_argument("--guest", default="model", choices=("model", "null"),
                   help="model (default): RAM, devices, disk and packets, so the heat map, "
                        "the buffered packets and `show ram|packets|disk` have something to "
                        "show; null: the control protocol alone")


def nonneg_int(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, not {v}")
    return v


def positive_int(text: str) -> int:
    v = nonneg_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {v}")
    return v


def nonneg_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(x) or x < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, not {text}")
    return x


def fraction(text: str) -> float:
    x = nonneg_float(text)
    if x > 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, not {text}")
    return x
