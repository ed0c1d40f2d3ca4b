"""The REPL's `set SETTING VALUE` takes the numbers the command line takes (ASCII
digits, an optional point: protocol.core.grammar) and says its bounds in digits.
float() let through `set divergence -0` (a negative zero), 1e-400, 1_0 and ٠.5, and
the bounds read '0 and 3.6e+06'."""
from __future__ import annotations

import argparse

import pytest

from colo_tui.commands import execute
from colo_tui.session.argtypes import nonneg_float, number_in
from colo_tui.session.control import Controller
from colo_tui.session.words import number


@pytest.mark.parametrize("value", ["-0", "-0.0", "+0.5", "1e-400", "1_0", "\u0660.5",
                                   "nan", "inf", "0x1"])
def test_set_divergence_takes_digits_only(value):
    c = Controller()
    res = execute(c, f"set divergence {value}")
    assert not res.ok, res.text
    assert "must be a decimal number in ASCII digits" in res.text, res.text
    assert c.config.divergence == 0.0


def test_set_divergence_takes_a_fraction():
    c = Controller()
    for text, value in (("0.5", 0.5), (".25", 0.25), ("1", 1.0), ("0", 0.0)):
        assert execute(c, f"set divergence {text}").ok
        assert c.config.divergence == value


def test_bounds_are_said_in_digits():
    res = execute(Controller(), "set load-ms 4000000")
    assert not res.ok
    assert "between 0 and 3,600,000, not 4000000" in res.text, res.text
    assert "e+0" not in res.text
    res = execute(Controller(), "set load-ms 1000000")
    assert res.ok and "load-ms 1,000,000" in res.text, res.text
    assert "milliseconds, 0 … 3,600,000" in execute(Controller(), "help set").text


def test_the_command_lines_bounds_are_said_in_digits():
    # --load-ms 3000000000 was refused as 'between 0 and 2.14748e+09' (rounded)
    with pytest.raises(argparse.ArgumentTypeError, match="between 0 and 2,147,483,647,"):
        nonneg_float("3000000000")
    # a sign is refused for the range it leaves, not for its spelling (QA stop 31)
    with pytest.raises(argparse.ArgumentTypeError, match="between 0 and 2,147,483,647, not -0"):
        nonneg_float("-0")
    assert number_in(1.0, 1e9)("1000000000") == 1e9


def test_number_reads_as_written():
    assert number(3_600_000.0) == "3,600,000"
    assert number(1e9) == "1,000,000,000"
    assert number(0.25) == "0.25"
    assert number(-0.0) == "0"
    assert number(7) == "7"
