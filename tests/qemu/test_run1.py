"""Offline tests on the real QEMU 7.2 capture run1: import, respond, live proxy."""
from __future__ import annotations

import asyncio
import json

import pytest

from colo_tui.cli.main import main as colo
from protocol.core.dialects import QEMU
from protocol.drivers.proxy import Proxy, check_faults
from protocol.errors import FaultSpecError
from protocol.record import format as rf
from protocol.record.qemu_import import import_streams


def test_import_writes_a_recording_and_summary(run1, tmp_path, capsys):
    out = tmp_path / "run1.colo.jsonl"
    assert colo(["import", str(run1), "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    cps = summary["checkpoints"]
    assert len(cps) == 21 and sum(c["complete"] for c in cps) == 20
    assert (cps[1]["zero_pages"], cps[1]["full_pages"], cps[1]["device_state_size"],
            cps[1]["device_sections"]) == (8, 29, 14367, 32)
    assert [m["msg"] for m in cps[1]["messages"]] == [
        "checkpoint-request", "checkpoint-reply", "vmstate-send", "vmstate-size",
        "vmstate-received", "vmstate-loaded"]
    assert summary["initial"]["bytes"] == 1313269
    rec = rf.read(out)
    assert rec.header["imported"] is True and rec.header["source"] == "import"
    assert rec.header["dialect"] == "qemu"
    commits = [e for e in rec.events if e["kind"] == "checkpoint"
               and e["data"]["phase"] == "commit"]
    assert len(commits) == 20


def test_import_bad_capture_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"not a pcap at all")
    assert colo(["import", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("colo: error:") and err.count("\n") == 1


def test_import_directory_without_stream_files_names_them(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "secondary_to_primary.bin").write_bytes(b"\0\0\0\0")   # the reverse alone
    assert colo(["import", str(run), "-o", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"colo: error: {run}: no primary_to_secondary.bin") \
        and err.count("\n") == 1, err
    assert "secondary_to_primary.bin" in err and "stream_offsets.json" in err


def test_respond_secondary_matches_real_bytes(run1, tmp_path):
    out = tmp_path / "s2p.bin"
    assert colo(["respond", "--role", "secondary", "--dialect", "qemu",
                 str(run1 / "primary_to_secondary.bin"), "-o", str(out),
                 "--heartbeat-after", "20"]) == 0
    real = (run1 / "secondary_to_primary.bin").read_bytes()
    assert len(real) == 244
    assert out.read_bytes() == real


def test_respond_primary_sends_the_real_message_sequence(run1, run1_bytes, tmp_path, capsys):
    out = tmp_path / "p2s.bin"
    assert colo(["respond", "--role", "primary", str(run1 / "secondary_to_primary.bin"),
                 "-o", str(out), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)["messages"]
    sess = import_streams(*run1_bytes)
    real = [m["msg"] for cp in sess.checkpoints for m in cp.messages if m["dir"] == "P>S"]
    assert len(real) == 20 * 3 + 1
    assert ours == real


@pytest.mark.parametrize(("role", "sender", "keep"), [
    ("secondary", "primary", 1_400_000),     # inside checkpoint 2's RAM part
    ("primary", "secondary", 242),           # inside the last control message
])
def test_respond_reports_a_cut_stream_as_decode_does(run1_bytes, tmp_path, capsys, role,
                                                    sender, keep):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(run1_bytes[0 if role == "secondary" else 1][:keep])
    argv = ["--initial"] if role == "secondary" else []
    assert colo(["decode", "--from", sender, *argv, str(cut)]) == 1
    said = capsys.readouterr().err.removeprefix("colo decode: error: ")
    assert said.startswith("at byte ") and "stream ended in the middle of" in said
    assert colo(["respond", "--role", role, str(cut), "-o", str(tmp_path / "o.bin")]) == 1
    err = capsys.readouterr().err
    assert err == f"colo: error: {cut}: {said}", err
    assert (tmp_path / "o.bin").exists()         # what it answered up to the cut


def test_respond_usage_error_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        colo(["respond", "--role", "tertiary", "x", "-o", "y"])
    assert exc.value.code == 2


def test_proxy_rejects_process_faults():
    with pytest.raises(FaultSpecError, match="process fault"):
        check_faults(["kill-primary@checkpoint-request#2"], QEMU)
    with pytest.raises(FaultSpecError, match="does not exist in the qemu dialect"):
        check_faults(["unexpected=guest-shutdown@checkpoint-request#2"], QEMU)
    # value=N means what it means in the simulator: the message with a be64 value
    assert len(check_faults(["value=3@checkpoint-request#2"], QEMU)) == 1
    assert len(check_faults(["close@checkpoint-request#6", "delay=5@ram#2"], QEMU)) == 2


async def _fake_pair(run1_bytes, faults=()):
    """Fake primary/secondary replaying run1 through the Proxy."""
    p2s, s2p = run1_bytes
    sess = import_streams(p2s, s2p)
    events = []
    got = {"fwd": bytearray(), "rev": bytearray()}
    # reverse messages become due once the forward stream reached an offset
    due = [(sess.initial["bytes"], s2p[0:4])]
    for i, cp in enumerate(sess.checkpoints[:20]):
        due.append((cp.offset + 4, s2p[4 + 12 * i:8 + 12 * i]))
        due.append((cp.offset + cp.forward_bytes, s2p[8 + 12 * i:16 + 12 * i]))

    async def secondary(reader, writer):
        k = 0
        while data := await reader.read(65536):
            got["fwd"] += data
            while k < len(due) and len(got["fwd"]) >= due[k][0]:
                writer.write(due[k][1])
                k += 1
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(secondary, "127.0.0.1", 0)
    sport = server.sockets[0].getsockname()[1]
    proxy = Proxy(("127.0.0.1", 0), ("127.0.0.1", sport), faults, events.append)
    port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def need(n):
        while len(got["rev"]) < n:
            data = await reader.read(65536)
            if not data:
                raise EOFError
            got["rev"] += data

    try:
        writer.write(p2s[:sess.initial["bytes"]])
        await need(4)
        for i, cp in enumerate(sess.checkpoints[:20]):
            writer.write(p2s[cp.offset:cp.offset + 4])
            await need(8 + 12 * i)
            writer.write(p2s[cp.offset + 4:cp.offset + cp.forward_bytes])
            await need(16 + 12 * i)
        writer.write(p2s[sess.checkpoints[20].offset:])
        writer.write_eof()
        while data := await reader.read(65536):
            got["rev"] += data
    except (EOFError, ConnectionError):
        got["primary_cut"] = True
    writer.close()
    await asyncio.wait_for(proxy.session_done.wait(), 10)
    await proxy.close()
    server.close()
    return events, got


def test_live_proxy_decodes_run1_between_fake_peers(run1_bytes):
    events, got = asyncio.run(asyncio.wait_for(_fake_pair(run1_bytes), 60))
    p2s, s2p = run1_bytes
    assert bytes(got["fwd"]) == p2s and bytes(got["rev"]) == s2p
    kinds = [e.kind for e in events]
    assert "error" not in kinds
    ini = next(e for e in events if e.kind == "recv-initial")
    assert ini.payload()["bytes"] == 1313269 and ini.payload()["device_sections"] == 32
    commits = [e.payload() for e in events if e.kind == "checkpoint" and e.payload()["phase"] == "commit"]
    assert len(commits) == 20
    assert (commits[1]["zero"], commits[1]["full"], commits[1]["sections"]) == (8, 29, 32)
    rams = [e.payload() for e in events if e.kind == "ram"]
    assert all(r["full"] + r["zero"] in (37, 39) for r in rams)
    sends = [e.payload()["msg"] for e in events if e.kind == "send"]
    assert sends.count("checkpoint-request") == 21 and sends.count("vmstate-loaded") == 20
    assert [e.payload()["dir"] for e in events if e.kind == "closed"].count("P>S") == 1


def test_live_proxy_faults_between_fake_peers(run1_bytes):
    p2s, s2p = run1_bytes
    # delay: bytes unchanged, just late
    events, got = asyncio.run(asyncio.wait_for(
        _fake_pair(run1_bytes, ["delay=150@ram#2", "corrupt@checkpoint-reply#3"]), 60))
    assert bytes(got["fwd"]) == p2s
    rev = bytes(got["rev"])
    assert len(rev) == len(s2p) and rev != s2p
    diff = [i for i in range(len(s2p)) if rev[i] != s2p[i]]
    assert diff == [4 + 12 * 2 + 3]          # the id byte of checkpoint 3's reply
    assert [e.payload()["spec"] for e in events if e.kind == "fault"] == [
        "delay=150@ram#2", "corrupt@checkpoint-reply#3"]
    # truncate: half of checkpoint 4's device state, then both sides closed
    events, got = asyncio.run(asyncio.wait_for(
        _fake_pair(run1_bytes, ["truncate@device-state#4"]), 60))
    sess = import_streams(p2s, s2p)
    cp4 = sess.checkpoints[3]
    assert len(got["fwd"]) == cp4.offset + cp4.forward_bytes - 14367 + 14367 // 2
    assert got.get("primary_cut")
    assert len(_commits(events)) == 3


def _commits(events):
    return [e for e in events if e.kind == "checkpoint" and e.payload()["phase"] == "commit"]
