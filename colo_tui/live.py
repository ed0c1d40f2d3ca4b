"""Live sessions for the TUI and the REPL: a Controller-shaped facade over real peers.

Four sources, each running in a background thread and feeding one event queue:

* ``TcpPair``  — `--transport tcp`: the two sans-IO endpoints in this process,
  each driven by the uvloop engine over a real loopback TCP connection;
* ``ProxyFeed`` — `--proxy LISTEN CONNECT`: the live decoding proxy between two
  real COLO peers (QEMUs or `colo node`s);
* ``QmpFeed``  — `--attach QMP_P QMP_S`: two running processes, through their
  QMP sockets (statuses polled, events as they come);
* ``PeerFeed`` — `--peer LISTEN`: the testbed's secondary (with a mirror of the
  guest's RAM) as the peer of a real QEMU primary.

Stepping moves queued events into view (the display can be paused while the
peers run on); there is no time travel in a live session, and faults are
injected with `colo proxy --fault` or the simulator.
"""
from __future__ import annotations

import queue
import threading
import time

from protocol import dialects
from protocol.errors import ColoError
from protocol.events import Event
from protocol.guestport import NullGuest
from protocol.record import format as rf
from protocol.record.playback import ReadSide
from protocol.sim.config import SimConfig

SIDES = ("primary", "secondary")


class LiveError(ValueError):
    pass


class _LiveSim(ReadSide):
    """The read side the UIs use (like Simulation), filled by a source."""

    def __init__(self, cfg: SimConfig, eps: dict) -> None:
        self.cfg = cfg
        self.dialect = dialects.get(cfg.dialect)
        self.peer_dialect = self.dialect
        self._init_read_side(eps, {s: getattr(eps[s], "guest", None) or NullGuest()
                                   for s in SIDES}, None)
        self.finished = False

    def outcome(self) -> str:
        running = [s for s in SIDES if self.eps[s].run_state == "running"]
        in_colo = [s for s in SIDES if self.eps[s].colo_mode != "none"]
        if len(in_colo) == 2:
            return "ok"
        return "split-brain" if len(running) == 2 else ("failover" if running else "error")

    def apply_input(self, *_a, **_k):
        raise LiveError("a live session takes operator commands, not simulator inputs")

    check_fault = apply_input


class LiveController:
    """What `Controller` offers, for a live source (see the module docstring)."""

    playback = True            # inputs go to the live peers, not into a re-runnable session
    forked = False
    forked_at = None
    replay_source = None

    def __init__(self, source, *, on_event=None) -> None:
        self.source = source
        self.config = source.config
        self.sim = _LiveSim(self.config, source.eps)
        self.on_event = on_event
        self.inputs: list[dict] = []
        self._writer: rf.Writer | None = None
        self.recording_path: str | None = None
        source.start()

    # -- stepping: move what arrived into view ---------------------------------------
    @property
    def events(self) -> list[Event]:
        return self.sim.events

    @property
    def steps(self) -> int:
        return self.sim.steps

    @property
    def finished(self) -> bool:
        return self.source.done.is_set() and self.source.q.empty()

    live = True
    #: `step N` / `run` wait (bounded) for events still to come: the REPL sets it; the
    #: Textual app does not (its commands run on the UI's loop and must not block)
    wait_for_events = False

    def step(self, n: int = 1, wait_s: float = 0.0) -> list[Event]:
        """Move up to `n` arrived events into view; with `wait_s`, wait at most that
        long (in all) for events that have not arrived yet."""
        out: list[Event] = []
        deadline = time.monotonic() + wait_s
        for _ in range(max(0, n)):
            try:
                ev = self.source.q.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0 or self.source.done.is_set():
                    break
                try:
                    ev = self.source.q.get(timeout=left)
                except queue.Empty:
                    break
            ev.seq = len(self.sim.events)
            self.sim.events.append(ev)
            self.sim.steps += 1
            self.sim.now = max(self.sim.now, ev.t_ms)
            self.source.apply(ev)
            out.append(ev)
            if self._writer is not None:
                self._writer.event(ev)
            if self.on_event is not None:
                self.on_event(ev)
        self.sim.finished = self.finished
        return out

    def run(self, checkpoints: int | None = None, until: str | None = None,
            max_steps: int = 200_000) -> list[Event]:
        return self.step(max_steps)

    def back(self, n: int = 1) -> int:
        raise LiveError("a live session cannot step back: the peers have moved on "
                        "(record it, then open the recording to travel in time)")

    # -- operator commands --------------------------------------------------------------
    def _do(self, what: str, *args) -> None:
        self.inputs.append({"step": self.sim.steps, "cmd": what, "args": list(args)})
        self.source.command(what, *args)

    def checkpoint(self) -> None:
        self._do("checkpoint")

    def lost_heartbeat(self, side: str) -> None:
        self._do("lost-heartbeat", _side(side))

    def kill(self, side: str) -> None:
        self._do("kill", _side(side))

    def stall(self, side: str) -> None:
        self._do("stall", _side(side))

    def shutdown(self) -> None:
        self._do("shutdown")

    def set_checkpoint_delay(self, ms: int) -> None:
        self._do("set-delay", int(ms))

    def reprotect(self) -> None:
        raise LiveError("a live session cannot re-protect: that starts a new secondary "
                        "process and migrates to it (QEMU: docs/COLO-FT.txt); the simulator "
                        "can (`colo tui`, or a plan step reprotect@failover#N)")

    def add_fault(self, spec: str) -> None:
        raise LiveError("faults on live peers go through `colo proxy --fault SPEC` "
                        "(or use the simulator, which takes any fault at any time)")

    def faults(self) -> list[str]:
        return list(getattr(self.source, "faults", []))

    def clear_faults(self) -> None:
        raise LiveError("a live session has no fault plan to clear")

    def restart(self, **changes) -> None:
        raise LiveError("a live session is restarted from the command line")

    def load_replay(self, path: str, *, to_end: bool = False):
        raise LiveError("open recordings with `colo tui --replay FILE`")

    # -- recording ---------------------------------------------------------------------
    def record_start(self, path: str, *, force: bool = False) -> None:
        if self._writer is not None:
            raise LiveError(f"already recording to {self.recording_path}")
        header = rf.make_header(self.config, imported=True, source=self.source.name)
        self._writer = rf.Writer(path, header, [f"a live session ({self.source.name}); it "
                                                "replays as a playback, not a simulation"],
                                 force=force)
        for ev in self.sim.events:
            self._writer.event(ev)
        self.recording_path = path

    def record_stop(self) -> str | None:
        if self._writer is None:
            return None
        self._writer.close()
        path, self._writer, self.recording_path = self.recording_path, None, None
        return path

    def close(self) -> None:
        self.record_stop()
        self.source.stop()
        if not self.source.join():
            import sys
            print(f"colo: the {self.source.name} source did not stop within 5 s",
                  file=sys.stderr)

    # -- views -------------------------------------------------------------------------
    def status(self) -> dict:
        out = {s: self.sim.eps[s].status() | {"alive": self.sim.alive[s], "stalled": False}
               for s in SIDES}
        out.update(step=self.sim.steps, t_ms=self.sim.now, finished=self.finished,
                   outcome=self.sim.outcome() if self.finished else None,
                   dialect=self.config.dialect, mode=self.config.mode, seed=self.config.seed,
                   forked=False, recording=self.recording_path, invariants={},
                   live=self.source.name)
        return out

    def wire(self) -> list[dict]:
        return [{"dir": e.data.get("dir") or ("P>S" if e.side == "primary" else "S>P"),
                 "msg": e.data["msg"], "value": e.data.get("value", 0),
                 "hex": e.data.get("hex", ""), "seq": e.seq, "t": e.t_ms}
                for e in self.sim.events if e.kind == "send" and "msg" in e.data]


def make_live(args, config, on_event=None):
    """The live controller for --transport tcp / --proxy / --attach / --peer, or None."""
    from .live_sources import PeerFeed, ProxyFeed, QmpFeed, TcpPair
    if getattr(args, "peer", None):
        return LiveController(PeerFeed(config, args.peer), on_event=on_event)
    if getattr(args, "attach", None):
        return LiveController(QmpFeed(config, *args.attach), on_event=on_event)
    if getattr(args, "proxy", None):
        listen, connect = args.proxy
        return LiveController(ProxyFeed(config, listen, connect,
                                        getattr(args, "fault", None) or []), on_event=on_event)
    if getattr(args, "transport", "sim") == "tcp":
        return LiveController(TcpPair(config), on_event=on_event)
    return None


def _side(side: str) -> str:
    from .control import side_name
    return side_name(side)


class _Source:
    name = "live"

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.q: queue.Queue = queue.Queue(maxsize=200_000)
        self.done = threading.Event()
        self.ready = threading.Event()     # the source's loop takes commands
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self.t0 = time.monotonic()

    def put(self, ev: Event) -> None:
        try:
            self.q.put_nowait(ev)
        except queue.Full:      # the view fell far behind: drop, say so once
            if not getattr(self, "_dropped", False):
                self._dropped = True

    def now_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run()
        except Exception as exc:   # noqa: BLE001 - shown in the event stream, not a crash
            self.error = f"{type(exc).__name__}: {exc}"
            self.put(Event(self.now_ms(), "live", "error", {"message": self.error}))
        finally:
            self.done.set()

    def wait_ready(self, what: str, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until the background loop takes commands."""
        if not self.ready.wait(timeout_s) or self.done.is_set():
            raise ColoError(f"the {what} is not running" + (f": {self.error}"
                                                            if self.error else ""))

    def apply(self, ev: Event) -> None:
        """Update the per-side view from an event (sources with real endpoints skip)."""

    #: the source's event loop and its one task (`_run_task`), where it has them
    loop = None
    _task = None

    def stop(self) -> None:
        """Ask the source to end (from any thread): its task, if any, is cancelled."""
        self.done.set()
        loop, task = self.loop, self._task
        if loop is None or task is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:        # the loop closed meanwhile
            pass

    def _run_task(self, loop, coro) -> None:
        """Run `coro` as the source's task until it ends or stop() cancels it.  If
        stop() came before the task existed (it had nothing to cancel), the task
        is cancelled as it is created."""
        import asyncio
        self._task = loop.create_task(coro)
        if self.done.is_set():
            self._task.cancel()
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass

    def join(self, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) for the background thread to end; True if it did.

        The process must not exit while the thread still runs its loop: the
        interpreter tears down module state under a daemon thread that is inside
        uvloop or the page-diff core (without the GIL) and the process segfaults
        at exit (seen 1 run in 20 with `colo repl --transport tcp`)."""
        t = self._thread
        if t is None or t is threading.current_thread():
            return True
        t.join(timeout_s)
        return not t.is_alive()
