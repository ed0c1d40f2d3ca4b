"""Guest RAM: named RAM blocks of 4 KiB pages with a dirty bitmap each.

Every block is an anonymous `mmap` (sparse: untouched pages cost nothing, so a
5 GiB block is fine).  Guest writes (`write`, `fill_page`) set the block's
*dirty* bit (what migration sends) and its *touched* bit (pages that may be
non-zero; digests and page-diffs only look at those).  `store_page` is a
write by QEMU itself (initial migration, RAM-cache flush): it touches the page
but does not dirty it, as a memcpy by QEMU is not in the guest's dirty log.

Offsets are Python ints everywhere, so page offsets >= 2**32 are fine (B7).
Sans-IO: no clock, no randomness, no sockets.
"""
from __future__ import annotations

import hashlib
import mmap
import re
from collections.abc import Iterable, Iterator

from ..pages import KIND_PAGE, KIND_XBZRLE, KIND_ZERO, PAGE_SIZE, PageRecord
from . import pagediff

ZERO_PAGE = bytes(PAGE_SIZE)
_NONZERO_BYTE = re.compile(rb"[^\x00]")


class Bitmap:
    """One bit per page, with a population count kept up to date."""

    __slots__ = ("nbits", "_bits", "count")

    def __init__(self, nbits: int) -> None:
        self.nbits = nbits
        self._bits = bytearray((nbits + 7) // 8)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def set(self, index: int) -> bool:
        """Set bit `index`; True if it was clear before."""
        byte, mask = index >> 3, 1 << (index & 7)
        value = self._bits[byte]
        if value & mask:
            return False
        self._bits[byte] = value | mask
        self.count += 1
        return True

    def test(self, index: int) -> bool:
        return bool(self._bits[index >> 3] & (1 << (index & 7)))

    def clear(self, index: int) -> bool:
        byte, mask = index >> 3, 1 << (index & 7)
        value = self._bits[byte]
        if not value & mask:
            return False
        self._bits[byte] = value & ~mask
        self.count -= 1
        return True

    def clear_all(self) -> None:
        if self.count:
            self._bits = bytearray(len(self._bits))
            self.count = 0

    def indices(self) -> list[int]:
        """Set bits in ascending order (a scan over non-zero bytes, in C)."""
        if not self.count:
            return []
        out: list[int] = []
        bits = self._bits
        for match in _NONZERO_BYTE.finditer(bits):
            byte = match.start()
            value = bits[byte]
            base = byte << 3
            for bit in range(8):
                if value >> bit & 1:
                    out.append(base + bit)
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def update(self, other: Bitmap) -> None:
        """self |= other (same size)."""
        for index in other.indices():
            self.set(index)


class RamBlock:
    """One RAMBlock: `size_bytes` of anonymous memory, a dirty and a touched map."""

    def __init__(self, name: str, size_bytes: int) -> None:
        if size_bytes <= 0 or size_bytes % PAGE_SIZE:
            raise ValueError(f"RAM block {name!r}: size {size_bytes} is not a positive "
                             f"multiple of {PAGE_SIZE}")
        self.name = name
        self.size_bytes = size_bytes
        self.npages = size_bytes // PAGE_SIZE
        self.mem = mmap.mmap(-1, size_bytes)
        self.dirty = Bitmap(self.npages)
        self.touched = Bitmap(self.npages)
        self.xbzrle_cache: dict[int, bytes] = {}

    def check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size_bytes:
            raise ValueError(f"RAM block {self.name!r}: access [{offset:#x}, "
                             f"{offset + length:#x}) outside its {self.size_bytes:#x} bytes")

    def page(self, page_index: int) -> bytes:
        offset = page_index * PAGE_SIZE
        return self.mem[offset:offset + PAGE_SIZE]

    def put_page(self, page_index: int, data: bytes) -> None:
        if len(data) != PAGE_SIZE:
            raise ValueError(f"RAM block {self.name!r}: page {page_index} needs "
                             f"{PAGE_SIZE} bytes, got {len(data)}")
        offset = page_index * PAGE_SIZE
        self.mem[offset:offset + PAGE_SIZE] = data
        self.touched.set(page_index)


class Ram:
    """All RAM blocks of one VM, in registration order (QEMU's RAM list order)."""

    def __init__(self, blocks: Iterable[tuple[str, int]]) -> None:
        self.blocks: dict[str, RamBlock] = {}
        for name, size in blocks:
            if name in self.blocks:
                raise ValueError(f"duplicate RAM block {name!r}")
            self.blocks[name] = RamBlock(name, size)
        if not self.blocks:
            raise ValueError("a RAM needs at least one block")
        # where the next dirty scan starts: (block position, page index); see collect_dirty
        self._cursor = (0, 0)

    # -- layout ------------------------------------------------------------
    def layout(self) -> list[tuple[str, int]]:
        return [(b.name, b.size_bytes) for b in self.blocks.values()]

    def block(self, name: str) -> RamBlock:
        try:
            return self.blocks[name]
        except KeyError:
            raise ValueError(f"unknown RAM block {name!r}") from None

    @property
    def size_bytes(self) -> int:
        return sum(b.size_bytes for b in self.blocks.values())

    # -- guest writes (dirty-logged) ----------------------------------------
    def write(self, block: str, offset: int, data: bytes) -> None:
        blk = self.block(block)
        blk.check(offset, len(data))
        if not data:
            return
        blk.mem[offset:offset + len(data)] = data
        first, last = offset // PAGE_SIZE, (offset + len(data) - 1) // PAGE_SIZE
        for index in range(first, last + 1):
            blk.dirty.set(index)
            blk.touched.set(index)

    def fill_page(self, block: str, page_index: int, byte: int) -> None:
        self.write(block, page_index * PAGE_SIZE, bytes([byte & 0xFF]) * PAGE_SIZE)

    def read(self, block: str, offset: int, length: int) -> bytes:
        blk = self.block(block)
        blk.check(offset, length)
        return blk.mem[offset:offset + length]

    def read_page(self, block: str, page_index: int) -> bytes:
        blk = self.block(block)
        blk.check(page_index * PAGE_SIZE, PAGE_SIZE)
        return blk.page(page_index)

    # -- writes by QEMU itself (not in the guest's dirty log) ---------------
    def store_page(self, block: str, page_index: int, data: bytes) -> None:
        blk = self.block(block)
        blk.check(page_index * PAGE_SIZE, PAGE_SIZE)
        blk.put_page(page_index, data)

    def dirty_count(self) -> int:
        return sum(b.dirty.count for b in self.blocks.values())

    def clear_dirty(self) -> None:
        for blk in self.blocks.values():
            blk.dirty.clear_all()

    # -- migration -----------------------------------------------------------
    def _scan_order(self) -> list[tuple[RamBlock, list[int]]]:
        """Dirty pages in QEMU's scan order: resume where the last pass stopped."""
        blocks = list(self.blocks.values())
        start_block, start_page = self._cursor
        order: list[tuple[RamBlock, list[int]]] = []
        first = blocks[start_block].dirty.indices()
        order.append((blocks[start_block], [i for i in first if i >= start_page]))
        for k in range(1, len(blocks)):
            blk = blocks[(start_block + k) % len(blocks)]
            order.append((blk, blk.dirty.indices()))
        order.append((blocks[start_block], [i for i in first if i < start_page]))
        return order

    def collect_dirty(self, xbzrle: bool = False) -> list[PageRecord]:
        """PageRecords for the dirty pages, in QEMU's scan order; clears the bitmaps.

        Like `ram_find_and_save_block`, the scan resumes after the block where
        the previous pass stopped, so every checkpoint of the run1 guest starts
        with vga.vram.  With `xbzrle`, a page already in the per-block cache is
        sent as an XBZRLE delta (skipped when unchanged, a full page when the
        delta is too big); zero pages are always ZERO records.
        """
        records: list[PageRecord] = []
        positions = {name: k for k, name in enumerate(self.blocks)}
        last: tuple[int, int] | None = None
        for blk, indices in self._scan_order():
            for index in indices:
                data = blk.page(index)
                offset = index * PAGE_SIZE
                last = (positions[blk.name], blk.npages)
                if data == ZERO_PAGE:
                    if xbzrle:
                        blk.xbzrle_cache[index] = ZERO_PAGE
                    records.append(PageRecord(blk.name, offset, KIND_ZERO, b"", 0))
                    continue
                if xbzrle and index in blk.xbzrle_cache:
                    encoded = pagediff.xbzrle_encode(blk.xbzrle_cache[index], data)
                    blk.xbzrle_cache[index] = data
                    if encoded == b"":
                        continue  # unchanged since last sent: QEMU skips the page
                    if encoded is not None:
                        records.append(PageRecord(blk.name, offset, KIND_XBZRLE, encoded))
                        continue
                elif xbzrle:
                    blk.xbzrle_cache[index] = data
                records.append(PageRecord(blk.name, offset, KIND_PAGE, data))
            blk.dirty.clear_all()
        if last is not None:
            self._cursor = last
        return records

    def migration_pass(self) -> list[PageRecord]:
        """The initial migration: every touched page (zero or not); clears dirty bits.

        Like run1's capture, the migration's last (END) pass is taken to end in
        the first block (pc.ram), so the next dirty scan starts with the block
        after it (vga.vram first, as in every run1 checkpoint).
        """
        records: list[PageRecord] = []
        for blk in self.blocks.values():
            for index in blk.touched.indices():
                data = blk.page(index)
                kind = KIND_ZERO if data == ZERO_PAGE else KIND_PAGE
                records.append(PageRecord(blk.name, index * PAGE_SIZE, kind,
                                          b"" if kind == KIND_ZERO else data))
            blk.dirty.clear_all()
        self._cursor = (0, next(iter(self.blocks.values())).npages)
        return records

    def apply_record(self, record: PageRecord, dirty: bool = False) -> None:
        """Write one record into this RAM (xbzrle decoded against the current page)."""
        blk = self.block(record.block)
        if record.offset % PAGE_SIZE:
            raise ValueError(f"page record offset {record.offset:#x} is not page aligned")
        index = record.offset // PAGE_SIZE
        blk.check(record.offset, PAGE_SIZE)
        if record.kind == KIND_ZERO:
            data = bytes([record.fill & 0xFF]) * PAGE_SIZE
        elif record.kind == KIND_PAGE:
            data = record.data
        elif record.kind == KIND_XBZRLE:
            data = pagediff.xbzrle_decode(record.data, blk.page(index))
        else:
            raise ValueError(f"unknown page record kind {record.kind!r}")
        if dirty:
            self.write(record.block, record.offset, data)
        else:
            blk.put_page(index, data)

    # -- comparison and digests ----------------------------------------------
    def same_layout(self, other: Ram) -> bool:
        return self.layout() == other.layout()

    def diff_pages(self, other: Ram) -> dict[str, list[int]]:
        """Per block, the page indices whose contents differ (only non-empty blocks)."""
        if not self.same_layout(other):
            raise ValueError(f"RAM layouts differ: {self.layout()} vs {other.layout()}")
        out: dict[str, list[int]] = {}
        for name, mine in self.blocks.items():
            theirs = other.blocks[name]
            candidates = sorted(set(mine.touched.indices()) | set(theirs.touched.indices()))
            if not candidates:
                continue
            old = b"".join(theirs.page(i) for i in candidates)
            new = b"".join(mine.page(i) for i in candidates)
            changed = pagediff.changed_pages(old, new, PAGE_SIZE)
            if changed:
                out[name] = [candidates[k] for k in changed]
        return out

    def digest(self) -> str:
        """Content digest: block layout + every non-zero page (index, bytes)."""
        h = hashlib.blake2b(digest_size=16)
        for blk in self.blocks.values():
            h.update(blk.name.encode() + b"\0" + blk.size_bytes.to_bytes(8, "big"))
            for index in blk.touched.indices():
                data = blk.page(index)
                if data != ZERO_PAGE:
                    h.update(index.to_bytes(8, "big"))
                    h.update(data)
        return h.hexdigest()

    def copy_from(self, other: Ram) -> None:
        """Make this RAM's contents equal to `other`'s (not dirty-logged)."""
        if not self.same_layout(other):
            raise ValueError(f"RAM layouts differ: {self.layout()} vs {other.layout()}")
        for name, src in other.blocks.items():
            dst = self.blocks[name]
            for index in sorted(set(src.touched.indices()) | set(dst.touched.indices())):
                dst.put_page(index, src.page(index))

    def clone(self) -> Ram:
        twin = Ram(self.layout())
        twin.copy_from(self)
        return twin

    def close(self) -> None:
        for blk in self.blocks.values():
            blk.mem.close()
