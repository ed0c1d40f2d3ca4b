"""What every symbol and abbreviation on screen means: the help screen and the REPL's
`legend` command print this one list (no toolkit)."""
from __future__ import annotations

GUIDE = "docs/protocol.md"

#: (symbol, where it appears, what it means)
SYMBOLS: tuple[tuple[str, str, str], ...] = (
    ("─▶ ◀─", "ladder", "a control message, primary → secondary or back"),
    ("═▶ ◀═", "ladder", "a payload: RAM pages, the device-state blob, the initial migration"),
    ("┄▷ ◁┄", "ladder", "a control message in flight: sent, not received yet (it lands, "
                        "drawn whole, when the peer reads it)"),
    ("✓ ✗", "ladder (colo lab)", "colo-compare's verdict on a primary TCP data packet: the "
                                 "secondary's matched, or it differed / never came (→ the "
                                 "checkpoint it forced)"),
    ("⚡", "ladder (colo lab)", "a compare-channel fault hit this packet"),
    ("▸", "failover diagram", "the side's current failover state (marked without colour too)"),
    ("✗", "ladder", "a message or payload that was dropped or lost on the way"),
    ("↯", "ladder", "an injected fault, a partition, or the connection closing"),
    ("✖", "ladder, panels", "a protocol error (COLO leaves its loop)"),
    ("☠", "ladder", "a process was killed or exited"),
    ("⏸", "ladder, status", "a VM stopped (paused, colo, finish-migrate) or the app paused"),
    ("▶", "ladder, status", "a VM runs, or the app runs the session on a timer"),
    ("⏻", "ladder", "a VM shut down"),
    ("░▒▓█", "panels", "RAM heat map: a darker cell holds more dirty or pending pages"),
    ("◆", "panels", "the selected side: k, s, h and the fault menu act on it"),
    ("·", "event log", "an empty primary column: the line belongs to the secondary"),
    ("→", "failover diagram", "the failover states in order (none → require → active → "
                              "completed)"),
    ("↺", "failover diagram", "relaunch: a deferred failover starts again from none"),
    ("shaded row", "ladder", "it happened inside a fault window (link closed, partition, a "
                             "side dead or stopped)"),
    ("● REC", "status", "the session is being recorded"),
    ("⏵ replay", "status", "stepping through a recording"),
    ("■ ended", "status", "the session ended; the outcome follows"),
    ("FORKED", "status", "you stepped back and gave a new input: the future differs from "
                         "the recording"),
    ("⚠", "status", "a warning: what you asked for was refused, and why"),
    ("…", "everywhere", "cut short for the width: the explanation pane or the log has it all"),
)

#: (abbreviation, meaning)
ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("COLO", "COarse-grain LOck-stepping: QEMU's VM replication by checkpoints"),
    ("P, PVM", "the primary side and its VM: it serves the clients"),
    ("S, SVM", "the secondary side and its VM: the replica that can take over"),
    ("P>S, S>P", "direction on the wire: primary to secondary, secondary to primary"),
    ("~, link", "the TCP connection between the two sides"),
    ("op, arb, cli", "the operator (you, or a fault), the arbiter (the external manager), "
                     "a client of the guest"),
    ("ckpt, #N", "checkpoint; N counts checkpoints from 1 on each side"),
    ("fo", "failover state"),
    ("mode, last", "query-colo-status: the COLO mode now, the mode this side had when a "
                   "failover last ran, and the reason, read from the failover state (none "
                   "until a failover: a COLO_EXIT error alone leaves it none)"),
    ("run", "the VM's run state (running, paused, colo = stopped by COLO for a "
            "checkpoint or a failover)"),
    ("QMP", "QEMU's management protocol; x-colo-lost-heartbeat is its failover command"),
    ("COLO_EXIT", "the QMP event a side emits when its COLO thread leaves the loop"),
    ("x-checkpoint-delay", "the time between two periodic checkpoints, in ms"),
    ("periodic, hybrid", "the two modes: the SVM paused between checkpoints, or running "
                         "with colo-compare checking its output"),
    ("qemu, v11, prototype", "the three wire dialects: QEMU 7.2, the 2015 v11 patch series, "
                             "the 2014 prototype"),
    ("RAM cache", "the secondary's copy of the PVM's RAM where a checkpoint lands first"),
    ("XBZRLE", "a compressed page: only the bytes that changed since the page was last sent"),
    ("EOF, FIN, RST", "end of stream; a TCP close; a TCP reset"),
    ("SIGSTOP", "the process is stopped, not dead: its socket stays open"),
    ("B, ms", "bytes; milliseconds of virtual time"),
)


def legend_text() -> str:
    """The legend as plain text (the REPL's `legend`)."""
    w = max(len(s) for s, _w, _m in SYMBOLS)
    lines = ["Symbols"]
    lines += [f"  {s:<{w}}  {m} ({where})" for s, where, m in SYMBOLS]
    a = max(len(x) for x, _m in ABBREVIATIONS)
    lines += ["", "Words and abbreviations"]
    lines += [f"  {x:<{a}}  {m}" for x, m in ABBREVIATIONS]
    lines += ["", f"The protocol itself: {GUIDE} (in the repository)."]
    return "\n".join(lines)
