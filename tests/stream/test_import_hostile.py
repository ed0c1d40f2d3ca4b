"""`colo import` against hostile captures: a result or a clean CaptureError, never
another exception; the COLO stream chosen by protocol; memory that does not grow
with the other traffic in a capture."""
import io
import json
import os
import shutil
import struct
import tempfile
import tracemalloc
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colo_tui.cli import main as cli
from colo_tui.cli.qemu import session_events
from protocol.record.qemu_import import (
    CaptureError,
    import_capture,
    import_streams,
    stall_warnings,
    to_json,
)
from tests.stream._synth import big_endian_pcap, colo_session, make_pcap, merge_pcaps, page

RUN1 = Path(__file__).resolve().parents[3] / "shared" / "qemu-colo" / "run1"
EXAMPLES = int(os.environ.get("COLO_FUZZ_EXAMPLES", 40))
needs_run1 = pytest.mark.skipif(not (RUN1 / "capture.pcap").exists(),
                                reason="the real QEMU capture is not here")


def _session(n: int = 3):
    return colo_session([[page("pc.ram", 0x1000 * (i + 1)), page("vga.vram", 0, "zero")]
                         for i in range(n)])


def _code(*argv) -> int:
    try:
        return cli.main(list(argv))
    except SystemExit as exc:
        return exc.code


# ------------------------------------------------------------ nanosecond pcaps
@pytest.mark.parametrize("endian", ["little", "big"])
def test_a_nanosecond_pcap_imports(tmp_path, endian):
    fwd, rev, _ = _session()
    raw = make_pcap(fwd, rev, nano=True, t0=1795641542.123456789)
    if endian == "big":
        raw = big_endian_pcap(raw)
    assert raw[:4].hex() == ("a1b23c4d" if endian == "big" else "4d3cb2a1")
    (tmp_path / "nano.pcap").write_bytes(raw)
    sess = import_capture(tmp_path / "nano.pcap")
    micro = tmp_path / "micro.pcap"
    micro.write_bytes(make_pcap(fwd, rev, t0=1795641542.123456))
    ref = import_capture(micro)
    assert [c.complete for c in sess.checkpoints] == [True, True, True]
    for a, b in zip(sess.checkpoints, ref.checkpoints, strict=True):
        assert a.t_request == pytest.approx(b.t_request, abs=1e-5)


# ------------------------------------------------------- stream_offsets.json
BAD_OFFSETS = ['[]', 'null', '"text"', '{"t0": "x"}', '{"t0": true}', '{"t0": 1e400}',
               '{"primary_to_secondary": 5}', '{"primary_to_secondary": [[1]]}',
               '{"primary_to_secondary": [["a", 1]]}', '{"primary_to_secondary": [[1, 2, 3]]}',
               '{"primary_to_secondary": [[-1, 2]]}', '{"secondary_to_primary": {"a": 1}}',
               '{"secondary_to_primary": [[0, "t"]]}', '[[[[[[[[[[[[', '{"t0": 1',
               '{"primary_to_secondary": [[1.5, 2]]}', '{"primary_to_secondary": [[true, 2]]}',
               "[" * 100_000 + "]" * 100_000]


@pytest.mark.parametrize("text", BAD_OFFSETS, ids=range(len(BAD_OFFSETS)))
def test_stream_offsets_of_the_wrong_shape_give_a_clear_error(tmp_path, text, capsys):
    fwd, rev, _ = _session()
    (tmp_path / "primary_to_secondary.bin").write_bytes(fwd)
    (tmp_path / "secondary_to_primary.bin").write_bytes(rev)
    (tmp_path / "stream_offsets.json").write_text(text)
    with pytest.raises(CaptureError, match="stream_offsets.json"):
        import_capture(tmp_path)
    assert _code("import", str(tmp_path), "-o", str(tmp_path / "out.colo.jsonl")) == 1
    err = capsys.readouterr().err
    assert err.startswith("colo: error: stream_offsets.json") and "Traceback" not in err


def test_stream_offsets_of_the_right_shape_still_import(tmp_path):
    fwd, rev, _ = _session()
    (tmp_path / "primary_to_secondary.bin").write_bytes(fwd)
    (tmp_path / "secondary_to_primary.bin").write_bytes(rev)
    (tmp_path / "stream_offsets.json").write_text(json.dumps(
        {"t0": 10, "primary_to_secondary": [[0, 10.5]], "extra": {"ignored": True}}))
    sess = import_capture(tmp_path)
    assert sess.checkpoints[0].t_request == pytest.approx(0.5)


# ------------------------------------------------------ pick by protocol
def test_a_longer_qevm_stream_is_not_picked_over_the_colo_stream(tmp_path):
    fwd, rev, _ = _session(2)
    decoy_fwd, _, _ = _session(9)          # a longer migration whose peer says nothing
    decoy = make_pcap(decoy_fwd + b"\0" * 50_000, b"", ports=(40001, 6666), t0=999.0)
    cap = tmp_path / "two.pcap"
    cap.write_bytes(merge_pcaps(decoy, make_pcap(fwd, rev)))
    sess = import_capture(cap)
    assert len(sess.checkpoints) == 2 and all(c.complete for c in sess.checkpoints)
    assert sess.tcp["connections"] == 2 and sess.tcp["p2s"]["dst"].endswith(":5555")


def test_without_a_colo_reverse_stream_the_first_qevm_stream_is_used(tmp_path):
    fwd, rev, _ = _session(2)
    cap = tmp_path / "plain.pcap"
    cap.write_bytes(merge_pcaps(make_pcap(fwd, b"", t0=1.0),
                                make_pcap(fwd + b"\0" * 9000, b"", ports=(1, 2), t0=2.0)))
    sess = import_capture(cap)
    assert sess.tcp["p2s"]["dst"].endswith(":5555")


def test_other_tcp_traffic_is_not_reassembled(tmp_path):
    """20 MB of other connections beside a small COLO stream: memory stays far below
    the traffic (before: the whole file read, then every connection reassembled)."""
    fwd, rev, _ = _session(2)
    noise = [make_pcap(b"GET /" + bytes(2_000_000), b"HTTP/1.1 200" + bytes(100),
                       ports=(50000 + k, 80), t0=1000.0 + k / 10) for k in range(10)]
    cap = tmp_path / "busy.pcap"
    cap.write_bytes(merge_pcaps(make_pcap(fwd, rev), *noise))
    assert cap.stat().st_size > 20_000_000
    tracemalloc.start()
    try:
        sess = import_capture(cap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(sess.checkpoints) == 2 and sess.tcp["connections"] == 11
    assert peak < 4_000_000, peak


# -------------------------------------- vmstate-size against the reverse stream
@needs_run1
def test_a_vmstate_size_at_the_limit_does_not_swallow_the_capture(tmp_path):
    for name in ("primary_to_secondary.bin", "secondary_to_primary.bin",
                 "stream_offsets.json"):
        shutil.copy(RUN1 / name, tmp_path / name)
    ref = import_capture(tmp_path)
    size_msg = next(m for m in ref.checkpoints[2].messages if m["msg"] == "vmstate-size")
    fwd = bytearray((tmp_path / "primary_to_secondary.bin").read_bytes())
    pos = size_msg["offset"]
    assert fwd[pos:pos + 4] == b"\0\0\0\4"
    fwd[pos + 4:pos + 12] = struct.pack(">Q", 1 << 30)           # exactly the import limit
    (tmp_path / "primary_to_secondary.bin").write_bytes(bytes(fwd))
    with pytest.raises(CaptureError, match="vmstate-received for checkpoint 3") as exc:
        import_capture(tmp_path)
    assert "garbled vmstate-size 1073741824" in str(exc.value)


def test_a_true_vmstate_size_passes_the_cross_check():
    fwd, rev, _ = _session(3)
    sess = import_streams(fwd, rev, [(0, 1.0)], [(0, 2.0), (4, 3.0)])
    assert all(c.complete for c in sess.checkpoints) and not sess.warnings


# ------------------------------------------------------ checkpoints that stop
def _timed(gaps_s: list[float]):
    fwd, rev, _ = _session(len(gaps_s) + 1)
    cps = import_streams(fwd, rev).checkpoints
    t, times = 0.0, [(0, 0.0)]
    for cp, gap in zip(cps, [1.0] + gaps_s, strict=True):
        t += gap
        times.append((cp.offset, t))
    return fwd, rev, times, t


def test_import_warns_when_checkpoints_stop_inside_the_capture():
    fwd, rev, times, _ = _timed([1.0, 1.0, 22.0, 1.0, 1.0])
    sess = import_streams(fwd, rev, times)
    (w,) = [w for w in sess.warnings if "stop" in w]
    assert "22.0 s between checkpoint 3" in w and "every 1.000 s" in w


def test_import_warns_when_checkpoints_stop_before_the_capture_ends():
    fwd, rev, times, last = _timed([1.0, 1.0, 1.0])
    assert not import_streams(fwd, rev, times, t_end=last + 0.5).warnings
    (w,) = import_streams(fwd, rev, times, t_end=last + 22.0).warnings
    assert "no checkpoint in the last 22.0 s" in w


def test_a_hung_primary_in_a_pcap_is_reported_and_an_idle_capture_tail_is_not(tmp_path,
                                                                               capsys):
    """Checkpoints every 1 s, then the primary hangs 22 s until the failover's RST: a
    warning. A capture that goes on recording other traffic after a clean end: none."""
    fwd, rev, _ = _session(4)
    starts = [cp.offset for cp in import_streams(fwd, rev).checkpoints]
    raw = make_pcap(fwd, rev, rst_from="secondary", mss=200)
    pkts = list(dpkt.pcap.Reader(io.BytesIO(raw)))

    def retimed(hang_s: float) -> bytes:
        out = io.BytesIO()
        w = dpkt.pcap.Writer(out)
        shift = 0.0
        for i, (ts, buf) in enumerate(pkts):
            tcp = dpkt.ethernet.Ethernet(buf).data.data
            if tcp.sport == 40000 and tcp.data:        # the primary: one checkpoint a second
                offset = (tcp.seq - 0xFFFFF001) % (1 << 32)
                shift = max(shift, float(sum(1 for o in starts if o <= offset)))
            if i == len(pkts) - 1:
                shift += hang_s                         # the RST comes hang_s later
            w.writepkt(buf, ts=float(ts) + shift)
        return out.getvalue()

    (tmp_path / "hung.pcap").write_bytes(retimed(22.0))
    (w,) = import_capture(tmp_path / "hung.pcap").warnings
    assert "no checkpoint in the last 2" in w and "every 1.0" in w
    # the command says so: on stderr as text, in "warnings" as JSON
    assert cli.main(["import", str(tmp_path / "hung.pcap"), "-o",
                     str(tmp_path / "hung.colo.jsonl")]) == 0
    assert f"warning: {w}" in capsys.readouterr().out
    assert cli.main(["import", str(tmp_path / "hung.pcap"), "-o",
                     str(tmp_path / "hung2.colo.jsonl"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == [w]
    (tmp_path / "clean.pcap").write_bytes(retimed(0.5))
    assert import_capture(tmp_path / "clean.pcap").warnings == []
    later = make_pcap(b"GET /", b"200", ports=(50000, 80), t0=float(pkts[-1][0]) + 60.0)
    (tmp_path / "tail.pcap").write_bytes(merge_pcaps(retimed(0.5), later))
    assert import_capture(tmp_path / "tail.pcap").warnings == []


def test_no_stall_is_seen_in_a_steady_run():
    class Cp:
        def __init__(self, t):
            self.t_request = t
    assert stall_warnings([Cp(i * 1.0) for i in range(30)], 30.5) == []


@needs_run1
def test_the_real_capture_imports_without_warnings():
    assert import_capture(RUN1 / "capture.pcap").warnings == []


# ----------------------------------------------------------------- fuzzing
_BASE: dict[str, bytes] = {}


def _base(which: str) -> bytes:
    if which not in _BASE:
        if which == "real":
            _BASE[which] = (RUN1 / "capture.pcap").read_bytes()
        else:
            fwd, rev, _ = _session(3)
            _BASE[which] = {"synthetic": make_pcap(fwd, rev, fin_from="primary"),
                            "shuffled": make_pcap(fwd, rev, shuffle=True, retransmit=True),
                            "pcapng": make_pcap(fwd, rev, pcapng=True, linktype=113),
                            "nano": make_pcap(fwd, rev, nano=True)}[which]
    return _BASE[which]


mutations = st.lists(st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 30), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 30), st.integers(1, 64)),
    st.tuples(st.just("head"), st.integers(0, 63), st.integers(1, 255)),
), min_size=1, max_size=6)


def _mutate(data: bytearray, muts) -> bytearray:
    for op, pos, x in muts:
        if not data:
            break
        at = pos % len(data)
        if op == "flip":
            data[at] ^= x
        elif op == "head":
            data[min(at, len(data) - 1)] ^= x
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = bytes([x])
        else:
            del data[at:at + x]
    return data


def _import_or_clean_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cap.pcap"
        path.write_bytes(data)
        try:
            sess = import_capture(path)
        except CaptureError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        session_events(sess)
        json.dumps(to_json(sess))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(which=st.sampled_from(["synthetic", "shuffled", "pcapng", "nano"]), muts=mutations)
def test_mutated_synthetic_captures_give_a_result_or_a_clean_error(which, muts):
    _import_or_clean_error(bytes(_mutate(bytearray(_base(which)), muts)))


@needs_run1
@settings(max_examples=max(3, EXAMPLES // 8), deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(muts=mutations)
def test_mutated_real_captures_give_a_result_or_a_clean_error(muts):
    _import_or_clean_error(bytes(_mutate(bytearray(_base("real")), muts)))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(real=st.booleans(), fwd_muts=mutations, rev_muts=st.lists(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(1, 255)), max_size=2))
def test_mutated_streams_in_a_valid_pcap_give_a_result_or_a_clean_error(real, fwd_muts,
                                                                         rev_muts):
    """The mutation inside the TCP payload (the pcap itself stays valid): this reaches
    the stream selection and the decoder rather than the pcap reader."""
    if real and not (RUN1 / "primary_to_secondary.bin").exists():
        real = False
    if real:      # the real session up to its 4th checkpoint, to keep an example fast
        fwd = (RUN1 / "primary_to_secondary.bin").read_bytes()[:1_400_000]
        rev = (RUN1 / "secondary_to_primary.bin").read_bytes()
    else:
        fwd, rev, _ = _session(3)
    fwd = _mutate(bytearray(fwd), fwd_muts)
    rev = _mutate(bytearray(rev), rev_muts)
    _import_or_clean_error(make_pcap(bytes(fwd), bytes(rev), mss=16_000))


def test_a_pcap_with_a_bad_magic_or_link_type_is_a_clean_error(tmp_path):
    fwd, rev, _ = _session(1)
    raw = bytearray(make_pcap(fwd, rev))
    raw[20:24] = struct.pack("<I", 147)              # a user link type
    (tmp_path / "a.pcap").write_bytes(bytes(raw))
    with pytest.raises(CaptureError, match="link type 147"):
        import_capture(tmp_path / "a.pcap")
    w = dpkt.pcap.Writer(open(tmp_path / "b.pcap", "wb"))   # noqa: SIM115
    w.close()
    with pytest.raises(CaptureError, match="empty capture"):
        import_capture(tmp_path / "b.pcap")


@pytest.mark.parametrize("name", ["primary_to_secondary.bin", "secondary_to_primary.bin",
                                  "stream_offsets.json"])
def test_a_stream_file_that_never_ends_is_refused(tmp_path, name, capsys):
    fwd, rev, _ = _session(1)
    (tmp_path / "primary_to_secondary.bin").write_bytes(fwd)
    (tmp_path / "secondary_to_primary.bin").write_bytes(rev)
    target = tmp_path / name
    target.unlink(missing_ok=True)
    target.symlink_to("/dev/zero")
    with pytest.raises(CaptureError, match="not a regular file|larger than 64 MiB"):
        import_capture(tmp_path)


def test_a_capture_that_never_ends_is_refused(capsys):
    assert _code("import", "/dev/zero", "-o", "/dev/null") == 1
    assert "not a regular file" in capsys.readouterr().err


def test_a_scan_examines_a_bounded_number_of_connections(tmp_path, monkeypatch):
    from protocol.record import pcap
    from protocol.record.pcap import scan
    fwd, rev, _ = _session(1)
    noise = [make_pcap(b"x" * 10, b"y", ports=(50000 + k, 80), t0=1.0 + k) for k in range(6)]
    cap = tmp_path / "many.pcap"
    cap.write_bytes(merge_pcaps(*noise, make_pcap(fwd, rev, t0=100.0)))
    found = scan(cap, max_connections=4)
    assert len(found.connections) == 4 and found.untracked == 3
    assert len(import_capture(cap).checkpoints) == 1      # found within the default bound
    monkeypatch.setattr(pcap.scan, "__defaults__", (4,))
    with pytest.raises(CaptureError, match="3 were not examined"):
        import_capture(cap)
