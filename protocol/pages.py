"""One RAM page record as it travels in a checkpoint (QEMU's RAM section records).

The guest model produces these on the primary, `protocol.stream` encodes and
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
