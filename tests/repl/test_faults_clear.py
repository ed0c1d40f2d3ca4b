"""`faults clear` does what its help says. The help said it 'forgets the unfired
ones', but it restarts the session without any fault, fired or not, and without the
operator's other inputs; with no fault at all it threw the session away too."""
from colo_tui.commands import REGISTRY, execute
from colo_tui.session.control import Controller


def test_the_help_says_every_fault_and_input_goes():
    text = REGISTRY["faults"].help
    assert "unfired ones" not in text
    assert "fired or not" in text and "every other input" in text


def test_clear_forgets_fired_faults_and_inputs():
    c = Controller()
    assert execute(c, "set checkpoints 10").ok
    assert execute(c, "fault delay=5@vmstate-loaded#1").ok
    assert execute(c, "run 2").ok
    assert c.fired()                                  # it fired
    assert execute(c, "heartbeat secondary").ok
    text = execute(c, "faults clear").text
    assert "other inputs" in text
    assert c.faults() == [] and c.steps == 0 and c.inputs == []


def test_clear_without_faults_keeps_the_session():
    c = Controller()
    assert execute(c, "step 5").ok
    res = execute(c, "faults clear")
    assert res.ok and "no faults to clear" in res.text
    assert c.steps == 5
