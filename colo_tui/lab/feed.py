"""`colo lab` as a live session (colo_tui.session.live): the TUI and the REPL read the
real pair through the one session interface, like any other source.

The lab runs on the source's own thread and asyncio loop: the two QEMUs
(pair.py), the testbed's decoding proxy on the migration channel (its events:
the control messages, RAM parts, device state, checkpoints), the relays on
colo-compare's four chardev channels (a `packet` event per frame that carries
data or opens/closes a connection, a `verdict` event per primary TCP data
packet once colo-compare has released it), both QEMUs' QMP events and polled
statuses, and a paced echo client whose counters are the client's view.

Operator inputs: kill (SIGKILL) / stall (SIGSTOP) either QEMU, x-colo-lost-
heartbeat on either side, docs/COLO-FT.txt's failover onto either side, a
checkpoint now and x-checkpoint-delay (migrate-set-parameters), and faults on
the compare channels (the one fault grammar: drop|delay=MS|corrupt|duplicate
@mirror|primary-in|compare-in|compare-out#N, N the channel's Nth TCP data
packet from the moment it is armed).

Stopping the source (quit, a signal, a crash of the UI) stops the client, both
QEMUs, the relays, the proxy and the network namespace, and removes the work
directory unless it is kept."""
from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from colo_tui.lab import LabError
from colo_tui.lab import operator as op
from colo_tui.session.live import _Source
from colo_tui.session.live_sources import _qmp_event
from protocol.core import dialects
from protocol.core import faults as fl
from protocol.core.events import Checkpoint, Event, make
from protocol.core.failover import COMPLETED, NONE
from protocol.core.session import SIDES, ArmedFault, GuestView, Published, SessionError
from protocol.errors import ColoError
from protocol.net import netcompare as nc

#: who sends on each channel (the side a packet event belongs to)
SENDER = {"mirror": "primary", "primary-in": "primary", "compare-in": "secondary",
          "compare-out": "primary"}
TICK_S = 0.25
POLL_S = 0.5
#: a primary packet colo-compare has not released after this long gets its verdict
#: without a compare-out partner (it may never come: a dropped packet, a dead side)
VERDICT_WAIT_S = 8.0
DATA_WINDOW = 4000           # data packets kept for pairing (bounded)
#: a lab left open for a day: the QMP events the session has taken go from the pair's
#: list once this many have been taken, and the checkpoint times older than every
#: packet kept for pairing go once more than this many are kept
QMP_TAKEN_MAX = 4096
MAX_CHECKPOINT_TIMES = 8192
COMMAND_WAIT_S = 30.0
GUEST_WAIT_S = 180.0


@dataclass
class LabSettings:
    checkpoint_delay_ms: int = 10000
    net: str = "user"
    faults: list = field(default_factory=list)     # protocol.core.faults.Fault, channels
    client_every_s: float = 0.5
    keep: bool = False
    work: Path | None = None        # None: a new temporary directory
    capture: Path | None = None     # dumpcap of the migration and compare channels


@dataclass
class _Qmp:
    """One side as its QMP says (the source thread's own)."""

    run: str | None = None
    migration: str | None = None
    colo: dict = field(default_factory=dict)
    alive: bool = True
    stalled: bool = False


class LabFeed(_Source):
    name = "lab"
    fails_over = True

    def __init__(self, config, settings: LabSettings) -> None:
        super().__init__(config)
        from protocol.record.playback import CaptureTracker
        self.settings = settings
        self.dialect = dialects.get("qemu")
        self.tracker = CaptureTracker(self.dialect)
        self.views = {s: _Qmp() for s in SIDES}
        self.hint = ("starting the lab (the guest, two QEMUs, COLO; 30-120 s under TCG): "
                     "space follows the events as they come")
        self.pair = None
        self.proxy = None
        self.client = None
        self.capture = None
        self.work: Path | None = None
        self._cps: list[tuple[float, int]] = []     # (wall time, n) of checkpoint requests
        self._data: collections.deque = collections.deque(maxlen=DATA_WINDOW)
        self._judged: set[int] = set()              # primary-in numbers with a verdict
        self._qmp_seen = {s: 0 for s in SIDES}
        self._verdicts: dict[str, int] = {}
        self._armed: tuple[ArmedFault, ...] = tuple(ArmedFault(str(f), False)
                                                    for f in settings.faults)
        self._faults: list[tuple[str, object, str]] = []   # (shown spec, relay, fault)
        self._serial = {s: "" for s in SIDES}
        self._serial_at = 0.0

    # -- snapshots (the source's thread) ---------------------------------------------------
    def sides(self):
        out = []
        for s in SIDES:
            base, q = self.tracker.side(s), self.views[s]
            cs = q.colo or {}
            done = cs.get("mode") == "none" and cs.get("last-mode", "none") != "none"
            fo = COMPLETED if done else NONE
            out.append(replace(
                base, run_state=q.run or base.run_state,
                migration=q.migration or base.migration,
                colo_mode=cs.get("mode", base.colo_mode),
                last_mode=cs.get("last-mode", base.last_mode),
                reason=cs.get("reason", base.reason), failover=fo,
                failover_state=self.dialect.failover_name(fo),
                checkpoint_delay_ms=self.settings.checkpoint_delay_ms,
                alive=q.alive, stalled=q.stalled))
        return tuple(out)

    def snapshot(self, events: tuple, *, fresh: bool = False) -> Published:
        return Published(tuple(events), self.sides(), self._lab_guests())

    def _lab_guests(self) -> tuple[GuestView, GuestView]:
        """The side panels: the client's view on the primary's (it talks through the
        primary's netdev), colo-compare's verdicts on the secondary's (the packets its
        guest sent were compared), each guest's serial console's last line.  Once the
        secondary has taken over, the client's answers come from it: the client's view
        moves to its panel (the dead primary's shows no guest rows), so what a failover
        cost the client (its longest gap, a broken connection) stays in sight."""
        client = self.client.view().line() if self.client is not None else \
            "client: starts once the guest answers"
        v = self._verdicts
        compare = (f"compare ✓{v.get('match', 0)} ✗{v.get('mismatch', 0)}, "
                   f"{v.get('no-secondary', 0)} unpaired")
        primary_packets, secondary_packets = client, compare
        if self._secondary_took_over():
            primary_packets = "client: answered by the secondary since its take-over"
            secondary_packets = f"{client}; {compare}"
        return (GuestView(kind="lab", heat_label="Linux, 128 MiB, TCG",
                          packets=primary_packets, disk="quorum + NBD replication",
                          screen=self._serial["primary"]),
                GuestView(kind="lab", heat_label="Linux, from checkpoints",
                          packets=secondary_packets, disk="replication: active/hidden",
                          screen=self._serial["secondary"]))

    def _secondary_took_over(self) -> bool:
        """The secondary's query-colo-status after a failover onto it (mode none,
        last-mode secondary), as QEMU 7.2 reports it."""
        cs = self.views["secondary"].colo or {}
        return cs.get("mode") == "none" and cs.get("last-mode") == "secondary"

    # -- the thread --------------------------------------------------------------------------
    def run(self) -> None:
        loop = self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._run_task(loop, self._lab_main())
        finally:
            loop.close()

    async def _lab_main(self) -> None:
        from colo_tui.lab.pair import Pair
        from protocol.drivers.proxy import Proxy
        s = self.settings
        from colo_tui.lab import workdir
        self.work = s.work or workdir.make(s.keep)
        try:
            self.pair = pair = Pair(self.work, s.checkpoint_delay_ms, s.faults, s.net)
            self._watch_packets()
            self.proxy = Proxy(("127.0.0.1", 0), ("127.0.0.1", pair.ports.migrate),
                               on_event=self._proxy_event)
            pair.migrate_via = await self.proxy.start()
            if s.capture is not None:
                from colo_tui.lab.capture import Capture, lab_ports
                self.capture = Capture(s.capture, lab_ports(pair.ports))
                await asyncio.to_thread(self.capture.start)
            tick = asyncio.ensure_future(self._ticking())
            try:
                await pair.start()
                self.put(Event(self.now_ms(), "live", "listening", {
                    "hint": f"COLO running: primary pid {pair.primary.proc.pid}, secondary "
                            f"pid {pair.secondary.proc.pid}, work directory {self.work}"}))
                self.ready.set()
                await self._start_client()
                await asyncio.Event().wait()       # until stop() cancels
            finally:
                tick.cancel()
        finally:
            await self._stop_all()

    async def _start_client(self) -> None:
        from colo_tui.lab.client import LabClient
        from colo_tui.lab.traffic import ready
        t0 = time.monotonic()
        # tries of at most ~12 s (colo-compare may hold an answer for its timeout plus a
        # checkpoint): a stop (cancel) never waits behind a long blocking one
        while not await asyncio.to_thread(ready, self.pair.addr("echo"),
                                          time.monotonic() + 12):
            if time.monotonic() - t0 > GUEST_WAIT_S:
                serial = (self.work / "primary.serial").read_text(errors="replace")[-400:]
                raise LabError(f"the guest's echo service did not answer within "
                               f"{GUEST_WAIT_S:.0f} s; its console ends with: {serial!r}")
        waited = time.monotonic() - t0
        self.put(Event(self.now_ms(), "live", "listening", {
            "hint": f"the guest's echo service answers ({waited:.1f} s after COLO); the "
                    f"client sends a line every {self.settings.client_every_s} s"}))
        self.pair.arm_faults()
        self.client = LabClient(self.pair.addr("echo"), self.settings.client_every_s,
                                on_break=self._client_broke)
        self.client.start()

    def _client_broke(self, why: str) -> None:      # the client's thread
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: self.put(Event(
                self.now_ms(), "client", "error",
                {"message": f"the client's connection broke: {why}"})))

    async def _stop_all(self) -> None:
        """Everything the lab started stops, each step bounded, whatever failed before."""
        if self.client is not None:
            await asyncio.to_thread(self.client.stop)    # cuts a request under way
        if self.pair is not None:
            for s in SIDES:
                if self.views[s].stalled:
                    op.resume(self.pair, s)
            try:
                await asyncio.wait_for(self.pair.close(), 60)
            except (TimeoutError, OSError, LabError):
                pass
        if self.proxy is not None:
            await self.proxy.close("the lab stopped")
        if self.capture is not None:
            await asyncio.to_thread(self.capture.stop)
        from colo_tui.lab import procs
        procs.reap_all()
        if self.work is not None and not self.settings.keep and self.settings.work is None:
            shutil.rmtree(self.work, ignore_errors=True)

    def join(self, timeout_s: float = 90.0) -> bool:
        """The lab needs longer than a TCP pair to stop (QMP quit, then SIGKILL)."""
        return super().join(max(timeout_s, 90.0))

    # -- what comes in ---------------------------------------------------------------------
    def _proxy_event(self, ev: Event) -> None:
        if type(ev) is Checkpoint and ev.phase == "begin" and ev.side == "primary":
            self._cps.append((time.time(), ev.n))
        self.tracker.apply(ev)
        self.put(replace(ev, t_ms=self.now_ms()))

    async def _ticking(self) -> None:
        last_poll = 0.0
        while True:
            self._take_packets()
            self._take_qmp_events()
            if time.monotonic() - last_poll >= POLL_S and self.pair is not None \
                    and self.pair.t_colo is not None:
                last_poll = time.monotonic()
                await self._poll()
                self._judge()
                self._read_serials()
                self.publish(())              # the client's counters move on their own
            await asyncio.sleep(TICK_S)       # the pace of the view, not a synchronisation

    def _watch_packets(self) -> None:
        """Each packet a relay logs is taken as it is logged (the relays run on this
        loop), not at the next tick: taken every TICK_S, a packet and the checkpoint
        its mismatch forced came into view in the wrong order (the checkpoint first,
        then the packet that forced it, up to 250 ms later)."""
        self.pair.packets.on_event = lambda _event: self._take_packets()

    def _take_packets(self) -> None:
        if self.pair is None:
            return
        log = self.pair.packets
        records, log.records = log.records, []
        out = []
        for r in records:
            if r.direction != ">":
                continue
            info = r.info
            if info.kind == "tcp" and r.payload and r.copies:
                self._data.append(nc.DataPacket(r.channel, r.n, r.t, info.flow, info.seq,
                                                r.payload))
            shown = bool(r.fault) or info.payload_len or info.kind not in ("tcp",) or \
                any(f in (info.flags or "") for f in "SFR")
            if not shown:          # a pure ACK: on the channel, not on the ladder
                continue
            t = self.now_ms()
            fields = {"channel": r.channel, "n": r.n, "proto": info.kind,
                      "length": info.length, "flow": info.flow or None,
                      "payload_len": info.payload_len or None, "note": info.note or None}
            if info.kind == "tcp":
                fields.update(tcp_seq=info.seq, tcp_ack=info.ack, flags=info.flags)
            if r.fault:
                fields.update(fault=r.fault, copies=r.copies)
                out.append(make(t, "link", "fault", spec=r.fault, point=r.channel, n=r.n))
            out.append(make(t, SENDER[r.channel], "packet", **fields))
        if out:
            self.publish(out)
        self._armed_update()

    def _judge(self) -> None:
        """colo-compare's verdicts on the primary's data packets it has released (or
        that waited longer than VERDICT_WAIT_S)."""
        if not self._data:
            return
        if len(self._cps) > MAX_CHECKPOINT_TIMES:    # bounded: a lab left open for a day
            # a verdict looks at the checkpoints after its packets: older ones go
            oldest = min(d.t for d in self._data)
            del self._cps[:bisect.bisect_left(self._cps, (oldest,))]
        times = [t for t, _n in self._cps]
        now = time.time()
        out = []
        sent_at = {d.n: d.t for d in self._data if d.channel == nc.PRIMARY_IN}
        for v in nc.verdicts(list(self._data), times):
            if v.primary_n in self._judged:
                continue
            if v.out_n is None and now - sent_at.get(v.primary_n, now) < VERDICT_WAIT_S:
                continue
            self._judged.add(v.primary_n)
            self._verdicts[v.verdict] = self._verdicts.get(v.verdict, 0) + 1
            forced = self._cps[v.checkpoint - 1][1] if v.checkpoint else None
            out.append(make(self.now_ms(), "primary", "verdict", flow=v.flow, tcp_seq=v.seq,
                            length=v.length, verdict=v.verdict, primary_n=v.primary_n,
                            secondary_n=v.secondary_n, out_n=v.out_n, held_ms=v.held_ms,
                            forced_checkpoint=forced,
                            first_difference=v.first_difference))
        if len(self._judged) > 4 * DATA_WINDOW:        # bounded: keep the recent ones
            keep = {d.n for d in self._data if d.channel == nc.PRIMARY_IN}
            self._judged &= keep
        if out:
            self.publish(out)

    def _take_qmp_events(self) -> None:
        if self.pair is None:
            return
        for s in SIDES:
            side = self.pair.primary if s == "primary" else self.pair.secondary
            if side is None:
                continue
            new = side.events[self._qmp_seen[s]:]
            self._qmp_seen[s] += len(new)
            for e in new:
                self.put(_qmp_event(self.now_ms(), s, e))
            if self._qmp_seen[s] >= QMP_TAKEN_MAX:    # bounded: a lab left open for a day
                del side.events[:self._qmp_seen[s]]     # taken: the session has them
                self._qmp_seen[s] = 0

    def _exited(self, s: str) -> None:
        """The side's QEMU has exited: said once, by whoever sees it first (the poller,
        or an operator's kill once the process is gone)."""
        q = self.views[s]
        side = self.pair.primary if s == "primary" else self.pair.secondary
        if not q.alive or side is None or side.proc.poll() is None:
            return
        q.alive = False
        self.put(make(self.now_ms(), s, "process", what="exit",
                      why=f"the QEMU exited with {side.proc.returncode}"))

    async def _poll(self) -> None:
        for s in SIDES:
            side = self.pair.primary if s == "primary" else self.pair.secondary
            q = self.views[s]
            if side is None or not q.alive:
                continue
            if side.proc.poll() is not None:
                self._exited(s)
                continue
            if q.stalled:
                continue
            try:
                st = (await side.ex("query-status", timeout=3)).get("status")
                mig = (await side.ex("query-migrate", timeout=3)).get("status")
                colo = await side.ex("query-colo-status", timeout=3)
            except (LabError, OSError, EOFError) as exc:
                q.run = "no answer"
                self.tracker.set_error(s, str(exc))
                continue
            if (st, mig, colo) != (q.run, q.migration, q.colo):
                q.run, q.migration, q.colo = st, mig, colo
                self.put(make(self.now_ms(), s, "status", run=st, migration=mig, **colo))

    def _read_serials(self) -> None:
        if time.monotonic() - self._serial_at < 1.0 or self.work is None:
            return
        self._serial_at = time.monotonic()
        for s in SIDES:
            try:
                with open(self.work / f"{s}.serial", "rb") as f:
                    f.seek(0, 2)
                    f.seek(max(0, f.tell() - 2048))
                    tail = f.read().decode(errors="replace")
            except OSError:
                continue
            lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
            self._serial[s] = lines[-1][:200] if lines else ""

    # -- operator inputs -------------------------------------------------------------------
    def command(self, what: str, *args) -> None:
        if what not in ("kill", "stall", "lost-heartbeat", "failover", "checkpoint",
                        "set-delay"):
            raise ColoError(f"the lab cannot {what!r} (it takes: kill, stall, heartbeat, "
                            "failover, checkpoint, set checkpoint-delay, fault)")
        self._on_loop(self._command(what, args))

    def _on_loop(self, coro) -> None:
        if not self.ready.is_set() or self.done.is_set():
            coro.close()
            raise ColoError("the lab is " + ("not running" + (f": {self.error}" if self.error
                                                            else "")
                                             if self.done.is_set() else
                                             "still starting: wait until COLO runs "
                                             "(`run until verdict` waits for it)"))
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            fut.result(COMMAND_WAIT_S)
        except concurrent.futures.TimeoutError:
            raise ColoError(f"the lab did not carry it out within {COMMAND_WAIT_S:.0f} s") \
                from None

    def _said(self, side: str, command: str, args) -> None:
        self.put(make(self.now_ms(), "operator", "qmp", command=f"{command} ({side})",
                      args=args))

    async def _command(self, what: str, args) -> None:
        pair = self.pair
        try:
            if what == "kill":
                side = args[0]
                # the kill before the exit it causes: the poller may see the exit while
                # the kill waits for the process, so the kill is said first
                op.running_side(pair, side)         # a dead QEMU: refused, nothing said
                self.put(make(self.now_ms(), side, "process", what="killed",
                              why="operator: SIGKILL"))
                await op.kill(pair, side)
                self._exited(side)
            elif what == "stall":
                op.stall(pair, args[0])
                self.views[args[0]].stalled = True
                self.put(make(self.now_ms(), args[0], "process", what="stalled",
                              why="operator: SIGSTOP"))
            elif what == "lost-heartbeat":
                await op.lost_heartbeat(pair, args[0], self._said)
            elif what == "failover":
                await op.failover(pair, args[0], self._said)
            elif what in ("checkpoint", "set-delay"):
                ms = int(args[0]) if what == "set-delay" else self.settings.checkpoint_delay_ms
                self._said("primary", "migrate-set-parameters", {"x-checkpoint-delay": ms})
                # QEMU 7.2 checkpoints at once when x-checkpoint-delay is set
                await pair.primary.ex("migrate-set-parameters", {"x-checkpoint-delay": ms})
                self.settings.checkpoint_delay_ms = ms
        except LabError as exc:
            self.put(make(self.now_ms(), "operator", "qmp-error", error=str(exc),
                          command=what))
            raise
        finally:
            await self._poll()
            self.publish((), fresh=True)

    # -- faults on the compare channels --------------------------------------------------------
    def check_fault(self, f) -> None:
        if f.point not in fl.CHANNEL_POINTS or f.kind not in fl.CHANNEL_KINDS:
            raise SessionError(
                f"{f}: the lab takes faults on its compare channels ("
                f"{'|'.join(fl.CHANNEL_KINDS)}@{'|'.join(fl.CHANNEL_POINTS)}#N); kill, stall, "
                "heartbeat and failover are commands of their own")

    def add_fault(self, spec: str) -> None:
        f = fl.parse(spec, channels=True)
        self.check_fault(f)

        async def arm() -> None:
            relay = self.pair.relays[f.point]
            cf = relay.faults
            at = fl.Fault(f.kind, f.point, (cf.data_seen if cf.armed else 0) + f.checkpoint,
                          f.arg)
            cf.faults.append(at)
            self._faults.append((str(f), relay, str(at)))
            self._armed_update()
            self.put(make(self.now_ms(), "operator", "input", cmd="fault", spec=str(f),
                          armed_as=f"the {f.point} channel's data packet {at.checkpoint}"))
        self._on_loop(arm())

    def _armed_update(self) -> None:
        given = [ArmedFault(str(f), str(f) in self._fired(self.pair.relays[f.point])
                            if self.pair else False) for f in self.settings.faults]
        added = [ArmedFault(shown, at in self._fired(relay))
                 for shown, relay, at in self._faults]
        self._armed = tuple(given + added)

    @staticmethod
    def _fired(relay) -> set[str]:
        return {x for text in relay.faults.fired for x in text.split(",")}

    def armed_faults(self) -> tuple[ArmedFault, ...]:
        return self._armed


def lab_feed(settings: LabSettings) -> LabFeed:
    """The live source of a lab session (`colo lab`'s TUI, `colo repl --lab`): QEMU
    7.2's dialect, hybrid (colo-compare), the settings' checkpoint delay."""
    from protocol.sim.config import SimConfig
    return LabFeed(SimConfig(dialect="qemu", mode="hybrid",
                             checkpoint_delay_ms=settings.checkpoint_delay_ms), settings)
