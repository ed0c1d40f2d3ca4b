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
    """dialect, mode, both sides' states, checkpoint number, seed."""
    def side(s: dict) -> str:
        if not s["alive"]:
            return "dead"
        life = "stalled " if s["stalled"] else ""
        return f"{life}{s['state']}/{s['run_state']}/fo:{s['failover_state']}"
    p, q = status["primary"], status["secondary"]
    rec = " | REC" if status.get("recording") else ""
    return (f" {status['dialect']} | {status['mode']} | P {side(p)} | S {side(q)} | "
            f"ckpt {p['checkpoint']} | seed {status['seed']} | step {status['step']} | "
            f"{run_state}{rec} ")
