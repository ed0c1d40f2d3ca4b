"""Every key of the footer and of the help screen, in every kind of session, in a
real terminal: the app keeps running and never prints a traceback.  And every
way of ending a session leaves a complete, replayable recording outside the
repository."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui._term import ROOT, Term, run1_dir, wait

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

#: Textual's key names → tmux's
TMUX = {"right": "Right", "left": "Left", "space": "Space", "plus": "+", "equals_sign": "=",
        "minus": "-", "tab": "Tab", "slash": "/", "escape": "Escape", "question_mark": "?",
        "up": "Up", "down": "Down", "ctrl+p": "C-p", "ctrl+c": "C-c",
        "exclamation_mark": "!", "at": "@", "number_sign": "#"}
QUITTING = {"q", "ctrl+c"}


def every_key() -> list[str]:
    """The app's bindings (footer, help screen, hidden ones), less the keys that quit;
    each is followed by escape, which closes whatever it opened."""
    from colo_tui.tui.app import ColoApp
    keys = []
    for b in ColoApp.BINDINGS:
        for k in b.key.split(","):
            if k not in QUITTING and k not in keys:
                keys.append(k)
    return [TMUX.get(k, k) for k in [*keys, "up", "down"]]


def _handled_so_far(term: Term) -> None:
    """Keys are handled in order: once the help screen (?) shows, every key sent before
    it has been handled, and the app is still there to show it."""
    from colo_tui.tui.screens.help import KEYS
    first_line = KEYS[0][1]
    term.keys("?")
    assert wait(lambda: first_line in term.screen() or "COLO-EXIT" in term.screen(),
                timeout=60), term.screen()
    screen = term.screen()
    assert "Traceback" not in screen, screen
    assert term.exit_status() is None, screen
    term.escape()
    assert wait(lambda: first_line not in term.screen(), timeout=30), term.screen()


def _colo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "colo_tui", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    run1 = run1_dir()
    if run1 is None:
        pytest.skip("the real capture run1 is not beside the repository (../shared)")
    out = tmp_path_factory.mktemp("imported") / "run1.colo.jsonl"
    r = _colo("import", str(run1 / "capture.pcap"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out


SESSIONS = {
    "simulated": lambda _imp: [],
    "replay": lambda _imp: ["--replay", str(ROOT / "recordings" / "happy-qemu-periodic.colo.jsonl")],
    "imported-capture": lambda imp: ["--replay", str(imp)],
    "live-tcp-pair": lambda _imp: ["--transport", "tcp"],
}


@pytest.mark.parametrize("kind", list(SESSIONS))
def test_every_key_in_every_kind_of_session(kind, tmp_path, request):
    imp = request.getfixturevalue("imported") if kind == "imported-capture" else None
    term = Term(SESSIONS[kind](imp), env={"COLO_RECORDINGS_DIR": tmp_path})
    try:
        assert wait(lambda: "PRIMARY" in term.screen() and "failover" in term.screen(),
                    timeout=30), term.screen()
        for key in every_key():
            term.keys(key)
            term.escape()
        _handled_so_far(term)
        term.keys("C-p")                   # the palette opens asynchronously
        assert wait(lambda: "Search for commands" in term.screen(), timeout=30), term.screen()
        term.escape()
        assert wait(lambda: "Search for commands" not in term.screen(), timeout=30)
        _handled_so_far(term)
        term.keys("q")
        assert wait(lambda: term.exit_status() is not None, timeout=30), term.screen()
        assert term.exit_status() == 0, term.screen()
        assert "Traceback" not in term.screen()
    finally:
        term.close()
    assert not list(ROOT.glob("recordings/tui-*")), "a recording went into the repository"


def test_back_in_a_live_session_is_a_warning_not_a_crash(tmp_path):
    term = Term(["--transport", "tcp"], env={"COLO_RECORDINGS_DIR": tmp_path})
    try:
        assert wait(lambda: "PRIMARY" in term.screen(), timeout=30), term.screen()
        term.keys("Left")
        assert wait(lambda: "cannot step back" in term.screen(), timeout=20), term.screen()
        assert term.exit_status() is None and "Traceback" not in term.screen()
    finally:
        term.close()


# ------------------------------------------------------------ ways of ending a session
def _record_three_steps(term: Term) -> None:
    assert wait(lambda: "press n or → to step" in term.screen(), timeout=30), term.screen()
    term.keys("r")
    assert wait(lambda: "recording to" in term.screen(), timeout=20), term.screen()
    term.keys("n", "n", "n")
    assert wait(lambda: "step 3" in term.screen(), timeout=20), term.screen()


def _end_by(how: str, term: Term) -> None:
    if how == "q":
        term.keys("q")
    elif how == "ctrl+c":
        term.keys("C-c")
    elif how == "ctrl+c-in-the-delay-prompt":      # (its input field took it as 'copy')
        term.keys("d")
        assert wait(lambda: "x-checkpoint-delay in ms" in term.screen(), timeout=20)
        term.keys("C-c")
    elif how == "palette":
        term.keys("C-p")
        assert wait(lambda: "Search for commands" in term.screen()
                    or ">" in term.screen().splitlines()[0], timeout=20)
        term.keys("-l", "quit")
        term.keys("Enter")
    else:
        os.kill(term.pid(), getattr(signal, how))


@pytest.mark.parametrize("how", ["q", "ctrl+c", "ctrl+c-in-the-delay-prompt", "palette",
                                 "SIGTERM", "SIGHUP"])
def test_every_way_of_ending_leaves_a_complete_replayable_recording(how, tmp_path):
    term = Term([], env={"COLO_RECORDINGS_DIR": tmp_path})
    try:
        _record_three_steps(term)
        _end_by(how, term)
        assert wait(lambda: term.exit_status() is not None, timeout=30), term.screen()
        assert "Traceback" not in term.screen(), term.screen()
    finally:
        term.close()
    _assert_one_complete_replayable_recording(tmp_path)


def _assert_one_complete_replayable_recording(where) -> None:
    files = list(where.glob("tui-*.colo.jsonl"))
    assert len(files) == 1, files
    lines = [json.loads(x) for x in files[0].read_text().splitlines() if not x.startswith("#")]
    assert lines[0]["format"] == "colo-recording"
    assert any("kind" in x for x in lines[1:]), "no event was written"
    assert "stop" in lines[-2] and "digest" in lines[-1], lines[-2:]
    r = _colo("replay", str(files[0]))
    assert r.returncode == 0, r.stdout + r.stderr


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize("attempt", range(3))
def test_closing_the_terminal_under_a_running_session_ends_it_with_a_complete_recording(
        attempt, tmp_path):
    """The terminal goes away (a closed window, a killed tmux) while the app is
    running and drawing: the app gets SIGHUP and SIGCONT and every write fails.
    It must exit, its recording complete.  With Textual's own driver half of
    these sessions hung for ever on their writer thread's full queue (so three
    attempts, at different moments)."""
    term = Term([], env={"COLO_RECORDINGS_DIR": tmp_path}, own_server=True)
    pid = None
    try:
        _record_three_steps(term)
        pid = term.pid()
        term.keys("Space")                       # running: the app draws all the time
        assert wait(lambda: "step 3" not in term.screen(), timeout=20), term.screen()
        time.sleep(0.2 + 0.3 * attempt)
        term.hang_up()
        assert wait(lambda: not _alive(pid), timeout=20), \
            f"the app (pid {pid}) outlived its terminal by 20 s"
    finally:
        term.close()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _assert_one_complete_replayable_recording(tmp_path)


def test_a_sigcont_leaves_no_input_thread_behind(tmp_path):
    """Textual restarts its terminal mode on every SIGCONT (a hang-up sends one too),
    and each restart started an input thread over the running one: the old one
    kept the process alive after `q` for ever.  (That was the race behind
    test_closing_the_terminal_… failing now and then on a loaded machine: the old
    thread had to see the exit flag while the newest one was being stopped.)"""
    term = Term([], env={"COLO_RECORDINGS_DIR": tmp_path})
    pid = None
    try:
        _record_three_steps(term)
        pid = term.pid()
        threads = len(os.listdir(f"/proc/{pid}/task"))
        for _ in range(5):
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.2)
        term.keys("n")
        assert wait(lambda: "step 4" in term.screen(), timeout=20), term.screen()
        # one input thread more for each SIGCONT, before: five more.  (Not "no more at
        # all": the app may start a worker thread of its own meanwhile, as one full
        # suite run on a loaded machine saw: 3 threads, then 5)
        assert len(os.listdir(f"/proc/{pid}/task")) <= threads + 2
        term.keys("q")
        assert wait(lambda: term.exit_status() is not None, timeout=20), \
            f"the app (pid {pid}) did not exit after q"
        assert term.exit_status() == 0, term.screen()
    finally:
        term.close()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _assert_one_complete_replayable_recording(tmp_path)


def test_a_killed_session_keeps_what_it_recorded(tmp_path):
    """SIGKILL cannot be caught: what was written before it is still there."""
    term = Term([], env={"COLO_RECORDINGS_DIR": tmp_path})
    try:
        _record_three_steps(term)
        (path,) = tmp_path.glob("tui-*.colo.jsonl")
        assert wait(lambda: path.stat().st_size > 0 and
                    path.read_text().count('"seq"') >= 3, timeout=20), path.read_text()
        os.kill(term.pid(), signal.SIGKILL)
        assert wait(lambda: term.exit_status() is not None, timeout=30)
    finally:
        term.close()
    assert path.read_text().count('"seq"') >= 3
