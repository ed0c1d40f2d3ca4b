"""A primary and a secondary, driven by hypothesis through random inputs, against a plain model.

The pair is wired by hand through the endpoints' public API (what the simulator,
the TCP engine and the proxy use): ``start``, ``receive_data``, ``receive_eof``,
``handle_timer``, ``request_checkpoint``, ``set_checkpoint_delay``,
``lost_heartbeat``, ``guest_shutdown``; outputs through ``segments_to_send``,
``take_events``, ``next_deadline``, ``close_requested``, ``exited`` and the state
attributes.  The random program fires timers (on time or late), delivers the
bytes in flight in order (all, or cut at a random byte), changes the checkpoint
delay, asks for checkpoints, powers the guest off, gives ``x-colo-lost-heartbeat``
to either side, and closes the connection (gracefully: the bytes in flight
arrive, then the end of stream; or with a reset: they are lost).

`Model` says, in a few lines per transition, what COLO does: the states each
side goes through, its checkpoint counters, its run state (which side runs),
its migration and failover status, which timers it has armed, and which pieces
it sends.  After every step the endpoints must agree with it, and a wire tap
(an independent decoder on each direction) must decode exactly the pieces the
sender sent, in order, while the receiver reports receiving each control
message in that order.
"""
from __future__ import annotations

from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from protocol.core import dialects
from protocol.core import messages as m
from protocol.core.codec import Decoder
from protocol.core.endpoint import make_endpoint
from protocol.errors import QmpCommandError

SIDES = ("primary", "secondary")
OTHER = {"primary": "secondary", "secondary": "primary"}
TERMINAL = ("ERROR", "DONE", "SHUTDOWN")
NOT_ENABLED = "The feature 'colo' is not enabled"
ALREADY = "COLO failover is already activated"
DELAYS_MS = [0, 1, 7, 50, 300, 2000, -1, 1 << 32]   # the last two are refused (uint32)


def _text(x) -> str:
    """A state or kind as text, whether the endpoint keeps a str or a (str-)enum."""
    return getattr(x, "value", x)


def received_messages(events) -> list[str]:
    """The control messages an endpoint reported receiving, in order.

    The one place that reads the event stream: events are dicts of data today;
    a typed event carries the message as an attribute."""
    out = []
    for ev in events:
        if _text(ev.kind) == "recv":
            data = getattr(ev, "data", None)
            out.append(_text(data["msg"] if isinstance(data, dict) else ev.msg))
    return out


# ------------------------------------------------------------------------ the model
class Side:
    """What the model knows of one side."""

    def __init__(self, role: str, delay_ms: int) -> None:
        self.role = role
        self.state = "INIT"
        self.checkpoint = 0
        self.in_flight = 0
        self.run_state = "running" if role == "primary" else "inmigrate"
        self.migration = "setup"
        self.failover = "none"
        self.thread_alive = False
        self.timers: dict[str, float] = {}
        self.delay_ms = delay_ms
        self.peer_closed = False
        self.exited = False
        self.close_requested = False
        self.errored = False
        # primary
        self.trigger_pending = False
        self.last_begin = 0.0
        self.shutdown_requested = False
        # secondary
        self.loading = False
        self.eof_pending = False


class Model:
    def __init__(self, dialect, mode: str, load_ms: float, save_ms: float, delay_ms: int):
        self.d = dialect
        self.mode = mode
        self.load_ms = load_ms
        self.save_ms = save_ms
        self.initial = dialect.name == "qemu"
        self.sides = {r: Side(r, delay_ms) for r in SIDES}
        self.out: dict[str, list[str]] = {r: [] for r in SIDES}
        self.now = 0.0

    # -- helpers ---------------------------------------------------------------
    def send(self, s: Side, point: str) -> None:
        self.out[s.role].append(point)

    def run(self, s: Side, run_state: str) -> None:
        s.run_state = run_state

    def error(self, s: Side) -> None:
        if s.state in TERMINAL:
            return
        s.state = "ERROR"
        s.errored = True
        for t in ("checkpoint", "load", "save"):
            s.timers.pop(t, None)
        s.thread_alive = False
        if self.d.automatic_failover_ms is not None and s.failover == "none":
            s.timers["default-failover"] = self.now + self.d.automatic_failover_ms

    # -- inputs ----------------------------------------------------------------
    def start(self, s: Side) -> None:
        s.migration = "active"
        if s.role == "primary":
            self.run(s, "finish-migrate")
            if self.initial:
                self.send(s, "initial")
            s.migration = "colo"
            s.thread_alive = True
            s.state = "WAIT_READY"
        elif self.initial:
            s.state = "WAIT_INITIAL"
        else:
            self._enter_colo(s)

    def _enter_colo(self, s: Side) -> None:
        s.migration = "colo"
        s.thread_alive = True
        self.run(s, "running" if self.mode == "hybrid" else "paused")
        self.send(s, m.CHECKPOINT_READY)
        s.state = "IDLE"

    def receive(self, s: Side, point: str) -> None:
        """One whole piece from the peer, in order."""
        if s.state in TERMINAL:
            return                               # ignored: nobody reads
        getattr(self, f"_{s.role}_receive")(s, point)

    def _primary_receive(self, s: Side, point: str) -> None:
        if (s.state, point) == ("WAIT_READY", m.CHECKPOINT_READY):
            self.run(s, "running")
            s.state = "IDLE"
            s.timers["checkpoint"] = self.now + s.delay_ms
        elif (s.state, point) == ("WAIT_REPLY", m.CHECKPOINT_REPLY):
            self.run(s, "colo")
            self.send(s, m.VMSTATE_SEND)
            if self.d.ram_outside_blob:
                self.send(s, "ram")
                if self.save_ms > 0:
                    s.state = "SAVING"
                    s.timers["save"] = self.now + self.save_ms
                    return
            self._send_blob(s)
        elif (s.state, point) == ("WAIT_RECEIVED", m.VMSTATE_RECEIVED):
            s.state = "WAIT_LOADED"
        elif (s.state, point) == ("WAIT_LOADED", m.VMSTATE_LOADED):
            s.checkpoint, s.in_flight = s.in_flight, 0
            if s.shutdown_requested and self.d.name == "v11":
                self.send(s, m.GUEST_SHUTDOWN)         # the final checkpoint is in
                self._shut_down(s)
                return
            self.run(s, "running")
            s.state = "IDLE"
            if "checkpoint" not in s.timers:
                s.timers["checkpoint"] = max(self.now, s.last_begin + s.delay_ms)
            if s.trigger_pending:
                self._begin(s)
        else:
            self.error(s)

    def _send_blob(self, s: Side) -> None:
        self.send(s, m.VMSTATE_SIZE)
        self.send(s, "device-state")
        s.state = "WAIT_RECEIVED"

    def _begin(self, s: Side) -> None:
        s.trigger_pending = False
        s.last_begin = self.now
        s.timers["checkpoint"] = self.now + s.delay_ms
        s.in_flight = s.checkpoint + 1
        self.send(s, m.CHECKPOINT_REQUEST)
        s.state = "WAIT_REPLY"
        if s.peer_closed:
            self.error(s)

    def _secondary_receive(self, s: Side, point: str) -> None:
        steps = {("WAIT_SEND", m.VMSTATE_SEND): "RECV_RAM" if self.d.ram_outside_blob
                 else "WAIT_SIZE",
                 ("RECV_RAM", "ram"): "WAIT_SIZE",
                 ("WAIT_SIZE", m.VMSTATE_SIZE): "RECV_BLOB"}
        key = (s.state, point)
        if key == ("WAIT_INITIAL", "initial"):
            self._enter_colo(s)
        elif key == ("IDLE", m.CHECKPOINT_REQUEST):
            s.in_flight = s.checkpoint + 1
            self.run(s, "colo")
            self.send(s, m.CHECKPOINT_REPLY)
            s.state = "WAIT_SEND"
        elif key in steps:
            s.state = steps[key]
        elif key == ("IDLE", m.GUEST_SHUTDOWN):
            self.run(s, "shutdown")
            s.thread_alive = False
            s.state = "SHUTDOWN"
        elif key == ("RECV_BLOB", "device-state"):
            self.send(s, m.VMSTATE_RECEIVED)
            s.loading = True
            s.state = "LOADING"
            if self.load_ms > 0:
                s.timers["load"] = self.now + self.load_ms
            else:
                self._loaded(s)
        else:
            self.error(s)

    def _loaded(self, s: Side) -> None:
        s.loading = False
        self.run(s, "running" if self.mode == "hybrid" else "paused")
        s.checkpoint, s.in_flight = s.in_flight, 0
        s.state = "IDLE"
        if s.failover == "relaunch":           # the deferred failover goes on now
            s.failover = "none"
            self._failover(s)
            return
        self.send(s, m.VMSTATE_LOADED)
        if s.eof_pending:
            s.eof_pending = False
            self.error(s)

    def eof(self, s: Side, partial: bool) -> None:
        s.peer_closed = True
        if s.state in TERMINAL:
            return
        if partial:                            # the stream ended inside a piece
            self.error(s)
        elif s.role == "primary" and s.state == "IDLE":
            pass                               # reads nothing between checkpoints
        elif s.role == "primary" and s.state in ("WAIT_RECEIVED", "WAIT_LOADED"):
            # faithful 7.2: logged, then one lone checkpoint-request 47 ms later
            s.timers.pop("checkpoint", None)
            s.timers["lone-request"] = self.now + 47.0
        elif s.role == "secondary" and s.state == "LOADING":
            s.eof_pending = True               # sees it at its next read
        else:
            self.error(s)

    def fire_timers(self, s: Side, now: float) -> None:
        self.now = now
        for _at, name in sorted((t, n) for n, t in s.timers.items() if t <= now):
            if s.timers.get(name, now + 1) > now:
                continue
            del s.timers[name]
            if name == "default-failover":
                self._default_failover(s)
            elif name == "checkpoint":
                if s.state == "IDLE":
                    self._begin(s)
                else:
                    self.request_checkpoint(s)
            elif name == "save":
                assert s.state == "SAVING", s.state
                self._send_blob(s)
            elif name == "load":
                assert s.state == "LOADING", s.state
                self._loaded(s)
            elif name == "lone-request" and s.state not in TERMINAL:
                s.in_flight = s.checkpoint + 1
                self.send(s, m.CHECKPOINT_REQUEST)
                self.error(s)

    def _default_failover(self, s: Side) -> None:
        if s.failover != "none":
            return
        if s.role == "primary":
            self._failover(s)
        else:                                  # v11: "SVM is going to exit in default!"
            self.run(s, "shutdown")
            s.migration = "failed"
            s.exited = True
            s.state = "SHUTDOWN"
            s.close_requested = True

    def request_checkpoint(self, s: Side) -> None:
        if s.role != "primary":
            return
        if s.state == "IDLE":
            self._begin(s)
        elif s.state == "WAIT_LOADED":
            s.trigger_pending = True
        # WAIT_REPLY, SAVING, WAIT_RECEIVED: absorbed; elsewhere ignored

    def guest_shutdown(self, s: Side) -> None:
        """The primary's guest powers off: v11 sends guest-shutdown after one last
        checkpoint; qemu has no message, the primary just stops."""
        if self.d.name == "v11" and s.state not in TERMINAL:
            s.shutdown_requested = True
            self.request_checkpoint(s)
        else:
            self._shut_down(s)

    def _shut_down(self, s: Side) -> None:
        self.run(s, "shutdown")
        for t in ("checkpoint", "save"):
            s.timers.pop(t, None)
        s.thread_alive = False
        s.state = "SHUTDOWN"
        s.close_requested = True

    def set_delay(self, s: Side, delay_ms: int) -> bool:
        if not 0 <= delay_ms <= 0xFFFFFFFF:
            return False
        s.delay_ms = delay_ms
        if s.role == "primary" and self.d.name != "v11" and s.migration == "colo" \
                and s.state not in TERMINAL:
            self.request_checkpoint(s)         # colo_checkpoint_notify
        return True

    def lost_heartbeat(self, s: Side) -> str | None:
        """x-colo-lost-heartbeat: the QMP error QEMU gives, or None."""
        if s.migration != "colo":
            return NOT_ENABLED
        if s.failover != "none":
            return ALREADY
        s.timers.pop("default-failover", None)
        if s.run_state == "running":
            self.run(s, "colo")
        if s.role == "secondary" and s.loading:
            s.failover = "relaunch"            # deferred until the load ends
            return None
        self._failover(s)
        return None

    def _failover(self, s: Side) -> None:
        s.timers.pop("default-failover", None)
        if s.role == "primary":
            s.timers.pop("save", None)
        else:
            s.in_flight = 0                    # a partial checkpoint is discarded
            s.timers.pop("load", None)
        s.migration = "completed"
        s.close_requested = True
        s.failover = "completed"
        s.timers.pop("checkpoint", None)
        s.thread_alive = False
        s.state = "DONE"
        self.run(s, "running")


# --------------------------------------------------------------------- the wire
class Pipe:
    """One direction of the connection: whole pieces, delivered in order, maybe cut."""

    def __init__(self) -> None:
        self.pieces: deque[list] = deque()     # [point, data, bytes delivered]

    def pending_bytes(self) -> int:
        return sum(len(d) - k for _, d, k in self.pieces)

    @property
    def partial(self) -> bool:
        return bool(self.pieces) and self.pieces[0][2] > 0

    def take(self, n: int) -> tuple[bytes, list[str]]:
        out, done = bytearray(), []
        while n > 0 and self.pieces:
            piece = self.pieces[0]
            point, data, k = piece
            part = data[k:k + n]
            out += part
            n -= len(part)
            piece[2] = k + len(part)
            if piece[2] == len(data):
                done.append(point)
                self.pieces.popleft()
        return bytes(out), done


def tap_names(items) -> list[str]:
    names = []
    for item in items:
        if isinstance(item, m.Message):
            names.append(item.name)
        elif isinstance(item, m.RamPart):
            names.append("ram")
        elif isinstance(item, m.StateBlob):
            names.append("device-state")
        elif isinstance(item, m.InitialStream):
            names.append("initial")
        # RamChunk: a piece of a RAM part still arriving
    return names


# ------------------------------------------------------------ the state machine
class PairMachine(RuleBasedStateMachine):
    DIALECT = "qemu"

    @initialize(mode=st.sampled_from(["periodic", "hybrid"]),
                load_ms=st.sampled_from([0.0, 15.0, 15.0]),
                save_ms=st.sampled_from([0.0, 10.0]),
                delay_ms=st.sampled_from([0, 20, 100]))
    def setup(self, mode, load_ms, save_ms, delay_ms):
        d = self.d = dialects.get(self.DIALECT)
        kw = dict(mode=mode, checkpoint_delay_ms=delay_ms, load_ms=load_ms, save_ms=save_ms,
                  initial_stream=d.name == "qemu")
        self.eps = {r: make_endpoint(r, d, **kw) for r in SIDES}
        self.model = Model(d, mode, load_ms, save_ms, delay_ms)
        self.now = 0.0
        self.pipes = {r: Pipe() for r in SIDES}          # keyed by the receiving side
        self.taps = {"secondary": Decoder(d, "primary", expect_initial=d.name == "qemu"),
                     "primary": Decoder(d, "secondary")}
        self.sent = {r: [] for r in SIDES}               # pieces that left, by receiver
        self.tapped = {r: [] for r in SIDES}             # what the tap decoded
        self.received = {r: [] for r in SIDES}           # what the receiver reported
        self.closing = False
        self.eof_done = {r: False for r in SIDES}
        self.alive = {r: True for r in SIDES}
        self.cut = {r: False for r in SIDES}
        for r in ("secondary", "primary"):              # the simulator's order
            self.eps[r].start(self.now)
            self.model.start(self.model.sides[r])
            self.collect()

    # -- plumbing --------------------------------------------------------------
    def collect(self) -> None:
        """Take both sides' output: it must be what the model said they send."""
        for r in SIDES:
            ep, peer = self.eps[r], OTHER[r]
            segs = ep.segments_to_send()
            got = [s.point for s in segs]
            assert got == self.model.out[r], (r, got, self.model.out[r])
            self.model.out[r].clear()
            self.received[r] += received_messages(ep.take_events())
            for seg in segs:
                if not self.closing and self.alive[r]:
                    self.pipes[peer].pieces.append([seg.point, bytes(seg.data), 0])
                    self.sent[peer].append(seg.point)
            if ep.exited and self.alive[r]:
                self.alive[r] = False
            if (ep.close_requested or not self.alive[r]) and not self.closing:
                self.closing = True                      # FIN after the bytes in flight

    def deliver(self, to: str, n: int) -> None:
        data, done = self.pipes[to].take(n)
        tap = self.taps[to]
        tap.feed(data)
        self.tapped[to] += [x for x in tap_names(tap.items())]
        ms = self.model.sides[to]
        self.eps[to].receive_data(data, self.now)
        for point in done:
            self.model.receive(ms, point)
        self.collect()

    # -- rules -----------------------------------------------------------------
    @precondition(lambda self: any(self.pipes[r].pieces and self.alive[r] for r in SIDES))
    @rule(to=st.sampled_from(SIDES), data=st.data())
    def deliver_some(self, to, data):
        """The bytes in flight towards one side arrive, cut at a random byte."""
        pipe = self.pipes[to]
        if not pipe.pieces or not self.alive[to]:
            to = OTHER[to]
            pipe = self.pipes[to]
        n = data.draw(st.integers(1, pipe.pending_bytes()), label="bytes")
        self.deliver(to, n)

    @precondition(lambda self: any(self.pipes[r].pieces and self.alive[r] for r in SIDES))
    @rule(to=st.sampled_from(SIDES))
    def deliver_all(self, to):
        if not self.pipes[to].pieces or not self.alive[to]:
            to = OTHER[to]
        self.deliver(to, self.pipes[to].pending_bytes())

    @precondition(lambda self: any(self.pipes[r].pieces and self.alive[r] for r in SIDES))
    @rule(rounds=st.integers(1, 6))
    def pump(self, rounds):
        """Deliver whatever is in flight, both ways, for a few round trips (no time passes)."""
        for _ in range(rounds):
            for r in ("secondary", "primary"):
                if self.pipes[r].pieces and self.alive[r]:
                    self.deliver(r, self.pipes[r].pending_bytes())

    @precondition(lambda self: any(self.alive[r] and self.eps[r].next_deadline() is not None
                                   for r in SIDES))
    @rule(side=st.sampled_from(SIDES), late_ms=st.sampled_from([0, 0, 0, 3, 40]))
    def fire_timer(self, side, late_ms):
        """A side's earliest timer fires (on time or a little late)."""
        if not self.alive[side] or self.eps[side].next_deadline() is None:
            side = OTHER[side]
        self.now = max(self.now, self.eps[side].next_deadline() + late_ms)
        self.model.now = self.now
        self.eps[side].handle_timer(self.now)
        self.model.fire_timers(self.model.sides[side], self.now)
        self.collect()

    @rule()
    def operator_checkpoint(self):
        self.model.now = self.now
        self.eps["primary"].request_checkpoint(self.now, "operator")
        self.model.request_checkpoint(self.model.sides["primary"])
        self.collect()

    @rule()
    def guest_shutdown(self):
        self.model.now = self.now
        self.eps["primary"].guest_shutdown(self.now)
        self.model.guest_shutdown(self.model.sides["primary"])
        self.collect()

    @rule(delay_ms=st.sampled_from(DELAYS_MS))
    def set_delay(self, delay_ms):
        self.model.now = self.now
        for r in SIDES:                               # as the simulator does: both sides
            ok = self.model.set_delay(self.model.sides[r], delay_ms)
            if ok:
                self.eps[r].set_checkpoint_delay(delay_ms, self.now)
            else:
                with pytest.raises(QmpCommandError, match="expects uint32"):
                    self.eps[r].set_checkpoint_delay(delay_ms, self.now)
            assert self.eps[r].checkpoint_delay_ms == self.model.sides[r].delay_ms
        self.collect()

    @precondition(lambda self: any(self.alive.values()))
    @rule(side=st.sampled_from(SIDES))
    def lost_heartbeat(self, side):
        if not self.alive[side]:
            side = OTHER[side]
        self.model.now = self.now
        expected = self.model.lost_heartbeat(self.model.sides[side])
        if expected is None:
            self.eps[side].lost_heartbeat(self.now)
        else:
            with pytest.raises(QmpCommandError) as exc:
                self.eps[side].lost_heartbeat(self.now)
            assert exc.value.desc == expected
        self.collect()

    @precondition(lambda self: not self.closing)
    @rule(reset=st.booleans())
    def close_connection(self, reset):
        """The connection closes: a FIN after the bytes in flight, or a reset (lost)."""
        self.closing = True
        if reset:
            for r in SIDES:           # what is in flight is lost, a piece half delivered too
                self.cut[r] = self.pipes[r].partial
                self.pipes[r].pieces.clear()
        self.collect()

    @precondition(lambda self: self.closing and any(
        self.alive[r] and not self.eof_done[r] and not self.pipes[r].pieces for r in SIDES))
    @rule(side=st.sampled_from(SIDES))
    def deliver_eof(self, side):
        ok = [r for r in SIDES if self.alive[r] and not self.eof_done[r]
              and not self.pipes[r].pieces]
        if side not in ok:
            side = ok[0]
        self.eof_done[side] = True
        self.model.now = self.now
        partial = self.cut[side]
        self.eps[side].receive_eof(self.now)
        self.model.eof(self.model.sides[side], partial)
        self.collect()

    # -- invariants --------------------------------------------------------------
    @invariant()
    def sides_agree_with_the_model(self):
        for r in SIDES:
            ep, ms = self.eps[r], self.model.sides[r]
            st_ = ep.status()
            got = (_text(ep.state), ep.checkpoint, ep.in_flight, st_["run_state"],
                   st_["migration"], _text(ep.failover.state), ep.colo_thread_alive,
                   bool(ep.close_requested), bool(ep.exited))
            want = (ms.state, ms.checkpoint, ms.in_flight, ms.run_state, ms.migration,
                    ms.failover, ms.thread_alive, ms.close_requested, ms.exited)
            assert got == want, (r, got, want)
            assert ep.next_deadline() == min(ms.timers.values(), default=None), \
                (r, ep.next_deadline(), ms.timers)
            assert (ep.error is not None) == ms.errored, (r, ep.error)

    @invariant()
    def checkpoints_are_counted_in_step(self):
        p, s = self.eps["primary"].checkpoint, self.eps["secondary"].checkpoint
        assert p <= s <= p + 1, (p, s)

    @invariant()
    def every_piece_is_decoded_by_the_peer_in_order(self):
        for r in SIDES:
            tapped = self.tapped[r]
            assert tapped == self.sent[r][:len(tapped)], (r, tapped, self.sent[r])
            # the receiver reports the control messages it read, in the order sent; it
            # stops reading once it left COLO (error, failover, shutdown)
            got = self.received[r]
            msgs = [x for x in tapped if x in m.ALL_MESSAGES]
            if _text(self.eps[r].state) in TERMINAL:
                assert got == msgs[:len(got)], (r, got, msgs)
            else:
                assert got == msgs, (r, got, msgs)


def _machine_for(dialect: str):
    cls = type(f"Pair_{dialect}", (PairMachine,), {"DIALECT": dialect})
    case = cls.TestCase
    case.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                             derandomize=True, database=None)
    return case


TestPairV11 = _machine_for("v11")
TestPairQemu = _machine_for("qemu")
TestPairPrototype = _machine_for("prototype")


class _Directed(PairMachine):
    DIALECT = "qemu"

    def check(self) -> None:
        self.sides_agree_with_the_model()
        self.checkpoints_are_counted_in_step()
        self.every_piece_is_decoded_by_the_peer_in_order()

    def to_loading(self) -> None:
        """Start, run into the first checkpoint, and stop with the secondary loading it."""
        self.pump(6)
        self.fire_timer("primary", 0)
        for _ in range(8):
            if _text(self.eps["secondary"].state) == "LOADING":
                break
            if self.pipes["secondary"].pieces or self.pipes["primary"].pieces:
                self.deliver_all("secondary" if self.pipes["secondary"].pieces else "primary")
            else:
                self.fire_timer("primary", 0)          # SAVING: the device state is saved
            self.check()
        assert _text(self.eps["secondary"].state) == "LOADING"


@pytest.mark.parametrize("reset", [False, True])
def test_end_of_stream_while_loading_is_seen_after_the_load(reset):
    """Directed programs for the rare paths: the random search reaches them seldom."""
    mach = _Directed()
    mach.setup(mode="hybrid", load_ms=15.0, save_ms=10.0, delay_ms=20)
    mach.to_loading()
    mach.close_connection(reset)
    mach.deliver_eof("secondary")
    mach.check()
    mach.fire_timer("secondary", 0)                # the load ends: then the EOF is read
    mach.check()
    assert _text(mach.eps["secondary"].state) == "ERROR"
    assert mach.eps["secondary"].checkpoint == 1


def test_failover_while_loading_is_deferred_until_the_load_ends():
    mach = _Directed()
    mach.setup(mode="periodic", load_ms=15.0, save_ms=0.0, delay_ms=20)
    mach.to_loading()
    mach.lost_heartbeat("secondary")
    mach.check()
    assert _text(mach.eps["secondary"].failover.state) == "relaunch"
    mach.lost_heartbeat("secondary")               # "already activated"
    mach.fire_timer("secondary", 0)
    mach.check()
    assert _text(mach.eps["secondary"].state) == "DONE"
    assert mach.eps["secondary"].checkpoint == 1 and mach.eps["primary"].checkpoint == 0


def test_v11_guest_shutdown_follows_a_last_checkpoint():
    mach = type("_DirectedV11", (_Directed,), {"DIALECT": "v11"})()
    mach.setup(mode="periodic", load_ms=0.0, save_ms=0.0, delay_ms=20)
    mach.pump(2)
    mach.guest_shutdown()                          # a last checkpoint begins at once
    mach.check()
    assert _text(mach.eps["primary"].state) == "WAIT_REPLY"
    mach.pump(6)
    mach.check()
    assert [_text(mach.eps[r].state) for r in SIDES] == ["SHUTDOWN", "SHUTDOWN"]
    assert mach.sent["secondary"][-1] == m.GUEST_SHUTDOWN
    assert mach.eps["primary"].checkpoint == mach.eps["secondary"].checkpoint == 1
