"""Drive two live COLO processes (`colo node`, or real QEMUs) through their QMP sockets.

`colo repl --attach QMP_PRIMARY QMP_SECONDARY` runs this small command loop:
what an operator does to a live pair — look at both sides, tell one side the
peer is gone, change the checkpoint delay (which also checkpoints at once),
and watch the QMP events.
"""
from __future__ import annotations

import sys
import time

from protocol.errors import ColoError, QmpCommandError, is_user_error
from protocol.qmpclient import QmpClient

from .control import side_name

SIDES = ("primary", "secondary")
HELP = """commands:
  status                        query-status, query-migrate, query-colo-status of both sides
  heartbeat primary|secondary   x-colo-lost-heartbeat on that side (failover)
  set checkpoint-delay MS       migrate-set-parameters x-checkpoint-delay (checkpoints now)
  checkpoint                    re-set the current delay: QEMU checkpoints at once
  events [SECONDS]              wait up to SECONDS (default 1) and print the QMP events
  help, quit"""


class LivePair:
    def __init__(self, primary: str, secondary: str, *, timeout: float = 5.0) -> None:
        self.qmp = {"primary": QmpClient(primary, timeout=timeout, name="primary")}
        try:
            self.qmp["secondary"] = QmpClient(secondary, timeout=timeout, name="secondary")
        except ColoError:
            self.qmp["primary"].close()
            raise

    def close(self) -> None:
        for c in self.qmp.values():
            c.close()

    def status(self) -> dict:
        out = {}
        for side, c in self.qmp.items():
            out[side] = {"status": c.execute("query-status"),
                         "migrate": c.execute("query-migrate"),
                         "colo": c.execute("query-colo-status")}
        return out

    def lost_heartbeat(self, side: str) -> None:
        self.qmp[side].execute("x-colo-lost-heartbeat")

    def set_checkpoint_delay(self, ms: int) -> None:
        self.qmp["primary"].execute("migrate-set-parameters", {"x-checkpoint-delay": ms})

    def checkpoint(self) -> int:
        params = self.qmp["primary"].execute("query-migrate-parameters") or {}
        delay = int(params.get("x-checkpoint-delay", 20000))
        self.set_checkpoint_delay(delay)
        return delay

    def events(self, wait: float) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + max(0.0, wait)
        out: list[tuple[str, dict]] = []
        while True:
            for side, c in self.qmp.items():
                out += [(side, e) for e in c.events(wait=0.05)]
            if out or time.monotonic() >= deadline:
                return out


def _format_event(side: str, e: dict) -> str:
    ts = e.get("timestamp", {})
    t = f"{ts.get('seconds', 0)}.{ts.get('microseconds', 0):06d}"
    data = " ".join(f"{k}={v}" for k, v in (e.get("data") or {}).items())
    return f"{t} {side:9s} {e.get('event')} {data}".rstrip()


def execute(pair: LivePair, line: str) -> tuple[bool, str, bool]:
    """One command: (ok, text, quit).  Never raises for a user error."""
    words = line.split()
    if not words:
        return True, "", False
    cmd, args = words[0].lower(), words[1:]
    try:
        if cmd in ("quit", "exit"):
            return True, "bye", True
        if cmd == "help":
            return True, HELP, False
        if cmd == "status":
            lines = []
            for side, st in pair.status().items():
                lines.append(f"{side:9s} status={st['status'].get('status')} running="
                             f"{st['status'].get('running')} migrate={st['migrate'].get('status')}"
                             f" colo={st['colo']}")
            return True, "\n".join(lines), False
        if cmd == "heartbeat" and len(args) == 1:
            side = side_name(args[0])
            pair.lost_heartbeat(side)
            return True, f"x-colo-lost-heartbeat sent to the {side}", False
        if cmd == "set" and len(args) == 2 and args[0] == "checkpoint-delay":
            pair.set_checkpoint_delay(int(args[1]))
            return True, f"x-checkpoint-delay = {int(args[1])} ms", False
        if cmd == "checkpoint" and not args:
            return True, f"checkpoint requested (x-checkpoint-delay re-set to "\
                         f"{pair.checkpoint()} ms)", False
        if cmd == "events" and len(args) <= 1:
            wait = float(args[0]) if args else 1.0
            evs = pair.events(wait)
            return True, "\n".join(_format_event(s, e) for s, e in evs) or "(no events)", False
        return False, f"unknown or malformed command {line!r}\n{HELP}", False
    except QmpCommandError as exc:
        return False, f"{exc.error_class}: {exc.desc}", False
    except Exception as exc:
        if not is_user_error(exc):
            raise
        return False, str(exc), False


def run_attached(args, stdin=None, out=None, err=None) -> int:
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    try:
        pair = LivePair(*args.attach)
    except ColoError as exc:
        print(f"colo repl: error: {exc}", file=err)
        return 1
    try:
        if getattr(args, "file", None):
            from .commands.parser import read_script
            lines = read_script(args.file, err)
            if lines is None:
                return 2
        elif not stdin.isatty():
            lines = stdin.read().splitlines()
        else:
            lines = None
        if lines is not None:
            from .commands.parser import strip_comment
            for no, raw in enumerate(lines, 1):
                line = strip_comment(raw)
                if not line:
                    continue
                ok, text, quit_ = execute(pair, line)
                print(f"colo> {line}\n{text}" if text else f"colo> {line}", file=out)
                if not ok:
                    print(f"line {no}: error: {line!r} failed", file=err)
                    return 1
                if quit_:
                    break
            return 0
        from prompt_toolkit import PromptSession
        session = PromptSession()
        print("attached to a live COLO pair; 'help' lists the commands", file=out)
        while True:
            try:
                line = session.prompt("colo(live)> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                return 0
            ok, text, quit_ = execute(pair, line)
            if text:
                print(text if ok else f"error: {text}", file=out)
            if quit_:
                return 0
    finally:
        pair.close()
