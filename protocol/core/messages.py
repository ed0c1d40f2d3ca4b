"""The COLO control-message vocabulary, independent of any dialect."""
from __future__ import annotations

from dataclasses import dataclass, field

CHECKPOINT_READY = "checkpoint-ready"
CHECKPOINT_REQUEST = "checkpoint-request"
CHECKPOINT_REPLY = "checkpoint-reply"
VMSTATE_SEND = "vmstate-send"
VMSTATE_SIZE = "vmstate-size"
VMSTATE_RECEIVED = "vmstate-received"
VMSTATE_LOADED = "vmstate-loaded"
GUEST_SHUTDOWN = "guest-shutdown"   # v11 only
INVALID = "invalid"                 # v11 only (id 0)

#: The order of one checkpoint transaction, and who sends each message.
TRANSACTION = (CHECKPOINT_REQUEST, CHECKPOINT_REPLY, VMSTATE_SEND, VMSTATE_SIZE,
               VMSTATE_RECEIVED, VMSTATE_LOADED)
SENDER = {
    CHECKPOINT_READY: "secondary",
    CHECKPOINT_REQUEST: "primary",
    CHECKPOINT_REPLY: "secondary",
    VMSTATE_SEND: "primary",
    VMSTATE_SIZE: "primary",
    VMSTATE_RECEIVED: "secondary",
    VMSTATE_LOADED: "secondary",
    GUEST_SHUTDOWN: "primary",
    INVALID: "none",
}
ALL_MESSAGES = (INVALID, CHECKPOINT_READY, CHECKPOINT_REQUEST, CHECKPOINT_REPLY,
                VMSTATE_SEND, VMSTATE_SIZE, VMSTATE_RECEIVED, VMSTATE_LOADED,
                GUEST_SHUTDOWN)


@dataclass(frozen=True, slots=True)
class Message:
    """One control message: its name, its id in the dialect it came in, a value."""

    name: str
    value: int = 0
    msg_id: int | None = None
    raw: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InitialStream:
    """The initial migration (QEVM … VMDESCRIPTION) that precedes COLO."""

    summary: dict
    size_bytes: int


@dataclass(frozen=True, slots=True)
class RamChunk:
    """Records of a RAM part still arriving: the receiver applies them at once, as
    QEMU writes each page into its RAM cache when it reads it."""

    records: tuple


@dataclass(frozen=True, slots=True)
class RamPart:
    """One checkpoint's live RAM (qemu/v11: a SECTION_END … EOF after vmstate-send).

    `records` are the ones not yet handed out as `RamChunk`s; `pages` and `kinds`
    ({kind: count}) count the whole part (None: count `records`); `blocks`
    ({block: pages}) too, when it came off the wire."""

    records: tuple
    size_bytes: int
    pages: int | None = None
    kinds: dict | None = None
    blocks: dict | None = None      # {RAMBlock idstr: pages} of the whole part

    def page_count(self) -> int:
        return len(self.records) if self.pages is None else self.pages

    def kind_counts(self) -> dict:
        if self.kinds is not None:
            return dict(self.kinds)
        counts = getattr(self.records, "kind_counts", None)
        if counts is not None:
            return dict(counts())
        kinds: dict[str, int] = {}
        for r in self.records:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        return kinds


@dataclass(frozen=True, slots=True)
class StateBlob:
    """The N bytes announced by vmstate-size (device state; prototype: everything);
    a bytearray when it came off the wire (held once, never copied)."""

    data: bytes | bytearray
