"""`colo import` says where checkpoints stop, against x-checkpoint-delay when the
capture's run directory gives it (run.json, qmp_primary.jsonl), else the median gap."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from colo_tui.cli import main as cli
from protocol.record.capture_params import checkpoint_delay_ms
from protocol.record.qemu_import import import_capture, import_streams
from tests.stream._synth import colo_session, page

RUN1 = Path(__file__).resolve().parents[3] / "shared" / "qemu-colo" / "run1"


def _timed(gaps_s: list[float]):
    """A synthetic session whose checkpoint requests come `gaps_s` apart."""
    fwd, rev, _ = colo_session([[page("pc.ram", 0x1000 * (i + 1))]
                                for i in range(len(gaps_s) + 1)])
    cps = import_streams(fwd, rev).checkpoints
    t, times = 0.0, [(0, 0.0)]
    for cp, gap in zip(cps, [1.0] + gaps_s, strict=True):
        t += gap
        times.append((cp.offset, t))
    return fwd, rev, times


def _run_dir(tmp_path: Path, gaps_s: list[float], **files) -> Path:
    tmp_path.mkdir()
    fwd, rev, times = _timed(gaps_s)
    (tmp_path / "primary_to_secondary.bin").write_bytes(fwd)
    (tmp_path / "secondary_to_primary.bin").write_bytes(rev)
    (tmp_path / "stream_offsets.json").write_text(json.dumps(
        {"t0": 0.0, "primary_to_secondary": [list(x) for x in times]}))
    for name, text in files.items():
        (tmp_path / name.replace("_jsonl", ".jsonl").replace("_json", ".json")).write_text(text)
    return tmp_path


def _qmp_log(delay: int) -> str:
    lines = [{"host_time": 1.0, "dir": "send", "msg": {"execute": "qmp_capabilities"}},
             {"host_time": 2.0, "dir": "send", "msg": {
                 "execute": "migrate-set-parameters", "id": 3,
                 "arguments": {"x-checkpoint-delay": delay}}},
             {"host_time": 2.1, "dir": "recv", "msg": {"return": {}, "id": 3}}]
    return "\n".join(json.dumps(x) for x in lines) + "\nnot json\n"


def test_a_22_s_gap_is_named_with_where_and_the_median_expectation():
    fwd, rev, times = _timed([1.0, 1.0, 22.0, 1.0, 1.0])
    sess = import_streams(fwd, rev, times)
    (st,) = sess.stalls
    assert st["gap_s"] == pytest.approx(22.0)
    assert (st["after_checkpoint"], st["before_checkpoint"]) == (3, 4)
    assert st["t"] == pytest.approx(3.0)
    assert st["expected_s"] == pytest.approx(1.0) and st["expected_from"] == "median gap"
    (w,) = [w for w in sess.warnings if "stop" in w]
    assert "22.0 s between checkpoint 3 (t=3.000 s) and 4" in w
    assert "expected every 1.000 s (median gap)" in w


def test_the_checkpoint_delay_sets_the_bound_where_the_median_cannot():
    """Every request 3 s apart: steady by the median, stalled for a 500 ms delay."""
    fwd, rev, times = _timed([3.0] * 5)
    assert import_streams(fwd, rev, times).stalls == []
    sess = import_streams(fwd, rev, times, delay=(500, "run.json"))
    assert len(sess.stalls) == 5
    assert {s["expected_from"] for s in sess.stalls} == {"x-checkpoint-delay (run.json)"}
    assert all(s["bound_s"] == pytest.approx(2.5) for s in sess.stalls)
    assert "expected every 0.500 s (x-checkpoint-delay (run.json))" in sess.warnings[0]
    # a 1 s delay: a 3 s gap is within max(5x, +2 s)
    assert import_streams(fwd, rev, times, delay=(1000, "run.json")).stalls == []


def test_the_delay_is_read_from_run_json_then_the_qmp_log(tmp_path):
    assert checkpoint_delay_ms(tmp_path) is None
    (tmp_path / "qmp_primary.jsonl").write_text(_qmp_log(750))
    assert checkpoint_delay_ms(tmp_path) == (750, "qmp_primary.jsonl")
    (tmp_path / "run.json").write_text(json.dumps({"primary_params":
                                                   {"x-checkpoint-delay": 1000}}))
    assert checkpoint_delay_ms(tmp_path) == (1000, "run.json")
    (tmp_path / "run.json").write_text("{broken")
    assert checkpoint_delay_ms(tmp_path) == (750, "qmp_primary.jsonl")
    (tmp_path / "qmp_primary.jsonl").write_text('{"msg": {"return": {"x-checkpoint-delay":'
                                                ' true}}}\n')
    assert checkpoint_delay_ms(tmp_path) is None


def test_cli_text_json_and_header_carry_the_stall(tmp_path, capsys):
    run = _run_dir(tmp_path / "run", [1.0, 1.0, 22.0, 1.0], qmp_primary_jsonl=_qmp_log(1000))
    out = tmp_path / "imported.jsonl"
    assert cli.main(["import", str(run), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert ("warning: checkpoints stop for 22.0 s between checkpoint 3 (t=3.000 s) and 4, "
            "expected every 1.000 s (x-checkpoint-delay (qmp_primary.jsonl))") in text
    lines = out.read_text().splitlines()
    notes = [x for x in lines if x.startswith("#")]
    assert any("warning: checkpoints stop for 22.0 s" in x for x in notes)
    header = json.loads(next(x for x in lines if not x.startswith("#")))
    assert header["checkpoint_delay"] == {"ms": 1000, "from": "qmp_primary.jsonl"}
    (st,) = header["stalls"]
    assert st["after_checkpoint"] == 3 and st["gap_s"] == pytest.approx(22.0)
    assert any("22.0 s" in w for w in header["warnings"])
    assert cli.main(["import", str(run), "-o", str(tmp_path / "b.jsonl"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stalls"] == header["stalls"]
    assert summary["checkpoint_delay"]["ms"] == 1000


def test_a_steady_run_dir_has_no_warning_line(tmp_path, capsys):
    run = _run_dir(tmp_path / "run", [1.0] * 4, qmp_primary_jsonl=_qmp_log(1000))
    assert cli.main(["import", str(run), "-o", str(tmp_path / "a.jsonl")]) == 0
    assert "warning:" not in capsys.readouterr().out


@pytest.mark.skipif(not (RUN1 / "capture.pcap").exists(), reason="no run1 capture")
def test_run1_is_measured_against_its_1000_ms_delay_and_does_not_stall():
    sess = import_capture(RUN1 / "capture.pcap")
    assert sess.checkpoint_delay == {"ms": 1000, "from": "run.json"}
    assert sess.stalls == [] and sess.warnings == []
