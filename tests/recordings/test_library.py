"""The golden recordings replay identically, show what they claim, and cover §15.

Every ``recordings/*.colo.jsonl`` is picked up by the glob: a new file is
covered without touching this module.  The files are never regenerated here
(``recordings/make_recordings.py`` does that); a divergence means the
simulator's behaviour changed — fix the simulator or regenerate on purpose.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from protocol.errors import RecordingError
from protocol.record import format as rf
from protocol.record.replay import verify

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "recordings"
FILES = sorted(LIBRARY.glob("*.colo.jsonl"))
IDS = [p.name for p in FILES]

#: PROTOCOL.md §15 scenarios the library must hold (file-name prefix -> what)
REQUIRED = {
    **{f"happy-{d}-{m}": f"happy path, {d}, {m}" for d in ("qemu", "v11", "prototype")
       for m in ("periodic", "hybrid")},
    "lost-heartbeat-secondary": "lost heartbeat on the secondary, peer alive (split brain)",
    "lost-heartbeat-primary": "lost heartbeat on the primary, peer alive (split brain)",
    "kill-primary-mid-ram": "§15.11 primary dies while RAM streams",
    "kill-secondary-mid-ram": "§15.13 secondary dies while RAM streams",
    "failover-during-load": "§15.12 failover during load (relaunch)",
    "truncated-device-blob": "§15.10 truncated device blob",
    "dialect-mismatch": "§15.6 dialect mismatch",
    "out-of-range-opcode": "§15.7 unknown/out-of-range opcode",
    "out-of-order-message": "§15.8 out-of-order message",
    "v11-nonzero-value": "§15.9 non-zero value in the v11 idle wait",
    "guest-shutdown-qemu": "§15.17 guest shutdown, 7.2 (no message)",
    "guest-shutdown-v11": "§15.17 guest shutdown, v11 guest-shutdown message",
    "checkpoint-delay-changed": "§15.5 x-checkpoint-delay changed live",
    "compare-mismatch": "§15.3 compare mismatch (hybrid, guest model)",
    "stale-packet": "§15.4 stale packet (hybrid, guest model)",
}


@functools.cache
def _replay(path: Path):
    return verify(rf.read(path))


def _describe(diff: dict) -> str:
    return (f"first differing event: seq {diff.get('seq')}\n"
            f"  recorded: {json.dumps(diff.get('recorded'), sort_keys=True)}\n"
            f"  replayed: {json.dumps(diff.get('replayed'), sort_keys=True)}"
            + (f"\n  ({diff['why']})" if diff.get("why") else ""))


def test_library_is_not_empty():
    assert FILES, f"no recordings in {LIBRARY}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_replays_identically(path):
    res = _replay(path)
    assert res.ok, f"{path.name} diverges on replay ({res.events} events replayed); " \
                   f"{_describe(res.first_difference)}\n" \
                   "If the change is intended: python recordings/make_recordings.py"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_opens_with_a_comment(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#") and len(first.strip("# ")) > 10, \
        f"{path.name} must open with a '#' line saying what it shows"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_expected_outcome(path):
    rec = rf.read(path)
    expect = rec.header.get("expect")
    assert isinstance(expect, dict) and "outcome" in expect, \
        f"{path.name}: the header needs an 'expect': {{'outcome': ...}} field"
    ends = [e for e in rec.events if e.get("kind") == "end" and e.get("side") == "sim"]
    assert ends, f"{path.name}: no sim end event"
    assert ends[-1]["data"]["outcome"] == expect["outcome"], \
        f"{path.name}: recorded outcome {ends[-1]['data']['outcome']!r}, " \
        f"expected {expect['outcome']!r}"
    sim = _replay(path).sim
    assert sim.outcome() == expect["outcome"]
    for want in expect.get("events", []):
        hits = [e for e in rec.events if e.get("side") == want["side"]
                and e.get("kind") == want["kind"]
                and want.get("match", "") in json.dumps(e.get("data", {}), sort_keys=True)]
        assert hits, f"{path.name}: no {want['side']} {want['kind']} event with " \
                     f"{want.get('match')!r}"
    if expect.get("invariants", "ok") == "ok":
        broken = {k: v for k, v in sim.invariants.ok.items() if not v}
        assert not broken, f"{path.name}: invariants broke: {sim.invariants.violations}"


def test_library_covers_the_scenarios():
    stems = [p.name[: -len(".colo.jsonl")] for p in FILES]
    missing = [f"{k} ({v})" for k, v in REQUIRED.items()
               if not any(s == k or s.startswith(k + "-") for s in stems)]
    assert not missing, "the library lacks: " + "; ".join(missing)


# ------------------------------------------------------------- the format
def _sample() -> bytes:
    return (LIBRARY / "happy-qemu-periodic.colo.jsonl").read_bytes()


def test_too_new_version_is_refused_naming_the_line():
    lines = _sample().split(b"\n")
    head = next(i for i, ln in enumerate(lines) if ln.startswith(b"{"))
    obj = json.loads(lines[head])
    obj["version"] = rf.VERSION + 1
    lines[head] = json.dumps(obj).encode()
    with pytest.raises(RecordingError, match=rf"line {head + 1}: .*version {rf.VERSION + 1}"):
        rf.parse(b"\n".join(lines), "x")


def test_truncated_last_line_is_refused():
    raw = _sample().rstrip(b"\n")
    n = raw.count(b"\n") + 1
    with pytest.raises(RecordingError, match=rf"line {n} is truncated"):
        rf.parse(raw[:-7], "x")


def test_corrupt_line_is_refused_naming_the_line():
    lines = _sample().split(b"\n")
    assert lines[5].startswith(b"{")
    lines[5] = lines[5].replace(b'"seq"', b"seq", 1)      # an unquoted key: not JSON
    with pytest.raises(RecordingError, match=r"line 6 is not valid JSON"):
        rf.parse(b"\n".join(lines), "x")


def test_not_a_recording_is_refused():
    with pytest.raises(RecordingError, match=r"line 1: not a COLO recording"):
        rf.parse(b'{"format": "something-else", "version": 1}\n', "x")


def test_unknown_fields_and_kinds_are_ignored(tmp_path):
    src = LIBRARY / "kill-primary-mid-ram.colo.jsonl"
    out = []
    for line in src.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            obj["x-future-field"] = {"nested": [1, 2]}
            line = json.dumps(obj)
        out.append(line)
    out.insert(3, json.dumps({"x-future-line": "a kind this reader does not know"}))
    out.append("# a trailing comment")
    path = tmp_path / "future.colo.jsonl"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    rec = rf.read(path)
    assert len(rec.events) == len(rf.read(src).events)
    assert verify(rec).ok


def _make_recordings():
    spec = importlib.util.spec_from_file_location("make_recordings",
                                                  LIBRARY / "make_recordings.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_recordings", mod)     # dataclasses look the module up
    spec.loader.exec_module(sys.modules["make_recordings"])
    return sys.modules["make_recordings"]


@pytest.mark.parametrize("name", ["happy-v11-hybrid", "truncated-device-blob"])
def test_same_seed_writes_byte_identical_files(tmp_path, name):
    mk = _make_recordings()
    a, b = tmp_path / "a.colo.jsonl", tmp_path / "b.colo.jsonl"
    mk.write(mk.BY_NAME[name], a)
    mk.write(mk.BY_NAME[name], b)
    assert a.read_bytes() == b.read_bytes()


def test_every_scenario_of_the_generator_is_committed():
    mk = _make_recordings()
    committed = {p.name for p in FILES}
    missing = [s.name for s in mk.SCENARIOS if s.name + mk.SUFFIX not in committed]
    assert not missing, f"run recordings/make_recordings.py: missing {missing}"
