"""`colo import` of a capture that holds the colo-compare chardev streams beside
the COLO connection (protocol/net/netfilter_capture.py): found by protocol, decoded,
named by content, and colo-compare's verdicts with the checkpoint a mismatch
forced."""
from __future__ import annotations

import json

from protocol.net import netfilter_capture as nfc
from protocol.net.netfilter import encode
from protocol.record.pcap import scan
from protocol.record.qemu_import import import_capture, to_json
from tests.netfilter import _pkt
from tests.stream._synth import colo_session, make_pcap, merge_pcaps, page


def _guest_out(payloads: list[bytes]) -> bytes:
    return b"".join(encode(_pkt.tcp(seq=5000 + 100 * i, payload=p))
                    for i, p in enumerate(payloads))


def _capture(tmp_path, relay_twice: bool = False, mismatch: bool = True):
    p2s, s2p, _ = colo_session([[page("pc.ram", 0)], [page("pc.ram", 4096)]])
    colo = make_pcap(p2s, s2p, t0=1000.0)
    answers = [b"one\n", b"two\n", b"three\n"]
    secondary = [b"one\n", b"twX\n" if mismatch else b"two\n", b"three\n"]
    client = b"".join(encode(_pkt.tcp(src="10.0.2.2", dst="10.0.2.15", sport=40000,
                                      dport=7, seq=77 + i, payload=b"x\n"))
                      for i in range(3))
    parts = [colo,
             make_pcap(_guest_out(answers), b"", t0=1000.5, ports=(40000, 40001)),  # c-out
             make_pcap(client, b"", t0=999.0, ports=(41000, 41001)),                # mirror
             make_pcap(_guest_out(answers), b"", t0=999.5, ports=(42000, 42001)),   # p-in
             make_pcap(_guest_out(secondary), b"", t0=999.6, ports=(43000, 43001))]  # c-in
    if relay_twice:   # colo lab: each channel twice (chardev -> relay -> chardev)
        parts += [make_pcap(_guest_out(answers), b"", t0=1000.51, ports=(44100, 44101)),
                  make_pcap(_guest_out(answers)[:-30], b"", t0=999.51, ports=(42100, 42101)),
                  make_pcap(_guest_out(secondary), b"", t0=999.61, ports=(43100, 43101))]
    path = tmp_path / "lab.pcap"
    path.write_bytes(merge_pcaps(*parts))
    return path


def test_streams_are_found_by_protocol_not_by_port(tmp_path):
    found = scan(_capture(tmp_path))
    got = sorted((src, dst) for src, dst, vnet in nfc.find_streams(found))
    assert got == sorted((f"127.0.0.1:{a}", f"127.0.0.1:{a + 1}")
                         for a in (40000, 41000, 42000, 43000))
    # the migration stream (QEVM) and the COLO control direction are not channels
    assert nfc.head_layout(b"QEVM" + b"\0" * 60) is False
    assert nfc.head_layout(b"\0\0\0\0\0\0\0\x02\0\0\0\x05\0\0\0\x06" * 3) is False
    # vnet_hdr_support=on: be32 size, be32 vnet_hdr_len, the header, the frame
    vnet = encode(b"\0" * 12 + _pkt.arp(), 12)
    assert nfc.head_layout(vnet[:64]) == 12 and nfc.head_layout(encode(_pkt.arp())) is None
    assert nfc.head_layout(b"\0\0\0\x10" + b"\xff" * 60) is False   # not Ethernet


def test_import_names_the_channels_and_gives_verdicts(tmp_path):
    for twice in (False, True):
        sess = import_capture(_capture(tmp_path, relay_twice=twice))
        assert len(sess.checkpoints) == 2
        cc = to_json(sess)["compare_channels"]
        names = sorted(st["channel"] for st in cc["streams"])
        k = 2 if twice else 1
        assert names == sorted(["mirror"] + ["primary-in", "compare-in", "compare-out"] * k)
        by = {st["stream"]: st for st in cc["streams"]}
        assert by["127.0.0.1:43000>127.0.0.1:43001"]["channel"] == "compare-in"
        assert by["127.0.0.1:42000>127.0.0.1:42001"]["channel"] == "primary-in"
        assert by["127.0.0.1:40000>127.0.0.1:40001"]["channel"] == "compare-out"
        if twice:   # a leg cut short (a capture that lost its end) is still named
            assert by["127.0.0.1:42100>127.0.0.1:42101"]["channel"] == "primary-in"
            assert by["127.0.0.1:42100>127.0.0.1:42101"]["frames"] == 2
        assert all(st["frames"] in (2, 3) and st["error"] is None for st in cc["streams"])
        first = by["127.0.0.1:42000>127.0.0.1:42001"]["packets"][0]
        assert first["seq"] == 5000 and first["flow"] == "10.0.2.15:7>10.0.2.2:40000"
        assert cc["verdicts"] == {"match": 2, "mismatch": 1}
        (m,) = cc["mismatches"]
        assert m["seq"] == 5100 and m["first_difference"] == 2
        assert m["forced_checkpoint"] == 1 and cc["forced_checkpoints"] == [1]
        json.dumps(cc)


def test_without_a_mismatch_the_outputs_cannot_be_told_apart(tmp_path):
    sess = import_capture(_capture(tmp_path, mismatch=False))
    cc = sess.compare_channels
    assert sorted(st["channel"] for st in cc["streams"]) == ["guest-output"] * 3 + ["mirror"]
    assert "verdicts" not in cc


def test_a_capture_without_channels_imports_as_before(tmp_path):
    p2s, s2p, _ = colo_session([[page("pc.ram", 0)]])
    path = tmp_path / "plain.pcap"
    path.write_bytes(make_pcap(p2s, s2p))
    sess = import_capture(path)
    assert sess.compare_channels is None and "compare_channels" not in to_json(sess)


def test_primary_in_is_the_stream_that_carries_each_packet_first():
    """Whatever order the capture lists the streams in (a relayed channel's legs
    connect in any order)."""
    answers, secondary = [b"a\n", b"b\n"], [b"a\n", b"X\n"]

    def stream(payloads, t):
        data = _guest_out(payloads)
        return nfc.decode_stream(data, [(0, t)], 0.0, None)
    streams = {"c-out-2": stream(answers, 3.1), "c-out-1": stream(answers, 3.0),
               "c-in": stream(secondary, 1.5), "p-in-2": stream(answers, 1.1),
               "p-in-1": stream(answers, 1.0)}
    assert nfc.name_streams(streams) == {
        "c-out-2": "compare-out", "c-out-1": "compare-out", "c-in": "compare-in",
        "p-in-2": "primary-in", "p-in-1": "primary-in"}
