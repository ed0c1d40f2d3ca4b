"""Handlers against a real Controller."""
import pytest

from colo_tui.commands import execute, run_state
from colo_tui.session.control import Controller
from protocol.record import format as rf
from protocol.record.replay import verify


@pytest.fixture
def c():
    return Controller()


def ok(c, line):
    res = execute(c, line)
    assert res.ok, res.text
    return res.text


def test_step_and_run(c):
    assert "step 3," in ok(c, "step 3") and c.steps == 3
    text = ok(c, "run until vmstate-received")
    assert "stopped at vmstate-received" in text
    assert any(e.payload().get("msg") == "vmstate-received" for e in c.events)
    ok(c, "run 1")
    assert c.side("primary").checkpoint == 1
    assert "outcome ok" in ok(c, "run") and c.finished and run_state(c) == "finished"
    assert "nothing to step" in ok(c, "step")


def test_fault_listed_and_fires(c):
    assert "armed" in ok(c, "fault drop@vmstate-loaded#2")
    assert "pending" in ok(c, "faults")
    ok(c, "run")
    assert "fired" in ok(c, "faults")
    assert any(e.kind == "dropped" for e in c.events)


def test_fault_checked_against_the_dialect(c):
    res = execute(c, "fault unexpected=guest-shutdown@checkpoint-reply")
    assert not res.ok and "does not exist in the qemu dialect" in res.text
    assert not execute(c, "fault drop@guest-shutdown").ok


def test_fault_for_a_past_checkpoint_warns(c):
    ok(c, "run 2")
    assert "never fire" in ok(c, "fault drop@vmstate-send#1")


def test_heartbeat_failover_visible_in_status(c):
    ok(c, "run 1")
    text = ok(c, "heartbeat s")
    assert "failover state completed" in text
    st = ok(c, "status")
    assert "last-mode secondary, reason request" in st
    assert "failover completed" in st
    assert "[completed]" in ok(c, "show failover")
    res = execute(c, "heartbeat s")          # QEMU: a second request is refused
    assert not res.ok and "x-colo-lost-heartbeat" in res.text


def test_kill_then_arbiter_fails_over(c):
    ok(c, "step 5")
    ok(c, "kill primary")
    ok(c, "run until failover")
    ok(c, "run")
    assert c.status()["outcome"] == "failover"
    assert "dead" in ok(c, "status")
    assert "COLO_EXIT" in ok(c, "show ladder") or "failover" in ok(c, "show ladder")


def test_back_and_fork(c):
    ok(c, "step 10")
    ok(c, "checkpoint")
    ok(c, "step 5")
    text = ok(c, "back 8")
    assert "to step 7" in text and "1 later input" in text
    assert c.steps == 7 and not c.forked
    text = ok(c, "heartbeat primary")
    assert "forked the future" in text and c.forked


def test_set_restarts(c):
    ok(c, "step 5")
    assert "v11 dialect" in ok(c, "set dialect v11") and c.steps == 0
    assert "seed 9" in ok(c, "set seed 9")
    assert "hybrid mode" in ok(c, "set mode hybrid")
    assert "1000 ms" in ok(c, "set checkpoint-delay 1000")


def test_record_then_replay_identically(c, tmp_path):
    path = str(tmp_path / "s.colo.jsonl")
    ok(c, "step 4")
    ok(c, f"record start {path}")
    ok(c, "fault delay=300@vmstate-send#2")
    ok(c, "run 1")
    ok(c, "heartbeat primary")
    ok(c, "run")
    assert "saved" in ok(c, "record stop")
    assert verify(rf.read(path)).ok
    c2 = Controller()
    assert "1 input" not in ok(c2, f"replay {path}") or True
    ok(c2, "run")
    assert [e.kind for e in c2.events] == [e.kind for e in c.events]


def test_replaying_a_cut_recording_says_it_was_cut(c, tmp_path):
    path = tmp_path / "s.colo.jsonl"
    ok(c, f"record start {path}")
    ok(c, "step 6")
    ok(c, "record stop")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])          # its writer killed mid-line
    text = ok(Controller(), f"replay {path}")
    assert "a cut recording: it holds the first" in text and "cut in the middle" in text


def test_restart_stops_recording(c, tmp_path):
    path = str(tmp_path / "r.jsonl")
    ok(c, f"record start {path}")
    ok(c, "step 3")
    assert "recording stopped" in ok(c, "set seed 2")
    assert c.recording_path is None
    # stopped mid-session: the file says where it stopped, and replays to exactly there
    rec = rf.read(path)
    assert rec.stop_step == 3
    res = verify(rec)
    assert res.ok and res.events == len(rec.events) >= 15
    assert not execute(c, "record start /nonexistent-dir/x.jsonl").ok


def test_back_refused_while_recording(c, tmp_path):
    ok(c, f"record start {tmp_path / 'x.jsonl'}")
    ok(c, "step 3")
    res = execute(c, "back 1")
    assert not res.ok and "record stop" in res.text


def test_views_and_help(c):
    assert "no messages yet" in ok(c, "show ladder")
    ok(c, "run 1")
    ladder = ok(c, "show ladder")
    assert "checkpoint-request" in ladder and "---->" in ladder and "<----" in ladder
    for what in ("ram", "packets", "disk"):
        res = execute(c, f"show {what}")
        assert not res.ok and "null guest" in res.text
    assert "step [N]" in ok(c, "help")
    assert "KIND[=ARG]@POINT[#N]" in ok(c, "help fault")
    assert ok(c, "explain")
    assert "nothing is running" in ok(c, "pause")
    assert execute(c, "quit").quit


def test_guest_views_with_the_model():
    from types import SimpleNamespace

    from colo_tui.commands import handlers as h
    from protocol.guest.model import Guest
    p = Guest("primary", seed=1, ram_mib=16)
    s = p.clone_for_secondary()
    from protocol.core.snapshot import guest_report, guest_view
    guests = {"primary": p, "secondary": s}
    # the handlers read a session only through its guest views and report
    fake = SimpleNamespace(guest=lambda side: guest_view(guests[side], side),
                           guest_report=lambda: guest_report(guests))
    assert "RAM identical" in h.guest_ram(fake)
    assert "RAM cache" in h.guest_ram(fake)
    assert "filter-buffer" in h.guest_packets(fake)
    assert "disks identical" in h.guest_disk(fake)


def test_execute_never_raises(c):
    for line in ["", "   ", "bogus", "step -3", "replay /nonexistent.jsonl", "record stop",
                 "fault value=1@ram", "show cpu", "kill", "help nope"]:
        res = execute(c, line)
        assert isinstance(res.text, str)
    assert not execute(c, "replay /nonexistent.jsonl").ok


def test_help_list_fits_an_80_column_terminal(c):
    # the longest form (set …, 93 characters) once set the column for every summary:
    # each line was ~150 wide and wrapped mid-word in a 120-column terminal
    text = ok(c, "help")
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "  step [N]               advance the simulation" in text
    assert "set checkpoint-delay MS" in text and "change a parameter" in text


def test_a_recordings_directory_that_is_a_file_is_named_as_such(c, tmp_path, monkeypatch):
    # 'record start' (and the TUI's r with --record-dir FILE) said only "FILE: File exists"
    taken = tmp_path / "recs"
    taken.write_text("a file\n")
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(taken))
    res = execute(c, "record start")
    assert not res.ok and "the recordings directory is not a directory" in res.text
    assert str(taken) in res.text and taken.read_text() == "a file\n"


def test_set_arbiter_ms_takes_what_the_command_line_takes(c, tmp_path):
    # 'set arbiter-ms 0' was taken (the REPL's bound was 0 … 3.6e6, --arbiter-ms's is
    # 1 … 1e9), and the recording of that session could not be read back: colo
    # replay refused it ("params.arbiter_ms: Expected `float` >= 1.0")
    res = execute(c, "set arbiter-ms 0")
    assert not res.ok and "between 1 and 1,000,000,000" in res.text
    ok(c, "set arbiter-ms 5000000")
    path = tmp_path / "a.colo.jsonl"
    ok(c, f"record start {path}")
    ok(c, "step 5")
    ok(c, "record stop")
    assert rf.read(str(path)).config.arbiter_ms == 5e6
