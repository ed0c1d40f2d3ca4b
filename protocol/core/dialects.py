"""The three wire dialects of COLO's control messages (PROTOCOL.md §2).

* ``v11``       — the 2015 COLO-Frame v11 series: be32 command + be64 value on
                  every message; ``invalid`` = 0, ``checkpoint-ready`` = 1 …
                  ``vmstate-loaded`` = 7; ``guest-shutdown`` = 8 is *inferred*
                  (appended after vmstate-loaded; its value is unconfirmed).
* ``qemu``      — QEMU's COLOMessage: be32 id, ``checkpoint-ready`` = 0 …
                  ``vmstate-loaded`` = 6; a be64 follows only ``vmstate-size``.
                  These control messages hold for QEMU 2.8 … 10.x; the migration
                  stream the dialect decodes and the guest model are QEMU 7.2's
                  (QEMU_SCOPE below).
* ``prototype`` — the 2014 prototype: bare be64 words from 0x46; after
                  ``vmstate-send`` the size follows as a bare be64 word.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from protocol.core import messages as m

_BE32 = struct.Struct(">I")
_BE64 = struct.Struct(">Q")
_BE32_64 = struct.Struct(">IQ")


@dataclass(frozen=True)
class Dialect:
    name: str
    title: str
    ids: dict[str, int]
    opcode_bytes: int            # 4 (be32) or 8 (be64)
    value_on_every_message: bool  # v11
    size_is_bare_word: bool       # prototype: vmstate-size has no opcode
    ram_outside_blob: bool        # qemu/v11: RAM part between vmstate-send and vmstate-size
    release_after: str            # message after which buffered output is released
    default_checkpoint_delay_ms: int
    automatic_failover_ms: int | None  # v11: default failover after 2000 ms
    # -- capability flags: what differs in behaviour, named (never test ``name``) --
    #: the secondary refuses a checkpoint-request whose value is not 0 (v11)
    checks_request_value: bool = False
    #: the primary ends a guest shutdown with a final checkpoint and a guest-shutdown
    #: message (v11); without it the PVM powers off and the process quits (qemu)
    has_shutdown_message: bool = False
    #: a new x-checkpoint-delay starts a checkpoint at once (migrate_params_apply →
    #: colo_checkpoint_notify; QEMU and the prototype)
    checkpoints_on_delay_change: bool = True
    #: an initial migration stream (QEVM) precedes COLO (qemu)
    initial_migration: bool = False
    #: the dialect real QEMU releases speak: real peers, captures and the mirror guest
    real_qemu: bool = False
    #: the primary serialises the device state after flushing the RAM part, in a
    #: separate write (QEMU; what --save-ms models)
    saves_devices_after_ram: bool = False
    #: vmstate-size counts the device state alone (checked against the blob; qemu)
    size_is_device_state: bool = False
    #: the RAM cache flush also copies the pages the SVM dirtied while paused
    #: (v11 did that only in hybrid mode, where the SVM runs)
    flushes_svm_dirty_when_paused: bool = True
    #: the SVM runs between checkpoints in every COLO session of a real release (7.2:
    #: RESUME when COLO starts, STOP/RESUME around each load, query-status "running"),
    #: so a node standing in for one runs the hybrid mode unless told otherwise; the
    #: v11 series and the prototype only had the Remus-style mode (SVM paused)
    svm_runs_between_checkpoints: bool = False
    #: the 2014 prototype exited on a wrong word, with no error path of its own
    exits_on_wrong_word: bool = False
    #: the texts a side logs for an id out of range and for an unexpected message
    invalid_text: str = "Invalid message {got}"
    unexpected_text: str = "Unexpected COLO message {got}, expected {expected}"
    failover_state_names: dict[str, str] = field(default_factory=dict)
    names: dict[int, str] = field(init=False, repr=False, compare=False)
    _plain: dict[str, bytes] = field(init=False, repr=False, compare=False)
    #: the frame table, built once: opcode bytes -> (name, size of the whole message,
    #: the message itself when it carries no value — one immutable singleton — else None)
    frames: dict[bytes, tuple[str, int, m.Message | None]] = field(
        init=False, repr=False, compare=False)
    #: who sends each message (PROTOCOL.md §2: the same in every dialect;
    #: ``none`` for v11's ``invalid``, which neither side sends)
    senders: dict[str, str] = field(init=False, repr=False, compare=False)
    #: {sender: the part of ``frames`` that side sends}: a decoder that checks the
    #: direction looks its opcodes up here
    frames_by_sender: dict[str, dict] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", {v: k for k, v in self.ids.items()})
        object.__setattr__(self, "_plain", {})
        self._plain.update({n: self.encode(n, 0) for n in self.ids})
        frames = {}
        for name, msg_id in self.ids.items():
            width = self.opcode_bytes
            op = msg_id.to_bytes(width, "big")
            if self.has_value(name):
                frames[op] = (name, width + 8, None)
            else:
                frames[op] = (name, width, m.Message(name, 0, msg_id, op))
        object.__setattr__(self, "frames", frames)
        senders = {name: m.SENDER[name] for name in self.ids}
        object.__setattr__(self, "senders", senders)
        object.__setattr__(self, "frames_by_sender", {
            side: {op: f for op, f in frames.items() if senders[f[0]] == side}
            for side in ("primary", "secondary")})

    # -- ids ----------------------------------------------------------------
    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(n for n in self.ids if n != m.INVALID)

    def id_of(self, name: str) -> int:
        try:
            return self.ids[name]
        except KeyError:
            raise KeyError(f"{name!r} does not exist in the {self.name} dialect "
                           f"(it has: {', '.join(self.ids)})") from None

    def in_range(self, msg_id: int) -> bool:
        return msg_id in self.names

    @property
    def release_mode(self) -> str:
        """The mode a node standing in for this dialect's release runs by default."""
        return "hybrid" if self.svm_runs_between_checkpoints else "periodic"

    def label(self, name: str) -> str:
        """``checkpoint-ready(0)``: a name with its id, as errors print it."""
        return f"{name}({self.ids[name]})" if name in self.ids else name

    # -- framing ------------------------------------------------------------
    def plain(self) -> dict[str, bytes]:
        """Each message's bytes with the value 0 (what `encode` returns for it), by
        name: for a sender that looks them up itself (read it, never change it)."""
        return self._plain

    def encode(self, name: str, value: int = 0) -> bytes:
        if not value:
            cached = self._plain.get(name)
            if cached is not None:
                return cached
        if not 0 <= value < 1 << 64:
            raise ValueError(f"value {value} does not fit in a be64")
        if name == m.VMSTATE_SIZE and self.size_is_bare_word:
            return _BE64.pack(value)
        msg_id = self.id_of(name)
        if self.opcode_bytes == 8:
            return _BE64.pack(msg_id)
        if self.value_on_every_message:
            return _BE32_64.pack(msg_id, value)
        if name == m.VMSTATE_SIZE:
            return _BE32_64.pack(msg_id, value)
        return _BE32.pack(msg_id)

    def encode_raw(self, msg_id: int, value: int | None = None) -> bytes:
        """Bytes for an arbitrary id (used by fault injection: out-of-range ids)."""
        if self.opcode_bytes == 8:
            return _BE64.pack(msg_id & (1 << 64) - 1)
        head = _BE32.pack(msg_id & 0xFFFFFFFF)
        if self.value_on_every_message:
            return head + _BE64.pack(value or 0)
        if value is not None:
            return head + _BE64.pack(value)
        return head

    def direction_error(self, name: str, sender: str) -> str:
        """Why ``sender`` cannot send ``name`` in this dialect (the error's words)."""
        who = self.senders.get(name, "none")
        if who == "none":
            return (f"{self.label(name)} is sent by neither side in the {self.name} "
                    f"dialect, yet it came from the {sender}")
        return (f"{self.label(name)} is sent by the {who} in the {self.name} dialect, "
                f"not by the {sender}")

    def has_value(self, name: str) -> bool:
        return self.value_on_every_message or name == m.VMSTATE_SIZE

    def failover_name(self, state: str) -> str:
        return self.failover_state_names.get(state, state)


V11 = Dialect(
    name="v11", title="COLO-Frame v11 (2015 series)",
    ids={m.INVALID: 0, m.CHECKPOINT_READY: 1, m.CHECKPOINT_REQUEST: 2,
         m.CHECKPOINT_REPLY: 3, m.VMSTATE_SEND: 4, m.VMSTATE_SIZE: 5,
         m.VMSTATE_RECEIVED: 6, m.VMSTATE_LOADED: 7, m.GUEST_SHUTDOWN: 8},
    opcode_bytes=4, value_on_every_message=True, size_is_bare_word=False,
    ram_outside_blob=True, release_after=m.VMSTATE_LOADED,
    default_checkpoint_delay_ms=2000,   # v11's default is unconfirmed; COLO-FT.txt's test value
    automatic_failover_ms=2000,
    checks_request_value=True, has_shutdown_message=True, checkpoints_on_delay_change=False,
    flushes_svm_dirty_when_paused=False,
    invalid_text="Invalid colo command, got cmd:{got}",
    unexpected_text="Unexpect colo command, expect:{expected}, but got cmd:{got}",
    failover_state_names={"none": "none", "require": "request", "active": "handling",
                          "completed": "completed", "relaunch": "relaunch"},
)
#: what the qemu dialect is faithful to, said once (README, help texts, the TUI)
QEMU_STREAM_VERSION = "7.2"
QEMU_SCOPE = ("control messages (COLOMessage) as QEMU 2.8 … 10.x send them; the "
              f"migration stream (initial migration, RAM, device state) and the guest "
              f"model as QEMU {QEMU_STREAM_VERSION}'s only: 2.8–3.0's nested device blob "
              "and later versions' RAM flags (the multifd flush) are not decoded")
QEMU = Dialect(
    name="qemu", title=f"QEMU COLOMessage (2.8 … 10.x); stream and model: "
                       f"{QEMU_STREAM_VERSION}",
    ids={m.CHECKPOINT_READY: 0, m.CHECKPOINT_REQUEST: 1, m.CHECKPOINT_REPLY: 2,
         m.VMSTATE_SEND: 3, m.VMSTATE_SIZE: 4, m.VMSTATE_RECEIVED: 5, m.VMSTATE_LOADED: 6},
    opcode_bytes=4, value_on_every_message=False, size_is_bare_word=False,
    ram_outside_blob=True, release_after=m.VMSTATE_RECEIVED,
    default_checkpoint_delay_ms=20000, automatic_failover_ms=None,
    initial_migration=True, real_qemu=True, saves_devices_after_ram=True,
    size_is_device_state=True, svm_runs_between_checkpoints=True,
)
PROTOTYPE = Dialect(
    name="prototype", title="2014 prototype (bare be64 words)",
    ids={m.CHECKPOINT_READY: 0x46, m.CHECKPOINT_REQUEST: 0x47, m.CHECKPOINT_REPLY: 0x48,
         m.VMSTATE_SEND: 0x49, m.VMSTATE_RECEIVED: 0x4A, m.VMSTATE_LOADED: 0x4B},
    opcode_bytes=8, value_on_every_message=False, size_is_bare_word=True,
    ram_outside_blob=False, release_after=m.VMSTATE_LOADED,
    default_checkpoint_delay_ms=2000, automatic_failover_ms=None,
    exits_on_wrong_word=True,
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (V11, QEMU, PROTOTYPE)}


def get(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; choose one of: "
                         f"{', '.join(DIALECTS)}") from None


def guess_peer_dialect(received_id: int, expected: str, mine: Dialect) -> str | None:
    """Which other dialect would have sent ``received_id`` for ``expected``?"""
    for d in DIALECTS.values():
        if d is mine:
            continue
        if d.ids.get(expected) == received_id:
            return d.name
    if 0x46 <= received_id <= 0x4B and mine is not PROTOTYPE:
        return PROTOTYPE.name
    return None
