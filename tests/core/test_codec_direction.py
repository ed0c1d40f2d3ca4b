"""Who sends which message, per dialect (PROTOCOL.md §2.1-2.3), and the decoder's
direction check: `colo decode --from primary` took the secondary's checkpoint-ready.

The tables below are written from PROTOCOL.md, not from protocol.core.messages, so
they check the dialects' own rules.  The check is the decoder's (check_direction);
an endpoint leaves it off: QEMU checks only the range, and its role machine reports
a wrong-direction id as an unexpected message (what the dialect-mismatch recordings
and the `unexpected=` fault rely on)."""
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.core import dialects
from protocol.core import messages as m
from protocol.core.codec import Decoder
from protocol.core.endpoint import make_endpoint
from protocol.errors import DecodeError

ROOT = Path(__file__).resolve().parents[2]
P, S = "primary", "secondary"
#: PROTOCOL.md: §2.1 v11's table ("sender"), §2.2 qemu's ("direction"), §2.3 the prototype
SENDERS = {
    "v11": {m.CHECKPOINT_READY: S, m.CHECKPOINT_REQUEST: P, m.CHECKPOINT_REPLY: S,
            m.VMSTATE_SEND: P, m.VMSTATE_SIZE: P, m.VMSTATE_RECEIVED: S,
            m.VMSTATE_LOADED: S, m.GUEST_SHUTDOWN: P, m.INVALID: None},
    "qemu": {m.CHECKPOINT_READY: S, m.CHECKPOINT_REQUEST: P, m.CHECKPOINT_REPLY: S,
             m.VMSTATE_SEND: P, m.VMSTATE_SIZE: P, m.VMSTATE_RECEIVED: S,
             m.VMSTATE_LOADED: S},
    # READY (SVM), CHECKPOINT_NEW (PVM), SUSPENDED (SVM), SEND (PVM), RECEIVED and
    # LOADED (SVM); the size is a bare word after SEND, no message of its own
    "prototype": {m.CHECKPOINT_READY: S, m.CHECKPOINT_REQUEST: P, m.CHECKPOINT_REPLY: S,
                  m.VMSTATE_SEND: P, m.VMSTATE_RECEIVED: S, m.VMSTATE_LOADED: S},
}
CASES = [(d, name, who) for d, table in SENDERS.items() for name, who in table.items()]


def test_every_dialect_names_who_sends_each_of_its_messages():
    for name, d in dialects.DIALECTS.items():
        want = {k: (v or "none") for k, v in SENDERS[name].items()}
        assert d.senders == want, name


@pytest.mark.parametrize(("dialect", "name", "who"), CASES)
@pytest.mark.parametrize("sender", [P, S])
def test_a_message_decodes_only_from_its_sender(dialect, name, who, sender):
    d = dialects.get(dialect)
    dec = Decoder(d, sender, check_direction=True)
    dec.feed(d.encode(name, 0))      # (vmstate-size 0: an empty blob follows)
    if who == sender:
        item = dec.next_item()
        assert item is not None and item.name == name
        return
    with pytest.raises(DecodeError) as exc:
        dec.next_item()
    text = str(exc.value)
    assert d.label(name) in text and f"not by the {sender}" in text \
        or "sent by neither side" in text and f"came from the {sender}" in text, text
    if who is not None:
        assert f"is sent by the {who} in the {dialect} dialect" in text
    assert dec.bytes_consumed == 0        # the error is at the message's first byte


def test_v11_refuses_the_wrong_direction_before_the_value_arrives():
    d = dialects.V11
    dec = Decoder(d, P, check_direction=True)
    dec.feed(d.encode(m.CHECKPOINT_READY)[:4])        # the command, not its be64 yet
    with pytest.raises(DecodeError, match=r"checkpoint-ready\(1\) is sent by the secondary"):
        dec.next_item()


def test_without_the_check_the_decoder_hands_it_on_as_before():
    d = dialects.QEMU
    dec = Decoder(d, P)
    dec.feed(d.encode(m.CHECKPOINT_READY))
    assert dec.next_item().name == m.CHECKPOINT_READY


def test_an_endpoint_reports_a_wrong_direction_message_as_qemu_does():
    # QEMU 7.2: colo_receive_check_message → "Unexpected COLO message 0, expected 1"
    d = dialects.QEMU
    ep = make_endpoint("secondary", d, initial_stream=False)
    ep.start(0.0)
    ep.data_to_send()
    ep.receive_data(d.encode(m.CHECKPOINT_READY), 1.0)
    assert ep.state == "ERROR"
    assert "Unexpected COLO message 0, expected 1" in ep.error


def _decode(*argv, stdin: bytes):
    return subprocess.run([sys.executable, "-m", "colo_tui", "decode", *argv, "-"],
                          input=stdin, capture_output=True, cwd=ROOT, timeout=60)


def test_colo_decode_from_primary_refuses_checkpoint_ready():
    r = _decode("--dialect", "qemu", "--from", "primary", stdin=b"\x00\x00\x00\x00")
    err = r.stderr.decode()
    assert r.returncode == 1 and r.stdout == b"", err
    assert err.startswith("colo decode: error: at byte 0: checkpoint-ready(0) is sent by the "
                          "secondary in the qemu dialect, not by the primary"), err
    assert "give --from secondary" in err and "Traceback" not in err
    ok = _decode("--dialect", "qemu", "--from", "secondary", stdin=b"\x00\x00\x00\x00")
    assert ok.returncode == 0 and b'"checkpoint-ready"' in ok.stdout
