"""protocol.record: pcap reassembly and the QEMU COLO capture import."""
from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.migration.pages import PAGE_SIZE
from protocol.record.pcap import read_pcap
from protocol.record.qemu_import import CaptureError, import_capture, import_streams, to_json
from tests.stream._synth import colo_session, make_pcap, page

RUN1 = Path("/work/shared/qemu-colo/run1")
needs_run1 = pytest.mark.skipif(not (RUN1 / "capture.pcap").exists(),
                                reason="run1 capture not available")


@pytest.fixture(scope="module")
def csv_rows():
    with open(RUN1 / "checkpoints.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run1_pcap():
    return to_json(import_capture(RUN1 / "capture.pcap"))


def _check_against_csv(j, rows, timed=True):
    cps = j["checkpoints"]
    assert len(cps) == len(rows) == 21
    assert sum(c["complete"] for c in cps) == 20
    for c, r in zip(cps, rows, strict=True):
        assert c["index"] == int(r["index"])
        assert c["complete"] == bool(int(r["complete"]))
        if timed:
            assert abs(c["t_request"] - float(r["t_request"])) < 1e-3
        if not c["complete"]:
            continue
        assert (c["zero_pages"], c["full_pages"], c["xbzrle_pages"]) == \
            (int(r["zero_pages"]), int(r["full_pages"]), 0)
        assert c["device_state_size"] == int(r["device_state_size"]) == 14367
        assert c["device_sections"] == int(r["device_sections"]) == 32
        assert c["ram_bytes"] == int(r["live_bytes"])
        assert c["forward_bytes"] == int(r["forward_bytes"])
        assert c["page_list"] == r["page_list"]
        assert [m["msg"] for m in c["messages"]] == [
            "checkpoint-request", "checkpoint-reply", "vmstate-send", "vmstate-size",
            "vmstate-received", "vmstate-loaded"]
        assert c["messages"][3]["value"] == 14367
        if timed:
            assert abs(c["t_loaded"] - float(r["t_loaded"])) < 1e-3
            ts = [m["t"] for m in c["messages"]]
            assert ts == sorted(ts)
    last = cps[-1]
    assert [m["msg"] for m in last["messages"]] == ["checkpoint-request"]
    assert last["t_loaded"] is None


@needs_run1
def test_run1_pcap(run1_pcap, csv_rows):
    j = run1_pcap
    _check_against_csv(j, csv_rows)
    ini = j["initial"]
    assert ini["machine"] == "pc-i440fx-7.2" and ini["enable_colo"]
    assert len(ini["blocks"]) == 8 and len(ini["device_sections"]) == 32
    assert ini["pages"] == {"zero": 36801, "page": 211, "xbzrle": 0}
    assert [(s["type"], s["zero"], s["page"]) for s in ini["ram_sections"]] == \
        [("START", 0, 0), ("PART", 36801, 209), ("END", 0, 2)]
    assert ini["bytes"] == 1313269
    end = j["end"]
    assert end["kind"] == "lone-request"
    assert [f["side"] for f in end["fin"]] == ["secondary"]
    assert [r["side"] for r in end["rst"]] == ["secondary"]
    assert abs(end["fin"][0]["t"] - 20.279) < 1e-3 and abs(end["rst"][0]["t"] - 21.114) < 1e-3
    assert j["tcp"]["p2s"]["bytes"] == 4270437 and j["tcp"]["s2p"]["bytes"] == 244
    assert j["tcp"]["p2s"]["gaps"] == [] and j["tcp"]["p2s"]["retransmitted"] == 0
    assert abs(j["ready"]["t"] - 0.113808) < 1e-3
    json.dumps(j)


@needs_run1
def test_run1_bins_same_as_pcap(run1_pcap, csv_rows):
    j = to_json(import_capture(RUN1))
    _check_against_csv(j, csv_rows)
    assert j["checkpoints"] == run1_pcap["checkpoints"]
    assert j["end"]["kind"] == "lone-request"


@needs_run1
def test_run1_pcap_offsets_match_stream_offsets_json():
    cap = read_pcap(RUN1 / "capture.pcap")
    offs = json.loads((RUN1 / "stream_offsets.json").read_text())
    (conn,) = cap.connections
    assert conn.a.data == (RUN1 / "primary_to_secondary.bin").read_bytes()
    assert conn.b.data == (RUN1 / "secondary_to_primary.bin").read_bytes()
    assert [list(x) for x in conn.a.offsets] == offs["primary_to_secondary"]
    assert [list(x) for x in conn.b.offsets] == offs["secondary_to_primary"]
    assert cap.t0 == offs["t0"] and conn.initiator == conn.a.src


@needs_run1
@pytest.mark.parametrize("linktype", [113, 101])
def test_run1_rewrapped_sll_raw_shuffled_retransmitted(linktype):
    p2s = (RUN1 / "primary_to_secondary.bin").read_bytes()
    s2p = (RUN1 / "secondary_to_primary.bin").read_bytes()
    pc = make_pcap(p2s, s2p, linktype=linktype, mss=32768, shuffle=True, retransmit=True,
                   fin_from="primary")
    cap = read_pcap(pc)
    (conn,) = cap.connections
    assert conn.a.data == p2s and conn.b.data == s2p and conn.a.gaps == []
    assert conn.a.retransmitted > 0
    j = to_json(import_capture_bytes(pc))
    assert len(j["checkpoints"]) == 21 and j["end"]["kind"] == "lone-request"
    assert j["end"]["fin"][0]["side"] == "primary"


def import_capture_bytes(pc: bytes, tmp=Path("/tmp")):
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".pcap", dir=tmp) as f:
        f.write(pc)
        f.flush()
        return import_capture(f.name)


@needs_run1
@pytest.mark.parametrize("cut", [3, 1000, 1313268, 1313269, 1313271, 1313275, 1313300,
                                 1473381, 1473385, 1473400, 1487000, 4270433, 4270436])
def test_run1_truncated(cut):
    p2s = (RUN1 / "primary_to_secondary.bin").read_bytes()[:cut]
    s2p = (RUN1 / "secondary_to_primary.bin").read_bytes()
    try:
        sess = import_streams(p2s, s2p)
    except CaptureError as exc:
        assert cut <= 1313268 and "initial migration" in str(exc)
        return
    assert cut >= 1313269
    if sess.checkpoints:
        last = sess.checkpoints[-1]
        if last.complete:       # cut on a checkpoint boundary (or inside the next request)
            assert sess.end["kind"] in ("clean", "eof-mid-checkpoint")
            assert (sess.end["kind"] == "clean") == (cut == last.offset + last.forward_bytes)
        else:
            assert sess.end["kind"] in ("lone-request", "eof-mid-checkpoint")
    assert all(c.complete for c in sess.checkpoints[:-1])


def test_non_colo_pcaps():
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf)
    udp = dpkt.udp.UDP(sport=1, dport=2, data=b"hello")
    ip = dpkt.ip.IP(src=b"\1\2\3\4", dst=b"\1\2\3\5", p=17, data=udp)
    w.writepkt(bytes(dpkt.ethernet.Ethernet(type=0x0800, data=ip)), ts=1.0)
    with pytest.raises(CaptureError, match="no TCP"):
        import_capture_bytes(buf.getvalue())
    with pytest.raises(CaptureError, match="QEVM"):
        import_capture_bytes(make_pcap(b"GET / HTTP/1.1\r\n\r\n" * 10, b"HTTP/1.1 200 OK"))
    empty = io.BytesIO()
    dpkt.pcap.Writer(empty)
    with pytest.raises(CaptureError, match="empty"):
        import_capture_bytes(empty.getvalue())
    with pytest.raises(CaptureError, match="pcap"):
        import_capture_bytes(b"this is not a capture at all")
    with pytest.raises(CaptureError, match="QEVM"):
        import_streams(b"\0\0\0\1", b"")
    with pytest.raises(CaptureError, match="empty"):
        import_streams(b"", b"")


def test_synthetic_session_continue_xbzrle_big_offsets():
    cps = [
        [page("pc.ram", (1 << 32) + PAGE_SIZE), page("pc.ram", 5 * PAGE_SIZE, "xbzrle"),
         page("vga.vram", 0, "zero")],
        [page("vga.vram", PAGE_SIZE)],            # CONTINUE across the checkpoint boundary
        [],                                        # nothing dirty
        [page("tiny", 0, "xbzrle"), page("pc.ram", (1 << 33) - PAGE_SIZE, "zero", fill=7)],
    ]
    p2s, s2p, _ = colo_session(cps)
    for pc in (None, make_pcap(p2s, s2p, fin_from="secondary", mss=999, shuffle=True)):
        sess = import_streams(p2s, s2p) if pc is None else import_capture_bytes(pc)
        j = to_json(sess)
        got = [(c["zero_pages"], c["full_pages"], c["xbzrle_pages"], c["complete"])
               for c in j["checkpoints"]]
        assert got == [(1, 1, 1, True), (0, 1, 0, True), (0, 0, 0, True), (1, 0, 1, True)]
        assert j["checkpoints"][0]["page_list"].startswith("pc.ram:0x100001000:P")
        assert j["checkpoints"][1]["page_list"] == "vga.vram:0x1000:P"
        assert j["checkpoints"][0]["device_sections"] == 2
        assert j["end"]["kind"] == ("clean" if pc is None else "fin")
        assert j["initial"]["pages"] == {"zero": 2, "page": 1, "xbzrle": 0}
    p2s, s2p, _ = colo_session(cps[:1], lone_request=True)
    sess = import_streams(p2s, s2p)
    assert sess.end["kind"] == "lone-request" and len(sess.checkpoints) == 2


def test_missing_loaded_is_incomplete():
    p2s, s2p, _ = colo_session([[page("tiny", 0)]] * 2)
    sess = import_streams(p2s, s2p[:-4])
    assert [c.complete for c in sess.checkpoints] == [True, False]
    assert sess.end["kind"] == "eof-mid-checkpoint"


def test_garbled_forward_and_reverse():
    p2s, s2p, _ = colo_session([[page("tiny", 0)], [page("tiny", 0)]])
    with pytest.raises(CaptureError, match="garbled reverse"):
        import_streams(p2s, s2p[:4] + struct.pack(">I", 9) + s2p[8:])
    n0 = len(colo_session([])[0])
    bad = p2s[:n0] + struct.pack(">I", 4) + p2s[n0 + 4:]
    with pytest.raises(CaptureError, match="expected checkpoint-request"):
        import_streams(bad, s2p)
    bad = p2s[:n0 + 8] + b"\x02" + p2s[n0 + 9:]
    with pytest.raises(CaptureError, match="garbled RAM part in checkpoint 1"):
        import_streams(bad, s2p)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=40))
def test_random_bytes_only_capture_error(a, b):
    for fwd in (a, b"QEVM\0\0\0\3" + a):
        try:
            import_streams(fwd, b)
        except CaptureError:
            pass
    try:
        import_capture_bytes(a)
    except CaptureError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=4))
def test_mutated_session_only_capture_error(pos, junk):
    p2s, s2p, _ = colo_session([[page("tiny", 0), page("pc.ram", 0, "zero")]] * 2)
    pos %= len(p2s)
    try:
        import_streams(p2s[:pos] + junk + p2s[pos + len(junk):], s2p)
    except CaptureError:
        pass


def test_pcapng_and_gap():
    p2s, s2p, _ = colo_session([[page("tiny", 0)], [page("pc.ram", 0)]])
    j = to_json(import_capture_bytes(make_pcap(p2s, s2p, pcapng=True, rst_from="primary")))
    assert [c["complete"] for c in j["checkpoints"]] == [True, True]
    assert j["end"]["kind"] == "rst" and j["end"]["rst"][0]["side"] == "primary"
    # drop a segment inside the last checkpoint: decoded up to the gap, reported
    n = len(p2s) // 500
    sess = import_capture_bytes(make_pcap(p2s, s2p, mss=500, drop=n))
    assert sess.tcp["p2s"]["gaps"] and any("gap" in w for w in sess.warnings)
    assert sess.end["kind"] == "eof-mid-checkpoint" and not sess.checkpoints[-1].complete
    # a gap inside the initial migration is a CaptureError that names the hole
    with pytest.raises(CaptureError, match="initial migration") as err:
        import_capture_bytes(make_pcap(p2s, s2p, mss=500, drop=2))
    assert "hole in the primary->secondary stream: bytes 500..999 (500 bytes) were " \
           "never captured" in str(err.value)
    assert "dropped packets" in str(err.value)
