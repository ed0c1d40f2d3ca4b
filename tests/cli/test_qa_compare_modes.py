"""colo compare-modes' table: a long value does not run into its neighbour."""
from __future__ import annotations

from colo_tui.cli.main import build_parser


def _row(mode: str, checkpoints: int, triggers: str) -> dict:
    return {"mode": mode, "checkpoints": checkpoints, "triggers": triggers,
            "pages_sent": 987901, "state_bytes_sent": 3806166896,
            "packets_released": 200000, "latency_mean_ms": 475.0, "latency_p99_ms": 950,
            "invariants_hold": True}


def test_long_values_stay_in_their_columns(monkeypatch, capsys):
    # what `colo compare-modes --checkpoints 10000 --workload uniform` measured; the
    # table printed 'timer 10001colo-compare 3742, timer 8034'
    res = {"periodic": _row("periodic", 10000, "timer 10001"),
           "hybrid": _row("hybrid", 11775, "colo-compare 3742, timer 8034"),
           "virtual_ms": 10000001}
    import protocol.sim.compare as compare
    monkeypatch.setattr(compare, "compare_modes", lambda **_kw: res)
    args = build_parser().parse_args(["compare-modes"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    triggers = next(line for line in lines if line.startswith("triggers"))
    assert "timer 10001  " in triggers and triggers.endswith("colo-compare 3742, timer 8034")
    # the columns line up: every row's values end where the header's do
    ends = {len(line) for line in lines}
    assert len(ends) == 1, lines
    header = lines[0]
    assert header.index("periodic (Remus)") + len("periodic (Remus)") == \
        triggers.index("timer 10001") + len("timer 10001")


def test_the_checkpoints_help_says_what_the_runs_measure(capsys):
    # it said "checkpoints per mode", but hybrid ran 11 (or 100) where periodic ran 10:
    # N sets the workload's length, the same virtual time in both modes
    import pytest
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compare-modes", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "checkpoints per mode" not in text
    assert "--checkpoints N" in text and "for the same time" in text, text
    args = build_parser().parse_args(["compare-modes", "--checkpoints", "2", "--json"])
    assert args.func(args) == 0
    import json
    res = json.loads(capsys.readouterr().out)
    assert res["periodic"]["checkpoints"] == 2 and res["virtual_ms"] == 2001


def test_the_triggers_count_the_committed_checkpoints_and_no_event_is_kept(monkeypatch):
    # the triggers row counted the checkpoint still running at the end ("timer 301"
    # beside 300 checkpoints), and each mode kept its whole event stream (about 760 MB
    # for --checkpoints 10000): now the events are counted as they pass
    from protocol.sim import compare
    from protocol.sim.core import Simulation
    sims = []
    real_init = Simulation.__init__

    def spy(self, *a, **kw):
        real_init(self, *a, **kw)
        sims.append(self)

    monkeypatch.setattr(Simulation, "__init__", spy)
    res = compare.compare_modes(checkpoints=12)
    for mode in ("periodic", "hybrid"):
        row = res[mode]
        counted = sum(int(part.rsplit(" ", 1)[1]) for part in row["triggers"].split(", "))
        assert counted == row["checkpoints"], row
        assert row["pages_sent"] > 0 and row["state_bytes_sent"] > 0
    assert res["periodic"]["checkpoints"] == 12
    assert [s.events for s in sims] == [[], []]
