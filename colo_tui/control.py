"""The one facade both UIs drive: a simulated session with stepping, inputs,
time travel, recording and replay.

Time travel re-runs the deterministic simulation from its config and the
operator inputs up to an earlier step; an input given after stepping back
forks the future (the inputs recorded after that point are dropped, and
``forked`` says so).
"""
from __future__ import annotations

from protocol.events import Event
from protocol.record import format as rf
from protocol.record.replay import rerun
from protocol.sim.config import SimConfig
from protocol.sim.core import SIDES, Simulation


class Controller:
    def __init__(self, config: SimConfig | None = None, *, on_event=None) -> None:
        self.config = config or SimConfig()
        self.on_event = on_event
        self.inputs: list[dict] = []
        self.forked_at: int | None = None
        self._future_inputs: list[dict] = []
        self._writer: rf.Writer | None = None
        self.recording_path: str | None = None
        self.replay_source: str | None = None
        self._playback = None          # an imported real capture: stepped, not simulated
        self._sim = None
        self.sim = self._new_sim()

    # -------------------------------------------------------------- sessions
    @property
    def sim(self):
        return self._sim

    @sim.setter
    def sim(self, new) -> None:
        """Replace the session (back, restart, replay).  A simulation is a web of
        reference cycles, and the guest model's RAM is mapped memory: with the
        relaxed GC of a `colo` process (protocol/memtune.py) a dropped one would
        keep its mappings for a long time, so it is collected now — a full
        collection costs less than the re-run that replaced it."""
        old, self._sim = self._sim, new
        if old is not None and any(hasattr(g, "ram") for g in
                                   (getattr(old, "guests", None) or {}).values()):
            del old
            import gc
            gc.collect()

    def _new_sim(self) -> Simulation:
        return Simulation(self.config, on_event=self._event)

    def _event(self, ev: Event) -> None:
        if self._writer is not None:
            self._writer.event(ev)
        if self.on_event is not None:
            self.on_event(ev)

    def restart(self, **changes) -> None:
        """New session (dialect, mode, seed, faults … changed); keeps nothing else."""
        data = self.config.to_dict()
        data.update(changes)
        config = SimConfig.from_dict(data)
        Simulation(config)                     # validate before changing anything
        self.record_stop()
        self._playback = None
        self.config = config
        self.inputs, self._future_inputs, self.forked_at = [], [], None
        self.sim = self._new_sim()

    @property
    def events(self) -> list[Event]:
        return self.sim.events

    @property
    def steps(self) -> int:
        return self.sim.steps

    @property
    def finished(self) -> bool:
        """The session ended and no recorded input is still to come."""
        return self.sim.finished and not self._future_inputs

    # -------------------------------------------------------------- stepping
    def step(self, n: int = 1) -> list[Event]:
        out: list[Event] = []
        for _ in range(max(0, n)):
            first = len(self.sim.events)
            self._replay_future_inputs()
            if self.sim.finished:
                out += self.sim.events[first:]      # inputs given after the end
                if not self._future_inputs:
                    break
                item = self._future_inputs[0]       # recorded later than the end: apply now
                self._apply({k: v for k, v in item.items() if k != "step"}, fork=False)
                self._future_inputs.pop(0)
                continue
            out += self.sim.step()
        return out

    def run(self, checkpoints: int | None = None, until: str | None = None,
            max_steps: int = 200_000) -> list[Event]:
        """Run N more checkpoints, until an event kind happens, or to the end."""
        start_ckpt = self.sim.eps["primary"].checkpoint
        first = len(self.sim.events)
        for _ in range(max_steps):
            if self.sim.finished:
                break
            new = self.step()
            if until is not None and any(e.kind == until or e.data.get("msg") == until
                                         for e in new):
                break
            if checkpoints is not None and \
                    self.sim.eps["primary"].checkpoint - start_ckpt >= checkpoints:
                break
        return self.sim.events[first:]

    def _replay_future_inputs(self) -> None:
        while self._future_inputs and self._future_inputs[0]["step"] <= self.sim.steps:
            item = self._future_inputs.pop(0)
            self._apply({k: v for k, v in item.items() if k != "step"}, fork=False)

    # ----------------------------------------------------------- time travel
    def back(self, n: int = 1) -> int:
        """Step back n steps by re-running the session; returns the new step."""
        if self._writer is not None:
            raise ValueError("stop recording before stepping back (a recording is one "
                             "timeline; `record stop`, then `back`)")
        target = max(0, self.sim.steps - max(0, n))
        if self._playback is not None:
            from protocol.record.playback import Playback
            self.sim = Playback(self._playback)
            self.sim.run(target)
            self.sim.on_event = self._event
            return self.sim.steps
        keep = [i for i in self.inputs if i["step"] <= target]
        later = [i for i in self.inputs if i["step"] > target]
        self._future_inputs = later + self._future_inputs
        self.inputs = keep
        writer, self._writer = self._writer, None
        self.sim = rerun(config=self.config, inputs=keep, until_step=target,
                         on_event=None)
        self.sim.on_event = self._event
        self._writer = writer
        return self.sim.steps

    @property
    def playback(self) -> bool:
        """True while stepping through an imported real capture (no inputs)."""
        return self._playback is not None

    @property
    def forked(self) -> bool:
        return self.forked_at is not None

    # ---------------------------------------------------------------- inputs
    def _apply(self, item: dict, fork: bool = True) -> None:
        if self._playback is not None:
            raise ValueError("this is an imported real session: it can be stepped through "
                             "(step, run, back), not changed; `set seed` starts a simulation")
        if fork and self._future_inputs:
            self.forked_at = self.sim.steps
            self._future_inputs = []
        self.sim.apply_input(item)
        self.inputs.append({"step": self.sim.steps, **item})
        if self._writer is not None:
            self._writer.input(item, self.sim.steps)

    def checkpoint(self) -> None:
        self._apply({"cmd": "checkpoint"})

    def lost_heartbeat(self, side: str) -> None:
        self._apply({"cmd": "lost-heartbeat", "side": _side(side)})

    def kill(self, side: str) -> None:
        self._apply({"cmd": "kill", "side": _side(side)})

    def stall(self, side: str) -> None:
        self._apply({"cmd": "stall", "side": _side(side)})

    def shutdown(self) -> None:
        self._apply({"cmd": "shutdown"})

    def reprotect(self) -> None:
        """Resume COLO after a failover: a new secondary, a fresh initial migration from
        the survivor (protocol/sim/reprotect.py); ReprotectError says why it cannot."""
        self._apply({"cmd": "reprotect"})

    def set_checkpoint_delay(self, ms: int) -> None:
        self._apply({"cmd": "set-delay", "value": int(ms)})

    def add_fault(self, spec: str) -> None:
        from protocol import faults
        self.sim.check_fault(faults.parse(spec))   # FaultSpecError names what is valid
        self._apply({"cmd": "fault", "value": spec})

    def faults(self) -> list[str]:
        return [str(f) for f in self.sim.faults]

    def clear_faults(self) -> None:
        """Unfired faults are forgotten (a new session keeps none)."""
        self.restart(faults=[])

    # ------------------------------------------------------------ recording
    def record_start(self, path: str, *, force: bool = False) -> None:
        if self._writer is not None:
            raise ValueError(f"already recording to {self.recording_path}")
        if self._playback is not None:
            # an imported capture plays back: its recording is the same playback
            # (its header keeps `imported` and the capture's facts), not a simulation
            header = dict(self._playback.header)
            note = f"re-recorded from {self.replay_source} (a playback of a real capture)"
        else:
            header = rf.make_header(self.config)
            note = f"recorded interactively; seed {self.config.seed}"
        writer = rf.Writer(path, header, [note], force=force)
        for item in self.inputs:
            writer.input(item, item["step"])
        for ev in self.sim.events:
            writer.event(ev)
        self._writer, self.recording_path = writer, path

    def record_stop(self) -> str | None:
        """Write the `stop` trailer and close the recording; its path, or None."""
        writer, path = self._writer, self.recording_path
        if writer is None:
            return None
        self._writer, self.recording_path = None, None     # once, even if a write fails
        writer.close(stop_step=self.sim.steps)             # the stop line, then the digest
        return path

    def close(self) -> None:
        """The session ends (quit, signal, crash): a recording in progress is completed."""
        self.record_stop()

    def load_replay(self, path: str, *, to_end: bool = False) -> rf.Recording:
        """Open a recording: the session restarts from its header; its inputs are
        re-applied at their steps as you step (or all at once with to_end)."""
        rec = rf.read(path)
        self.record_stop()
        self.inputs, self.forked_at = [], None
        self.replay_source = path
        if rec.header.get("imported"):
            from protocol.record.playback import Playback
            self._playback = rec
            self._future_inputs = []
            self.sim = Playback(rec, on_event=self._event)
            self.config = self.sim.cfg
            if to_end:
                self.run()
            return rec
        self._playback = None
        self.config = rec.config
        self._future_inputs = sorted(rec.inputs, key=lambda i: i["step"])
        self.sim = self._new_sim()
        if to_end:
            self.run()
        return rec

    # ----------------------------------------------------------------- views
    def status(self) -> dict:
        sim = self.sim
        out = {s: sim.eps[s].status() | {"alive": sim.alive[s], "stalled": sim.stalled[s]}
               for s in SIDES}
        out.update(step=sim.steps, t_ms=sim.now, finished=sim.finished,
                   outcome=sim.outcome() if sim.finished else None,
                   dialect=self.config.dialect, mode=self.config.mode,
                   seed=self.config.seed, forked=self.forked,
                   recording=self.recording_path,
                   invariants=dict(sim.invariants.ok))
        return out

    def wire(self) -> list[dict]:
        """The control messages in the order they were sent."""
        out = []
        for e in self.sim.events:
            if e.kind == "send":
                out.append({"dir": "P>S" if e.side == "primary" else "S>P",
                            "msg": e.data["msg"], "value": e.data["value"],
                            "hex": e.data["hex"], "seq": e.seq, "t": e.t_ms})
        return out


def side_name(side: str) -> str:
    """``p``, ``prim``, ``secondary`` … → the side's full name (ValueError otherwise)."""
    s = side.strip().lower()
    for name in SIDES:
        if name.startswith(s) and s:
            return name
    raise ValueError(f"side must be primary or secondary, not {side!r}")


_side = side_name
