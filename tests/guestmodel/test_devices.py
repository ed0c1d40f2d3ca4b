"""Device state and the 7.2 COLO device blob."""
from __future__ import annotations

import struct

import pytest

from protocol.guest.devices import DEVICE_NAMES, Devices, parse_blob
from protocol.migration import stream


def busy_devices() -> Devices:
    dev = Devices()
    for step in range(1, 31):
        dev.on_step(step)
    dev.run_until(3000)
    dev.nic_rx(7, 100)
    dev.nic_tx(40)
    return dev


def test_blob_shape_is_qemu_72_colo():
    blob = busy_devices().save_blob()
    assert blob[0] == stream.QEMU_VM_SECTION_FULL and blob[-1] == stream.QEMU_VM_EOF
    sections = stream.decode_device_blob(blob)
    assert [s.idstr for s in sections] == list(DEVICE_NAMES)
    assert [s.instance_id for s in sections] == [0, 0, 0, 0]
    assert [s.section_id for s in sections] == [3, 4, 5, 6]   # the initial migration's ids
    assert sections[0].length == 24                         # like run1's timer section


def test_round_trip_and_digest():
    dev = busy_devices()
    assert dev.serial_tail.endswith(b"step 0000001e\n")
    back = parse_blob(dev.save_blob())
    assert back == dev and back.digest() == dev.digest() and back.diff(dev) == []
    other = Devices()
    other.load_blob(dev.save_blob())
    assert other.state() == dev.state()
    other.on_step(99)
    assert other.diff(dev) == ["cpu"]


def test_state_changes_as_the_guest_runs():
    dev = Devices()
    first = dev.digest()
    dev.run_until(100)
    assert dev.ticks == 10 and dev.digest() != first
    with pytest.raises(ValueError, match="backwards"):
        dev.run_until(50)


@pytest.mark.parametrize("cut", [1, 5, 20, 60, -2])
def test_truncated_blob_is_a_value_error(cut):
    blob = busy_devices().save_blob()
    with pytest.raises(ValueError, match="device blob"):
        parse_blob(blob[:cut])


def test_malformed_blobs_name_the_problem():
    dev = busy_devices()
    with pytest.raises(ValueError, match="empty"):
        parse_blob(b"")
    with pytest.raises(ValueError, match="missing device section"):
        parse_blob(b"\x00")
    sections = dev.sections()
    with pytest.raises(ValueError, match="unknown device section 'hpet'"):
        parse_blob(stream.encode_device_blob(sections + [("hpet", 0, 2, b"\x01" * 8)], 0))
    with pytest.raises(ValueError, match="appears twice"):
        parse_blob(stream.encode_device_blob(sections + [sections[0]], 0))
    short = [(i, n, v, b[:-3]) if i == "cpu" else (i, n, v, b) for i, n, v, b in sections]
    with pytest.raises(ValueError, match="'cpu' body is 61 bytes, expected 64"):
        parse_blob(stream.encode_device_blob(short, 0))
    with pytest.raises(ValueError, match="device blob"):
        parse_blob(dev.save_blob()[:-1] + b"\x07")           # no EOF at the end
    bad_serial = [(i, n, v, struct.pack(">QB64s", 1, 99, b"")) if i == "serial"
                  else (i, n, v, b) for i, n, v, b in sections]
    with pytest.raises(ValueError, match="serial tail length 99"):
        parse_blob(stream.encode_device_blob(bad_serial, 0))


def test_failed_load_changes_nothing():
    dev = busy_devices()
    before = dev.state()
    with pytest.raises(ValueError):
        dev.load_blob(Devices().save_blob()[:30])
    assert dev.state() == before
