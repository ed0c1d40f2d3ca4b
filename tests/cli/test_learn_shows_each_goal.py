"""`colo learn` prints the event each beat waited for, even one its quiet level hides: a
beat that says "a mismatch asks for a checkpoint" showed nothing under it, and the
output-commit lesson's "they leave now" showed vmstate-loaded but not the release."""
import argparse
import io

from colo_tui.cli.learn import run_learn


def _tour(name: str) -> str:
    out = io.StringIO()
    args = argparse.Namespace(lesson=name, list=False, auto=True)
    assert run_learn(args, stdin=io.StringIO(""), out=out) == 0
    return out.getvalue()


def _beat(text: str, n: int) -> str:
    """The lines printed under beat n (its text and its events)."""
    return text.split(f"\n[{n}/")[1].split("\n[")[0]


def test_each_beat_shows_the_event_it_waited_for():
    text = _tour("compare-mismatch")
    assert "a checkpoint is requested: colo-compare" in _beat(text, 2)
    text = _tour("output-commit")
    assert "(output commit)" in _beat(text, 3)
    assert "sends the RAM pages" in _beat(_tour("anatomy"), 4)
