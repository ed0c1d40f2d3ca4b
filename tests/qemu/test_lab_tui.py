"""`colo lab` opens the TUI on a real QEMU 7.2 COLO pair (colo_tui/lab/feed.py).

- the lab contract (tests/tui/_lab_contract.py) on the real lab session: the
  same assertions the fake lab of the TUI tests keeps;
- a Textual pilot on the real pair: a checkpoint and compare packets on the
  ladder, a compare-channel fault armed from the fault menu that fires, the
  primary killed and COLO-FT.txt's failover onto the secondary by keys;
- `colo lab` in a real terminal (tmux): the TUI opens, and q or SIGTERM stops
  both QEMUs.

Skips where QEMU or the lab's guest packages are missing (.ci/qemu-setup.sh),
and the terminal test without tmux.  QEMU under TCG on a loaded 2-core machine
is slow: every wait is bounded generously."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from colo_tui.lab.feed import LabFeed, LabSettings
from colo_tui.session.live import live_controller
from protocol.sim.config import SimConfig
from tests.qemu._qemu import REAL_QEMU
from tests.qemu.test_lab import _guest_missing
from tests.tui import _lab_contract as contract

pytestmark = [*REAL_QEMU, pytest.mark.skipif(_guest_missing() is not None,
                                             reason=str(_guest_missing()))]
BOUND_S = 150


def lab_controller(tmp_path):
    settings = LabSettings(checkpoint_delay_ms=2000, net="user", client_every_s=0.3,
                           work=tmp_path)
    return live_controller(LabFeed(SimConfig(dialect="qemu", mode="hybrid",
                                             checkpoint_delay_ms=2000), settings))


def _qemus_gone(feed) -> bool:
    return all(s is None or s.proc.poll() is not None
               for s in (feed.pair.primary, feed.pair.secondary))


def test_the_real_lab_keeps_the_lab_contract(tmp_path):
    c = lab_controller(tmp_path)
    feed = c.session.source
    try:
        seen = contract.exercise(c, BOUND_S)
        print(f"lab contract on real QEMU: {seen}")
    finally:
        c.close()
    assert not feed._thread.is_alive()
    assert _qemus_gone(feed), "a QEMU outlived the lab session"


@pytest.mark.timeout(400)
def test_the_app_on_the_real_lab(tmp_path):
    import asyncio

    from colo_tui.cli.lab_tui import lab_app
    from tests.tui.test_lab_tui import drive_the_lab_app
    c = lab_controller(tmp_path)
    feed = c.session.source
    try:
        screen = asyncio.run(drive_the_lab_app(lab_app(c), c, rounds=BOUND_S * 20))
        assert "PRIMARY" in screen
    finally:
        c.close()
    assert _qemus_gone(feed)
    assert any(e.kind == "verdict" for e in c.events)


def _qemu_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid), "qemu-system"], capture_output=True,
                         text=True)
    return [int(x) for x in out.stdout.split()]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
@pytest.mark.parametrize("how", ["q", "SIGTERM"])
@pytest.mark.timeout(300)
def test_colo_lab_in_a_terminal_opens_the_tui_and_stops_its_qemus(how, tmp_path):
    from tests.tui._term import Term, wait
    term = Term(["lab", "--checkpoint-delay", "3000", "--net", "user"], size=(150, 44),
                module="colo_tui")
    qemus: list[int] = []
    try:
        assert wait(lambda: "COLO testbed" in term.screen() or "PRIMARY" in term.screen(),
                    60), term.screen()
        app = term.pid()
        assert wait(lambda: len(_qemu_children(app)) == 2, BOUND_S), term.screen()
        qemus = _qemu_children(app)
        term.keys("space")                        # follow: checkpoints come on the ladder
        assert wait(lambda: "checkpoint " in term.screen(), BOUND_S), term.screen()
        if how == "q":
            term.keys("q")
        else:
            os.kill(app, signal.SIGTERM)
        assert wait(lambda: term.exit_status() is not None, 120), term.screen()
        assert wait(lambda: all(_gone(p) for p in qemus), 30), qemus
        assert term.exit_status() == (0 if how == "q" else 128 + signal.SIGTERM), \
            term.screen()
        assert "Traceback" not in term.screen()
    finally:
        term.close()
        for p in qemus:
            if not _gone(p):
                os.kill(p, signal.SIGKILL)
