"""`colo respond` on input its endpoint rejects: the error names the input, the byte
where the rejected bytes begin and why; OUTPUT holds what the endpoint answered before
(a real peer would have sent that much), and the summary line says so beside its size.
It said only 'the secondary endpoint rejected the input: …' and 'out.bin: 0 bytes, …'."""
import json
import subprocess
import sys

import pytest


def colo(*args):
    return subprocess.run([sys.executable, "-m", "colo_tui", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    d = tmp_path_factory.mktemp("wire")
    r = colo("run", "--guest", "null", "--checkpoints", "2", "--dump-wire", str(d))
    assert r.returncode == 0, r.stderr
    return d


def test_junk_is_named_at_byte_0_and_the_empty_output_says_why(tmp_path):
    src, out = tmp_path / "junk.bin", tmp_path / "out.bin"
    src.write_bytes(b"junkjunkjunk")
    r = colo("respond", "--role", "secondary", str(src), "-o", str(out))
    assert r.returncode == 1
    assert r.stderr.startswith(f"colo: error: {src}: at byte 0: the secondary endpoint "
                               "rejected the input: malformed initial migration stream"), \
        r.stderr
    assert r.stdout == (f"{out}: 0 bytes, 0 messages, 0 checkpoints committed, final state "
                        "ERROR (only what the secondary sent before it rejected the input "
                        "at byte 0)\n")
    assert out.read_bytes() == b""


def test_an_unexpected_message_is_named_where_it_begins(wire, tmp_path):
    s2p = bytearray((wire / "secondary_to_primary.bin").read_bytes())
    assert s2p[:12].hex() == "000000000000000200000005"
    s2p[8:12] = bytes(4)            # checkpoint-ready where vmstate-received belongs
    src, out = tmp_path / "s2p.bin", tmp_path / "p2s.bin"
    src.write_bytes(s2p)
    r = colo("respond", "--role", "primary", str(src), "-o", str(out), "--json")
    assert r.returncode == 1
    assert f"colo: error: {src}: at byte 8: the primary endpoint rejected the input: " \
           "Unexpected COLO message 0, expected 5" in r.stderr, r.stderr
    said = json.loads(r.stdout)
    assert said["error_offset"] == 8 and said["complete"] is False
    assert out.stat().st_size == said["bytes"] > 0


def test_bad_bytes_after_a_good_stream_are_named_at_their_offset(wire, tmp_path):
    good = (wire / "primary_to_secondary.bin").read_bytes()
    src, out = tmp_path / "p2s.bin", tmp_path / "s2p.bin"
    src.write_bytes(good + b"\xff\xff\xff\xff")
    r = colo("respond", "--role", "secondary", str(src), "-o", str(out))
    assert r.returncode == 1
    assert f"{src}: at byte {len(good)}: the secondary endpoint rejected the input: " \
           "Invalid message 4294967295" in r.stderr, r.stderr
    assert f"rejected the input at byte {len(good)})" in r.stdout


def test_a_whole_answer_says_nothing_more(wire, tmp_path):
    out = tmp_path / "s2p.bin"
    r = colo("respond", "--role", "secondary", str(wire / "primary_to_secondary.bin"),
             "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    said = json.loads(r.stdout)
    assert said["complete"] is True and said["error_offset"] is None
    assert out.read_bytes() == (wire / "secondary_to_primary.bin").read_bytes()
