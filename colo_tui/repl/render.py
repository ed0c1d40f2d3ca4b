"""Readable lines for events and the bottom toolbar; pure functions of data."""
from __future__ import annotations

from colo_tui.present.sentences import SIDE_SHORT, sentence
from protocol.core.events import EventKind


def event_line(ev) -> str:
    """One event as one line: ``  20000.100 P   sends checkpoint-request  (bytes 00000001)``."""
    text = sentence(ev)
    if ev.kind in (EventKind.SEND, EventKind.RECV) and ev.raw is not None:
        text += f"  (bytes {ev.hex})"
    return f"{ev.t_ms:>12.3f} {SIDE_SHORT.get(ev.side, ev.side):<3} {text}"


def toolbar_text(status: dict, run_state: str) -> str:
    """The run state and REC first, then the checkpoint and step, both sides' states,
    dialect, mode and seed: the toolbar is cut at the terminal's width, and in the
    old order (run state and REC last, after 100 characters) an 80-column terminal
    never showed whether the session was being recorded, nor the step."""
    def side(s: dict) -> str:
        if not s["alive"]:
            return "dead"
        life = "stalled " if s["stalled"] else ""
        return f"{life}{s['state']}/{s['run_state']}/fo:{s['failover_state']}"
    p, q = status["primary"], status["secondary"]
    rec = " | REC" if status.get("recording") else ""
    return (f" {run_state}{rec} | ckpt {p['checkpoint']} | step {status['step']} | "
            f"P {side(p)} | S {side(q)} | {status['dialect']} "
            # a real capture's header names a default mode, not what it shows
            + (status["mode"] if status.get("mode_known", True) else "real capture")
            + (f" | seed {status['seed']} " if status.get("seeded", True) else " "))
