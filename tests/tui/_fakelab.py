"""A fake `colo lab` at the session seam: a live source that publishes what
colo_tui/lab/feed.py's LabFeed publishes (the proxy's control messages and
checkpoints, compare-channel packets and verdicts, QMP statuses and events) and
answers the same operator inputs, without QEMU.

Its fidelity is not assumed: tests/tui/_lab_contract.py holds what a lab
session must show and do, and runs on this fake (tests/tui/test_lab_tui.py)
and on the real lab (tests/qemu/test_lab_tui.py)."""
from __future__ import annotations

import queue
from dataclasses import replace

from colo_tui.session.live import _Source
from protocol.core import faults as fl
from protocol.core.events import make
from protocol.core.session import SIDES, ArmedFault, GuestView, SessionError, SideStatus
from tests._livestream import checkpoint_events

BEAT_S = 0.05           # the fake pair's pace: one echo round per beat
MAX_BEATS = 4000        # bounded: a forgotten fake stops producing
FLOW_OUT = "10.0.2.15:7>10.0.2.2:40000"
FLOW_IN = "10.0.2.2:40000>10.0.2.15:7"


class FakeLab(_Source):
    name = "lab"
    fails_over = True

    def __init__(self, config) -> None:
        super().__init__(config)
        self.hint = "a fake lab"
        self.st = {s: SideStatus(role=s, state="IDLE", run_state="running", migration="colo",
                                 colo_mode=s) for s in SIDES}
        self.checkpoint = 0
        self.n = {c: 0 for c in fl.CHANNEL_POINTS}
        self.tcp_seq = 1000
        self.faults: list[tuple[str, fl.Fault, int]] = []   # (spec, fault, at data #)
        self.data_seen = {c: 0 for c in fl.CHANNEL_POINTS}
        self.fired: set[int] = set()
        self.commands: queue.Queue = queue.Queue()
        self.beats = 0

    def sides(self):
        return tuple(self.st[s] for s in SIDES)

    def snapshot(self, events, *, fresh=False):
        from protocol.core.session import Published
        client = f"client {self.beats}/{self.beats}, rtt 1 ms, max gap 0.1 s"
        return Published(tuple(events), self.sides(), (
            GuestView(kind="lab", heat_label="a fake guest", packets=client, disk="fake",
                      screen="COLO-LAB READY"),
            GuestView(kind="lab", heat_label="a fake guest", packets="compare ✓1 ✗0, 0 unpaired",
                      disk="fake", screen="")))

    # -- the pair ---------------------------------------------------------------------
    def run(self) -> None:
        self.put(make(0.0, "link", "listening", listen="127.0.0.1:1", connect="127.0.0.1:2"))
        self.put(make(self.now_ms(), "secondary", "send", msg="checkpoint-ready", value=0,
                      dir="S>P", n=1))
        self.ready.set()
        while not self.done.is_set() and self.beats < MAX_BEATS:
            try:
                what, args, reply = self.commands.get(timeout=BEAT_S)
            except queue.Empty:
                self._beat()
                continue
            try:
                self._command(what, args)
                reply.put(None)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                reply.put(exc)

    def _packet(self, channel: str, side: str, *, data: bool = True) -> tuple[list, bool]:
        self.n[channel] += 1
        n = self.n[channel]
        fields = {"channel": channel, "n": n, "proto": "tcp", "length": 74,
                  "flow": FLOW_IN if channel == "mirror" else FLOW_OUT,
                  "tcp_seq": self.tcp_seq, "tcp_ack": 1, "flags": "PA",
                  "payload_len": 20 if data else None}
        out, hit = [], False
        if data:
            self.data_seen[channel] += 1
            for i, (_spec, f, at) in enumerate(self.faults):
                if f.point == channel and at == self.data_seen[channel] and i not in self.fired:
                    self.fired.add(i)
                    hit = f.kind in ("corrupt", "drop")
                    fired = str(replace(f, checkpoint=at))
                    fields.update(fault=fired, copies=0 if f.kind == "drop" else 1)
                    out.append(make(self.now_ms(), "link", "fault", spec=fired,
                                    point=channel, n=n))
        out.append(make(self.now_ms(), side, "packet", **fields))
        return out, hit

    def _beat(self) -> None:
        self.beats += 1
        if not self.st["primary"].alive:
            return
        evs, _ = self._packet("mirror", "primary")
        p, p_hit = self._packet("primary-in", "primary")
        s, s_hit = self._packet("compare-in", "secondary")
        differs = p_hit or s_hit
        evs += p + s
        if differs:                    # colo-compare asks for a checkpoint at once
            evs += self._checkpoint_events()
        o, _ = self._packet("compare-out", "primary")
        evs += o
        evs.append(make(self.now_ms(), "primary", "verdict", flow=FLOW_OUT,
                        tcp_seq=self.tcp_seq, length=20,
                        verdict="mismatch" if differs else "match",
                        primary_n=self.n["primary-in"], secondary_n=self.n["compare-in"],
                        out_n=self.n["compare-out"], held_ms=1.0,
                        forced_checkpoint=self.checkpoint if differs else None))
        self.tcp_seq += 20
        if self.beats % 10 == 0:
            evs += self._checkpoint_events()
        self.publish(evs)

    def _checkpoint_events(self) -> list:
        if not self.st["secondary"].alive or self.st["secondary"].colo_mode != "secondary":
            return []
        self.checkpoint += 1
        n, t = self.checkpoint, self.now_ms()
        evs = checkpoint_events(n, t)
        for s in SIDES:
            self.st[s] = replace(self.st[s], checkpoint=n)
        return evs

    # -- inputs --------------------------------------------------------------------------
    def command(self, what: str, *args) -> None:
        if what not in ("kill", "stall", "lost-heartbeat", "failover", "checkpoint",
                        "set-delay"):
            raise SessionError(f"the lab cannot {what!r}")
        self._call(what, args)

    def _call(self, what, args) -> None:
        reply: queue.Queue = queue.Queue()
        self.commands.put((what, args, reply))
        exc = reply.get(timeout=10)
        if exc is not None:
            raise exc

    def _command(self, what: str, args) -> None:
        t = self.now_ms()
        if what == "fault":
            spec, f = args
            self.faults.append((spec, f, self.data_seen[f.point] + f.checkpoint))
            self.put(make(t, "operator", "input", cmd="fault", spec=spec))
            return
        side = args[0] if args else "primary"
        if what in ("kill", "stall"):
            if not self.st[side].alive:
                raise SessionError(f"the {side} QEMU is not running")
            self.st[side] = replace(self.st[side], alive=what == "stall",
                                    stalled=what == "stall")
            self.put(make(t, side, "process", what="killed" if what == "kill" else "stalled",
                          why="operator"))
            peer = "secondary" if side == "primary" else "primary"
            if what == "kill" and self.st[peer].alive:
                # the real lab polls both sides after each command; the survivor's
                # status has moved (its VM runs on, still in COLO), so it shows: the
                # status that comes *before* the failover's
                self.put(make(t, peer, "status", run="running", migration="colo",
                              mode=peer, **{"last-mode": "none"}, reason="none"))
        elif what in ("lost-heartbeat", "failover"):
            if not self.st[side].alive:
                raise SessionError(f"the {side} QEMU is not running")
            cmds = (["nbd-server-stop", "x-colo-lost-heartbeat"] if side == "secondary"
                    else ["x-blockdev-change", "x-colo-lost-heartbeat"]) \
                if what == "failover" else ["x-colo-lost-heartbeat"]
            for cmd in cmds:
                self.put(make(t, "operator", "qmp", command=f"{cmd} ({side})"))
            self.st[side] = replace(self.st[side], colo_mode="none", last_mode=side,
                                    reason="request")
            self.put(make(t, side, "status", run="running", migration="completed",
                          mode="none", **{"last-mode": side}, reason="request"))
        elif what in ("checkpoint", "set-delay"):
            self.publish(self._checkpoint_events())

    def check_fault(self, f) -> None:
        if f.point not in fl.CHANNEL_POINTS:
            raise SessionError(f"{f}: the lab takes faults on its compare channels")

    def add_fault(self, spec: str) -> None:
        f = fl.parse(spec, channels=True)
        self.check_fault(f)
        self._call("fault", (str(f), f))

    def armed_faults(self):
        return tuple(ArmedFault(spec, i in self.fired)
                     for i, (spec, _f, _at) in enumerate(self.faults))

    def join(self, timeout_s: float = 5.0) -> bool:
        return super().join(timeout_s)
