"""Counts in the CLI's messages agree with their nouns: `colo replay` of a
one-checkpoint recording said "outcome ok, 1 checkpoints"."""
from __future__ import annotations

from colo_tui.cli import main as cli
from colo_tui.session.words import plural


def test_plural_agrees_with_its_count():
    assert plural(1, "checkpoint") == "1 checkpoint"
    assert plural(0, "checkpoint") == "0 checkpoints"
    assert plural(2, "event") == "2 events"
    assert plural(12_000, "step") == "12,000 steps"
    assert plural(1, "match", "matches") == "1 match"
    assert plural(3, "match", "matches") == "3 matches"


def test_replay_of_one_checkpoint_says_checkpoint(tmp_path, capsys):
    rec = tmp_path / "one.colo.jsonl"
    assert cli.main(["run", "--checkpoints", "1", "--record", str(rec)]) == 0
    capsys.readouterr()
    assert cli.main(["replay", str(rec)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("outcome ok, 1 checkpoint"), out
    assert "1 checkpoints" not in out
