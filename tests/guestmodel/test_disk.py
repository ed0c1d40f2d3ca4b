"""Block replication: mirrored writes, hidden COW, checkpoint, failover commit."""
from __future__ import annotations

import pytest

from protocol.guest.disk import SECTOR_SIZE, ZERO_SECTOR, PrimaryDisk, SecondaryDisk


def sec(byte: int) -> bytes:
    return bytes([byte]) * SECTOR_SIZE


def linked():
    base = {0: sec(1), 1: sec(2)}
    primary, secondary = PrimaryDisk(base), SecondaryDisk(base)
    primary.forward = secondary.mirror_write
    return primary, secondary


def test_primary_writes_are_mirrored_and_hidden_keeps_originals():
    primary, secondary = linked()
    primary.write(1, sec(9))
    primary.write(5, sec(5))
    assert secondary.base[1] == sec(9) and secondary.base[5] == sec(5)
    assert secondary.hidden == {1: sec(2), 5: ZERO_SECTOR}
    # the SVM still sees the disk as of the last checkpoint
    assert secondary.read(1) == sec(2) and secondary.read(5) == ZERO_SECTOR
    primary.write(1, sec(10))                     # COW only the first time
    assert secondary.hidden[1] == sec(2)


def test_svm_writes_go_to_active_and_checkpoint_discards_them():
    primary, secondary = linked()
    secondary.write(0, sec(0xEE))
    primary.write(3, sec(3))
    assert secondary.read(0) == sec(0xEE) and secondary.active == {0: sec(0xEE)}
    assert secondary.digest() != primary.digest()
    primary.checkpoint()
    secondary.checkpoint()
    assert secondary.active == {} and secondary.hidden == {}
    assert secondary.view() == primary.view() and secondary.digest() == primary.digest()


def test_failover_commit_keeps_the_svm_view():
    primary, secondary = linked()
    primary.checkpoint()
    secondary.checkpoint()
    primary.write(1, sec(0x77))                   # after the last checkpoint: not committed
    secondary.write(0, sec(0x55))                 # the SVM's own progress
    view = secondary.view()
    secondary.failover_commit()
    assert secondary.base == {k: v for k, v in view.items()}
    assert secondary.read(1) == sec(2) and secondary.read(0) == sec(0x55)
    assert secondary.active == {} and secondary.hidden == {}
    secondary.write(2, sec(0x22))                 # now writes go straight to the disk
    assert secondary.base[2] == sec(0x22)
    with pytest.raises(ValueError, match="after failover"):
        secondary.mirror_write(4, sec(4))


def test_unlinked_primary_queues_forwarded_writes():
    primary = PrimaryDisk()
    primary.write(7, sec(7))
    assert primary.drain() == [(7, sec(7))] and primary.drain() == []
    primary.stop_replication()
    primary.write(8, sec(8))
    assert primary.drain() == [] and primary.read(8) == sec(8)


def test_replication_error_fails_the_checkpoint():
    _, secondary = linked()
    secondary.inject_error("active disk I/O error")
    assert secondary.get_error() == "active disk I/O error"
    with pytest.raises(ValueError, match="active disk I/O error"):
        secondary.checkpoint()


def test_bad_sector_data():
    with pytest.raises(ValueError, match="512"):
        PrimaryDisk().write(0, b"short")
