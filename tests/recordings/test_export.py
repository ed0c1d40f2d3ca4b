"""`colo export`: mermaid structure, pcap bytes = wire bytes, json round trip, bad input."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from colo_tui.cli import export
from protocol.record import format as rf
from protocol.record.pcap import read_pcap
from protocol.record.replay import verify
from protocol.sim.link import P2S, S2P

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "recordings"
ARROW = re.compile(r"^    (Primary|Secondary)(->>|-x)(Primary|Secondary): \S")
NOTE = re.compile(r"^    Note over (Primary|Secondary|Primary,Secondary): \S")


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "colo_tui.cli.export", *map(str, args)],
                          cwd=ROOT, capture_output=True, timeout=120, **kw)


# ----------------------------------------------------------------- mermaid
@pytest.mark.parametrize("name", ["happy-qemu-periodic", "kill-primary-mid-ram",
                                  "dropped-vmstate-loaded", "dialect-mismatch-qemu-v11"])
def test_mermaid_is_a_sequence_diagram(name):
    text = export.to_mermaid(rf.read(LIB / f"{name}.colo.jsonl"))
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert "    participant Primary" in lines and "    participant Secondary" in lines
    for line in lines[1:]:
        assert line.startswith("    %%") or line.startswith("    participant ") or \
            ARROW.match(line) or NOTE.match(line), f"not a mermaid statement: {line!r}"
        assert ";" not in re.sub(r"#\d+;", "", line.split(":", 1)[-1]), line


def test_mermaid_arrows_follow_the_wire():
    rec = rf.read(LIB / "happy-qemu-periodic.colo.jsonl")
    text = export.to_mermaid(rec)
    sends = [e for e in rec.events if e["kind"] == "send"]
    for e in sends:
        src = "Primary" if e["side"] == "primary" else "Secondary"
        assert f"{src}->>" in text and e["data"]["msg"] in text
    arrows = [ln for ln in text.splitlines() if ARROW.match(ln)]
    pieces = [e for e in rec.events if e["kind"].startswith("send")]
    assert len(arrows) == len(pieces)
    assert "Secondary->>Primary: checkpoint-ready = 0" in text
    assert "Primary->>Secondary: vmstate-size = 1" in text
    assert any("RAM part" in a for a in arrows) and any("device state" in a for a in arrows)


def test_mermaid_marks_dropped_and_notes():
    text = export.to_mermaid(rf.read(LIB / "dropped-vmstate-loaded.colo.jsonl"))
    assert re.search(r"^    Secondary-xPrimary: vmstate-loaded = 0 .*dropped", text, re.M)
    assert "Note over Primary,Secondary: end: outcome failover" in text
    assert re.search(r"Note over .*COLO_EXIT\(primary, error\)", text)
    text = export.to_mermaid(rf.read(LIB / "kill-primary-mid-ram.colo.jsonl"))
    assert "fault kill-primary@ram#35;2" in text          # '#' escaped for mermaid
    assert "-x" in text and "failover" in text


# -------------------------------------------------------------------- pcap
def _streams(raw: bytes) -> dict:
    """TCP payload per (sport, dport), checking seq continuity, via dpkt only."""
    out: dict = {}
    flags: dict = {}
    for _ts, buf in dpkt.pcap.Reader(__import__("io").BytesIO(raw)):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        assert isinstance(ip, dpkt.ip.IP) and ip.src == ip.dst == b"\x7f\x00\x00\x01"
        tcp = ip.data
        assert isinstance(tcp, dpkt.tcp.TCP)
        key = (tcp.sport, tcp.dport)
        flags.setdefault(key, []).append(tcp.flags)
        if tcp.flags & dpkt.tcp.TH_SYN:
            out[key] = {"next": tcp.seq + 1, "data": bytearray()}
            continue
        if tcp.data:
            st = out[key]
            assert tcp.seq == st["next"] & 0xFFFFFFFF, "seq numbers are not contiguous"
            st["data"] += tcp.data
            st["next"] += len(tcp.data)
    return {k: bytes(v["data"]) for k, v in out.items()}, flags


@pytest.mark.parametrize("name", ["happy-qemu-periodic", "happy-prototype-hybrid",
                                  "truncated-device-blob", "kill-secondary-mid-ram",
                                  "dialect-mismatch-v11-qemu"])
def test_pcap_payload_equals_the_wire(name, tmp_path):
    rec = rf.read(LIB / f"{name}.colo.jsonl")
    wire = verify(rec).sim.link.wire
    raw = export.to_pcap(rec)
    streams, flags = _streams(raw)
    p2s = streams[(export.PRIMARY_PORT, export.SECONDARY_PORT)]
    s2p = streams[(export.SECONDARY_PORT, export.PRIMARY_PORT)]
    assert p2s == bytes(wire[P2S]) and s2p == bytes(wire[S2P])
    for key in flags:        # handshake first, FIN at the end
        assert flags[key][0] & dpkt.tcp.TH_SYN
        assert any(f & dpkt.tcp.TH_FIN for f in flags[key])
    cap = read_pcap(raw)     # the project's own reassembler agrees, without gaps
    dirs = [d for c in cap.connections for d in c.directions()] \
        if hasattr(cap, "connections") else None
    if dirs is not None:
        by_src = {d.src.rsplit(":", 1)[-1]: d for d in dirs}
        assert by_src[str(export.PRIMARY_PORT)].data == bytes(wire[P2S])
        assert not by_src[str(export.PRIMARY_PORT)].gaps


def test_pcap_times_are_the_virtual_time():
    rec = rf.read(LIB / "happy-qemu-periodic.colo.jsonl")
    stamps = [ts for ts, _ in dpkt.pcap.Reader(__import__("io").BytesIO(export.to_pcap(rec)))]
    assert stamps == sorted(stamps)
    ends = [e["t"] for e in rec.events if e["kind"] == "end"]
    assert stamps[0] == 0.0 and 1.0 < stamps[-1] <= ends[-1] / 1000 + 0.01


def test_pcap_reads_in_tshark(tmp_path):
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    out = tmp_path / "s.pcap"
    assert _run(LIB / "happy-qemu-periodic.colo.jsonl", "--to", "pcap", "-o", out).returncode == 0
    res = subprocess.run([tshark, "-r", str(out), "-q", "-z", "conv,tcp"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert str(export.SECONDARY_PORT) in res.stdout


# -------------------------------------------------------------------- json
def test_json_round_trip(tmp_path):
    src = LIB / "lost-heartbeat-secondary.colo.jsonl"
    out = tmp_path / "x.json"
    res = _run(src, "--to", "json", "-o", out)
    assert res.returncode == 0, res.stderr.decode()
    doc = json.loads(out.read_text(encoding="utf-8"))
    rec = rf.read(src)
    assert doc["header"] == rec.header and doc["events"] == rec.events
    assert doc["inputs"] == rec.inputs
    back = tmp_path / "back.colo.jsonl"
    rf.write(back, doc["header"], doc["events"], doc["inputs"], doc["comments"])
    assert verify(rf.read(back)).ok


def test_mermaid_to_stdout():
    res = _run(LIB / "happy-v11-periodic.colo.jsonl", "--to", "mermaid")
    assert res.returncode == 0 and res.stdout.startswith(b"sequenceDiagram\n")


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize("args,code,text", [
    (["/nonexistent/x.colo.jsonl", "--to", "json"], 1, "cannot read recording"),
    (["pyproject.toml", "--to", "mermaid"], 1, "not valid JSON"),
    (["recordings/happy-qemu-periodic.colo.jsonl", "--to", "svg"], 2, "unknown --to"),
    (["recordings/happy-qemu-periodic.colo.jsonl"], 2, "--to"),
])
def test_bad_input_is_one_line_no_traceback(args, code, text):
    res = _run(*args)
    err = res.stderr.decode()
    assert res.returncode == code, err
    assert "Traceback" not in err and text in err
    assert len(err.strip().splitlines()) == 1, err


def test_not_a_recording(tmp_path):
    bad = tmp_path / "x.colo.jsonl"
    bad.write_text('{"format": "pcap", "version": 1}\n')
    res = _run(bad, "--to", "pcap", "-o", tmp_path / "o.pcap")
    assert res.returncode == 1 and b"not a COLO recording" in res.stderr


def test_diverging_recording_is_refused_for_pcap(tmp_path):
    src = (LIB / "happy-qemu-periodic.colo.jsonl").read_text(encoding="utf-8").splitlines()
    src = [ln.replace('"vmstate-size"', '"vmstate-sizx"') for ln in src]
    bad = tmp_path / "x.colo.jsonl"
    bad.write_text("\n".join(src) + "\n")
    res = _run(bad, "--to", "pcap", "-o", tmp_path / "o.pcap")
    assert res.returncode == 1 and b"does not replay identically" in res.stderr


def test_add_parser_plugs_into_a_parent():
    import argparse
    parent = argparse.ArgumentParser(prog="colo")
    export.add_parser(parent.add_subparsers(dest="command"))
    args = parent.parse_args(["export", "f.colo.jsonl", "--to", "json", "-o", "o"])
    assert args.func is export.run_export and args.to == "json" and args.output == "o"


def test_the_pcap_is_written_packet_by_packet_and_not_left_half_made(tmp_path, monkeypatch):
    """write_pcap hands the file one packet at a time (it used to build the whole
    pcap in memory, about 5× its size, then write it), with the same bytes as
    to_pcap; `colo export -o` stopped midway leaves no file behind."""
    import io
    rec = rf.read(LIB / "happy-qemu-periodic.colo.jsonl")

    class Sink(io.BytesIO):
        biggest = 0

        def write(self, b):
            Sink.biggest = max(Sink.biggest, len(b))
            return super().write(b)
    sink = Sink()
    export.write_pcap(rec, sink)
    assert sink.getvalue() == export.to_pcap(rec)
    packets = list(dpkt.pcap.Reader(io.BytesIO(sink.getvalue())))
    assert len(packets) >= 10
    biggest_packet = max(len(raw) for _ts, raw in packets)
    assert Sink.biggest <= biggest_packet + 16     # one packet and its record header a write

    calls = []

    def stops(rec, fh):          # ctrl+c in the middle of the pcap
        fh.write(b"\xd4\xc3\xb2\xa1" + b"\x00" * 100)
        calls.append(fh)
        raise KeyboardInterrupt
    monkeypatch.setattr(export, "write_pcap", stops)
    out = tmp_path / "cut.pcap"
    with pytest.raises(KeyboardInterrupt):
        export.main(["export", str(LIB / "happy-qemu-periodic.colo.jsonl"), "--to", "pcap",
                     "-o", str(out)])
    assert calls and not out.exists() and list(tmp_path.iterdir()) == []
