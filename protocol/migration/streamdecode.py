"""Incremental (sans-IO) decoders for the QEMU 7.2 COLO migration stream.

Each reader is a generator-driven state machine: the parser asks for exactly
N more bytes, `feed()` copies only those into a small buffer and resumes the
parser. So a reader never consumes a byte it does not need (the bytes after a
RAM part or after the VMDESCRIPTION are COLO control messages), buffers at
most one record, and gives identical results for any chunking of its input.
"""
from __future__ import annotations

import json
import re
import struct
from collections.abc import Generator
from dataclasses import dataclass, field

from protocol.migration.pages import (
    CODE_OF_KIND,
    CODE_PAGE,
    CODE_XBZRLE,
    CODE_ZERO,
    KIND_OF_CODE,
    KIND_PAGE,
    KIND_XBZRLE,
    KIND_ZERO,
    KINDS,
    PageBatch,
    PageRecord,
    PageRun,
)
from protocol.migration.stream import (
    ENCODING_FLAG_XBZRLE,
    MAX_DEVICE_REGION,
    MIG_CMD_ENABLE_COLO,
    MIG_CMD_MAX,
    QEMU_VM_COMMAND,
    QEMU_VM_CONFIGURATION,
    QEMU_VM_EOF,
    QEMU_VM_FILE_MAGIC,
    QEMU_VM_FILE_VERSION,
    QEMU_VM_FILE_VERSION_COMPAT,
    QEMU_VM_SECTION_END,
    QEMU_VM_SECTION_FOOTER,
    QEMU_VM_SECTION_FULL,
    QEMU_VM_SECTION_PART,
    QEMU_VM_SECTION_START,
    QEMU_VM_VMDESCRIPTION,
    RAM_SAVE_FLAG_COMPRESS_PAGE,
    RAM_SAVE_FLAG_CONTINUE,
    RAM_SAVE_FLAG_EOS,
    RAM_SAVE_FLAG_HOOK,
    RAM_SAVE_FLAG_MEM_SIZE,
    RAM_SAVE_FLAG_PAGE,
    RAM_SAVE_FLAG_XBZRLE,
    RAM_SAVE_FLAG_ZERO,
    RAM_SECTION_VERSION,
    SECTION_NAMES,
    DeviceSection,
    RamContext,
    StreamError,
    StreamLimitError,
    decode_device_blob,
)

_SCAN = -1  # parser request: "the device region up to the end of the VMDESCRIPTION"
_BULK = -2  # parser request: "whole page records, as many as the input holds" (RamPartReader)
_BE64 = struct.Struct(">Q")
_VMDESC_RE = re.compile(rb'\x00\x06(....)\{"page_size"', re.S)
_KIND_BY_FLAG = {RAM_SAVE_FLAG_ZERO: KIND_ZERO, RAM_SAVE_FLAG_PAGE: KIND_PAGE,
                 RAM_SAVE_FLAG_XBZRLE: KIND_XBZRLE}
Parser = Generator[int, bytes, None]


def _u(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _tname(t: int) -> str:
    return f"{t:#04x} ({SECTION_NAMES.get(t, 'unknown')})"


class _Incremental:
    """Drives a parser generator that yields byte counts and receives bytes.

    By default `feed` takes every byte it is given (up to the end of what it
    decodes), holding the start of a record split across feeds.  A caller that
    keeps what `feed` did not use and feeds it again with the next bytes (the
    codec) sets `refeeds`: the RAM part's bulk path then leaves the start of a
    page record where it is, and takes the record whole, in its run, next time
    (no record-by-record parse at each read's edge)."""

    refeeds = False

    def __init__(self, base_offset: int = 0) -> None:
        self.base_offset = base_offset
        self.done = False
        self.consumed = 0          # bytes taken by feed() so far
        self._buf = bytearray()
        self._at = base_offset     # stream offset of the chunk last sent to the parser
        self._delivered = 0        # bytes sent to the parser so far
        self._error: StreamError | None = None
        self._gen = self._parse()
        self._need = self._gen.send(None)

    def _parse(self) -> Parser:  # pragma: no cover - overridden
        raise NotImplementedError
        yield 0

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Consume bytes; returns how many were used (never past the end)."""
        if self._error is not None:
            raise self._error
        mv = memoryview(data).cast("B")
        pos, n = 0, len(mv)
        while pos < n and not self.done:
            if self._need == _SCAN:
                pos += self._scan(mv[pos:])
                continue
            if self._need == _BULK:
                used, eos, short = self._bulk(mv[pos:])
                pos += used
                if eos or (pos < n and not (short and self.refeeds)):
                    # EOS reached, or a record split across feeds / not for the fast
                    # path (errors included): the incremental parser takes one record
                    self._resume(eos, used)
                    continue
                self._delivered += used
                if pos < n:
                    break    # the start of a page record: fed again, whole, by the caller
                continue
            take = min(self._need - len(self._buf), n - pos)
            self._buf += mv[pos:pos + take]
            pos += take
            if len(self._buf) == self._need:
                chunk = bytes(self._buf)
                self._buf.clear()
                self._send(chunk)
        self.consumed += pos
        return pos

    def progress_bytes(self) -> int:
        """Bytes of completed parser requests (a request is at most one record or
        header), plus the scanned device region in 64 KiB units: grows only when
        the peer completes something."""
        region = getattr(self, "_region", b"")
        return self._delivered + len(region) // 65536 * 65536

    def _scan(self, mv: memoryview) -> int:  # pragma: no cover - InitialReader only
        raise NotImplementedError

    def _bulk(self, mv: memoryview) -> tuple[int, bool, bool]:  # pragma: no cover
        raise NotImplementedError     # (RamPartReader's)

    def _resume(self, value: bool, used: int) -> None:
        self._delivered += used
        self._at = self.base_offset + self._delivered
        try:
            self._need = self._gen.send(value)
        except StopIteration:
            self.done = True
        except StreamError as exc:
            self._error = exc
            raise

    def _send(self, chunk: bytes) -> None:
        self._at = self.base_offset + self._delivered
        self._delivered += len(chunk)
        try:
            self._need = self._gen.send(chunk)
        except StopIteration:
            self.done = True
        except StreamError as exc:
            self._error = exc
            raise

    def _err(self, rel: int, expected: str, found: str) -> StreamError:
        return StreamError(self._at + rel, expected, found)


def _ram_records(rd: _Incremental, ctx: RamContext, on_record, max_record: int) -> Parser:
    """Page records up to and including the EOS word."""
    while True:
        if (yield from _ram_record(rd, ctx, on_record, max_record)):
            return


def _ram_record(rd: _Incremental, ctx: RamContext, on_record, max_record: int):
    """One page record (returns False) or the EOS word (returns True)."""
    ps = ctx.page_size
    mask = ps - 1
    if True:
        word = _u((yield 8))
        start = rd._at
        flags, addr = word & mask, word & ~mask
        if flags == RAM_SAVE_FLAG_EOS:
            return True
        kind_flag = flags & ~RAM_SAVE_FLAG_CONTINUE
        kind = _KIND_BY_FLAG.get(kind_flag)
        if kind is None:
            what = next((txt for bit, txt in (
                (RAM_SAVE_FLAG_MEM_SIZE, "(MEM_SIZE outside SECTION_START)"),
                (RAM_SAVE_FLAG_HOOK, "(HOOK/RDMA unsupported)"),
                (RAM_SAVE_FLAG_COMPRESS_PAGE, "(COMPRESS_PAGE unsupported)"),
                (0xE01, "(unknown bits: offset not page-aligned?)")) if flags & bit), "")
            raise StreamError(start, "a page record (ZERO/PAGE/XBZRLE [+CONTINUE]) or EOS",
                              f"flags {flags:#x} in {word:#018x} {what}".rstrip())
        if flags & RAM_SAVE_FLAG_CONTINUE:
            if ctx.current_block is None:
                raise StreamError(start, "an idstr (no previous block for CONTINUE)",
                                  f"CONTINUE in {word:#018x}")
            block = ctx.current_block
        else:
            ln = (yield 1)[0]
            if ln == 0:
                raise StreamError(start + 8, "a RAMBlock idstr length >= 1", "0")
            block = (yield ln).decode("latin-1")
        used = ctx.blocks.get(block)
        if used is None:
            raise StreamError(start, "a known RAMBlock", repr(block))
        if addr >= used:
            raise StreamError(start, f"offset < used_length {used:#x} of {block}",
                              f"{addr:#x}")
        if kind == KIND_ZERO:
            rec = PageRecord(block, addr, kind, b"", (yield 1)[0])
        elif kind == KIND_PAGE:
            if ps + 8 + 256 > max_record:
                raise StreamError(start, f"records <= {max_record} bytes", "a full page")
            rec = PageRecord(block, addr, kind, (yield ps))
        else:
            hdr = yield 3
            if hdr[0] != ENCODING_FLAG_XBZRLE:
                raise StreamError(rd._at, "XBZRLE encoding flag 0x01", f"{hdr[0]:#04x}")
            xlen = _u(hdr[1:])
            if xlen > ps or xlen + 8 + 256 + 3 > max_record:
                raise StreamError(rd._at, f"XBZRLE length <= {min(ps, max_record)}",
                                  str(xlen))
            rec = PageRecord(block, addr, kind, (yield xlen) if xlen else b"")
        ctx.current_block = block
        on_record(rec)
        return False


def _footer(rd: _Incremental, sid: int) -> Parser:
    b = yield 5
    if b[0] != QEMU_VM_SECTION_FOOTER or _u(b[1:]) != sid:
        raise rd._err(0, f"section footer 7e {sid:08x}", b.hex(" "))


class RamPartReader(_Incremental):
    """Incremental decoder of one checkpoint's live RAM part (03 sid ... 7e sid 00).

    `records` is a `PageBatch` when every record came through the bulk path
    (the whole part, or whole records, in one feed: no per-page objects), else
    a list of PageRecords.  With `borrow` set, page data are views into the
    fed buffer itself, which the caller then must keep alive and unchanged;
    by default the bulk path decodes from one private copy of its input.

    A consumer that applies pages as they arrive, as QEMU writes each page
    into its RAM cache, calls `take_records()` after each feed: the reader
    then holds at most one feed's records.  `pages`, `kind_counts` and
    `block_counts` count every record of the part, taken or not.  A part of
    more records than the guest has pages (`max_pages`, by default the RAM
    that `ctx` announces) is refused with a `StreamLimitError`: QEMU sends a
    page at most once per checkpoint (the VM is stopped, its dirty bitmap is
    cleared as each page goes).
    """

    def __init__(self, ctx: RamContext, max_record_bytes: int = 16384, *,
                 base_offset: int = 0, borrow: bool = False,
                 max_pages: int | None = None) -> None:
        self.ctx = ctx
        self.max_record_bytes = max_record_bytes
        self.borrow = borrow
        self._max_pages = max_pages
        self._empty: tuple[int | None, bytes] = (None, b"")
        self.reset(base_offset)

    def reset(self, base_offset: int = 0) -> None:
        """Ready for the next checkpoint's RAM part (one reader per connection, reused
        across checkpoints): counts, records and parser start afresh; the context,
        limits and `borrow` stay (a default page limit follows the context's RAM)."""
        ctx = self.ctx
        self.max_pages = ctx.mem_size // ctx.page_size if self._max_pages is None \
            else self._max_pages
        self.pages = 0
        self.kind_counts: dict[str, int] = {}
        self.block_counts: dict[str, int] = {}
        self._items: list = []          # PageRecord (incremental path) or PageRun (bulk)
        self._has_records = False
        super().__init__(base_offset)

    def empty_part(self) -> bytes:
        """The canonical empty RAM part for the context's section id: 03 sid, the EOS
        word, 7e sid, 00 (b"" while the id is not known yet)."""
        sid = self.ctx.ram_section_id
        if sid is None:
            return b""
        if self._empty[0] != sid:
            sid4 = sid.to_bytes(4, "big")
            self._empty = (sid, bytes((QEMU_VM_SECTION_END,)) + sid4
                           + _BE64.pack(RAM_SAVE_FLAG_EOS)
                           + bytes((QEMU_VM_SECTION_FOOTER,)) + sid4 + bytes((QEMU_VM_EOF,)))
        return self._empty[1]

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """As `_Incremental.feed`, with a fast path for a whole empty RAM part (a
        null guest's checkpoint): one comparison, no parser steps."""
        if not self._delivered and not self._buf and not self.done and self._error is None:
            empty = self.empty_part()
            n = len(empty)
            if n and len(data) >= n and data[:n] == empty:
                self._delivered = self.consumed = n
                self._at = self.base_offset + n
                self.done = True
                self._gen.close()
                return n
        return super().feed(data)

    @property
    def records(self) -> list[PageRecord] | PageBatch:
        items = self._items
        if not self._has_records:
            return PageBatch(items)
        if not any(isinstance(x, PageRun) for x in items):
            return list(items)
        # runs and a few records the incremental parser took (a feed that ended inside
        # a record: nearly every read of a big RAM part): still one batch, each group
        # of records a small run of its own, so the runs' pages never become objects
        runs: list[PageRun] = []
        group: list = []
        block: str | None = None
        ps = self.ctx.page_size
        for x in items:
            if group and (isinstance(x, PageRun) or x.block != block):
                runs.append(_single_run(block, group, ps))
                group = []
            if isinstance(x, PageRun):
                runs.append(x)
            else:
                block = x.block
                data = memoryview(x.data) if x.kind == KIND_PAGE else x.data
                group.append((x.offset, CODE_OF_KIND[x.kind], x.fill, data))
        if group:
            runs.append(_single_run(block, group, ps))
        return PageBatch(runs)

    def take_records(self) -> list[PageRecord] | PageBatch:
        """The records decoded since the last call (as `records`), then forgets them."""
        out = self.records
        self._items = []
        self._has_records = False
        return out

    def drop_records(self) -> None:
        """Forget the records decoded so far without building them (a consumer that
        only counts: the proxy)."""
        self._items = []
        self._has_records = False

    def _tally(self, block: str, n: int, kinds: dict[str, int]) -> None:
        self.pages += n
        self.block_counts[block] = self.block_counts.get(block, 0) + n
        kc = self.kind_counts
        for k in KINDS:
            if kinds.get(k):
                kc[k] = kc.get(k, 0) + kinds[k]
        if self.pages > self.max_pages:
            ctx = self.ctx
            exc = StreamLimitError(
                self.base_offset + self._delivered, "ram-part-pages",
                f"a RAM part of at most {self.max_pages} page records (the guest's RAM: "
                f"{ctx.mem_size} bytes in {len(ctx.blocks)} block(s); QEMU sends a page "
                "at most once per checkpoint)", f"{self.pages} records")
            self._error = exc
            raise exc

    def _append_record(self, rec: PageRecord) -> None:
        self._has_records = True
        self._items.append(rec)
        self._tally(rec.block, 1, {rec.kind: 1})

    def _append_pages(self, run: PageRun) -> None:
        """`_append_run` of a run of full pages (no kinds to count)."""
        self._items.append(run)
        self._tally(run.block, len(run), {KIND_PAGE: len(run)})

    def _append_run(self, run: PageRun) -> None:
        import numpy as np  # only where pages come in runs: light commands
        self._items.append(run)         # (decode, run --guest null) never load numpy
        c = np.bincount(run.kinds, minlength=3)
        self._tally(run.block, len(run), {KIND_OF_CODE[k]: int(c[k]) for k in range(3)})

    def _parse(self) -> Parser:
        hdr = yield 5
        sid = _u(hdr[1:])
        if hdr[0] != QEMU_VM_SECTION_END:
            raise self._err(0, "SECTION_END (0x03) starting the RAM part", _tname(hdr[0]))
        if self.ctx.ram_section_id is None:
            self.ctx.ram_section_id = sid
        elif sid != self.ctx.ram_section_id:
            raise self._err(1, f"ram section id {self.ctx.ram_section_id}", str(sid))
        while True:
            if (yield _BULK):
                break
            if (yield from _ram_record(self, self.ctx, self._append_record,
                                       self.max_record_bytes)):
                break
        yield from _footer(self, sid)
        eof = yield 1
        if eof[0] != QEMU_VM_EOF:
            raise self._err(0, "QEMU_VM_EOF (0x00) after the RAM part", _tname(eof[0]))

    def _bulk(self, mv: memoryview) -> tuple[int, bool, bool]:
        """Fast path: decode the complete, well-formed records at the start of `mv`.

        Stops (without consuming it) at the first record that is incomplete or
        anything but a valid ZERO/PAGE/XBZRLE record, which the incremental
        parser then takes (so errors and split records behave exactly as
        there).  Returns (bytes used, whether the EOS word was consumed, whether
        what stopped it is only too few bytes: less than a header word, or the
        start of a full page of the current block under a valid header).
        Runs of full CONTINUE pages are kept as one strided (n, page_size) view
        each: their headers are checked one by one for a part's first
        `SMALL_PART_RECORDS` records, with numpy array operations after them;
        other records are decoded one by one.
        """
        n = len(mv)
        if n < 8:
            return 0, False, True
        if _BE64.unpack_from(mv, 0)[0] & (self.ctx.page_size - 1) == RAM_SAVE_FLAG_EOS:
            return 8, True, False   # an empty RAM part (the null guest's): no numpy, no copy
        import numpy as np
        # the input, read-only: borrowed as it is, or one private copy
        data = (mv if self.borrow else memoryview(bytes(mv))).toreadonly()
        ctx = self.ctx
        ps = ctx.page_size
        mask = ps - 1
        stride = ps + 8
        blocks = ctx.blocks
        max_record = self.max_record_bytes
        page_ok = ps + 8 + 256 <= max_record
        cur = ctx.current_block
        append_run, append_pages = self._append_run, self._append_pages
        unpack = _BE64.unpack_from
        cont_page = RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_CONTINUE
        # a part's first SMALL_PART_RECORDS page headers are checked one by one
        # (a few dozen pages: no fixed cost of array operations), the rest with numpy
        small = SMALL_PART_RECORDS - self.pages
        # single records of block `pend_block`, waiting to become one PageRun
        pend_block: str | None = None
        pend: list = []     # (offset, kind code, fill, page view or xbzrle bytes)

        def flush_pending() -> None:
            nonlocal pend_block
            if pend:
                append_run(_single_run(pend_block, pend, ps))
                pend.clear()
            pend_block = None

        pos, eos, short = 0, False, False
        while True:
            if pos + 8 > n:
                short = True
                break
            word = unpack(data, pos)[0]
            flags = word & mask
            addr = word ^ flags
            if flags == cont_page and cur is not None and page_ok:
                used = blocks.get(cur)
                if used is None or addr >= used:
                    break
                if pos + stride > n:
                    short = True
                    break
                flush_pending()
                if small > 0:
                    # a run of full pages of the current block, header by header
                    k = min(small, (n - pos) // stride)
                    addrs = [addr]
                    at = pos + stride
                    while len(addrs) < k:
                        word = unpack(data, at)[0]
                        flags = word & mask
                        if flags != cont_page or word ^ flags >= used:
                            break
                        addrs.append(word ^ flags)
                        at += stride
                    good = len(addrs)
                    small -= good
                    pages = np.ndarray((good, ps), dtype=np.uint8, buffer=data,
                                       offset=pos + 8, strides=(stride, 1))
                    append_pages(PageRun(cur, addrs, _page_codes(good), pages))
                    pos = at
                    continue
                # a run of full pages of the current block: check headers in bulk, 64
                # at first (one round for a read of up to 256 KiB), then 8× more each
                # round (a mixed part is not re-checked at length for every record)
                window = 64
                while True:
                    k = min(window, (n - pos) // stride)
                    if k <= 0:
                        break
                    words = np.ndarray((k,), dtype=">u8", buffer=data, offset=pos,
                                       strides=(stride,))
                    wflags = words & np.uint64(mask)
                    addrs = words ^ wflags
                    ok = (wflags == cont_page) & (addrs < used)
                    good = k if ok.all() else int(np.argmin(ok))
                    if good:
                        # a strided view of the read-only input (so read-only too)
                        pages = np.ndarray((good, ps), dtype=np.uint8, buffer=data,
                                           offset=pos + 8, strides=(stride, 1))
                        append_pages(PageRun(cur, addrs[:good].astype(np.int64),
                                             _page_codes(good), pages))
                        pos += good * stride
                    if good < k:
                        break
                    window *= 8
                continue
            if flags == RAM_SAVE_FLAG_EOS:
                pos += 8
                eos = True
                break
            # one record; `short` where it only lacks bytes (a valid start so far)
            kind_flag = flags & ~RAM_SAVE_FLAG_CONTINUE
            if kind_flag not in (RAM_SAVE_FLAG_PAGE, RAM_SAVE_FLAG_ZERO, RAM_SAVE_FLAG_XBZRLE):
                break
            if flags & RAM_SAVE_FLAG_CONTINUE:
                if cur is None:
                    break
                block, p = cur, pos + 8
            else:
                if pos + 9 > n:
                    short = True
                    break
                ln = data[pos + 8]
                if ln == 0:
                    break
                if pos + 9 + ln > n:
                    short = True
                    break
                block = bytes(data[pos + 9:pos + 9 + ln]).decode("latin-1")
                p = pos + 9 + ln
            used = blocks.get(block)
            if used is None or addr >= used:
                break
            if kind_flag == RAM_SAVE_FLAG_PAGE:
                if not page_ok:
                    break
                if p + ps > n:
                    short = True
                    break
                one = (addr, CODE_PAGE, 0, data[p:p + ps])
                p += ps
            elif kind_flag == RAM_SAVE_FLAG_ZERO:
                if p + 1 > n:
                    short = True
                    break
                one = (addr, CODE_ZERO, data[p], None)
                p += 1
            else:
                if p + 3 > n:
                    short = True
                    break
                xlen = data[p + 1] << 8 | data[p + 2]
                if data[p] != ENCODING_FLAG_XBZRLE or xlen > ps or \
                        xlen + 8 + 256 + 3 > max_record:
                    break
                if p + 3 + xlen > n:
                    short = True
                    break
                one = (addr, CODE_XBZRLE, 0, data[p + 3:p + 3 + xlen] if xlen else b"")
                p += 3 + xlen
            if block != pend_block:
                flush_pending()
                pend_block = block
            pend.append(one)
            cur = block
            pos = p
        flush_pending()
        ctx.current_block = cur
        return pos, eos, short


#: `RamPartReader`: a RAM part's first this many page headers are checked one by
#: one, not with numpy array operations (the encoder's
#: `stream.SMALL_BATCH_RECORDS`, for the same reason)
SMALL_PART_RECORDS = 256


def _page_codes(n: int):
    """`n` CODE_PAGE kind codes (a run of full pages): one shared read-only array
    per length up to SMALL_PART_RECORDS, a new one beyond."""
    import numpy as np
    if n > SMALL_PART_RECORDS:
        return np.full(n, CODE_PAGE, dtype=np.uint8)
    codes = _PAGE_CODES.get(n)
    if codes is None:
        codes = _PAGE_CODES[n] = np.full(n, CODE_PAGE, dtype=np.uint8)
        codes.flags.writeable = False
    return codes


_PAGE_CODES: dict = {}


def _single_run(block: str, recs: list, ps: int) -> PageRun:
    """A PageRun of records decoded one by one: (offset, code, fill, data)."""
    import numpy as np
    offsets = [r[0] for r in recs]
    kinds = [r[1] for r in recs]
    fills = None
    if any(r[2] for r in recs):
        fills = np.array([r[2] for r in recs], dtype=np.uint8)
    pages = None
    if CODE_PAGE in kinds:
        pages = np.zeros((len(recs), ps), dtype=np.uint8)
        for j, r in enumerate(recs):
            if r[1] == CODE_PAGE:
                pages[j] = r[3]
        pages.flags.writeable = False
    xdata = {j: r[3] for j, r in enumerate(recs) if r[1] == CODE_XBZRLE} or None
    return PageRun(block, offsets, kinds, pages, fills, xdata)


#: how many RAM sections and commands an InitialSummary lists one by one; a
#: peer may send any number (QEMU iterates), the rest are only counted
MAX_DETAILS = 4096


@dataclass
class InitialSummary:
    """What the initial migration carried (counts; records only if kept)."""

    magic: int = 0
    version: int = 0
    machine: str | None = None
    enable_colo: bool = False
    commands: list[tuple[int, bytes]] = field(default_factory=list)
    ram_section_id: int | None = None
    mem_size: int = 0
    blocks: list[tuple[str, int]] = field(default_factory=list)
    ram_sections: list[dict] = field(default_factory=list)  # START/PART/END, counts
    #: sections and commands past the MAX_DETAILS kept in the lists (counted only)
    ram_sections_more: int = 0
    commands_more: int = 0
    pages_by_kind: dict[str, int] = field(default_factory=dict)
    pages_by_block: dict[str, dict[str, int]] = field(default_factory=dict)
    device_sections: list[DeviceSection] = field(default_factory=list)
    device_region_offset: int | None = None
    eof_offset: int | None = None
    vmdesc: dict | None = None
    vmdesc_len: int = 0
    bytes: int = 0
    records: list[PageRecord] = field(default_factory=list)


class InitialReader(_Incremental):
    """Incremental decoder of the initial stream, up to the end of VMDESCRIPTION."""

    def __init__(self, *, keep_pages: bool = False, max_record_bytes: int = 16384,
                 max_device_region: int = MAX_DEVICE_REGION, base_offset: int = 0,
                 on_page=None) -> None:
        self.summary = InitialSummary()
        self.ctx = RamContext(ram_section_id=None)
        self.keep_pages = keep_pages
        #: called with (record, ctx) for every page as it is decoded: a mirror of
        #: the guest's RAM loads the initial migration without keeping it whole
        self.on_page = on_page
        self.max_record_bytes = max_record_bytes
        self.max_device_region = max_device_region
        self._region = bytearray()
        self._region_end: int | None = None
        super().__init__(base_offset)

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        n = super().feed(data)
        if self.done:
            self.summary.bytes = self.consumed
        return n

    # the device-section region has no length: buffer it until the VMDESCRIPTION
    def _scan(self, mv: memoryview) -> int:
        if self._region_end is None:
            start = max(0, len(self._region) - 17)
            self._region += mv
            m = _VMDESC_RE.search(self._region, start)
            if m is None:
                if len(self._region) > self.max_device_region:
                    raise self._fail(StreamError(
                        self.base_offset + self.consumed, "VMDESCRIPTION within "
                        f"{self.max_device_region} bytes after the device sections",
                        f"none in {len(self._region)} bytes"))
                return len(mv)
            if _u(m.group(1)) > self.max_device_region:
                raise self._fail(StreamError(
                    self.base_offset + self.consumed + m.start(1), "a VMDESCRIPTION length",
                    str(_u(m.group(1)))))
            self._region_end = m.end(1) + _u(m.group(1))
            excess = max(0, len(self._region) - self._region_end)
            if excess:
                del self._region[self._region_end:]
            taken = len(mv) - excess
        else:
            taken = min(len(mv), self._region_end - len(self._region))
            self._region += mv[:taken]
        if len(self._region) == self._region_end:
            region = bytes(self._region)
            self._region.clear()
            self._send(region)
        return taken

    def _fail(self, exc: StreamError) -> StreamError:
        self._error = exc
        return exc

    def _count(self, sect: dict, rec: PageRecord) -> None:
        s = self.summary
        sect[rec.kind] += 1
        bb = sect["by_block"].setdefault(rec.block, {KIND_ZERO: 0, KIND_PAGE: 0, KIND_XBZRLE: 0})
        bb[rec.kind] += 1
        s.pages_by_kind[rec.kind] = s.pages_by_kind.get(rec.kind, 0) + 1
        tb = s.pages_by_block.setdefault(rec.block, {KIND_ZERO: 0, KIND_PAGE: 0, KIND_XBZRLE: 0})
        tb[rec.kind] += 1
        if self.keep_pages:
            s.records.append(rec)
        if self.on_page is not None:
            self.on_page(rec, self.ctx)

    def _parse(self) -> Parser:
        s, ctx = self.summary, self.ctx
        hdr = yield 8
        s.magic, s.version = _u(hdr[:4]), _u(hdr[4:])
        if s.magic != QEMU_VM_FILE_MAGIC:
            raise self._err(0, "QEVM magic 51 45 56 4d", hdr[:4].hex(" "))
        if s.version != QEMU_VM_FILE_VERSION:
            old = " (obsolete)" if s.version == QEMU_VM_FILE_VERSION_COMPAT else ""
            raise self._err(4, "file version 3", f"{s.version}{old}")
        while True:
            t = (yield 1)[0]
            at = self._at
            if t == QEMU_VM_CONFIGURATION:
                if s.machine is not None:
                    raise self._err(0, "one CONFIGURATION", "a second one")
                ln = _u((yield 4))
                if not 1 <= ln <= 256:
                    raise self._err(0, "machine name length 1..256", str(ln))
                s.machine = (yield ln).decode("latin-1")
            elif t == QEMU_VM_COMMAND:
                b = yield 4
                cmd, ln = _u(b[:2]), _u(b[2:])
                if not 1 <= cmd <= MIG_CMD_MAX:
                    raise self._err(0, f"MIG_CMD 1..{MIG_CMD_MAX}", str(cmd))
                payload = (yield ln) if ln else b""
                if len(s.commands) < MAX_DETAILS:
                    s.commands.append((cmd, payload))
                else:
                    s.commands_more += 1
                if cmd == MIG_CMD_ENABLE_COLO:
                    if ln:
                        raise self._err(2, "ENABLE_COLO length 0", str(ln))
                    s.enable_colo = True
            elif t == QEMU_VM_SECTION_START:
                yield from self._ram_start(at)
            elif t in (QEMU_VM_SECTION_PART, QEMU_VM_SECTION_END):
                sid = _u((yield 4))
                if sid != ctx.ram_section_id:
                    raise self._err(0, f"ram section id {ctx.ram_section_id}", str(sid))
                sect = {"type": "PART" if t == QEMU_VM_SECTION_PART else "END",
                        "offset": at, KIND_ZERO: 0, KIND_PAGE: 0, KIND_XBZRLE: 0,
                        "by_block": {}}
                if len(s.ram_sections) < MAX_DETAILS:
                    s.ram_sections.append(sect)
                else:
                    s.ram_sections_more += 1
                yield from _ram_records(self, ctx, lambda r, d=sect: self._count(d, r),
                                        self.max_record_bytes)
                yield from _footer(self, sid)
            elif t == QEMU_VM_SECTION_FULL:
                s.device_region_offset = at
                region = bytes([t]) + (yield _SCAN)
                self._finish(region, at)
                return
            elif t == QEMU_VM_EOF:
                s.eof_offset = at
                t2 = (yield 1)[0]
                if t2 != QEMU_VM_VMDESCRIPTION:
                    raise self._err(0, "VMDESCRIPTION (0x06) after EOF", _tname(t2))
                ln = _u((yield 4))
                if not 1 <= ln <= self.max_device_region:
                    raise self._err(0, "a VMDESCRIPTION length", str(ln))
                self._set_vmdesc((yield ln), at + 6)
                return
            else:
                raise self._err(0, "a top-level section type", _tname(t))

    def _ram_start(self, at: int) -> Parser:
        s, ctx = self.summary, self.ctx
        b = yield 5
        sid, ln = _u(b[:4]), b[4]
        name = (yield ln).decode("latin-1") if ln else ""
        iv = yield 8
        inst, ver = _u(iv[:4]), _u(iv[4:])
        if name != "ram" or inst != 0:
            raise self._err(0, "SECTION_START of 'ram' instance 0 (no other live section "
                            "is supported)", f"{name!r} instance {inst}")
        if ver != RAM_SECTION_VERSION:
            raise self._err(4, "ram version 4", str(ver))
        if ctx.ram_section_id is not None:
            raise self._err(0, "one SECTION_START ram", "a second one")
        ctx.ram_section_id = s.ram_section_id = sid
        word = _u((yield 8))
        mask = ctx.page_size - 1
        if word & mask != RAM_SAVE_FLAG_MEM_SIZE:
            raise self._err(0, "a MEM_SIZE record (flags 0x04)", f"{word:#018x}")
        total = remaining = word & ~mask
        s.mem_size = total
        while remaining > 0:
            ln = (yield 1)[0]
            if ln == 0:
                raise self._err(0, "a RAMBlock idstr length >= 1", "0")
            bname = (yield ln).decode("latin-1")
            used = _u((yield 8))
            if used == 0 or used > remaining or bname in ctx.blocks:
                raise self._err(0, f"a new block with 0 < used_length <= {remaining:#x}",
                                f"{bname!r} {used:#x}")
            ctx.blocks[bname] = used
            s.blocks.append((bname, used))
            remaining -= used
        s.ram_sections.append({"type": "START", "offset": at, KIND_ZERO: 0, KIND_PAGE: 0,
                               KIND_XBZRLE: 0, "by_block": {}})
        eos = _u((yield 8))
        if eos != RAM_SAVE_FLAG_EOS:
            raise self._err(0, "EOS (0x10) after the block list", f"{eos:#018x}")
        yield from _footer(self, sid)

    def _set_vmdesc(self, raw: bytes, at: int) -> None:
        try:
            desc = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise StreamError(at, "VMDESCRIPTION JSON", f"invalid JSON ({exc})") from None
        if not isinstance(desc, dict) or not isinstance(desc.get("devices"), list):
            raise StreamError(at, 'a JSON object with "devices"', type(desc).__name__)
        self.summary.vmdesc = desc
        self.summary.vmdesc_len = len(raw)

    def _finish(self, region: bytes, at: int) -> None:
        m = _VMDESC_RE.search(region)
        assert m is not None
        eof = m.start()
        self.summary.eof_offset = at + eof
        self._set_vmdesc(region[m.end(1):], at + eof + 6)
        self.summary.device_sections = decode_device_blob(
            region[:eof + 1], self.summary.vmdesc, base_offset=at)
