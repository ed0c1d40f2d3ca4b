"""Mutation fuzzing of recordings into the reader and every consumer (issue 15 §3).

The property: a RecordingError (or another ColoError / the exporter's one-line
ExportError) naming what is wrong, or a result — never another exception.
Derandomized; COLO_FUZZ_EXAMPLES raises the example count (default 40 each).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colo_tui.cli import export
from protocol.errors import ColoError
from protocol.record import format as rf
from protocol.record.playback import Playback
from protocol.record.replay import verify

ROOT = Path(__file__).resolve().parents[2]
RUN1 = ROOT.parent / "shared" / "qemu-colo" / "run1"
EXAMPLES = int(os.environ.get("COLO_FUZZ_EXAMPLES", 40))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_SOURCES: dict[str, list[bytes]] = {}


def _sources() -> dict[str, list[bytes]]:
    if not _SOURCES:
        for name in ("happy-qemu-periodic", "happy-prototype-hybrid", "compare-mismatch",
                     "kill-primary-mid-ram-v11"):
            _SOURCES[name] = (ROOT / "recordings" / f"{name}.colo.jsonl").read_bytes() \
                .splitlines()
        if (RUN1 / "primary_to_secondary.bin").exists():
            from colo_tui.cli.qemu import session_events
            from protocol.record.qemu_import import import_capture
            sess = import_capture(str(RUN1))
            head = {"format": rf.FORMAT, "version": rf.VERSION, "dialect": "qemu",
                    "imported": True, "params": {}, "initial": {"bytes": sess.initial["bytes"]}}
            lines = [json.dumps(head).encode()]
            lines += [json.dumps(e).encode() for e in session_events(sess)[:60]]
            _SOURCES["imported"] = _seal(lines)
    return _SOURCES


def _seal(lines: list[bytes]) -> list[bytes]:
    """Give a version-2 trailer that matches (a forger who recomputes the digest)."""
    body = [ln for ln in lines if ln.strip() and not ln.startswith(b"#")
            and not ln.startswith(b'{"digest"')]
    sha = hashlib.sha256(b"".join(ln.strip() + b"\n" for ln in body)).hexdigest()
    return lines + [json.dumps({"digest": {"lines": len(body), "sha256": sha}}).encode()]


HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.sampled_from(
        [0, -1, 1e-4, 1e7, 1e308, -0.0, 2**63, 2**64, "", "x" * 300, "qemu9", "#1e20",
         "drop@ram#99999999999999999999", "delay=99999999999@ram", [], {}, [[[]]],
         {"a": {"b": {"c": []}}}]),
    st.text(max_size=20), st.floats(allow_nan=False))
KEYS = st.sampled_from(["version", "dialect", "mode", "seed", "faults", "params", "imported",
                        "checkpoints", "client_every_ms", "bytes_per_ms", "rate", "guest",
                        "workload", "ram_mib", "max_steps", "load_ms", "arbiter_ms",
                        "latency_ms", "secondary_dialect", "t", "seq", "side", "kind", "data",
                        "msg", "value", "n", "phase", "dir", "point", "to", "from", "bytes",
                        "pages", "zero", "full", "input", "cmd", "step", "stop", "digest"])


def _set(obj, key, value, depth: int):
    """Set `key` somewhere in obj (top level or one of its dicts) to `value`."""
    targets = [obj] + [v for v in obj.values() if isinstance(v, dict)]
    target = targets[depth % len(targets)]
    if value is _DELETE:
        target.pop(key, None)
    else:
        target[key] = value


_DELETE = object()
MUTATION = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 10**6), KEYS, HOSTILE, st.integers(0, 5)),
    st.tuples(st.just("del"), st.integers(0, 10**6), KEYS, st.just(None), st.integers(0, 5)),
    st.tuples(st.just("dup"), st.integers(0, 10**6), st.integers(0, 10**6), st.none(),
              st.none()),
    st.tuples(st.just("swap"), st.integers(0, 10**6), st.integers(0, 10**6), st.none(),
              st.none()),
    st.tuples(st.just("bytes"), st.integers(0, 10**6), st.integers(0, 10**6),
              st.binary(min_size=0, max_size=8), st.none()),
    st.tuples(st.just("cut"), st.integers(0, 10**7), st.none(), st.none(), st.none()),
)


def _mutate(lines: list[bytes], mutations, reseal: bool) -> bytes:
    lines = list(lines)
    raw_tail = None
    for op, a, b, c, d in mutations:
        i = a % len(lines)
        if op in ("set", "del"):
            try:
                obj = json.loads(lines[i])
            except ValueError:
                continue
            if isinstance(obj, dict):
                _set(obj, b, _DELETE if op == "del" else c, d)
                lines[i] = json.dumps(obj).encode()
        elif op == "dup":
            lines.insert(b % (len(lines) + 1), lines[i])
        elif op == "swap":
            j = b % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "bytes":
            line = bytearray(lines[i])
            pos = b % (len(line) + 1)
            line[pos:pos + len(c)] = c
            lines[i] = bytes(line)
        elif op == "cut":
            raw_tail = a
    if reseal:
        lines = _seal(lines)
    raw = b"\n".join(lines) + b"\n"
    return raw if raw_tail is None else raw[:raw_tail % (len(raw) + 1)]


def _consume(raw: bytes, name: str) -> str:
    """Read, then feed every consumer; returns what happened (for the statistics)."""
    try:
        rec = rf.parse(raw, name)
    except ColoError as exc:
        assert str(exc) and name in str(exc)
        return "refused"
    outcomes = []
    for consumer in (verify, export.to_json, export.to_mermaid, export.to_pcap, _playback):
        try:
            consumer(rec)
            outcomes.append("ok")
        except (ColoError, export.ExportError) as exc:
            assert str(exc)
            outcomes.append("error")
    return "read:" + ",".join(outcomes)


def _playback(rec) -> None:
    pb = Playback(rec)
    pb.run(max_steps=100_000)
    for side in ("primary", "secondary"):
        pb.side(side).as_dict()


@SETTINGS
@given(source=st.sampled_from(["happy-qemu-periodic", "happy-prototype-hybrid",
                               "compare-mismatch", "kill-primary-mid-ram-v11", "imported"]),
       mutations=st.lists(MUTATION, min_size=1, max_size=4), reseal=st.booleans())
def test_mutated_recordings_give_an_error_or_a_result(source, mutations, reseal):
    lines = _sources().get(source) or _sources()["happy-qemu-periodic"]
    _consume(_mutate(lines, mutations, reseal), "fuzz.colo.jsonl")


@SETTINGS
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_give_an_error_or_a_result(raw):
    _consume(raw, "fuzz.colo.jsonl")
