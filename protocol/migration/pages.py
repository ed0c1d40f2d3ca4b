"""One RAM page record as it travels in a checkpoint (QEMU's RAM section records).

The guest model produces these on the primary, `protocol.migration.stream` encodes and
decodes them, and the secondary's RAM cache consumes them.
"""
from __future__ import annotations

from dataclasses import dataclass

PAGE_SIZE = 4096

KIND_ZERO = "zero"      # RAM_SAVE_FLAG_ZERO: one fill byte follows
KIND_PAGE = "page"      # RAM_SAVE_FLAG_PAGE: 4096 raw bytes follow
KIND_XBZRLE = "xbzrle"  # RAM_SAVE_FLAG_XBZRLE: delta against the previous copy
KINDS = (KIND_ZERO, KIND_PAGE, KIND_XBZRLE)


@dataclass(frozen=True, slots=True)
class PageRecord:
    """A page of block `block` at byte `offset` (may be >= 2**32)."""

    block: str
    offset: int
    kind: str
    data: bytes = b""   # PAGE: 4096 bytes; XBZRLE: the encoded delta; ZERO: empty
    fill: int = 0       # ZERO: the fill byte (always 0 in QEMU 7.2)

    @property
    def page_index(self) -> int:
        return self.offset // PAGE_SIZE


# --- bulk representation ------------------------------------------------------
#: compact kind codes used by `PageBatch.kinds` arrays
CODE_ZERO, CODE_PAGE, CODE_XBZRLE = 0, 1, 2
KIND_OF_CODE = (KIND_ZERO, KIND_PAGE, KIND_XBZRLE)
CODE_OF_KIND = {KIND_ZERO: CODE_ZERO, KIND_PAGE: CODE_PAGE, KIND_XBZRLE: CODE_XBZRLE}


class PageRun:
    """Consecutive records of one block, held as arrays (no per-page objects).

    `offsets` (int64) and `kinds` (uint8 codes) have one entry per record;
    `pages` is None or a (n, PAGE_SIZE) uint8 array (possibly a strided view
    into a received buffer) whose row j is record j's data when it is a PAGE;
    `fills` (uint8, or None = all 0) are the ZERO fill bytes; `xdata` maps a
    record position to its XBZRLE bytes.

    `source`, when given instead of `pages`, is a `PageSource`: the page data
    are still in guest RAM (the VM is stopped) and `pages` gathers them only
    when asked; an encoder copies them from RAM straight into the wire image
    (`PageSource.gather_into`).  The RAM pins the data (gathers them) before it
    is next written, so `pages` always shows the contents at collection time.
    """

    __slots__ = ("block", "offsets", "kinds", "_pages", "source", "fills", "xdata", "_flat")

    def __init__(self, block: str, offsets, kinds, pages=None, fills=None, xdata=None,
                 source=None) -> None:
        import numpy as np
        self.block = block
        self.offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        self.kinds = np.asarray(kinds, dtype=np.uint8).reshape(-1)
        self._pages = pages
        self.source = source
        self.fills = fills
        self.xdata = xdata
        self._flat = None

    @property
    def pages(self):
        """The (n, PAGE_SIZE) page data (gathered from `source` on first use), or None."""
        pages = self._pages
        if pages is None and self.source is not None:
            pages = self._pages = self.source.gather()
        return pages

    @pages.setter
    def pages(self, value) -> None:
        self._pages = value
        self.source = None
        self._flat = None

    def unpinned(self):
        """The `source` whose data are still only in RAM (not gathered yet), or None."""
        src = self.source
        return src if self._pages is None and src is not None and not src.pinned else None

    def __len__(self) -> int:
        return len(self.offsets)

    def all_pages(self) -> bool:
        """Every record is a full PAGE (and `pages` holds them all)."""
        return self.pages is not None and bool((self.kinds == CODE_PAGE).all())

    def flat_pages(self) -> tuple[memoryview, int]:
        """(view, stride): a read-only byte view of `pages` where record j's data
        are ``view[j * stride:][:PAGE_SIZE]`` (one numpy call, then plain slices)."""
        flat = self._flat
        if flat is None:
            import numpy as np
            p = self.pages
            stride = p.strides[0] if len(p) > 1 else PAGE_SIZE
            span = (len(p) - 1) * stride + PAGE_SIZE
            region = np.lib.stride_tricks.as_strided(p, shape=(span,), strides=(1,),
                                                     writeable=False)
            flat = self._flat = (memoryview(region).toreadonly(), stride)
        return flat

    def _page_view(self, j: int) -> memoryview:
        view, stride = self.flat_pages()
        return view[j * stride:j * stride + PAGE_SIZE]

    def record(self, j: int) -> PageRecord:
        code = int(self.kinds[j])
        offset = int(self.offsets[j])
        if code == CODE_PAGE:
            return PageRecord(self.block, offset, KIND_PAGE, self._page_view(j))
        if code == CODE_ZERO:
            fill = 0 if self.fills is None else int(self.fills[j])
            return PageRecord(self.block, offset, KIND_ZERO, b"", fill)
        return PageRecord(self.block, offset, KIND_XBZRLE, self.xdata[j])

    def __iter__(self):
        block, kinds, offsets = self.block, self.kinds.tolist(), self.offsets.tolist()
        if self.pages is not None and self.fills is None and not self.xdata \
                and CODE_XBZRLE not in kinds:
            view, stride = self.flat_pages()
            pos = 0
            for code, offset in zip(kinds, offsets, strict=True):
                if code == CODE_PAGE:
                    yield PageRecord(block, offset, KIND_PAGE, view[pos:pos + PAGE_SIZE])
                else:
                    yield PageRecord(block, offset, KIND_ZERO, b"", 0)
                pos += stride
            return
        for j in range(len(kinds)):
            yield self.record(j)


class PageSource:
    """Where a PageRun's page data still are: rows `rows` of a (npages, page_size)
    buffer.  Interface only (`protocol.guest.ram.RamPages` implements it)."""

    pinned = False

    def gather(self):  # pragma: no cover - interface
        """A new (n, page_size) uint8 array of the pages."""
        raise NotImplementedError

    def gather_into(self, out, offset: int, stride: int, j0: int, j1: int) -> None:  # pragma: no cover
        """Write pages j0..j1-1 to out[offset + (j - j0) * stride:][:page_size]."""
        raise NotImplementedError


class PageBatch:
    """A checkpoint's page records in bulk: a read-only Sequence of PageRecords.

    Holds `PageRun`s (per block: offsets, kinds, one page-data array); records
    are only built when indexed or iterated, so the hot path (collect ->
    encode, decode -> RAM cache) never creates per-page Python objects.
    Compares equal to any sequence of the same PageRecords.
    """

    __slots__ = ("runs", "_len")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, runs=()) -> None:
        self.runs: list[PageRun] = [r for r in runs if len(r)]
        self._len = sum(len(r) for r in self.runs)

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self):
        for run in self.runs:
            yield from run

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self)[index]
        n = self._len
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("PageBatch index out of range")
        for run in self.runs:
            if index < len(run):
                return run.record(index)
            index -= len(run)
        raise IndexError("PageBatch index out of range")  # pragma: no cover

    def __eq__(self, other) -> bool:
        if other is self:
            return True
        try:
            if len(other) != self._len:
                return False
            return all(a == b for a, b in zip(self, other, strict=True))
        except TypeError:
            return NotImplemented

    def __repr__(self) -> str:
        return f"PageBatch({self._len} records, {self.kind_counts()})"

    def kind_counts(self) -> dict[str, int]:
        """{kind: count} over the records (kinds present only), without building them."""
        import numpy as np
        counts = [0, 0, 0]
        for run in self.runs:
            c = np.bincount(run.kinds, minlength=3)
            for k in range(3):
                counts[k] += int(c[k])
        return {KIND_OF_CODE[k]: c for k, c in enumerate(counts) if c}

    def count(self, value) -> int:
        return sum(1 for r in self if r == value)

    def index(self, value) -> int:
        for k, r in enumerate(self):
            if r == value:
                return k
        raise ValueError("record not in PageBatch")

    def __contains__(self, value) -> bool:
        return any(r == value for r in self)


def as_records(records) -> list[PageRecord]:
    """A list of PageRecords from a list, tuple or PageBatch."""
    return records if isinstance(records, list) else list(records)


def _register() -> None:
    from collections.abc import Sequence
    Sequence.register(PageBatch)


_register()
