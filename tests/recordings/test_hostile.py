"""Hostile recordings (issue 15): a clear error naming what is wrong, with bounded memory,
through every consumer; a recording that lies fails --verify."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.errors import RecordingError
from protocol.record import format as rf
from protocol.record.replay import verify

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "recordings" / "happy-qemu-periodic.colo.jsonl"
RUN1 = ROOT.parent / "shared" / "qemu-colo" / "run1"
#: every command that consumes a recording
CONSUMERS = (("replay",), ("replay", "--verify"), ("export", "--to", "json"),
             ("export", "--to", "mermaid"), ("export", "--to", "pcap"))


def colo(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "colo_tui", *args], capture_output=True,
                          timeout=timeout, cwd=ROOT, env=env)


def _golden_lines() -> list[bytes]:
    return GOLDEN.read_bytes().splitlines()


def _with_header(tmp_path, change) -> Path:
    lines = _golden_lines()
    head = json.loads(lines[1])
    change(head)
    lines[1] = json.dumps(head).encode()
    path = tmp_path / "h.colo.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _refused_by_every_consumer(path: Path, *needles: str) -> None:
    for cmd in CONSUMERS:
        r = colo(*cmd, str(path))
        err = r.stderr.decode()
        assert r.returncode == 1, (cmd, r.returncode, err)
        assert "Traceback" not in err and all(n in err for n in needles), (cmd, err)


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("checkpoints", 1e7, "params.checkpoints: Expected `int`, got `float`"),
    ("checkpoints", 10_000_000, "params.checkpoints 10000000 is above the limit of 10000"),
    ("client_every_ms", 1e-4, "params.client_every_ms: a client request every"),
    ("bytes_per_ms", 0, "params.bytes_per_ms: Expected `float` >= 1.0"),
    ("max_steps", 10**12, "params.max_steps"),
])
def test_params_out_of_range_are_refused(tmp_path, field, value, needle):
    path = _with_header(tmp_path, lambda h: h["params"].__setitem__(field, value))
    _refused_by_every_consumer(path, "line 2", needle)


@pytest.mark.parametrize("seed", [-1, 2**64, -(2**63)])
def test_a_seed_colo_run_refuses_is_refused(tmp_path, seed):
    path = _with_header(tmp_path, lambda h: h.__setitem__("seed", seed))
    _refused_by_every_consumer(path, "line 2", f"seed: {seed} is not a seed (0 to "
                               f"{2**64 - 1}, as `colo run --seed` takes)")


def test_a_fault_at_an_absurd_checkpoint_is_refused(tmp_path):
    path = _with_header(tmp_path, lambda h: h.__setitem__(
        "faults", ["drop@checkpoint-reply#99999999999999999999"]))
    _refused_by_every_consumer(path, "line 2", "99999999999999999999")


def test_the_checkpoint_cap_can_be_raised_on_purpose(tmp_path, monkeypatch):
    path = _with_header(tmp_path, lambda h: h["params"].__setitem__("checkpoints", 15000))
    with pytest.raises(RecordingError, match="COLO_MAX_CHECKPOINTS"):
        rf.read(path)
    monkeypatch.setenv("COLO_MAX_CHECKPOINTS", "20000")
    assert rf.read(path).config.checkpoints == 15000


@pytest.mark.parametrize(("version", "needle"), [
    (0, "version 0 does not exist"), (-1, "version -1 does not exist"),
    (True, "version must be an integer (got true)"), ("1", "must be an integer"),
    (1.0, "must be an integer (got 1.0)")])
def test_bad_versions_are_refused_by_every_consumer(tmp_path, version, needle):
    path = _with_header(tmp_path, lambda h: h.__setitem__("version", version))
    _refused_by_every_consumer(path, "line 2", needle)


def test_dev_zero_is_refused_with_bounded_memory():
    for cmd in CONSUMERS[:3]:
        r = colo(*cmd, "/dev/zero")
        # (refused before it is read: a device is no recording, protocol.record.infile)
        assert r.returncode == 1 and b"/dev/zero: not a regular file (a device" in r.stderr


_RSS = """
import sys
from protocol.errors import RecordingError
from protocol.record import format as rf
try:
    rf.read(sys.argv[1])
    print("read")
except RecordingError as exc:
    print("refused:", exc)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child of a big
# pytest process would report its parent's peak
hwm = [x for x in open("/proc/self/status") if x.startswith("VmHWM:")][0]
print(int(hwm.split()[1]) // 1024)
"""


def test_a_one_gib_line_is_refused_with_bounded_rss(tmp_path):
    path = tmp_path / "big.colo.jsonl"
    with open(path, "wb") as fh:          # a sparse file: the line costs no disk
        fh.write(_golden_lines()[1] + b'\n{"t":0,"seq":0,"side":"primary","kind":"x","data":"')
        fh.seek(1 << 30)
        fh.write(b'"}\n')
    r = subprocess.run([sys.executable, "-c", _RSS, str(path)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    out = r.stdout.splitlines()
    assert r.returncode == 0 and out[0].startswith("refused:") and "line 2 is longer" in out[0]
    assert int(out[1]) < 200, f"peak RSS {out[1]} MiB reading a 1 GiB line"


def test_invalid_utf8_even_in_a_comment_is_an_error_naming_the_line():
    lines = _golden_lines()
    lines.insert(3, b"# caf\xe9 latin-1, not UTF-8")
    with pytest.raises(RecordingError, match=r"line 4 is not valid UTF-8"):
        rf.parse(b"\n".join(lines) + b"\n", "x")


def test_deep_nesting_is_an_error_not_a_crash():
    lines = _golden_lines()
    lines.insert(3, b'{"t":0,"seq":0,"side":"sim","kind":"x","data":' + b"[" * 200_000
                 + b"]" * 200_000 + b"}")
    with pytest.raises(RecordingError, match=r"line 4 is not valid JSON \(nested too deeply\)"):
        rf.parse(b"\n".join(lines) + b"\n", "x")


@pytest.mark.parametrize(("line", "needle"), [
    ({"t": "0", "seq": 0, "side": "primary", "kind": "x"}, "t: Expected `float`, got `str`"),
    ({"t": 0, "seq": -1, "side": "primary", "kind": "x"}, "seq: Expected `int` >= 0"),
    ({"t": 0, "seq": 0, "side": ["p"], "kind": "x"}, "side: Expected `str`"),
    ({"t": 0, "seq": 0, "side": "primary", "kind": "send", "data": {"msg": 3}},
     "send data: msg: Expected `str`"),
    ({"input": {"cmd": "explode"}, "step": 1}, "unknown cmd 'explode'"),
    ({"input": {"cmd": "set-delay", "value": "soon"}, "step": 1}, "set-delay needs an integer"),
    ({"input": {"cmd": "fault", "value": "drop@ram#99999999999"}, "step": 1},
     "above the limit"),
    ({"input": {"cmd": "checkpoint"}, "step": True}, "step: Expected `int`, got `bool`"),
])
def test_bad_lines_are_refused_naming_the_line_and_field(line, needle):
    lines = _golden_lines()
    lines.insert(2, json.dumps(line).encode())
    with pytest.raises(RecordingError) as err:
        rf.parse(b"\n".join(lines) + b"\n", "x")
    assert "line 3" in str(err.value) and needle in str(err.value), str(err.value)


# ------------------------------------------------------------- cannot lie
@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    if not (RUN1 / "primary_to_secondary.bin").exists():
        pytest.skip("no run1 capture")
    out = tmp_path_factory.mktemp("imp") / "run1.colo.jsonl"
    r = colo("import", str(RUN1), "-o", str(out), timeout=300)
    assert r.returncode == 0, r.stderr
    return out


def _rewrite(src: Path, dst: Path, change) -> Path:
    lines = src.read_bytes().splitlines()
    head = [ln for ln in lines if ln.startswith(b"#")]
    objs = [json.loads(ln) for ln in lines if ln.startswith(b"{")]
    objs = [o for o in objs if "digest" not in o]          # a forger drops the trailer
    change(objs)
    dst.write_bytes(b"\n".join(head + [json.dumps(o).encode() for o in objs]) + b"\n")
    return dst


def test_an_imported_recording_is_verified_against_its_own_facts(imported, tmp_path):
    r = colo("replay", "--verify", str(imported))
    assert r.returncode == 0 and b"agree with each other" in r.stdout, r.stdout
    assert rf.read(imported).digest            # written with its digest

    def reverse(objs):
        objs[1:] = objs[:0:-1]
    bad = _rewrite(imported, tmp_path / "rev.colo.jsonl", reverse)
    r = colo("replay", "--verify", str(bad))
    assert r.returncode == 1 and b"INCONSISTENT" in r.stdout and b"out of order" in r.stdout

    def renumbered_reversal(objs):              # reversed, with seq and t made to look right
        events = objs[1:][::-1]
        for i, (ev, orig) in enumerate(zip(events, objs[1:], strict=True)):
            ev["seq"], ev["t"] = i, orig["t"]
        objs[1:] = events
    bad = _rewrite(imported, tmp_path / "rev2.colo.jsonl", renumbered_reversal)
    r = colo("replay", "--verify", str(bad))
    assert r.returncode == 1 and b"INCONSISTENT" in r.stdout, r.stdout

    def padded_ram(objs):                       # a RAM part whose sizes do not add up
        ram = next(o for o in objs if o.get("kind") == "ram")
        ram["data"]["pages"] += 1
    bad = _rewrite(imported, tmp_path / "ram.colo.jsonl", padded_ram)
    r = colo("replay", "--verify", str(bad))
    assert r.returncode == 1 and b"is not" in r.stdout and b"zero" in r.stdout


def test_imported_true_does_not_turn_verify_off(tmp_path):
    """A simulated recording with a forged event and "imported": true added."""
    def forge(objs):
        objs[0]["imported"] = True
        send = next(o for o in objs if o.get("kind") == "send"
                    and o["data"]["msg"] == "vmstate-loaded")
        send["data"]["msg"] = "checkpoint-request"
    bad = _rewrite(GOLDEN, tmp_path / "forged.colo.jsonl", forge)
    r = colo("replay", "--verify", str(bad))
    assert r.returncode == 1 and b"INCONSISTENT" in r.stdout, r.stdout
    assert b"checkpoint-request is sent by the primary, not the secondary" in r.stdout


def test_golden_version_1_files_still_replay_without_a_digest():
    rec = rf.read(GOLDEN)
    assert rec.version == 1 and rec.digest is None and rec.cut is None
    assert verify(rec).ok


def test_event_input_and_size_limits_are_errors_that_say_how_to_raise_them(monkeypatch):
    lines = _golden_lines()
    flood = lines[:2] + [b'{"input":{"cmd":"checkpoint"},"step":0}'] * 30
    monkeypatch.setenv("COLO_MAX_RECORDING_EVENTS", "20")
    with pytest.raises(RecordingError, match=r"line 23: more than 20 events and inputs "
                                             r"\(set COLO_MAX_RECORDING_EVENTS"):
        rf.parse(b"\n".join(flood) + b"\n", "x")
    with pytest.raises(RecordingError, match=r"more than 20 events"):
        rf.parse(b"\n".join(lines) + b"\n", "x")
    monkeypatch.delenv("COLO_MAX_RECORDING_EVENTS")
    monkeypatch.setenv("COLO_MAX_RECORDING_MIB", "1")
    big = lines[:2] + [b"# " + b"x" * 1000] * 2000
    with pytest.raises(RecordingError, match=r"larger than 1 MiB \(set COLO_MAX_RECORDING_MIB"):
        rf.parse(b"\n".join(big) + b"\n", "x")
    monkeypatch.setenv("COLO_MAX_RECORDING_MIB", "lots")
    with pytest.raises(Exception, match=r"COLO_MAX_RECORDING_MIB='lots': give a positive"):
        rf.parse(b"\n".join(lines) + b"\n", "x")
