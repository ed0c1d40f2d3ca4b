"""QEMU 7.2 migration-stream framing for COLO (sans-IO).

Public API, constants, encoders and the (non-incremental) device-blob
decoder live here; the incremental readers live in `protocol.migration.streamdecode`
and are re-exported at the bottom of this module.

Layouts (PROTOCOL.md §5, §7):

* one checkpoint's live RAM part:
  ``03 <be32 sid> <records> <be64 0x10> 7e <be32 sid> 00``
* a page record: ``be64 offset|flags`` [``u8 len idstr`` unless CONTINUE] then
  ZERO: 1 fill byte / PAGE: page_size bytes / XBZRLE: ``01 <be16 len> data``
* the COLO device blob: ``(04 <sid> <u8 len idstr> <be32 inst> <be32 ver> body
  7e <sid>)* 00`` (no header, no VMDESCRIPTION)
* the initial migration: magic, version, CONFIGURATION, COMMAND ENABLE_COLO,
  START/PART/END ram, FULL device sections, EOF, VMDESCRIPTION.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocol.errors import ColoError
from protocol.guest import pagediff
from protocol.migration.pages import (
    CODE_PAGE,
    CODE_ZERO,
    KIND_PAGE,
    KIND_XBZRLE,
    KIND_ZERO,
    PAGE_SIZE,
    PageBatch,
    PageRecord,
)

if TYPE_CHECKING:
    import numpy as np

    from protocol.migration.streamdecode import InitialReader, InitialSummary, RamPartReader

# --- file header -------------------------------------------------------------
QEMU_VM_FILE_MAGIC = 0x5145564D  # "QEVM"
QEMU_VM_FILE_VERSION = 3
QEMU_VM_FILE_VERSION_COMPAT = 2  # obsolete, rejected

# --- section types -----------------------------------------------------------
QEMU_VM_EOF = 0x00
QEMU_VM_SECTION_START = 0x01
QEMU_VM_SECTION_PART = 0x02
QEMU_VM_SECTION_END = 0x03
QEMU_VM_SECTION_FULL = 0x04
QEMU_VM_SUBSECTION = 0x05
QEMU_VM_VMDESCRIPTION = 0x06
QEMU_VM_CONFIGURATION = 0x07
QEMU_VM_COMMAND = 0x08
QEMU_VM_SECTION_FOOTER = 0x7E

SECTION_NAMES = {
    QEMU_VM_EOF: "EOF", QEMU_VM_SECTION_START: "START", QEMU_VM_SECTION_PART: "PART",
    QEMU_VM_SECTION_END: "END", QEMU_VM_SECTION_FULL: "FULL",
    QEMU_VM_SUBSECTION: "SUBSECTION", QEMU_VM_VMDESCRIPTION: "VMDESCRIPTION",
    QEMU_VM_CONFIGURATION: "CONFIGURATION", QEMU_VM_COMMAND: "COMMAND",
    QEMU_VM_SECTION_FOOTER: "FOOTER",
}

# --- RAM record flags (low bits of the be64 offset word) ---------------------
RAM_SAVE_FLAG_FULL = 0x01  # obsolete, never sent
RAM_SAVE_FLAG_ZERO = 0x02
RAM_SAVE_FLAG_MEM_SIZE = 0x04
RAM_SAVE_FLAG_PAGE = 0x08
RAM_SAVE_FLAG_EOS = 0x10
RAM_SAVE_FLAG_CONTINUE = 0x20
RAM_SAVE_FLAG_XBZRLE = 0x40
RAM_SAVE_FLAG_HOOK = 0x80
RAM_SAVE_FLAG_COMPRESS_PAGE = 0x100
ENCODING_FLAG_XBZRLE = 0x01
RAM_SECTION_VERSION = 4

# --- QEMU_VM_COMMAND sub-commands --------------------------------------------
MIG_CMD_OPEN_RETURN_PATH = 1
MIG_CMD_PING = 2
MIG_CMD_PACKAGED = 7
MIG_CMD_ENABLE_COLO = 8
MIG_CMD_MAX = 10

#: default ram section id (what 7.2 assigns on an x86 pc machine)
DEFAULT_RAM_SECTION_ID = 2
#: bound for the buffered device-section region of the initial stream
MAX_DEVICE_REGION = 64 * 1024 * 1024


class StreamError(ColoError, ValueError):
    """A malformed migration stream; the message names offset, expected, found."""

    def __init__(self, offset: int, expected: str, found: str) -> None:
        self.offset = offset
        self.expected = expected
        self.found = found
        super().__init__(f"at stream offset {offset}: expected {expected}, found {found}")


class StreamLimitError(StreamError):
    """Well-formed, but beyond a bound (`limit` names which one): the stream is refused."""

    def __init__(self, offset: int, limit: str, expected: str, found: str) -> None:
        self.limit = limit
        super().__init__(offset, expected, found)


@dataclass
class RamContext:
    """RAM decode/encode state that survives across checkpoints.

    `blocks` maps RAMBlock idstr -> used_length (in stream order);
    `current_block` is QEMU's last_sent_block / last_recv_block, the block a
    CONTINUE-flagged record refers to (kept across checkpoints).
    """

    blocks: dict[str, int] = field(default_factory=dict)
    ram_section_id: int | None = DEFAULT_RAM_SECTION_ID
    current_block: str | None = None
    page_size: int = PAGE_SIZE

    @classmethod
    def from_blocks(cls, blocks: list[tuple[str, int]],
                    ram_section_id: int = DEFAULT_RAM_SECTION_ID) -> RamContext:
        return cls(blocks=dict(blocks), ram_section_id=ram_section_id)

    @property
    def mem_size(self) -> int:
        return sum(self.blocks.values())

    def copy(self) -> RamContext:
        return RamContext(dict(self.blocks), self.ram_section_id, self.current_block,
                          self.page_size)


@dataclass(frozen=True)
class DeviceSection:
    """One SECTION_FULL of a device blob; `offset`/`length` locate the body."""

    section_id: int
    idstr: str
    instance_id: int
    version_id: int
    offset: int          # body start, relative to the blob (or stream, see base_offset)
    length: int          # body length in bytes (footer excluded)
    body: bytes
    method: str = "vmdesc"          # "vmdesc" (walked the field layout) or "heuristic"
    vmsd_name: str | None = None    # from the VMDESCRIPTION when known


# --- encoders ----------------------------------------------------------------
_B64 = struct.Struct(">Q")
_B32 = struct.Struct(">I")
_FOOTER = struct.Struct(">BI")
_KIND_FLAGS = {KIND_ZERO: RAM_SAVE_FLAG_ZERO, KIND_PAGE: RAM_SAVE_FLAG_PAGE,
               KIND_XBZRLE: RAM_SAVE_FLAG_XBZRLE}
_CONT_PAGE = RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_CONTINUE
_CONT_ZERO = RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_CONTINUE


def _idstr_bytes(name: str, what: str = "idstr") -> bytes:
    raw = name.encode("ascii")
    if not 1 <= len(raw) <= 255:
        raise StreamError(0, f"a 1..255 byte {what}", f"{len(raw)} bytes")
    return bytes([len(raw)]) + raw


def _record_parts(records: list[PageRecord], ctx: RamContext) -> list:
    """The encoded records (and the EOS word) as a list of byte strings to join."""
    ps = ctx.page_size
    blocks = ctx.blocks
    pack = _B64.pack
    parts: list = []
    append = parts.append
    cur = ctx.current_block
    cur_used = blocks.get(cur) if cur is not None else None
    try:
        for rec in records:
            kind, block, offset, data = rec.kind, rec.block, rec.offset, rec.data
            if block == cur and kind == KIND_PAGE and cur_used is not None \
                    and not offset % ps and 0 <= offset < cur_used and len(data) == ps:
                append(pack(offset | _CONT_PAGE))     # the common case
                append(data)
                continue
            flags = _KIND_FLAGS.get(kind)
            if flags is None:
                raise StreamError(0, "kind zero/page/xbzrle", repr(kind))
            used = blocks.get(block)
            if used is None:
                raise StreamError(0, "a known RAMBlock", repr(block))
            if offset % ps or not 0 <= offset < used:
                raise StreamError(0, f"page-aligned offset < {used:#x} in {block}",
                                  f"{offset:#x}")
            cont = block == cur
            if cont:
                flags |= RAM_SAVE_FLAG_CONTINUE
                append(pack(offset | flags))
            else:
                append(pack(offset | flags) + _idstr_bytes(block))
            if kind == KIND_ZERO:
                append(bytes((rec.fill & 0xFF,)))
            elif kind == KIND_PAGE:
                if len(data) != ps:
                    raise StreamError(0, f"{ps} bytes of page data", f"{len(data)}")
                append(data)
            else:
                if len(data) > ps:
                    raise StreamError(0, f"XBZRLE data <= {ps} bytes", f"{len(data)}")
                append(bytes([ENCODING_FLAG_XBZRLE]) + struct.pack(">H", len(data)))
                append(data)
            cur, cur_used = block, used
    finally:
        ctx.current_block = cur
    append(pack(RAM_SAVE_FLAG_EOS))
    return parts


def _encode_records(out: bytearray, records: list[PageRecord], ctx: RamContext) -> None:
    out += b"".join(_record_parts(records, ctx))


def _sid(ctx: RamContext) -> int:
    return DEFAULT_RAM_SECTION_ID if ctx.ram_section_id is None else ctx.ram_section_id


def _part_frame(ctx: RamContext) -> tuple[bytes, bytes]:
    """What a RAM part's records sit between: SECTION_END and its section id; then
    (after the EOS word) the footer and QEMU_VM_EOF."""
    sid = _sid(ctx)
    return (_FOOTER.pack(QEMU_VM_SECTION_END, sid),
            _FOOTER.pack(QEMU_VM_SECTION_FOOTER, sid) + bytes((QEMU_VM_EOF,)))


_EMPTY_PARTS: dict[int, bytes] = {}


def _empty_part(sid: int) -> bytes:
    """The RAM part of no record for section `sid`: its frame around the EOS word."""
    part = _EMPTY_PARTS.get(sid)
    if part is None:
        head = _FOOTER.pack(QEMU_VM_SECTION_END, sid)
        tail = _FOOTER.pack(QEMU_VM_SECTION_FOOTER, sid) + bytes((QEMU_VM_EOF,))
        part = _EMPTY_PARTS[sid] = head + _B64.pack(RAM_SAVE_FLAG_EOS) + tail
    return part


#: a PageBatch of at most this many records is encoded record by record
#: (`_encode_small`), not with numpy: a checkpoint of a few dozen pages (the
#: capture workload's 40) costs the numpy path more in fixed per-call work, and
#: in a driver that wakes up cold for each checkpoint far more, than it saves
SMALL_BATCH_RECORDS = 256


def _pages_fit(run, n: int, ps: int) -> bool:
    """`run`'s page data cover its `n` records: rows still lent by guest RAM
    (`PageRun.source`), or an (n, ps) array."""
    src = run.source if run._pages is None else None
    if src is not None:
        return len(src.rows) == n
    pages = run.pages
    return pages is not None and pages.shape[1:] == (ps,) and len(pages) == n


def _encode_small(batch: PageBatch, ctx: RamContext, head: bytes, tail: bytes):
    """encode_ram_part of a small PageBatch of ZERO/PAGE records, planned record by
    record in plain Python; each stretch of page records is copied in one call
    (`_put_pages`: straight from guest RAM while the run borrows it).  None (ctx
    untouched) where the generic encoder must decide (XBZRLE, an odd page size,
    anything invalid: it raises the errors)."""
    ps = ctx.page_size
    if ps != PAGE_SIZE:
        return None
    blocks = ctx.blocks
    cur = ctx.current_block
    plan = []
    size = len(head) + 8 + len(tail)
    for run in batch.runs:
        block = run.block
        used = blocks.get(block)
        if used is None or run.xdata:
            return None
        kinds = run.kinds.tolist()
        offsets = run.offsets.tolist()
        npage = kinds.count(CODE_PAGE)
        if npage + kinds.count(CODE_ZERO) != len(kinds):
            return None
        for off in offsets:
            if off % ps or not 0 <= off < used:
                return None
        if npage and not _pages_fit(run, len(offsets), ps):
            return None
        idstr = b""
        if block != cur:
            if not (block.isascii() and 1 <= len(block) <= 255):
                return None
            idstr = _idstr_bytes(block)
        fills = None if run.fills is None else run.fills.tolist()
        plan.append((run, kinds, offsets, fills, idstr))
        size += len(idstr) + 8 * len(kinds) + npage * ps + len(kinds) - npage
        cur = block

    def fill(view) -> None:
        import numpy as np
        body = np.frombuffer(view, dtype=np.uint8)
        pack_into = _B64.pack_into
        pos = len(head)
        view[:pos] = head
        for run, kinds, offsets, fills, idstr in plan:
            first, at = -1, 0      # a stretch of page records from `first`, its data at `at`
            for j, off in enumerate(offsets):
                page = kinds[j] == CODE_PAGE
                flags = _CONT_PAGE if page else _CONT_ZERO
                if j == 0 and idstr:
                    pack_into(view, pos, off | (flags & ~RAM_SAVE_FLAG_CONTINUE))
                    view[pos + 8:pos + 8 + len(idstr)] = idstr
                    pos += 8 + len(idstr)
                else:
                    pack_into(view, pos, off | flags)
                    pos += 8
                if page:
                    if first < 0:
                        first, at = j, pos
                    pos += ps
                else:
                    if first >= 0:
                        _put_pages(body, at, 8 + ps, run, first, j)
                        first = -1
                    view[pos] = (fills[j] if fills is not None else 0) & 0xFF
                    pos += 1
            if first >= 0:
                _put_pages(body, at, 8 + ps, run, first, len(offsets))
        pack_into(view, pos, RAM_SAVE_FLAG_EOS)
        view[pos + 8:] = tail

    data = pagediff.build_bytes(size, fill)
    ctx.current_block = cur
    return data


def _batch_layout(batch: PageBatch, ctx: RamContext):
    """Per run: (run, record start positions, continue flags, idstr) for the bulk
    encoder, and the records' total size; None if the batch needs the generic
    encoder (XBZRLE, odd page size, anything invalid: it raises the errors)."""
    # only a guest model's PageBatch gets here: numpy is imported on first use
    import numpy as np
    ps = ctx.page_size
    if ps != PAGE_SIZE:
        return None
    blocks = ctx.blocks
    cur = ctx.current_block
    layout = []
    pos = 0
    for run in batch.runs:
        used = blocks.get(run.block)
        if used is None:
            return None
        offs, kinds = run.offsets, run.kinds
        n = len(offs)
        is_page = kinds == CODE_PAGE
        if not (is_page | (kinds == CODE_ZERO)).all() or (offs % ps).any() \
                or int(offs.min()) < 0 or int(offs.max()) >= used:
            return None
        if is_page.any() and not _pages_fit(run, n, ps):
            return None
        sizes = np.where(is_page, 8 + ps, 9)
        idstr = b""
        if run.block != cur:
            idstr = _idstr_bytes(run.block)
            sizes[0] += len(idstr)
        starts = np.empty(n, dtype=np.int64)
        starts[0] = pos
        np.cumsum(sizes[:-1], out=starts[1:])
        starts[1:] += pos
        pos = int(starts[-1] + sizes[-1])
        layout.append((run, starts, is_page, idstr))
        cur = run.block
    return layout, pos, cur


def _encode_batch(batch: PageBatch, ctx: RamContext, head: bytes, tail: bytes):
    """encode_ram_part of a PageBatch with numpy: headers and page data are written
    straight into the new bytes object (`build_bytes`; slice assignment per run of
    page records)."""
    import numpy as np
    planned = _batch_layout(batch, ctx)
    if planned is None:
        return None
    layout, size, last_block = planned
    eos = _B64.pack(RAM_SAVE_FLAG_EOS)
    hlen = len(head)

    def fill(view) -> None:
        out = np.frombuffer(view, dtype=np.uint8)
        out[:hlen] = np.frombuffer(head, dtype=np.uint8)
        _fill_records(out[hlen:hlen + size], layout, ctx.page_size)
        end = hlen + size
        out[end:end + len(eos)] = np.frombuffer(eos, dtype=np.uint8)
        out[end + len(eos):] = np.frombuffer(tail, dtype=np.uint8)

    data = pagediff.build_bytes(hlen + size + len(eos) + len(tail), fill)
    ctx.current_block = last_block
    return data


def _put_pages(body: np.ndarray, at: int, stride: int, run, j0: int, j1: int) -> None:
    """Page data of records j0..j1-1 of `run` to body[at + (j - j0) * stride:][:ps]:
    straight from guest RAM when the run still borrows it (`PageRun.source`)."""
    src = run.source if run._pages is None else None
    if src is not None:
        src.gather_into(body, at, stride, j0, j1)
        return
    import numpy as np
    ps = run.pages.shape[1]
    dst = np.ndarray((j1 - j0, ps), dtype=np.uint8, buffer=body, offset=at, strides=(stride, 1))
    dst[...] = run.pages[j0:j1]


def _fill_records(body: np.ndarray, layout, ps: int) -> None:
    """Write the records of `layout` (from `_batch_layout`) into `body`."""
    for run, starts, is_page, idstr in layout:
        _fill_range(body, 0, run, starts, is_page, idstr, 0, len(starts), ps)


def _fill_range(body: np.ndarray, base: int, run, starts, is_page, idstr: bytes,
                j0: int, j1: int, ps: int) -> None:
    """Write records j0..j1-1 of one `layout` entry into `body`, whose byte 0 is
    the records' position `base` (record j goes to ``starts[j] - base``)."""
    import numpy as np
    stride = 8 + ps
    n = j1 - j0
    st = starts[j0:j1] - base
    pg = is_page[j0:j1]
    flags = np.where(pg, RAM_SAVE_FLAG_PAGE, RAM_SAVE_FLAG_ZERO).astype(np.int64)
    flags |= RAM_SAVE_FLAG_CONTINUE
    first = bool(idstr) and j0 == 0      # the run's first record names its block
    if first:
        flags[0] &= ~RAM_SAVE_FLAG_CONTINUE
    words = (run.offsets[j0:j1] | flags).astype(">u8").view(np.uint8).reshape(n, 8)
    data_at = st + 8
    if first:
        data_at[0] += len(idstr)
        s0 = int(st[0]) + 8
        body[s0:s0 + len(idstr)] = np.frombuffer(idstr, dtype=np.uint8)
    if n > 1 and pg.all():
        # the common case: record j0 (maybe with idstr), then uniform records
        rows = body[int(st[1]):int(st[1]) + (n - 1) * stride].reshape(n - 1, stride)
        rows[:, :8] = words[1:]
        _put_pages(body, int(st[1]) + 8, stride, run, j0 + 1, j1)
        s0, d0 = int(st[0]), int(data_at[0])
        body[s0:s0 + 8] = words[0]
        _put_pages(body, d0, stride, run, j0, j0 + 1)
        return
    body[(st[:, None] + np.arange(8, dtype=np.int64)).reshape(-1)] = words.reshape(-1)
    zero = ~pg
    if zero.any():
        fills = 0 if run.fills is None else run.fills[j0:j1][zero]
        body[data_at[zero]] = fills
    page_rows = np.flatnonzero(pg)
    if len(page_rows):
        # split the page records into runs that are uniformly `stride` apart
        pat = data_at[page_rows]
        brk = np.flatnonzero((np.diff(pat) != stride) | (np.diff(page_rows) != 1)) + 1
        bounds = [0, *brk.tolist(), len(page_rows)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            _put_pages(body, int(pat[a]), stride, run, j0 + int(page_rows[a]),
                       j0 + int(page_rows[b - 1]) + 1)


#: `ram_part_chunks`: the size of one chunk of a streamed RAM part
CHUNK_BYTES = 4 << 20


def ram_part_chunks(records, ctx: RamContext, chunk_bytes: int = CHUNK_BYTES):
    """`encode_ram_part` of a `PageBatch`, encoded as it is read: (size, chunks),
    where ``b"".join(chunks)`` is exactly what `encode_ram_part` returns and each
    chunk (a writable uint8 array) holds whole records of about `chunk_bytes`.
    None where `encode_ram_part` would not take its bulk path (a list of records,
    a batch of at most `SMALL_BATCH_RECORDS`, XBZRLE, an invalid record: it
    raises the errors).

    `ctx` is updated now, as `encode_ram_part` does.  The page data are read as
    the chunks are: a driver streams them while the VM is still stopped (the
    guest's RAM also pins a page it writes before it was read).
    """
    if not isinstance(records, PageBatch) or len(records) <= SMALL_BATCH_RECORDS \
            or any(not len(run) for run in records.runs):
        return None
    planned = _batch_layout(records, ctx)
    if planned is None:
        return None
    layout, size, last_block = planned
    head, footer = _part_frame(ctx)
    tail = _B64.pack(RAM_SAVE_FLAG_EOS) + footer
    ctx.current_block = last_block
    return len(head) + size + len(tail), _chunks(layout, size, head, tail,
                                                 max(chunk_bytes, 1), ctx.page_size)


def _chunks(layout, size: int, head: bytes, tail: bytes, limit: int, ps: int):
    import numpy as np
    pre = head
    for i, (run, starts, is_page, idstr) in enumerate(layout):
        n = len(starts)
        run_end = int(layout[i + 1][1][0]) if i + 1 < len(layout) else size
        first = int(starts[0])
        cuts = np.searchsorted(starts, np.arange(first + limit, run_end, limit))
        js = [0, *sorted(set(cuts.tolist()) - {0, n}), n]
        for a, b in zip(js[:-1], js[1:], strict=True):
            lo, hi = int(starts[a]), int(starts[b]) if b < n else run_end
            post = tail if i + 1 == len(layout) and b == n else b""
            buf = np.empty(len(pre) + hi - lo + len(post), dtype=np.uint8)
            buf[:len(pre)] = np.frombuffer(pre, dtype=np.uint8)
            _fill_range(buf[len(pre):len(pre) + hi - lo], lo, run, starts, is_page, idstr,
                        a, b, ps)
            buf[len(buf) - len(post):] = np.frombuffer(post, dtype=np.uint8)
            pre = b""
            yield buf


def encode_ram_part(records: list[PageRecord] | PageBatch, ctx: RamContext) -> bytes:
    """One checkpoint's live RAM part, exactly as 7.2 sends it (updates ctx).

    A `PageBatch` is encoded in bulk when it holds only ZERO/PAGE records:
    record by record from its arrays up to `SMALL_BATCH_RECORDS`, with numpy
    beyond; the bytes are the same as for the equivalent list of records.
    """
    if not records:               # a checkpoint with no dirty page: the frame alone
        return _empty_part(_sid(ctx))
    head, tail = _part_frame(ctx)
    if isinstance(records, PageBatch):
        n = len(records)
        fast = None if not n else _encode_small(records, ctx, head, tail) \
            if n <= SMALL_BATCH_RECORDS else _encode_batch(records, ctx, head, tail)
        if fast is not None:
            return fast
        records = list(records)
    parts = _record_parts(records, ctx)      # the records and the EOS word
    parts.insert(0, head)
    parts.append(tail)
    return b"".join(parts)


def _section_header(kind: int, sid: int, idstr: str, instance: int, version: int) -> bytes:
    return (_FOOTER.pack(kind, sid) + _idstr_bytes(idstr)
            + _B32.pack(instance) + _B32.pack(version))


def _encode_full_sections(out: bytearray, sections: list[tuple[str, int, int, bytes]],
                          sids: list[int]) -> None:
    for (idstr, instance, version, body), sid in zip(sections, sids, strict=True):
        out += _section_header(QEMU_VM_SECTION_FULL, sid, idstr, instance, version)
        out += body
        out += _FOOTER.pack(QEMU_VM_SECTION_FOOTER, sid)


def device_section_ids(count: int, first_section_id: int,
                       ram_section_id: int | None = None) -> list[int]:
    """The section ids of `count` device sections: consecutive from
    `first_section_id`, skipping `ram_section_id`.

    QEMU numbers a section once, when it registers (savevm_state.global_section_id
    in migration/savevm.c), and writes that same id in the initial migration and
    in every checkpoint, so the initial stream and each COLO device blob share
    this numbering.
    """
    sids: list[int] = []
    nxt = first_section_id
    for _ in range(count):
        if nxt == ram_section_id:
            nxt += 1
        sids.append(nxt)
        nxt += 1
    return sids


def encode_device_blob(sections: list[tuple[str, int, int, bytes]],
                       first_section_id: int, *,
                       ram_section_id: int | None = None) -> bytes:
    """(idstr, instance, version, body)* -> SECTION_FULL each + footer, then EOF.

    Ids as `device_section_ids` gives them (pass the ram id to skip it).
    """
    out = bytearray()
    sids = device_section_ids(len(sections), first_section_id, ram_section_id)
    _encode_full_sections(out, sections, sids)
    out.append(QEMU_VM_EOF)
    return bytes(out)


def encode_initial(machine: str, blocks: list[tuple[str, int]], pages: list[PageRecord],
                   device_sections: list[tuple[str, int, int, bytes]], vmdesc: dict, *,
                   ram_section_id: int = DEFAULT_RAM_SECTION_ID,
                   first_device_section_id: int = 3) -> tuple[bytes, RamContext]:
    """The initial 7.2 COLO migration stream, up to and including VMDESCRIPTION.

    Device sections get consecutive ids from `first_device_section_id`
    (skipping the ram id). Returns the bytes and the RamContext both sides
    hold afterwards (its current_block is the block of the last page sent).
    """
    ctx = RamContext.from_blocks(blocks, ram_section_id)
    sid = ram_section_id
    out = bytearray(_B32.pack(QEMU_VM_FILE_MAGIC) + _B32.pack(QEMU_VM_FILE_VERSION))
    name = machine.encode("ascii")
    out.append(QEMU_VM_CONFIGURATION)
    out += _B32.pack(len(name)) + name
    out += struct.pack(">BHH", QEMU_VM_COMMAND, MIG_CMD_ENABLE_COLO, 0)
    # SECTION_START ram: MEM_SIZE record + block list + EOS + footer
    out += _section_header(QEMU_VM_SECTION_START, sid, "ram", 0, RAM_SECTION_VERSION)
    out += _B64.pack(ctx.mem_size | RAM_SAVE_FLAG_MEM_SIZE)
    for bname, used in blocks:
        out += _idstr_bytes(bname) + _B64.pack(used)
    out += _B64.pack(RAM_SAVE_FLAG_EOS)
    out += _FOOTER.pack(QEMU_VM_SECTION_FOOTER, sid)
    # SECTION_PART ram with the pages, then an empty SECTION_END
    for kind, recs in ((QEMU_VM_SECTION_PART, pages), (QEMU_VM_SECTION_END, [])):
        out += _FOOTER.pack(kind, sid)
        _encode_records(out, recs, ctx)
        out += _FOOTER.pack(QEMU_VM_SECTION_FOOTER, sid)
    sids = device_section_ids(len(device_sections), first_device_section_id, sid)
    _encode_full_sections(out, device_sections, sids)
    out.append(QEMU_VM_EOF)
    desc = json.dumps(vmdesc).encode()
    out.append(QEMU_VM_VMDESCRIPTION)
    out += _B32.pack(len(desc)) + desc
    return bytes(out), ctx


def _u(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _tname(t: int) -> str:
    return f"{t:#04x} ({SECTION_NAMES.get(t, 'unknown')})"


# --- device blob --------------------------------------------------------------
class _WalkFail(Exception):
    pass


def _walk(desc: dict, blob: bytes, pos: int, depth: int = 0) -> int:
    """Skip the fields (and present subsections) described by a vmdesc struct."""
    if depth > 32:
        raise _WalkFail
    for fld in desc.get("fields", []):
        n = int(fld.get("array_len", 1))
        if fld.get("type") == "struct" and isinstance(fld.get("struct"), dict) \
                and "fields" in fld["struct"]:
            for _ in range(n):
                pos = _walk(fld["struct"], blob, pos, depth + 1)
        else:
            pos += int(fld.get("size", 0)) * n
        if pos > len(blob):
            raise _WalkFail
    subs = {sd.get("vmsd_name"): sd for sd in desc.get("subsections", [])}
    while subs and pos + 2 < len(blob) and blob[pos] == QEMU_VM_SUBSECTION:
        ln = blob[pos + 1]
        name = blob[pos + 2:pos + 2 + ln].decode("latin-1")
        if name not in subs:
            break
        pos = _walk(subs[name], blob, pos + 2 + ln + 4, depth + 1)
    return pos


def _plausible_header(blob: bytes, p: int) -> bool:
    """A SECTION_FULL header at p: 04, be32 sid < 2^16, printable idstr, inst, ver."""
    if p + 6 > len(blob) or blob[p] != QEMU_VM_SECTION_FULL or _u(blob[p + 1:p + 5]) >= 1 << 16:
        return False
    ln = blob[p + 5]
    name = blob[p + 6:p + 6 + ln]
    return ln > 0 and p + 6 + ln + 8 <= len(blob) and all(0x20 <= c < 0x7F for c in name)


def _heuristic_end(blob: bytes, start: int, sid: int) -> int | None:
    """First `7e <sid>` followed by the final EOF or by a plausible next header."""
    footer = bytes([QEMU_VM_SECTION_FOOTER]) + sid.to_bytes(4, "big")
    j = blob.find(footer, start)
    while j >= 0:
        nxt = j + 5
        if (nxt == len(blob) - 1 and blob[nxt] == QEMU_VM_EOF) or _plausible_header(blob, nxt):
            return j
        j = blob.find(footer, j + 1)
    return None


def decode_device_blob(blob: bytes, vmdesc: dict | None = None, *,
                       base_offset: int = 0) -> list[DeviceSection]:
    """Split a device blob ``(04 hdr body 7e sid)* 00`` into sections.

    With a VMDESCRIPTION each body's end is found by walking its described
    fields and the subsections actually present (`05 len name ver`), and
    is accepted only if the footer `7e <sid>` follows. Without one (or if
    the walk does not land on the footer) the heuristic is used: the body
    ends at the first `7e <be32 same sid>` that is followed either by the
    blob's final `00` or by a plausible SECTION_FULL header (04, be32 sid <
    65536, u8 len >= 1, printable idstr, room for instance + version).
    Offsets in the result and in errors are relative to `base_offset`.
    """
    if not isinstance(blob, bytes | bytearray):
        blob = bytes(blob)          # (a bytearray off the wire is read in place)
    index: dict[tuple[str, int], dict] = {}
    if vmdesc:
        for dev in vmdesc.get("devices", []):
            if isinstance(dev, dict) and isinstance(dev.get("instance_id", 0), int):
                index[(str(dev.get("name")), dev.get("instance_id", 0))] = dev
    out: list[DeviceSection] = []
    pos = 0
    while True:
        if pos >= len(blob):
            raise StreamError(base_offset + pos, "SECTION_FULL or EOF", "end of data")
        t = blob[pos]
        if t == QEMU_VM_EOF:
            if pos != len(blob) - 1:
                raise StreamError(base_offset + pos + 1, "end of blob after EOF",
                                  f"{len(blob) - pos - 1} more bytes")
            return out
        if t != QEMU_VM_SECTION_FULL or pos + 6 > len(blob):
            raise StreamError(base_offset + pos, "SECTION_FULL (0x04) or EOF", _tname(t))
        sid, ln = _u(blob[pos + 1:pos + 5]), blob[pos + 5]
        body = pos + 6 + ln + 8
        if ln == 0 or body > len(blob):
            raise StreamError(base_offset + pos, "a complete SECTION_FULL header",
                              f"idstr length {ln}, {len(blob) - pos} bytes left")
        idstr = blob[pos + 6:pos + 6 + ln].decode("latin-1")
        inst, ver = _u(blob[body - 8:body - 4]), _u(blob[body - 4:body])
        dev = index.get((idstr, inst))
        end, method = None, "heuristic"
        if dev is not None:
            try:
                e = _walk(dev, blob, body)
                if blob[e:e + 1] == b"\x7e" and _u(blob[e + 1:e + 5]) == sid \
                        and e + 5 <= len(blob):
                    end, method = e, "vmdesc"
            except (_WalkFail, ValueError, TypeError, AttributeError, RecursionError):
                end = None
        if end is None:
            end = _heuristic_end(blob, body, sid)
        if end is None:
            raise StreamError(base_offset + body, f"footer 7e {sid:08x} ending section "
                              f"{idstr!r}", "none followed by a section header or EOF")
        out.append(DeviceSection(sid, idstr, inst, ver, base_offset + body, end - body,
                                 bytes(blob[body:end]), method,
                                 dev.get("vmsd_name") if dev else None))
        pos = end + 5


_LAZY = ("InitialReader", "InitialSummary", "RamPartReader")


def __getattr__(name: str):
    """The incremental readers live in protocol.migration.streamdecode (which imports this
    module), so they are re-exported lazily to keep either import order working."""
    if name in _LAZY:
        from protocol.migration import streamdecode
        return getattr(streamdecode, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DeviceSection", "InitialReader", "InitialSummary", "RamContext", "RamPartReader",
    "StreamError", "StreamLimitError", "decode_device_blob", "encode_device_blob", "encode_initial",
    "encode_ram_part", "ram_part_chunks",
]
