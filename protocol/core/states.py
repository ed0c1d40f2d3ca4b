"""The vocabulary of the role machines: their states and their inputs, as enums.

Members are ``StrEnum``s: each equals (and hashes as) its wire or log spelling, so a
state compares equal to ``"IDLE"`` and an input to ``"checkpoint-ready"``; events and
recordings carry the plain strings.  ERROR, DONE (left COLO by failover) and SHUTDOWN
are the stopped states every machine has.
"""
from __future__ import annotations

from enum import StrEnum

from protocol.core import messages as m

ERROR, DONE, SHUTDOWN = "ERROR", "DONE", "SHUTDOWN"
STOPPED = frozenset((ERROR, DONE, SHUTDOWN))


class PrimaryState(StrEnum):
    INIT = "INIT"
    WAIT_READY = "WAIT_READY"
    IDLE = "IDLE"
    WAIT_REPLY = "WAIT_REPLY"
    SAVING = "SAVING"
    WAIT_RECEIVED = "WAIT_RECEIVED"
    WAIT_LOADED = "WAIT_LOADED"
    ERROR = ERROR
    DONE = DONE
    SHUTDOWN = SHUTDOWN


class SecondaryState(StrEnum):
    INIT = "INIT"
    WAIT_INITIAL = "WAIT_INITIAL"
    IDLE = "IDLE"
    WAIT_SEND = "WAIT_SEND"
    RECV_RAM = "RECV_RAM"
    WAIT_SIZE = "WAIT_SIZE"
    RECV_BLOB = "RECV_BLOB"
    LOADING = "LOADING"
    ERROR = ERROR
    DONE = DONE
    SHUTDOWN = SHUTDOWN


class Input(StrEnum):
    """What a machine's table is keyed by besides the state: the driver's start, the
    decoder's items (each control message by name, the RAM part and its chunks, the
    device-state blob, the initial migration), the checkpoint trigger and the timers."""
    START = "start"
    INITIAL = "initial"
    RAM_CHUNK = "ram-chunk"
    RAM = "ram"
    BLOB = "blob"
    CHECKPOINT = "checkpoint"
    TIMER_CHECKPOINT = "timer:checkpoint"
    TIMER_SAVE = "timer:save"
    TIMER_LOAD = "timer:load"
    CHECKPOINT_READY = m.CHECKPOINT_READY
    CHECKPOINT_REQUEST = m.CHECKPOINT_REQUEST
    CHECKPOINT_REPLY = m.CHECKPOINT_REPLY
    VMSTATE_SEND = m.VMSTATE_SEND
    VMSTATE_SIZE = m.VMSTATE_SIZE
    VMSTATE_RECEIVED = m.VMSTATE_RECEIVED
    VMSTATE_LOADED = m.VMSTATE_LOADED
    GUEST_SHUTDOWN = m.GUEST_SHUTDOWN
