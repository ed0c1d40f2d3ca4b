"""A mirror of a real guest: the secondary's RAM as a real QEMU primary sends it.

`colo node secondary --dialect qemu --guest mirror` (and `colo tui --peer`)
put the project's secondary in front of a real QEMU primary.  Nothing runs in
this guest; it keeps what QEMU's secondary keeps:

* RAM blocks as the initial migration announces them (RAM START's block list),
  filled page by page while the initial migration streams in
  (`initial_page`, no copy of the whole stream is kept);
* the COLO RAM cache (`RamCache` without SVM-dirtied pages: the mirror's SVM
  never runs): checkpoint pages go only into the cache and reach RAM at the
  flush, after the whole checkpoint was received; a failover discards a
  partial one;
* the device sections of every checkpoint, split with the VMDESCRIPTION.

For the views: the pages flushed by the last checkpoint (the heat map), the
first line of the VGA text screen, and `read(block, offset, size)`.
"""
from __future__ import annotations

import numpy as np

from protocol.errors import ColoError
from protocol.guest.ram import Bitmap, Ram
from protocol.guest.ramcache import RamCache
from protocol.migration.pages import KIND_ZERO, PAGE_SIZE, PageBatch, PageRecord

VGA_BLOCK_SUFFIX = "vga.vram"
MAX_READ = 1 << 20
#: the most RAM a mirror takes on (it keeps RAM and the RAM cache: twice this,
#: sparse until written)
MAX_RAM_BYTES = 64 << 30


class MirrorError(ColoError, ValueError):
    """The primary's stream does not fit the mirror (unknown block, bad device blob)."""


class MirrorGuest:
    """GuestPort for a secondary whose primary is a real QEMU (qemu dialect only)."""

    ram_context = None

    def __init__(self) -> None:
        self.running = False
        self.ram: Ram | None = None
        self.cache: RamCache | None = None
        self.main_block = "pc.ram"
        self.machine: str | None = None
        self.vmdesc: dict | None = None
        self.devices: list[tuple[str, int, int, int]] = []   # idstr, instance, version, bytes
        self.initial_pages = 0
        self.checkpoints = 0
        self.last_flushed: dict[str, np.ndarray] = {}
        self.pages_flushed_total = 0
        self.took_over = False

    # -- the initial migration ---------------------------------------------------
    def _make_ram(self, blocks) -> None:
        total = sum(size for _, size in blocks)
        if total > MAX_RAM_BYTES:
            raise MirrorError(f"the primary's RAM blocks add up to {total} bytes, more than "
                              f"a mirror takes on ({MAX_RAM_BYTES >> 30} GiB)")
        try:
            self.ram = Ram(blocks)
        except (OSError, OverflowError, MemoryError) as exc:
            raise MirrorError(f"cannot map the primary's RAM ({total} bytes): {exc}") from None
        names = [name for name, _ in blocks]
        self.main_block = "pc.ram" if "pc.ram" in names else names[0]

    def initial_page(self, rec: PageRecord, ctx) -> None:
        if self.ram is None:
            if not ctx.blocks:
                raise MirrorError("a page arrived before RAM START announced any block")
            self._make_ram(list(ctx.blocks.items()))
        blk = self.ram.blocks.get(rec.block)
        if blk is None:
            raise MirrorError(f"page for RAM block {rec.block!r}, which RAM START did not "
                              "announce")
        if rec.offset % PAGE_SIZE or not 0 <= rec.offset < blk.size_bytes:
            raise MirrorError(f"page at {rec.offset:#x} outside RAM block {rec.block!r} "
                              f"({blk.size_bytes:#x} bytes)")
        index = rec.offset // PAGE_SIZE
        self.initial_pages += 1
        if rec.kind == KIND_ZERO and not rec.fill and not blk.touched.test(index):
            return                          # fresh anonymous memory is zero already
        try:
            self.ram.apply_record(rec)
        except ValueError as exc:
            raise MirrorError(str(exc)) from None

    def load_initial(self, summary) -> None:
        if self.ram is None:                # an initial migration without any page
            blocks = [tuple(b) for b in getattr(summary, "blocks", [])]
            if not blocks:
                raise MirrorError("the initial migration announced no RAM block")
            self._make_ram(blocks)
        self.machine = summary.machine
        self.vmdesc = summary.vmdesc
        self.devices = [(s.idstr, s.instance_id, s.version_id, s.length)
                        for s in summary.device_sections]
        # the SVM of a mirror never runs: flush PVM-sent pages only
        self.cache = RamCache(self.ram, include_svm_dirty=False)

    # -- GuestPort, secondary side -------------------------------------------------
    def stop(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    def cache_pages(self, records) -> None:
        if self.cache is None:
            raise MirrorError("checkpoint pages before the initial migration")
        if not isinstance(records, (list, tuple, PageBatch)):
            records = list(records)
        try:
            self.cache.receive(records)
        except ValueError as exc:
            raise MirrorError(f"checkpoint page does not fit the guest's RAM: {exc}") from None

    def flush_cache(self) -> int:
        if self.cache is None:
            return 0
        self.last_flushed = {name: bm.index_array() for name, bm in self.cache.bitmaps.items()
                             if bm.count}
        copied = self.cache.flush()
        self.pages_flushed_total += copied
        self.checkpoints += 1
        return copied

    def load_devices(self, blob: bytes) -> None:
        from protocol.migration.stream import StreamError, decode_device_blob
        try:
            sections = decode_device_blob(blob, self.vmdesc)
        except StreamError as exc:
            raise ValueError(f"device state: {exc}") from None
        self.devices = [(s.idstr, s.instance_id, s.version_id, s.length) for s in sections]

    def discard_cache(self) -> None:
        if self.cache is not None:
            self.cache.discard()

    def take_over(self) -> None:
        self.took_over = True
        self.running = True

    def replication_checkpoint(self) -> None:
        return None

    def release_output(self) -> int:
        return 0

    # -- GuestPort, primary side: a mirror is never a primary ----------------------
    def collect_dirty_pages(self) -> list[PageRecord]:
        raise MirrorError("a mirror guest follows a real primary; it cannot be one")

    def save_devices(self) -> bytes:
        raise MirrorError("a mirror guest follows a real primary; it cannot be one")

    # -- views -----------------------------------------------------------------------
    def read(self, block: str, offset: int, size: int) -> bytes:
        """Bytes of the mirrored RAM (what the last flushed checkpoint left)."""
        if self.ram is None:
            raise MirrorError("no RAM yet: the initial migration has not arrived")
        if not 0 <= size <= MAX_READ:
            raise MirrorError(f"size {size} outside 0..{MAX_READ}")
        if block not in self.ram.blocks:
            raise MirrorError(f"no RAM block {block!r}; blocks: {', '.join(self.ram.blocks)}")
        try:
            return self.ram.read(block, offset, size)
        except ValueError as exc:
            raise MirrorError(str(exc)) from None

    def blocks(self) -> list[tuple[str, int]]:
        return self.ram.layout() if self.ram is not None else []

    def vga_block(self) -> str | None:
        if self.ram is None:
            return None
        return next((b for b in self.ram.blocks if b.endswith(VGA_BLOCK_SUFFIX)), None)

    def screen_line(self, row: int = 0, width: int = 80) -> str:
        """One row of the VGA text screen; '' without a VGA block.

        Text mode's 0xB8000 window is offset 0 of the VGA RAM block, and QEMU keeps
        the four planes interleaved: cell i's character is byte 4*i (plane 0), its
        attribute byte 4*i + 1 (plane 1).
        """
        block = self.vga_block()
        if block is None:
            return ""
        raw = self.ram.read(block, row * width * 4, width * 4)
        chars = raw[0::4]
        return "".join(chr(c) if 32 <= c < 127 else " " for c in chars).rstrip()

    def screen_lines(self, rows: int = 25, width: int = 80) -> list[str]:
        """The whole VGA text screen, one string per row ([] without a VGA block)."""
        if self.vga_block() is None:
            return []
        return [self.screen_line(r, width) for r in range(rows)]

    def flushed_counts(self) -> dict[str, int]:
        """Pages the last checkpoint flushed, per RAM block."""
        return {b: len(ix) for b, ix in self.last_flushed.items()}

    def summary(self) -> dict:
        """One line's worth for logs and events."""
        return {"checkpoints": self.checkpoints, "flushed": self.flushed_counts(),
                "screen": self.screen_line(), "devices": len(self.devices)}

    def flush_report(self) -> dict:
        """Extra fields of the secondary's flush-cache event."""
        return {"blocks": self.flushed_counts(), "screen": self.screen_line()}

    def initial_report(self) -> dict:
        """Extra fields of the secondary's load-initial event."""
        return {"machine": self.machine, "pages": self.initial_pages,
                "ram_blocks": len(self.ram.blocks) if self.ram else 0,
                "device_sections": len(self.devices), "screen": self.screen_line()}

    def heat_view(self, block: str) -> Bitmap:
        """The pages of `block` flushed by the last checkpoint, as a bitmap."""
        bm = Bitmap(self.ram.blocks[block].npages)
        idx = self.last_flushed.get(block)
        if idx is not None and len(idx):
            bm.set_many(idx)
        return bm
