"""Byte vectors for every message of every dialect (PROTOCOL.md §2)."""
import pytest

from protocol.core import dialects
from protocol.core import messages as m
from protocol.core.codec import Decoder

QEMU_VECTORS = {
    m.CHECKPOINT_READY: "00000000", m.CHECKPOINT_REQUEST: "00000001",
    m.CHECKPOINT_REPLY: "00000002", m.VMSTATE_SEND: "00000003",
    m.VMSTATE_RECEIVED: "00000005", m.VMSTATE_LOADED: "00000006",
}
V11_IDS = {m.INVALID: 0, m.CHECKPOINT_READY: 1, m.CHECKPOINT_REQUEST: 2, m.CHECKPOINT_REPLY: 3,
           m.VMSTATE_SEND: 4, m.VMSTATE_SIZE: 5, m.VMSTATE_RECEIVED: 6, m.VMSTATE_LOADED: 7,
           m.GUEST_SHUTDOWN: 8}
PROTO_IDS = {m.CHECKPOINT_READY: 0x46, m.CHECKPOINT_REQUEST: 0x47, m.CHECKPOINT_REPLY: 0x48,
             m.VMSTATE_SEND: 0x49, m.VMSTATE_RECEIVED: 0x4A, m.VMSTATE_LOADED: 0x4B}


@pytest.mark.parametrize("name,hexstr", sorted(QEMU_VECTORS.items()))
def test_qemu_bytes(name, hexstr):
    assert dialects.QEMU.encode(name).hex() == hexstr


def test_qemu_vmstate_size_carries_be64():
    assert dialects.QEMU.encode(m.VMSTATE_SIZE, 14367).hex() == "00000004" + "000000000000381f"


@pytest.mark.parametrize("name,msg_id", sorted(V11_IDS.items()))
def test_v11_bytes_every_message_has_a_value(name, msg_id):
    raw = dialects.V11.encode(name, 0 if name != m.VMSTATE_SIZE else 5)
    assert len(raw) == 12
    assert raw[:4] == msg_id.to_bytes(4, "big")
    assert raw[4:] == (5 if name == m.VMSTATE_SIZE else 0).to_bytes(8, "big")


@pytest.mark.parametrize("name,word", sorted(PROTO_IDS.items()))
def test_prototype_words(name, word):
    assert dialects.PROTOTYPE.encode(name) == word.to_bytes(8, "big")


def test_prototype_size_is_a_bare_word():
    assert dialects.PROTOTYPE.encode(m.VMSTATE_SIZE, 77) == (77).to_bytes(8, "big")


def test_checkpoint_ready_table_of_the_comparison():
    # PROTOCOL.md §2.4: the same message in three dialects
    assert dialects.PROTOTYPE.encode(m.CHECKPOINT_READY).hex() == "0000000000000046"
    assert dialects.V11.encode(m.CHECKPOINT_READY).hex() == "00000001" + "00" * 8
    assert dialects.QEMU.encode(m.CHECKPOINT_READY).hex() == "00000000"


@pytest.mark.parametrize("d", list(dialects.DIALECTS.values()), ids=lambda d: d.name)
def test_round_trip_every_message(d):
    for name in d.ids:
        if name == m.VMSTATE_SIZE:
            continue
        sender = m.SENDER[name] if m.SENDER[name] != "none" else "primary"
        dec = Decoder(d, sender)
        dec.feed(d.encode(name))
        item = dec.next_item()
        assert item.name == name and item.msg_id == d.ids[name]
        assert dec.next_item() is None


def test_unknown_dialect_names_the_choices():
    with pytest.raises(ValueError, match="qemu"):
        dialects.get("qemu-9000")


def test_guest_shutdown_is_v11_only():
    with pytest.raises(KeyError, match="does not exist in the qemu dialect"):
        dialects.QEMU.encode(m.GUEST_SHUTDOWN)
