"""The seam between the protocol machines and a guest.

The machines decide *when* to stop, save, load, flush or release; a guest
carries it out.  `NullGuest` is a guest with no RAM, no devices and no
packets (the protocol core alone); `protocol.guest.model.Guest` is the full
model.  Every method is synchronous and deterministic.
"""
from __future__ import annotations

from typing import Protocol

from protocol.migration.pages import PAGE_SIZE, PageRecord


class GuestPort(Protocol):
    running: bool

    # both sides
    def stop(self) -> None: ...
    def start(self) -> None: ...

    # primary
    def collect_dirty_pages(self) -> list[PageRecord]:
        """Pages dirtied since the last checkpoint; clears the dirty bitmap."""

    def save_devices(self) -> bytes:
        """The device-state blob for `vmstate-size` (qemu: SECTION_FULLs + EOF)."""

    def replication_checkpoint(self) -> None:
        """Block replication's per-checkpoint step (both sides)."""

    def release_output(self) -> int:
        """Release buffered PVM output covered by the checkpoint; returns count."""

    # secondary
    def cache_pages(self, records: list[PageRecord]) -> None:
        """PVM pages go into the RAM cache only (never straight into SVM RAM)."""

    def load_devices(self, blob: bytes) -> None:
        """Apply a device blob; raises ValueError if it is malformed."""

    def flush_cache(self) -> int:
        """Copy cached pages into SVM RAM; returns the number of pages flushed."""

    def discard_cache(self) -> None:
        """Failover: drop a partly received checkpoint (never flushed)."""

    def take_over(self) -> None:
        """Failover: commit disk layers, stop buffering output, keep running."""


class NullGuest:
    """A guest with nothing in it: the control protocol alone."""

    def __init__(self) -> None:
        self.running = False
        self.flushed_pages = 0
        self.ram_context = None

    def stop(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    def collect_dirty_pages(self) -> list[PageRecord]:
        return []

    def save_devices(self) -> bytes:
        return b"\x00"  # just QEMU_VM_EOF

    def replication_checkpoint(self) -> None:
        return None

    def release_output(self) -> int:
        return 0

    def cache_pages(self, records: list[PageRecord]) -> None:
        return None

    def load_devices(self, blob: bytes) -> None:
        if not blob or blob[-1] != 0:
            raise ValueError("device blob does not end with QEMU_VM_EOF (0x00)")

    def flush_cache(self) -> int:
        return 0

    def discard_cache(self) -> None:
        return None

    def take_over(self) -> None:
        self.running = True

    def initial_stream(self) -> bytes:
        """A real-shaped initial migration with one empty-ish block and no devices."""
        from protocol.migration.pages import KIND_ZERO
        from protocol.migration.stream import encode_initial
        data, self.ram_context = encode_initial(
            "pc-i440fx-7.2", [("pc.ram", PAGE_SIZE)], [PageRecord("pc.ram", 0, KIND_ZERO)],
            [], {"page_size": PAGE_SIZE, "devices": []})
        return data
