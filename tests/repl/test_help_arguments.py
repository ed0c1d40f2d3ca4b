"""`help CMD` says what each word of its usage lines takes. It ended with the
parser's kinds, 'arguments: int, dialect, mode, seed, guest, verbosity, length, ms,
onoff, arbiter-ms, fraction', which named no value: 'usage: set arbiter ARBITER'
never said on or off, nor 'set checkpoints CHECKPOINTS' its bound."""
import re

import pytest

from colo_tui.commands import COMMANDS, execute
from colo_tui.commands.parser import placeholder
from colo_tui.session.control import Controller


def _help(name: str) -> str:
    res = execute(Controller(), f"help {name}")
    assert res.ok, res.text
    return res.text


def test_set_names_the_values():
    text = _help("set")
    assert "arguments:" not in text and "onoff" not in text and "length, ms" not in text
    assert re.search(r"^  ARBITER +on or off$", text, re.M)
    assert re.search(r"^  CHECKPOINTS +a whole number, 1 … 10,000$", text, re.M)
    assert re.search(r"^  MS +milliseconds, a whole number, 0 … 4,294,967,295$", text, re.M)
    assert re.search(r"^  D +.*qemu.*prototype", text, re.M)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.name)
def test_every_placeholder_is_explained(cmd):
    text = _help(cmd.name)
    for form in cmd.forms:
        for tok in form:
            ph = placeholder(tok)
            if ph is not None:
                line = re.search(rf"^  {ph[0]} +(.+)$", text, re.M)
                assert line and line.group(1) != ph[1], (cmd.name, ph)
