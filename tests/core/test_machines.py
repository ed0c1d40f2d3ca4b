"""Every (state × input) of every machine transitions as its table says, or raises and
moves to ERROR; the inputs come from the tables themselves."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.core import dialects, primary, secondary
from protocol.core import messages as m
from protocol.core.endpoint import DONE, ERROR, SHUTDOWN, make_endpoint
from protocol.core.states import Input
from protocol.errors import QmpCommandError

TERMINAL = (ERROR, DONE, SHUTDOWN)
MACHINES = {"primary": primary, "secondary": secondary}
#: every input some table takes, in enum order
INPUTS = [k for k in Input if any(k == key for mod in MACHINES.values() for (_, key) in mod.TABLE)]


def item_for(kind, d):
    if kind in d.ids:
        return m.Message(kind, 0, d.ids[kind])
    from protocol.migration.stream import RamContext, encode_ram_part
    blob = b"\x00" if d.ram_outside_blob else encode_ram_part([], RamContext()) + b"\x00"
    return {"ram-chunk": m.RamChunk(()), "ram": m.RamPart((), 19), "blob": m.StateBlob(blob),
            "initial": m.InitialStream({}, 0)}.get(kind)


def test_the_tables_cover_the_input_enum_and_name_real_states():
    assert set(INPUTS) == set(Input)
    for mod in MACHINES.values():
        for (state, _), t in mod.TABLE.items():
            assert state in mod.STATES and state not in TERMINAL
            assert {t.next, *t.alt} <= set(mod.STATES)
            cls = primary.PrimaryMachine if mod is primary else secondary.SecondaryMachine
            assert all(callable(getattr(cls, n)) for n in (t.handler, t.then) if n)


@pytest.mark.parametrize("dname", list(dialects.DIALECTS))
@pytest.mark.parametrize("role", list(MACHINES))
def test_every_state_against_every_input(dname, role):
    d = dialects.get(dname)
    mod = MACHINES[role]
    seen = set()
    for state in mod.STATES:
        for kind in INPUTS:
            if kind in m.ALL_MESSAGES and kind not in d.ids:
                continue
            ep = make_endpoint(role, d)
            mach = ep.machine
            mach.state = state
            mach.colo_thread_alive = True
            mach._blob = b"\x00"       # a LOADING secondary holds a (valid, empty) blob
            mach._guarded(mach._dispatch, kind, item_for(kind, d))
            events = ep.take_events()
            moves = [e.payload() for e in events if e.kind == "state"]
            t = mod.TABLE.get((state, kind))
            if t is not None:
                assert ep.state != ERROR, (state, kind, [e.payload() for e in events])
                # the first move is the table's: its next state or a listed alternative
                first = moves[0]["to"] if moves else state
                assert first in (t.next, *t.alt), (state, kind, moves)
                seen.add((state, kind, first))
            elif state in TERMINAL:
                assert ep.state == state and not moves
            else:
                assert ep.state == ERROR, (state, kind)
                err = [e for e in events if e.kind == "error"]
                assert err and (state in err[0].payload()["message"] or kind in
                                err[0].payload()["message"]), err
                assert any(e.kind == "colo-exit" and e.payload()["reason"] == "error"
                           for e in events)
    # every row of the table was taken in some dialect's run of this role
    assert {(s, k) for s, k, _ in seen} == {(s, k) for (s, k) in mod.TABLE
                                           if k not in m.ALL_MESSAGES or k in d.ids}


def test_a_handler_cannot_choose_a_state_its_row_does_not_list(monkeypatch):
    monkeypatch.setattr(secondary.SecondaryMachine, "_on_size", lambda self, msg: secondary.IDLE)
    d = dialects.QEMU
    ep = make_endpoint("secondary", d, initial_stream=False)
    ep.start(0)
    from protocol.migration.stream import RamContext, encode_ram_part
    ep.receive_data(d.encode(m.CHECKPOINT_REQUEST) + d.encode(m.VMSTATE_SEND)
                    + encode_ram_part([], RamContext()) + d.encode(m.VMSTATE_SIZE, 1), 1)
    assert ep.state == ERROR
    assert "_on_size chose IDLE" in ep.error


def test_overrides_and_then_steps_follow_the_table():
    """The prototype's vmstate-send skips RECV_RAM (an alternative the row lists); a
    zero-length load runs the (LOADING, timer:load) row at once."""
    d = dialects.PROTOTYPE
    ep = make_endpoint("secondary", d)
    ep.start(0)
    from protocol.migration.stream import RamContext, encode_ram_part
    blob = encode_ram_part([], RamContext()) + b"\x00"
    ep.receive_data(d.encode(m.CHECKPOINT_REQUEST) + d.encode(m.VMSTATE_SEND)
                    + d.encode(m.VMSTATE_SIZE, len(blob)) + blob, 1)
    moves = [(e.payload()["from"], e.payload()["to"]) for e in ep.take_events() if e.kind == "state"]
    assert moves == [("INIT", "IDLE"), ("IDLE", "WAIT_SEND"), ("WAIT_SEND", "WAIT_SIZE"),
                     ("WAIT_SIZE", "RECV_BLOB"), ("RECV_BLOB", "LOADING"), ("LOADING", "IDLE")]
    assert ep.checkpoint == 1


OPS = st.sampled_from(["msg", "eof", "timer", "checkpoint", "heartbeat", "garbage", "delay"])


@pytest.mark.parametrize("dname", list(dialects.DIALECTS))
@pytest.mark.parametrize("role", ["primary", "secondary"])
@settings(max_examples=80, deadline=None)
@given(ops=st.lists(st.tuples(OPS, st.integers(0, 10)), max_size=25))
def test_random_inputs_never_crash(dname, role, ops):
    d = dialects.get(dname)
    ep = make_endpoint(role, d)
    ep.start(0.0)
    now = 0.0
    names = [n for n in d.ids if n != m.INVALID]
    for op, k in ops:
        now += 7
        if op == "msg":
            ep.receive_data(d.encode(names[k % len(names)], 0), now)
        elif op == "eof":
            ep.receive_eof(now)
        elif op == "timer":
            ep.handle_timer(now + 10**6)
        elif op == "checkpoint":
            ep.request_checkpoint(now)
        elif op == "heartbeat":
            try:
                ep.lost_heartbeat(now)
            except QmpCommandError as exc:
                assert exc.desc in ("The feature 'colo' is not enabled",
                                    "COLO failover is already activated")
        elif op == "garbage":
            ep.receive_data(bytes([k]) * (k + 1), now)
        elif op == "delay":
            ep.set_checkpoint_delay(k * 100, now)
        ep.data_to_send()
        ep.take_events()
        assert ep.state in (primary.STATES if role == "primary" else secondary.STATES)
        status = ep.query_colo_status()
        assert status["mode"] in ("none", role)
        assert status["reason"] in ("none", "request", "error", "processing")


def test_lost_heartbeat_errors_are_qemus():
    ep = make_endpoint("primary", dialects.QEMU)
    with pytest.raises(QmpCommandError, match="The feature 'colo' is not enabled"):
        ep.lost_heartbeat(0)
    ep.start(0)
    ep.receive_data(b"\x00\x00\x00\x00", 1)       # checkpoint-ready
    ep.lost_heartbeat(2)
    with pytest.raises(QmpCommandError, match="not enabled"):
        ep.lost_heartbeat(3)          # mode is none after a completed failover


def test_second_heartbeat_while_failover_is_deferred_is_already_activated():
    ep = make_endpoint("secondary", dialects.QEMU, load_ms=50, initial_stream=False)
    ep.start(0)
    d = dialects.QEMU
    from protocol.migration.stream import RamContext, encode_ram_part
    ram = encode_ram_part([], RamContext())
    ep.receive_data(d.encode(m.CHECKPOINT_REQUEST) + d.encode(m.VMSTATE_SEND) + ram
                    + d.encode(m.VMSTATE_SIZE, 1) + b"\x00", 1)
    assert ep.state == "LOADING"
    ep.lost_heartbeat(2)
    assert ep.failover.state == "relaunch"
    with pytest.raises(QmpCommandError, match="already activated"):
        ep.lost_heartbeat(3)
    ep.handle_timer(60)
    assert ep.failover.state == "completed"
    sent = ep.data_to_send()
    assert d.encode(m.VMSTATE_LOADED) not in sent[-4:]      # loaded is not sent on relaunch
    assert ep.query_colo_status() == {"mode": "none", "last-mode": "secondary",
                                      "reason": "request"}
    assert ep.run_state == "running"


def test_failover_state_names_follow_the_dialect():
    assert dialects.V11.failover_name("require") == "request"
    assert dialects.V11.failover_name("active") == "handling"
    assert dialects.QEMU.failover_name("require") == "require"


def test_primary_save_time_splits_the_ram_part_from_the_device_state():
    """save_ms: the RAM part leaves at once, vmstate-size and the blob save_ms later
    (QEMU's separate write); a failover while saving sends nothing more."""
    d = dialects.get("qemu")
    for failover in (False, True):
        p = make_endpoint("primary", d, save_ms=5, initial_stream=False,
                          checkpoint_delay_ms=100)
        p.start(0.0)
        p.receive_data(d.encode(m.CHECKPOINT_READY), 0.0)
        p.data_to_send()
        p.handle_timer(100.0)
        assert p.data_to_send() == d.encode(m.CHECKPOINT_REQUEST)
        p.receive_data(d.encode(m.CHECKPOINT_REPLY), 101.0)
        first = p.data_to_send()
        from protocol.migration.stream import encode_ram_part
        assert first == d.encode(m.VMSTATE_SEND) + encode_ram_part([], p.machine.ram_context)
        assert p.state == "SAVING" and p.next_deadline() == 106.0
        if failover:
            p.lost_heartbeat(103.0)
            p.handle_timer(106.0)
            assert p.state == "DONE" and p.data_to_send() == b""
            continue
        p.handle_timer(105.9)
        assert p.data_to_send() == b"" and p.state == "SAVING"
        p.handle_timer(106.0)
        rest = p.data_to_send()
        assert rest[:4] == d.encode(m.VMSTATE_SIZE, 0)[:4] and p.state == "WAIT_RECEIVED"
        size = int.from_bytes(rest[4:12], "big")
        assert len(rest) == 12 + size and rest[-1] == 0     # the blob ends with EOF
        p.receive_data(d.encode(m.VMSTATE_RECEIVED) + d.encode(m.VMSTATE_LOADED), 110.0)
        assert p.checkpoint == 1 and p.state == "IDLE"


@pytest.mark.parametrize("role", list(MACHINES))
def test_every_running_state_is_reachable_through_the_table(role):
    """The table is the map: following next states and listed alternatives from the
    initial state reaches every state but the stopped ones (entered from any state:
    an error, a failover, a shutdown)."""
    mod = MACHINES[role]
    edges = {}
    for (state, _), t in mod.TABLE.items():
        edges.setdefault(state, set()).update((t.next, *t.alt))
    seen, todo = set(), [mod.INIT]
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo.extend(edges.get(s, ()))
    assert seen | set(TERMINAL) == set(mod.STATES)
