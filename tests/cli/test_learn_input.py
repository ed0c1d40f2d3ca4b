"""colo learn's input: a lesson's number in ASCII digits only (str.isdigit and int took
a full-width '１' as lesson 1), and a learner's line read whole: a line over 4,096
characters was read as two lines (two answers to two prompts); now it is one line,
refused with a word, and a line with no end is read no further than a bound."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def learn(*args, stdin: str = ""):
    return subprocess.run([sys.executable, "-m", "colo_tui", "learn", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("number", ["\uff11", "\u0661", "\u00b9"])   # １, Arabic-Indic 1, ¹
def test_a_number_in_other_digits_is_no_lesson(number):
    r = learn(number)
    assert r.returncode == 2 and r.stdout == ""
    assert f"colo learn: no lesson {number!r} (a lesson's number is written in ASCII " \
           "digits 0-9)" in r.stderr, r.stderr
    assert "or its number, 1 to " in r.stderr


def test_an_ascii_number_still_starts_its_lesson():
    r = learn("1", stdin="quit\n")
    assert r.returncode == 0 and "== The anatomy of a checkpoint ==" in r.stdout, r.stderr


def test_a_long_line_is_one_line():
    # 5,000 characters where 'kill primary' is asked: one refusal, one prompt again,
    # then the right answer goes through (before: two answers, 'this beat asks for' twice)
    r = learn("failover-primary", stdin="\n" + "k" * 5000 + "\nkill primary\n\n\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("line too long: over 4096 characters") == 1, r.stdout
    assert r.stdout.count("your turn, type: kill primary") == 2
    assert "this beat asks for" not in r.stdout and "✓" in r.stdout, r.stdout


def test_a_line_of_4096_characters_is_taken():
    r = learn("failover-primary", stdin="\n" + " " * 4084 + "kill primary\n\n\n")
    assert "line too long" not in r.stdout and "✓" in r.stdout, r.stdout


def test_a_line_without_end_is_read_no_further_than_the_bound():
    from colo_tui.cli.learn import SKIP_MAX_CHARS
    r = learn("failover-primary", stdin="\n" + "k" * (SKIP_MAX_CHARS + 10_000))
    assert r.returncode == 0, r.stderr
    assert "line too long: no end within 1,048,576 characters; leaving the lesson" \
        in r.stdout, r.stdout[-300:]
