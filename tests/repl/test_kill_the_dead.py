"""`kill` or `stall` of a simulated side that is dead already. It answered 'primary
killed' again and recorded one more input (which, after `back`, forked the future),
though nothing happened."""
import pytest

from colo_tui.commands import execute
from colo_tui.session.control import Controller


@pytest.mark.parametrize("again", ["kill primary", "stall primary"])
def test_a_dead_side_is_not_killed_again(again):
    c = Controller()
    assert execute(c, "step 5").ok and execute(c, "kill primary").ok
    inputs = len(c.inputs)
    res = execute(c, again)
    assert not res.ok and "dead already" in res.text
    assert len(c.inputs) == inputs


def test_a_stalled_side_can_still_be_killed():
    c = Controller()
    assert execute(c, "stall secondary").ok
    assert execute(c, "kill secondary").ok
