"""The one facade both UIs drive, over any session (protocol.core.session.Session).

A session is the simulator, the playback of a recording or imported capture,
or a live source (colo_tui.session.live).  The Controller adds what belongs to the
operator rather than to the session: stepping N at a time, recording,
replaying, restarting with other settings and time travel — each where the
session's `Capabilities` allow it.

Time travel re-runs the deterministic simulation from its config and the
operator inputs up to an earlier step; an input given after stepping back
forks the future (the inputs recorded after that point are dropped, and
``forked`` says so).  A playback steps back by re-reading its recording.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from colo_tui.session.options import INTERACTIVE_MAX_CHECKPOINTS, LENGTH_BOUND_TEXT
from protocol.core.events import Event
from protocol.core.session import (
    SIDES,
    GuestReport,
    GuestView,
    Input,
    Session,
    SessionError,
    SideStatus,
    wire_of,
)
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation

if TYPE_CHECKING:                   # recordings are imported when one is saved or read
    from protocol.record import format as rf

#: why a live session cannot do what a simulation can
_LIVE_REFUSES = {
    "back": "a live session cannot step back: the peers have moved on (record it, then "
            "open the recording to travel in time)",
    "restart": "a live session is restarted from the command line",
    "load_replay": "open recordings with `colo tui --replay FILE`",
    "clear_faults": "a live session keeps the faults it started with (--fault): start it "
                    "again without them",
}


def live_refusal(what: str) -> str:
    """Why a live session cannot do `what` (back, restart, load_replay, clear_faults)."""
    return _LIVE_REFUSES[what]


class SessionEnded(SessionError):
    """An operator input given after a simulated session has ended, refused: stepping
    stops at the end, so its consequences could never be stepped to (a checkpoint's
    request stayed in flight for good, a kill played a whole failover past the end).

    ``still`` names what still works: ``back`` (an input given there forks the
    future), ``reprotect`` (after a failover) and ``new`` (a new session).  The
    message says them in the commands' words (the REPL, the palette); a front end
    with other words for them (the TUI's keys) says them with ``say(words)``."""

    #: what still works, in the words of the commands (the REPL and the palette)
    COMMANDS = {"back": "back [N] = step back (an input there forks the future)",
                "reprotect": "reprotect = COLO again",
                "new": "set seed S = a new session"}

    def __init__(self, outcome: str, still: tuple[str, ...]) -> None:
        self.outcome, self.still = outcome, still
        super().__init__(self.say(self.COMMANDS))

    def say(self, words: dict[str, str]) -> str:
        return f"the session has ended ({self.outcome}); " + self.ways(words)

    def ways(self, words: dict[str, str] | None = None) -> str:
        """What still works, alone (`step`/`run` at the end say it after where they are)."""
        return ", ".join((words or self.COMMANDS)[s] for s in self.still)


class Controller:
    #: `step N` / `run` wait (bounded) for events still to come in a live session: the
    #: REPL sets it; the Textual app does not (its commands run on the UI's loop)
    wait_for_events = False

    def __init__(self, config: SimConfig | None = None, *, on_event=None,
                 session: Session | None = None,
                 max_checkpoints: int | None = INTERACTIVE_MAX_CHECKPOINTS) -> None:
        #: the longest simulated session this controller starts (None: no bound, for a
        #: benchmark that runs at full speed for a while and keeps no more than that)
        self.max_checkpoints = max_checkpoints
        self.on_event = on_event
        self.inputs: list[dict] = []
        self.forked_at: int | None = None
        self._future_inputs: list[dict] = []
        self._writer: rf.Writer | None = None
        #: a live session writes the recording itself, as events arrive (not here)
        self._written_on_arrival = False
        self.recording_path: str | None = None
        self.recording_note: str | None = None
        #: a write of the recording failed (a full disk): what to tell the user, once
        self.recording_failure: str | None = None
        self.replay_source: str | None = None
        self._session: Session | None = None
        if session is not None:
            self.config = session.config
            self.session = session
        else:
            self.config = config or SimConfig()
            self.session = self._new_sim()

    # -------------------------------------------------------------- sessions
    @property
    def session(self) -> Session:
        return self._session

    @session.setter
    def session(self, new: Session) -> None:
        """Replace the session (back, restart, replay).  A simulation is a web of
        reference cycles, and the guest model's RAM is mapped memory: with the
        relaxed GC of a `colo` process (protocol/drivers/memtune.py) a dropped one would
        keep its mappings for a long time, so it is collected now — a full
        collection costs less than the re-run that replaced it."""
        old, self._session = self._session, new
        new.on_event = self._event
        if old is not None and old is not new:
            heavy = old.guest("primary").kind == "model"
            old.close()
            del old
            if heavy:
                import gc
                gc.collect()

    @property
    def capabilities(self):
        return self.session.capabilities

    @property
    def live(self) -> bool:
        return self.session.capabilities.is_live

    @property
    def playback(self) -> bool:
        """True while stepping through a session whose past cannot be changed (an
        imported capture, live peers)."""
        caps = self.session.capabilities
        return caps.is_live or not caps.takes_inputs

    @property
    def hint(self) -> str:
        return self.session.hint

    def waiting(self) -> int:
        """A live session's events that have arrived and wait for the view (0 else)."""
        return self.session.waiting() if self.live else 0

    def _new_sim(self) -> Simulation:
        sim = Simulation(self.config, on_event=self._event)
        self._check_length(sim.target)
        return sim

    def _check_length(self, checkpoints: int) -> None:
        """Refuse a simulated session that would run past ``max_checkpoints`` (its
        length, or a fault planned beyond it, which lengthens it to reach the fault)."""
        if self.max_checkpoints is not None and checkpoints > self.max_checkpoints:
            raise SessionError(f"this session would run to checkpoint {checkpoints:,}: "
                               f"{LENGTH_BOUND_TEXT}")

    def after_the_end(self) -> tuple[str, ...]:
        """What still works once a session that takes inputs has ended (SessionEnded):
        a re-protect only when it would be taken (not when the old side still lives)."""
        failover = (self.session.outcome() == "failover"
                    and self.reprotect_refusal() is None)
        still = ("back", "reprotect", "new") if failover else ("back", "new")
        if self.recording_path is not None:     # back is refused while recording
            still = still[1:]
        return still

    def end_refusal(self) -> SessionEnded | None:
        """The SessionEnded an input would be refused with now (None: it is taken)."""
        s = self.session
        if s.finished and not self.live and s.capabilities.takes_inputs:
            return SessionEnded(s.outcome(), self.after_the_end())
        return None

    def refuse_after_the_end(self) -> None:
        """Raise SessionEnded if the simulated session has ended: an input given now
        would never be seen to happen (re-protect after a failover is not an input of
        this kind: it starts COLO again).  A live session, and a playback, which
        takes no inputs, are left to their own refusals."""
        refusal = self.end_refusal()
        if refusal is not None:
            raise refusal

    def _refuse_live(self, what: str) -> None:
        if self.live:
            raise SessionError(_LIVE_REFUSES[what])

    def _event(self, ev: Event) -> None:
        if self._writer is not None and not self._written_on_arrival:
            try:
                self._writer.event(ev)
            except OSError as exc:      # not out through the simulator, mid-step
                self._recording_failed(exc)
        if self.on_event is not None:
            self.on_event(ev)

    def _recording_failed(self, exc: OSError) -> None:
        """A write of the recording failed: it ends there (cut, readable up to its last
        whole line) and the session goes on; `recording_failure` says so."""
        writer, path = self._writer, self.recording_path
        self._writer, self.recording_path = None, None
        self._stop_arrivals(path)
        import contextlib

        from protocol.errors import ColoError
        with contextlib.suppress(OSError, ColoError):
            writer.close()
        self.recording_failure = (f"recording stopped at step {self.session.steps} (it "
                                  f"holds the session up to there): {exc.strerror or exc}: "
                                  f"{path}")

    def _stop_arrivals(self, path: str | None) -> None:
        """The recording at `path` ends: a live session stops writing it, and the event
        window notes its range (the seq of its last event; None: not written on
        arrival), for what a dropped event's view says keeps it."""
        last = None
        if self._written_on_arrival:
            self._written_on_arrival = False
            last = self.session.stop_recording()
        noted = getattr(self.session.events, "recording_stopped", None)
        if noted is not None:
            noted(path, last)

    def _poll_write_failure(self) -> None:
        """A live session's write of the recording failed (on its thread): the
        recording ends there, as `_recording_failed` says."""
        if self._written_on_arrival:
            failed = self.session.take_write_failure()
            if failed is not None and failed[0] is self._writer:
                self._recording_failed(failed[1])

    def take_recording_failure(self) -> str | None:
        """What a failed write of the recording tells the user (once), or None."""
        self._poll_write_failure()
        failure, self.recording_failure = self.recording_failure, None
        return failure

    def take_gap_notice(self) -> str | None:
        """What a live view says, once, on reaching events it did not show (it fell a
        full queue behind the peers), or None."""
        take = getattr(self.session, "take_gap_notice", None)
        return take() if take is not None else None

    def restart(self, **changes) -> None:
        """New session (dialect, mode, seed, faults … changed); keeps nothing else."""
        self._refuse_live("restart")
        data = self.config.to_dict()
        data.update(changes)
        config = SimConfig.from_dict(data)
        self._check_length(Simulation(config).target)   # validate before changing anything
        self.record_stop()
        self.replay_source = None
        self.config = config
        self.inputs, self._future_inputs, self.forked_at = [], [], None
        self.session = self._new_sim()

    @property
    def events(self) -> list[Event]:
        return self.session.events

    @property
    def steps(self) -> int:
        return self.session.steps

    @property
    def finished(self) -> bool:
        """The session ended and no recorded input is still to come."""
        return self.session.finished and not self._future_inputs

    # -------------------------------------------------------------- stepping
    def step(self, n: int = 1, wait_s: float = 0.0) -> list[Event]:
        """Up to `n` steps.  A live session moves arrived events into view; with
        `wait_s` it waits at most that long (in all) for events still to come."""
        if self.live:
            return self._step_live(n, wait_s)
        s = self.session
        out: list[Event] = []
        for _ in range(max(0, n)):
            first = len(s.events)
            self._replay_future_inputs()
            if s.finished:
                out += s.events[first:]      # inputs given after the end
                if not self._future_inputs:
                    break
                item = self._future_inputs[0]       # recorded later than the end: apply now
                self._apply({k: v for k, v in item.items() if k != "step"}, fork=False)
                self._future_inputs.pop(0)
                continue
            out += s.step()
        return out

    def _step_live(self, n: int, wait_s: float) -> list[Event]:
        s = self.session
        out: list[Event] = []
        deadline = time.monotonic() + wait_s
        while len(out) < max(0, n):
            new = s.step()
            if new:
                out += new
                continue
            left = deadline - time.monotonic()
            if left <= 0 or s.finished or not s.wait(left):
                break
        return out

    def run(self, checkpoints: int | None = None, until: str | None = None,
            max_steps: int = 200_000) -> list[Event]:
        """Run N more checkpoints, until an event kind happens, or to the end (a
        live session: what has arrived)."""
        if self.live:
            return self.step(max_steps)
        s = self.session
        start_ckpt = s.side("primary").checkpoint if checkpoints is not None else 0
        first = len(s.events)
        for _ in range(max_steps):
            if s.finished:
                break
            new = self.step()
            if until is not None and any(e.kind == until or getattr(e, "msg", None) == until
                                         for e in new):
                break
            if checkpoints is not None and \
                    s.side("primary").checkpoint - start_ckpt >= checkpoints:
                break
        return s.events[first:]

    def _replay_future_inputs(self) -> None:
        while self._future_inputs and self._future_inputs[0]["step"] <= self.session.steps:
            item = self._future_inputs.pop(0)
            self._apply({k: v for k, v in item.items() if k != "step"}, fork=False)

    # ----------------------------------------------------------- time travel
    def back(self, n: int = 1) -> int:
        """Step back n steps by re-running the session; returns the new step."""
        self._refuse_live("back")
        if self._writer is not None:
            raise ValueError("stop recording before stepping back (a recording is one "
                             "timeline): r in the TUI, `record stop` in the REPL")
        target = max(0, self.session.steps - max(0, n))
        if self.session.capabilities.plays_recording:
            self.session = self.session.rewound(target)
            return self.session.steps
        keep = [i for i in self.inputs if i["step"] <= target]
        later = [i for i in self.inputs if i["step"] > target]
        self._future_inputs = later + self._future_inputs
        self.inputs = keep
        writer, self._writer = self._writer, None
        from protocol.record.replay import rerun
        self.session = rerun(config=self.config, inputs=keep, until_step=target,
                             on_event=None)
        self._writer = writer
        return self.session.steps

    @property
    def forked(self) -> bool:
        return self.forked_at is not None

    # ---------------------------------------------------------------- inputs
    def _apply(self, item: dict, fork: bool = True) -> None:
        """An operator input (fork: given now, after the end it is refused), or a
        recorded one re-applied at its step (an old recording may hold one given
        after the end: it replays as it was)."""
        if fork and item["cmd"] != "reprotect":
            self.refuse_after_the_end()
        inp = Input(item["cmd"], item.get("side"), item.get("value"))
        if not self.live and fork and self._future_inputs:
            self.forked_at = self.session.steps
            self._future_inputs = []
        self.session.send(inp)             # a session that takes no inputs says why
        self.inputs.append({"step": self.session.steps, **item})
        if self._writer is not None and not self.live:
            try:
                self._writer.input(item, self.session.steps)
            except OSError as exc:
                self._recording_failed(exc)

    def checkpoint(self) -> None:
        self._apply({"cmd": "checkpoint"})

    def lost_heartbeat(self, side: str) -> None:
        self._apply({"cmd": "lost-heartbeat", "side": side_name(side)})

    def kill(self, side: str) -> None:
        self._apply({"cmd": "kill", "side": side_name(side)})

    def stall(self, side: str) -> None:
        self._apply({"cmd": "stall", "side": side_name(side)})

    def failover(self, side: str) -> None:
        """docs/COLO-FT.txt's failover onto `side` (a real pair: `colo lab`)."""
        self._apply({"cmd": "failover", "side": side_name(side)})

    def shutdown(self) -> None:
        self._apply({"cmd": "shutdown"})

    def reprotect_refusal(self) -> str | None:
        """Why a re-protect given now would be refused (None: it would run, or the
        session is no simulation and says so itself): `protocol.sim.reprotect.why_not`,
        and once the session has ended, how to get where the side to kill can be."""
        sim = self.session
        if not isinstance(sim, Simulation):
            return None
        from protocol.sim.reprotect import stopped_old_side, why_not
        problem = why_not(sim)
        old = stopped_old_side(sim)
        if problem is None or not sim.finished or old is None:
            return problem
        if self.recording_path is None:     # back is refused while recording
            return (f"{problem} (the session has ended: go back before its end and kill "
                    f"the {old} there, then re-protect)")
        return f"{problem} (the session has ended: start again and kill the {old} before it ends)"

    def reprotect(self) -> None:
        """Resume COLO after a failover: a new secondary, a fresh initial migration from
        the survivor (protocol/sim/reprotect.py); ReprotectError says why it cannot."""
        problem = self.reprotect_refusal()
        if problem is not None:
            from protocol.sim.reprotect import ReprotectError
            raise ReprotectError(f"cannot re-protect: {problem}")
        self._apply({"cmd": "reprotect"})

    def set_checkpoint_delay(self, ms: int) -> None:
        self.refuse_after_the_end()                 # before the value's own checks
        from protocol.sim.config import check_checkpoint_delay
        check_checkpoint_delay(int(ms), "null")     # a uint32 (the guest model: below)
        self._apply({"cmd": "set-delay", "value": int(ms)})

    def add_fault(self, spec: str) -> None:
        self.refuse_after_the_end()                 # before the spec's own checks
        from protocol.core import faults
        # a compare-channel spec parses everywhere; only a session with those channels
        # (colo lab) takes it: check_fault says so
        f = faults.parse(spec, channels=True)
        self.session.check_fault(f)
        if f.point not in faults.MOMENTS:
            self._check_length(f.checkpoint)
        self._apply({"cmd": "fault", "value": spec})

    def faults(self) -> list[str]:
        return [f.spec for f in self.session.armed_faults()]

    def fired(self) -> set[int]:
        """The indexes (in faults()) of the faults that fired."""
        return {i for i, f in enumerate(self.session.armed_faults()) if f.fired}

    def clear_faults(self) -> None:
        """Unfired faults are forgotten (a new session keeps none)."""
        self._refuse_live("clear_faults")
        self.restart(faults=[])

    # ------------------------------------------------------------ recording
    def record_start(self, path: str, *, force: bool = False) -> None:
        if self._writer is not None:
            raise SessionError(f"already recording to {self.recording_path}")
        from protocol.record import format as rf
        s = self.session
        if self.live:
            header = rf.make_header(self.config, imported=True, source=s.name)
            note = f"a live session ({s.name}); it replays as a playback, not a simulation"
        elif s.capabilities.plays_recording:
            # an imported capture plays back: its recording is the same playback
            # (its header keeps `imported` and the capture's facts), not a simulation
            header = s.recording_header()
            note = f"re-recorded from {self.replay_source} (a playback of a real capture)"
        else:
            header = rf.make_header(self.config)
            note = f"recorded interactively; seed {self.config.seed}"
        writer = rf.Writer(path, header, [note], force=force)
        first = self.dropped
        if self.live:
            # the events still in memory or on their way, then each as it arrives
            first = s.record_to(writer)
            self._written_on_arrival = True
        else:
            for item in self.inputs:
                writer.input(item, item["step"])
            for ev in s.events:
                writer.event(ev)
        self._writer, self.recording_path = writer, path
        noted = getattr(s.events, "recording_started", None)
        if noted is not None:               # what a dropped event's view says keeps it
            noted(path, first)

    def record_stop(self) -> str | None:
        """Write the `stop` trailer and close the recording; its path, or None."""
        self._poll_write_failure()
        writer, path = self._writer, self.recording_path
        if writer is None:
            return None
        self._writer, self.recording_path = None, None     # once, even if a write fails
        self._stop_arrivals(path)
        if self.live:
            writer.close()
        else:
            writer.close(stop_step=self.session.steps)     # the stop line, then the digest
        #: what a reader with default limits would refuse in it (said with "saved")
        self.recording_note = writer.beyond_reader_limits()
        return path

    def close(self) -> None:
        """The session ends (quit, signal, crash): a recording in progress is completed,
        a live source is stopped."""
        self.record_stop()
        self.session.close()

    def load_replay(self, path: str, *, to_end: bool = False) -> rf.Recording:
        """Open a recording: the session restarts from its header; its inputs are
        re-applied at their steps as you step (or all at once with to_end)."""
        self._refuse_live("load_replay")
        from protocol.record import format as rf
        from protocol.record.playback import Playback
        rec = rf.read(path)
        self.record_stop()
        self.inputs, self.forked_at = [], None
        self.replay_source = path
        if rec.header.get("imported"):
            self._future_inputs = []
            self.session = Playback(rec)
            self.config = self.session.config
        else:
            self.config = rec.config
            self._future_inputs = sorted(rec.inputs, key=lambda i: i["step"])
            self.session = self._new_sim()
        if to_end:
            self.run()
        return rec

    # ----------------------------------------------------------------- views
    def side(self, side: str) -> SideStatus:
        return self.session.side(side)

    def guest(self, side: str) -> GuestView:
        return self.session.guest(side)

    def guest_report(self) -> GuestReport:
        return self.session.guest_report()

    def outcome(self) -> str:
        return self.session.outcome()

    def status(self) -> dict:
        s = self.session
        out = {side: s.side(side).as_dict() for side in SIDES}
        finished = s.finished
        out.update(step=s.steps, t_ms=s.now, finished=finished,
                   outcome=s.outcome() if finished else None,
                   dialect=self.config.dialect, mode=self.config.mode,
                   seed=self.config.seed, forked=self.forked,
                   recording=self.recording_path, invariants=dict(s.checks()),
                   # a simulation's seed means something; live peers and a real
                   # capture's playback have none (their config's is a default)
                   seeded=not (self.live or s.capabilities.plays_recording),
                   # a real capture's mode is its header's default, not what it shows:
                   # it is not claimed (`mode` stays for the readers that name it)
                   mode_known=not s.capabilities.plays_recording,
                   # the simulator's invariants are checked on a simulation only
                   invariants_checked=s.capabilities.checks_invariants)
        if self.live:
            out["live"] = s.name
            # a live session keeps its latest events: how many older ones it dropped
            out["dropped"] = self.dropped
            for key in getattr(s, "unknown_settings", ()):
                out[key] = "unknown"        # the peers' own, not this session's option
        return out

    @property
    def dropped(self) -> int:
        """How many of the oldest events were dropped from memory (a long live session)."""
        return getattr(self.session.events, "dropped", 0)

    def wire(self) -> list[dict]:
        """The control messages in the order they were sent."""
        return [w.as_dict() for w in wire_of(self.session.events)]


def side_name(side: str) -> str:
    """``p``, ``prim``, ``secondary`` … → the side's full name (ValueError otherwise)."""
    s = side.strip().lower()
    for name in SIDES:
        if name.startswith(s) and s:
            return name
    raise ValueError(f"side must be primary or secondary, not {side!r}")


_side = side_name
