"""QA faults in the command line: numbers in help and in the parser, negative values,
--checkpoint-delay's limit, recordings the tool's readers refuse, FIFOs, `decode
--initial --from secondary`, decoding the tool's own v11 wire dump."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.record import format as rf
from protocol.record import schema

ROOT = Path(__file__).resolve().parents[2]
RUN1 = ROOT.parent / "shared" / "qemu-colo" / "run1"


def colo(*args, timeout=60, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "colo_tui", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT,
                          stdin=subprocess.DEVNULL, env=dict(os.environ, **(env or {})))


# ------------------------------------------------------------ 1, 2: numbers
def test_no_help_text_writes_a_number_the_parser_refuses():
    for cmd in ("run", "tui", "repl", "compare-modes"):
        out = colo(cmd, "--help").stdout
        assert not re.search(r"\b[0-9.]+e[-+]?[0-9]+\b", out), (cmd, out)
    out = colo("run", "--help").stdout
    assert "12500: 100" in " ".join(out.split())


def test_a_help_number_is_taken_as_written():
    r = colo("run", "--guest", "null", "--checkpoints", "1", "--bytes-per-ms", "12500",
             "--arbiter-ms", "1000000000", "--rate", "1000000")
    assert r.returncode == 0, r.stderr


def test_exponent_notation_is_refused_with_the_digits_to_write():
    r = colo("run", "--bytes-per-ms", "1.25e4")
    assert r.returncode == 2
    assert "without an exponent: 12500, not '1.25e4'" in r.stderr, r.stderr


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--load-ms", "-5", "between 0 and 2,147,483,647, not -5"),
    ("--latency-ms", "-1", "between 0 and 1,000,000,000, not -1"),
    ("--divergence", "-0.5", "between 0 and 1, not -0.5"),
    ("--rate", "-1", "between 0 and 1,000,000, not -1"),
    ("--seed", "-1", "between 0 and"),
])
def test_a_negative_number_is_refused_for_its_range(option, value, needle):
    r = colo("run", option, value)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert "ASCII digits" not in r.stderr


def test_junk_is_still_refused():
    for junk in ("0x10", "1_000", "nan", "inf", "--5", "1e", "\u0663"):
        r = colo("run", "--load-ms=" + junk)
        assert r.returncode == 2 and "ASCII digits" in r.stderr, (junk, r.stderr)


# ------------------------------------------------------------ 3: checkpoint delay
@pytest.mark.parametrize("cmd", ["run", "tui"])
def test_checkpoint_delay_states_the_uint32_limit_up_front(cmd):
    r = colo(cmd, "--checkpoint-delay", "9999999999")
    assert r.returncode == 2
    assert "argument --checkpoint-delay" in r.stderr
    assert "between 0 and 4,294,967,295" in r.stderr, r.stderr


# ------------------------------------------------------------ 4: reader limits
def test_the_readers_take_the_longest_interactive_session():
    from colo_tui.session.options import INTERACTIVE_MAX_CHECKPOINTS
    assert schema.max_checkpoints() >= INTERACTIVE_MAX_CHECKPOINTS
    # what 10,000 checkpoints of the guest model write with the default settings:
    # about 250 events and 22.5 KB a checkpoint (a 1,000-checkpoint run: 249,020
    # events, 22,548,500 bytes)
    assert schema.max_events() >= INTERACTIVE_MAX_CHECKPOINTS * 250
    assert schema.max_bytes() >= INTERACTIVE_MAX_CHECKPOINTS * 22_600


def test_a_recording_of_a_long_interactive_session_reads_back(tmp_path):
    """A session created with --checkpoints 10,000 (the interactive maximum) holding
    one committed checkpoint: `colo replay` and `colo tui --replay` said 'above the
    limit of 1000'."""
    from colo_tui.commands import execute
    from colo_tui.session.control import Controller
    c = Controller()
    path = tmp_path / "long.colo.jsonl"
    for line in ("set checkpoints 10000", f"record start {path}", "step 40", "record stop"):
        res = execute(c, line)
        assert res.ok, (line, res.text)
        assert "note" not in res.text, res.text
    assert rf.read(path).config.checkpoints == 10000
    r = colo("replay", path)
    assert r.returncode == 0, r.stderr


def test_run_record_of_1000_checkpoints_replays_by_default(tmp_path):
    """The QA's case: 22 MiB, refused as larger than 16 MiB."""
    rec = tmp_path / "r.colo.jsonl"
    r = colo("run", "--checkpoints", "1000", "--record", rec, timeout=300)
    assert r.returncode == 0 and "note" not in r.stderr, r.stderr
    assert rec.stat().st_size > 16 << 20
    r = colo("replay", rec, timeout=300)
    assert r.returncode == 0, r.stderr


def test_run_record_stops_within_the_readers_limits(tmp_path):
    """Beyond the readers' size limit `colo run --record` ends the file with a stop
    line (saying so), so what it wrote replays with the same limits."""
    rec = tmp_path / "r.colo.jsonl"
    env = {"COLO_MAX_RECORDING_MIB": "1"}
    r = colo("run", "--checkpoints", "200", "--record", rec, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "stops at step" in r.stderr and "COLO_MAX_RECORDING_MIB" in r.stderr, r.stderr
    assert rec.stat().st_size <= 1 << 20
    r = colo("replay", rec, env=env, timeout=120)
    assert r.returncode == 0 and "identically" in r.stdout, r.stderr


def test_writer_keeps_to_the_event_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("COLO_MAX_RECORDING_EVENTS", "10")
    from protocol.sim.config import SimConfig
    from protocol.sim.core import Simulation
    cfg = SimConfig(checkpoints=5, guest="null")
    sim = Simulation(cfg)
    path = tmp_path / "r.colo.jsonl"
    w = rf.Writer(path, rf.make_header(cfg), step=lambda: sim.steps)
    sim.on_event = w.event
    sim.run_until(lambda _s: False, max_steps=10_000)
    w.close()
    assert w.events == 10 and w.limited and "COLO_MAX_RECORDING_EVENTS" in w.limited
    rec = rf.read(path)
    assert len(rec.events) == 10 and rec.stop_events == 10
    from protocol.record.replay import verify
    assert verify(rec).ok


@pytest.mark.parametrize("args", [["--checkpoints", "10001"],
                                  ["--fault", "kill-primary@vmstate-send#20000"]])
def test_run_refuses_a_recording_its_readers_would_refuse(tmp_path, args):
    rec = tmp_path / "r.colo.jsonl"
    r = colo("run", *args, "--record", rec)
    assert r.returncode == 2 and "COLO_MAX_CHECKPOINTS" in r.stderr, r.stderr
    assert not rec.exists()


# ------------------------------------------------------------ 5: FIFOs
@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("args", [
    ["decode", "--from", "primary", "{F}"],
    ["replay", "{F}"],
    ["export", "--to", "json", "{F}"],
    ["respond", "--role", "secondary", "{F}", "-o", "{T}/out.bin"],
    ["import", "{F}", "-o", "{T}/out.colo.jsonl"],
])
def test_a_fifo_input_is_refused_not_waited_on(fifo, tmp_path, args):
    argv = [a.format(F=fifo, T=tmp_path) for a in args]
    r = colo(*argv, timeout=20)
    assert r.returncode == 1, r.stderr
    assert f"{fifo}: not a regular file (a FIFO" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_export_into_an_existing_fifo_needs_force(fifo, tmp_path):
    rec = tmp_path / "r.colo.jsonl"
    assert colo("run", "--guest", "null", "--checkpoints", "1", "--record", rec).returncode == 0
    r = colo("export", "--to", "json", rec, "-o", fifo, timeout=20)
    assert r.returncode == 2 and "already exists; give --force" in r.stderr, r.stderr


# ------------------------------------------------------------ 6, 7: decode
def test_initial_from_the_secondary_is_said_plainly(tmp_path):
    f = tmp_path / "s2p.bin"
    f.write_bytes(b"\0\0\0\5")
    r = colo("decode", "--from", "secondary", "--initial", f)
    assert r.returncode == 2
    assert "--initial applies to the primary's stream" in r.stderr, r.stderr
    assert "QEVM magic" not in r.stderr


@pytest.mark.skipif(not RUN1.is_dir(), reason="no run1 capture")
def test_the_readme_decode_example_works():
    r = colo("decode", "--from", "primary", "--initial", RUN1 / "primary_to_secondary.bin")
    assert r.returncode == 0, r.stderr
    readme = (ROOT / "README.md").read_text()
    assert "colo decode --from primary --initial ../shared/qemu-colo/run1/" \
           "primary_to_secondary.bin" in readme


def test_decode_reads_the_tools_own_v11_wire_dump(tmp_path):
    wire = tmp_path / "wire"
    r = colo("run", "--dialect", "v11", "--dump-wire", wire)
    assert r.returncode == 0, r.stderr
    r = colo("decode", "--dialect", "v11", "--from", "primary",
             wire / "primary_to_secondary.bin")
    assert r.returncode == 0, r.stderr
    assert "malformed" not in r.stderr and "no initial migration" in r.stderr
    items = [json.loads(line) for line in r.stdout.splitlines()]
    assert any(i["type"] == "ram" and i["pages"] > 0 for i in items)
