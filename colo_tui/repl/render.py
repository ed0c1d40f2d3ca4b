"""Readable lines for events and the bottom toolbar; pure functions of data."""
from __future__ import annotations

_SIDE = {"primary": "P", "secondary": "S", "link": "~", "operator": "op", "sim": "sim",
         "arbiter": "arb"}


def event_line(ev) -> str:
    """One event as one line: ``  20000.100 P  send checkpoint-request 00000001``."""
    d = dict(ev.data)
    kind = ev.kind
    if kind in ("send", "recv"):
        arrow = "->" if kind == "send" else "<-"
        val = f" value={d['value']}" if d.get("value") else ""
        text = f"{kind} {arrow} {d.get('msg')}{val}  [{d.get('hex', '')}]"
    elif kind == "state":
        text = f"state {d.get('from')} -> {d.get('to')}"
    elif kind == "vm":
        text = f"vm {d.get('run')} ({d.get('why')})"
    elif kind == "action":
        name = d.pop("name", "?")
        text = f"action {name}" + (" " + _kv(d) if d else "")
    elif kind == "deliver":
        text = f"deliver {d.get('dir')} {d.get('point')} ({d.get('bytes')} B)"
    elif kind == "error":
        text = f"ERROR {d.get('message')}"
    elif kind == "failover":
        text = f"failover {d.get('from')} -> {d.get('to')}"
    elif kind == "colo-exit":
        text = f"COLO_EXIT mode={d.get('mode')} reason={d.get('reason')}"
    elif kind == "end":
        text = f"end of scenario: outcome {d.get('outcome')} after {d.get('steps')} steps"
    else:
        text = kind + (" " + _kv(d) if d else "")
    return f"{ev.t_ms:>12.3f} {_SIDE.get(ev.side, ev.side):<3} {text}"


def _kv(d: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in d.items())


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
