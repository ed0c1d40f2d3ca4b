"""Plain-language explanations of COLO events, for someone learning the protocol.

``explain(event, dialect_name)`` explains one event: what it does, why COLO
needs it, what would go wrong without it, and how the dialects differ where
it matters (docs/protocol.md tells the whole story).  ``explain_last(controller)``
picks the latest interesting event of a session and explains it.
"""
from __future__ import annotations

from colo_tui.present.sentences import clean, ending, line, plain
from protocol.core import dialects
from protocol.core.events import EventKind as K

_MSG = {
    "checkpoint-ready": (
        "The secondary tells the primary it has loaded the initial migration and is ready "
        "for checkpoints. The primary has been paused since migration completion and only "
        "resumes its VM when this arrives, so both VMs start COLO from the same state. "
        "Without it the primary could run ahead before the secondary holds a replica, and "
        "a failover then would lose everything since the migration."),
    "checkpoint-request": (
        "The primary starts a checkpoint transaction (its timer fired after "
        "x-checkpoint-delay, colo-compare saw outputs diverge or a packet waited too long, or "
        "x-checkpoint-delay was just set; the testbed's checkpoint command does the "
        "same). The "
        "secondary stops its VM on receipt. Without a request both sides would not agree "
        "when a checkpoint begins, and the secondary would be changing state under the "
        "primary's feet."),
    "checkpoint-reply": (
        "The secondary confirms it has stopped and is ready to receive state. Only now "
        "does the primary stop its own VM, so the primary's pause starts as late as "
        "possible. (QEMU's source says the reply is unnecessary in periodic mode, where the "
        "secondary is not running anyway; it is still sent.)"),
    "vmstate-send": (
        "The primary announces that the VM state follows. Right after it, the pages "
        "dirtied since the last checkpoint go onto the socket. The secondary switches from "
        "waiting for a message to reading migration-stream data."),
    "vmstate-size": (
        "The primary announces the byte length N of the buffered device state and then "
        "sends exactly N bytes. Device sections are not self-delimiting, and the secondary "
        "must apply a checkpoint all or nothing, so it reads the whole blob into a buffer "
        "before touching anything. A short read is an error, not a partial load."),
    "vmstate-received": (
        "The secondary confirms it holds the whole checkpoint: RAM (in its RAM cache) and "
        "the device blob. From now on a failover on the secondary can complete this "
        "checkpoint rather than discard it, which is why it is safe to release the "
        "primary's buffered output at this point."),
    "vmstate-loaded": (
        "The secondary has flushed its RAM cache into guest RAM and loaded the device "
        "state: the checkpoint is committed on both sides and the primary resumes its VM. "
        "The primary's pause lasted from checkpoint-reply until this message."),
    "guest-shutdown": (
        "v11 only: after a final checkpoint the primary tells the secondary that the guest "
        "powered off, so both sides stop instead of the secondary taking over. Its numeric "
        "value (8) is inferred, not confirmed. QEMU 7.2 has no such message: the secondary "
        "just sees EOF and waits for an operator."),
}

_ACTION = {
    "release-output": (
        "Output commit: the network packets the primary produced and could not release "
        "yet are released now: in periodic mode all of them since the last checkpoint "
        "(held by filter-buffer); in hybrid mode those still in colo-compare's queues (a "
        "packet the secondary matched left at once), while the secondary's queued packets "
        "are dropped. A client must never see an answer that the secondary "
        "could not reproduce after a failover; releasing earlier would let packets escape "
        "that would be repeated or contradicted if the primary died."),
    "cache-pages": (
        "The secondary writes the received pages into its RAM cache only, marking them in "
        "the cache bitmap; guest RAM is untouched. If the primary dies in the middle of a "
        "checkpoint, the secondary's own memory is still coherent and it can take over "
        "from it."),
    "flush-cache": (
        "After the whole checkpoint arrived, the secondary copies from its RAM cache into "
        "guest RAM every page the primary sent or the secondary itself dirtied (reverting "
        "the secondary's divergent writes). Only those pages are copied, not all of RAM "
        "(an older QEMU flushed the whole cache every time)."),
    "load-devices": (
        "The secondary loads the buffered device state (CPU registers, device models) so "
        "its VM matches the primary at the moment the primary stopped."),
    "save-devices": (
        "The stopped primary saves its device state into a memory buffer; it is sent as one "
        "sized blob after the RAM."),
    "replication-checkpoint": (
        "Block replication takes a checkpoint: on the secondary the active and hidden "
        "disks are emptied, discarding the secondary's disk divergence, so its disk equals "
        "the primary's again."),
    "take-over": (
        "Failover: this side stops being half of a COLO pair and carries on alone. On the "
        "secondary, replication_stop_all commits the active and hidden disks into the "
        "secondary disk, and a partly received checkpoint in the RAM cache is dropped."),
    "discard-cache": (
        "A checkpoint was only partly received when failover came: it lives only in the RAM "
        "cache and is thrown away. The secondary continues from its own memory: its last "
        "whole checkpoint (in hybrid mode, plus what it ran since)."),
    "shutdown-sockets": (
        "Failover shuts down the migration socket in both directions so a COLO thread "
        "blocked in recv() or send() wakes up with an error instead of waiting forever."),
    "load-initial": (
        "The secondary loads the initial live migration; every page goes to guest RAM and "
        "to the RAM cache, so the cache starts equal to RAM."),
    "start-dirty-log": (
        "The secondary starts tracking the pages its own VM writes, so the next cache flush "
        "can revert them."),
    "expect-blob": "The secondary grows its buffer if needed and reads exactly N bytes.",
}

_FAILOVER = {
    "none": ("No failover is in progress. After a relaunch the state returns to none and "
             "the failover is requested again from scratch."),
    "require": ("x-colo-lost-heartbeat (or the arbiter, or v11's default failover) asked for "
                "a failover: a compare-and-set none -> require, then a bottom half is "
                "scheduled. A second request now fails with 'COLO failover is already "
                "activated'. (v11 calls this state 'request'.)"),
    "active": ("The failover bottom half runs (require -> active): the VM is stopped, the "
               "last COLO mode recorded, and the side-specific failover starts. (v11: "
               "'handling'.)"),
    "completed": ("The failover finished: this side left COLO (migration status completed) and "
                  "its VM runs alone. query-colo-status now shows mode none, last-mode the "
                  "old role, reason request. A COLO thread still in its loop leaves it now "
                  "with COLO_EXIT (reason request, but on the primary QEMU 7.2 may say error: "
                  "the thread can read the failover state before it is completed); one that "
                  "already left on an error sent its COLO_EXIT then and sends no second one."),
    "relaunch": ("The request arrived while the secondary was loading a fully received "
                 "checkpoint. Failing over now would leave a half-loaded VM, so it is deferred: "
                 "the load completes, vmstate-loaded is not sent, and the failover restarts "
                 "(relaunch -> none -> require -> active -> completed)."),
}

_LINK = {
    "drop": "The piece of output never arrives, but the connection stays up.",
    "lost": "Bytes were lost: the connection was closed or the sender was gone.",
    "held": "The receiver is stopped (SIGSTOP): the bytes wait in its socket buffer.",
    "closing": "The connection is about to close (a side shut its socket down).",
    "closed": ("The TCP connection closed. Each side sees EOF on its next read, which COLO "
               "treats as an error on the peer."),
    "partition": ("No byte crosses the link for a while, in either direction. COLO has no "
                  "timeout (docs/protocol.md §7.4): both COLO threads simply block until management acts, "
                  "and telling both sides to take over would give split brain."),
    "fault": "An injected fault changed what went onto the wire at this point.",
}


_OTHER = {
    "reprotect": ("QEMU's way to resume COLO after a failover (docs/COLO-FT.txt, and "
                  "docs/protocol.md): the operator starts a new secondary with -incoming, "
                  "syncs its disk from the survivor, sets x-colo on the survivor and migrates "
                  "to it. A whole initial migration goes first, then checkpoint-ready, and "
                  "checkpoints resume with the survivor as the primary, whichever role it had."),
    "reprotect-refused": ("A re-protect needs a failover that finished with exactly one "
                          "survivor: no failover yet, two live sides (split brain) or a "
                          "stopped survivor cannot be re-protected."),
    "parameter": ("QMP migrate-set-parameters changed a COLO parameter; x-checkpoint-delay is "
                  "the time between two periodic checkpoints. Set while COLO runs, it also "
                  "starts a checkpoint at once and re-arms the timer (QEMU 7.2)."),
    "state": "A state machine of the testbed moved; the explanation of the message or action "
             "that caused it says why.",
    "migration": ("The migration status as query-migrate reports it: 'active' during the "
                  "initial migration, 'colo' while COLO runs, 'completed' after a failover."),
    "deliver": "The link hands a piece of the stream to the receiving side.",
    "stopped-for-checkpoint": ("The primary's VM is paused so that its RAM and devices "
                               "stay still while they are copied."),
    "request": ("A client of the guest's service sends a request; the answer is output that "
                "COLO must not release before the checkpoint that covers it."),
    "absorbed": "A checkpoint is already running, and it covers this request too.",
    "ignored": "Nothing reads this now, so it changes nothing.",
    "unnoticed": ("The peer is gone, but this side is not reading the socket now; it notices "
                  "at its next read or write."),
    "abort": ("A failover is under way, so the primary abandons the checkpoint after "
              "checkpoint-reply: no vmstate-send, no state is sent "
              "(colo_do_checkpoint_transaction checks the failover state just before and "
              "just after it stops the VM)."),
    "error-report": ("QEMU 7.2 logs the failed receive but its checkpoint loop carries on "
                     "(the transaction returns 0): one more lone checkpoint-request follows, "
                     "and only its failure ends COLO."),
    "stopped": "",
}


def _dialect_note(topic: str, d) -> str:
    if topic == "release":
        if d.release_after == "vmstate-received":
            return (f" In the {d.name} dialect output is released after vmstate-received, "
                    "before the secondary has loaded the checkpoint (v11 and the prototype "
                    "waited for vmstate-loaded).")
        return (f" In the {d.name} dialect output is released only after vmstate-loaded; "
                "QEMU later moved it to vmstate-received, once the secondary holds the "
                "whole checkpoint.")
    if topic == "error":
        if d.automatic_failover_ms:
            return (f" In {d.name}, without an operator the default failover runs after "
                    f"{d.automatic_failover_ms} ms: the primary takes over and the secondary "
                    "exits.")
        if d.exits_on_wrong_word:
            return " The 2014 prototype simply exited on a wrong word."
        return (" In QEMU 7.2 nothing happens automatically: the side waits until "
                "management sends x-colo-lost-heartbeat.")
    return ""


def _framing(name: str, d, data=None) -> str:
    """How the message looks on the wire: the event's own bytes when it carries them
    (vmstate-size's value is the blob's length), else the dialect's encoding of its value."""
    if name not in d.ids and not (name == "vmstate-size" and d.size_is_bare_word):
        return f" The {d.name} dialect has no {name} message."
    data = data or {}
    raw = data.get("hex") or ""
    if not raw:
        try:
            raw = d.encode(name, int(data.get("value") or 0)).hex()
        except (KeyError, ValueError, TypeError, OverflowError):
            return ""
    if name == "vmstate-size" and d.size_is_bare_word:
        return " In the prototype the size is a bare be64 word after vmstate-send, with no opcode."
    extra = " (be32 id + be64 value, as on every v11 message)" if d.value_on_every_message \
        else " (be64 word)" if d.opcode_bytes == 8 else ""
    return f" On the wire in {d.name}: {raw}{extra}."


def explain(event, dialect_name: str = "qemu") -> str:
    """A short paragraph about one event (an Event or its JSON dict)."""
    d = dialects.get(dialect_name)
    if isinstance(event, dict):
        kind, side, data = event.get("kind"), event.get("side") or "", event.get("data") or {}
    else:
        kind, side, data = str(event.kind), event.side, event.payload()
    data = clean(data)
    msg = data.get("msg") or ""
    if kind in ("send", "recv") and msg:
        text = f"{line(event)}. " + _MSG.get(msg, "A COLO control message.")
        if msg == "vmstate-received" and d.release_after == "vmstate-received":
            text += " The primary releases its buffered output now."
        return text + _framing(msg, d, data)
    if kind in ("send-ram", "recv-ram", "ram"):
        text = (f"{line(event)}. The RAM part of the checkpoint: the pages dirtied since the last checkpoint, "
                "as a migration-stream SECTION_END with RAM records, then EOF, written "
                "straight onto the socket (not buffered). On the secondary they go to the "
                "RAM cache only.")
        if not d.ram_outside_blob:
            text += " (The prototype sends RAM inside the sized blob instead.)"
        return text
    if kind in ("send-device-state", "recv-device-state", "device-state"):
        return (f"{line(event)}. The device-state blob: the N bytes announced by vmstate-size (device "
                "sections, then EOF; in the prototype the whole state). " + _MSG["vmstate-size"])
    if kind in ("send-initial", "recv-initial"):
        return (f"{line(event)}. The initial live migration (QEVM header, RAM, devices). In "
                "QEMU 7.2 it carries MIG_CMD_ENABLE_COLO, which makes the destination "
                "allocate its RAM cache; in 2.8 and v11 a COLOState section asked for COLO "
                "(colo_requested set).")
    if kind == "checkpoint":
        phase = data.get("phase")
        if phase == "begin":
            return (f"{line(event)}. A checkpoint copies the "
                    "primary's dirty RAM and device state to the secondary, so that if the "
                    "primary dies the secondary can continue from a state consistent with "
                    "everything clients have seen.")
        return (f"{line(event)}. Checkpoint ids only "
                "grow, with no gaps, on both sides.")
    if kind == "action":
        name = data.get("name") or ""
        text = _ACTION.get(name, f"{line(event)}.")
        return text + (_dialect_note("release", d) if name == "release-output" else "")
    if kind == "load":
        return ("The secondary is loading the checkpoint (flush the RAM cache, load devices). "
                "A failover request arriving now is deferred (relaunch) until the load ends.")
    if kind == "failover" and side == "arbiter":
        return (f"{line(event)}. QEMU has no heartbeat of its "
                "own; COLO assumes a manager that decides which side survives. Without it a "
                "dead peer leaves the survivor waiting forever, and without fencing both "
                "sides could run at once (split brain).")
    if kind == "failover":
        to = data.get("to") or ""
        v11 = {v: k for k, v in d.failover_state_names.items()}
        return f"{line(event)}. " + \
            _FAILOVER.get(v11.get(to, to), "")
    if kind == "deferred":
        return _FAILOVER["relaunch"]
    if kind == "colo-exit":
        reason = data.get("reason")
        if reason == "request":
            return ("COLO_EXIT reason=request: the COLO thread left its loop because a "
                    "failover completed.")
        return ("COLO_EXIT reason=error: the COLO thread hit an error and left its loop. The "
                "VM keeps whatever run state it had, and QEMU 7.2's query-colo-status still "
                "says mode primary or secondary, reason none, until a failover is asked for."
                + _dialect_note("error", d))
    if kind == "error":
        return (f"{line(event)}. COLO checks every "
                "message against the one it expects; a mismatch, an out-of-range id or a "
                "closed socket ends the COLO loop instead of desynchronising silently."
                + _dialect_note("error", d))
    if kind == "default-failover":
        return (f"v11's default failover treatment: nobody issued a failover within "
                f"{d.automatic_failover_ms or 2000} ms of the error, so the primary takes over "
                "by itself and the secondary exits. This did not survive into upstream QEMU.")
    if kind == "process":
        what = data.get("what")
        if what == "killed":
            return (f"The {side} process died. Its kernel closes its socket, so the peer sees "
                    "EOF and its COLO thread reports an error. Someone (the arbiter) must then "
                    "tell the survivor to take over with x-colo-lost-heartbeat.")
        if what == "stalled":
            return (f"The {side} stopped answering but its socket stays open, like a frozen "
                    "host or a half-open TCP connection. COLO has no timeout (docs/protocol.md §7.4): the peer "
                    "blocks forever unless an external arbiter fences the silent side.")
        return f"The {side} process exited."
    if kind == "fence":
        return (f"{line(event)}. "
                "COLO assumes an "
                "external manager that makes sure only one VM survives before it tells the "
                "other to take over; without fencing both could run (split brain).")
    if kind == "qmp":
        return ("x-colo-lost-heartbeat: the QMP command management uses when it believes the "
                "peer is dead. On the primary it leaves COLO and keeps serving; on the "
                "secondary it takes over. QEMU itself has no heartbeat.")
    if kind == "qmp-error":
        return (f"{line(event)}. x-colo-lost-heartbeat fails "
                "when COLO is not enabled or a failover is already active.")
    if kind == "vm":
        return (f"{line(event)}. In periodic "
                "mode the secondary stays paused between checkpoints; in hybrid mode (QEMU "
                "7.2) it runs and colo-compare checks its output against the primary's.")
    if kind == "end":
        return _outcome(data.get("outcome"))
    if kind == "input":
        return f"{line(event)}."
    if kind in _LINK:
        return f"{line(event)}. {_LINK[kind]}"
    if kind == "eof":
        return (f"The {side} read EOF: the peer closed the connection. COLO treats it as a "
                "read error (\"Can't receive COLO message\").")
    if kind == "checkpoint-requested":
        return (f"{line(event)}. The primary starts a checkpoint at once instead of waiting "
                "for its timer (x-checkpoint-delay): a newly set delay or colo-compare "
                "(two outputs differ, or a packet waited too long) do this in QEMU; the "
                "operator's checkpoint command is the testbed's own (QEMU 7.2 has no QMP "
                "command that asks for a checkpoint).")
    if kind == "watchdog":
        return (f"{line(event)}. No checkpoint completed for too long, so the external "
                "manager decides that COLO is broken: it fences one side and tells the other "
                "to carry on alone.")
    if kind in _OTHER:
        return f"{line(event)}. {_OTHER[kind]}"
    return f"{line(event)}."


def _outcome(outcome) -> str:
    return {
        "ok": "The scenario ended with both sides still in COLO and every checkpoint committed.",
        "failover": "The scenario ended with exactly one VM running after a failover.",
        "split-brain": ("Split brain: both VMs run on their own. This happens when a side is "
                        "told to take over while its peer is still alive - COLO relies on an "
                        "external arbiter to prevent it; the testbed reports it faithfully."),
        "error": "The scenario ended in an error state (or hung: COLO has no timeout).",
    }.get(outcome, f"The scenario ended: {plain(outcome)}.")


_BORING = {"state", "deliver", "migration", "ignored", "absorbed", "unnoticed", "parameter"}


#: when one moment holds several events, explain the most telling one
_PRIORITY = ("reprotect", "fence", "error", "colo-exit", "deferred", "failover", "process",
             "qmp-error", "default-failover", "fault", "dropped", "partition", "release")


def _rank(ev) -> int:
    key = "release" if getattr(ev, "name", None) == "release-output" else ev.kind
    return _PRIORITY.index(key) if key in _PRIORITY else len(_PRIORITY)


def explain_last(controller) -> str:
    events = controller.events
    d = controller.config.dialect
    recent = [e for e in events if events and e.t_ms == events[-1].t_ms
              and e.kind not in _BORING and e.kind is not K.END]
    best = min(recent, key=_rank) if recent else None
    ordered = ([best] if best is not None and _rank(best) < len(_PRIORITY) else []) + \
        list(reversed(events))
    for ev in ordered:
        if ev.kind in _BORING:
            continue
        where = f"Event {ev.seq} at {ev.t_ms:.3f} ms, {ev.side}: "
        if ev.kind is K.END:
            return where + ending(events, ev.outcome)
        text = where + explain(ev, d)
        if controller.finished and ev.kind is not K.END:
            text += "\n" + ending(events, controller.outcome())
        return text
    return ("Nothing has happened yet. COLO keeps a secondary VM in step with a primary by "
            "periodic checkpoints; 'step' runs the initial migration and checkpoint-ready.")
