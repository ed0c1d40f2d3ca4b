"""The real app in a real terminal (tmux, or a pty via pexpect): read the screen."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.tui._term import tmux_new_session

ROOT = Path(__file__).resolve().parents[2]


def _wait(predicate, timeout: float = 20.0) -> bool:
    """Poll (the screen of a tmux pane: another process, no event to await)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_in_tmux_first_key_moves_the_first_message() -> None:
    name = f"colo-tui-test-{uuid.uuid4().hex[:8]}"
    cmd = f"cd {ROOT} && TERM=xterm-256color {sys.executable} -m colo_tui.cli.tui"
    tmux_new_session(["-d", "-s", name, "-x", "80", "-y", "24", cmd])

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-t", name, "-p"], capture_output=True,
                              text=True).stdout

    try:
        assert _wait(lambda: "press n or → to step" in screen()), screen()
        assert "PRIMARY" in screen() and "SECONDARY" in screen()
        assert _wait(lambda: "failover" in screen())           # the lazy lower half
        for _ in range(4):
            subprocess.run(["tmux", "send-keys", "-t", name, "n"], check=True)
        assert _wait(lambda: "step 4" in screen()), screen()
        assert _wait(lambda: "◀" in screen() and "checkpoint-ready ─" in screen()), screen()
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
        assert _wait(lambda: subprocess.run(["tmux", "has-session", "-t", name],
                                            capture_output=True).returncode != 0)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_in_a_pty_with_pexpect() -> None:
    pexpect = pytest.importorskip("pexpect")
    def steps(child) -> None:
        child.expect("press n or")
        child.send("n")
        child.expect("step 1")
    _tui_until_q(pexpect, ["--seed", "1"], {}, (24, 80), steps)


def test_a_cut_recording_says_so_before_the_first_step(tmp_path) -> None:
    # colo replay said "The recording was cut"; the TUI opened it as any other, and
    # stepping on past its end simulated a future the recording never held, unsaid
    pexpect = pytest.importorskip("pexpect")
    from colo_tui.session.control import Controller
    whole = tmp_path / "whole.colo.jsonl"
    c = Controller()
    c.record_start(str(whole))
    c.step(6)
    c.record_stop()
    data = whole.read_bytes()
    cut = tmp_path / "cut.colo.jsonl"
    cut.write_bytes(data[:len(data) // 2])
    _tui_until_q(pexpect, ["--replay", str(cut)], {"COLO_CONFIG": str(tmp_path / "none.toml")},
                 (30, 160), lambda child: child.expect("a cut recording: it holds the first"))


def _tui_until_q(pexpect, args: list[str], env: dict, size: tuple[int, int], check) -> None:
    """`colo tui ARGS` in a pseudo-terminal of `size` (rows, columns): `check(child)`,
    then q, which must end it with exit status 0."""
    env = dict(os.environ, TERM="xterm-256color", **env)
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.cli.tui", *args], cwd=str(ROOT),
                          env=env, dimensions=size, encoding="utf-8", timeout=20)
    try:
        check(child)
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_live_modes_that_cannot_connect_exit_1_with_a_clear_message() -> None:
    proc = subprocess.run([sys.executable, "-m", "colo_tui.cli.tui", "--attach",
                           "unix:/nonexistent/p.qmp", "unix:/nonexistent/s.qmp"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1          # as `colo repl --attach` with the same sockets
    assert "cannot connect to QMP at unix:/nonexistent/p.qmp" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_add_parser_registers_tui() -> None:
    import argparse

    from colo_tui.cli.tui import add_parser, run_app
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["tui", "--dialect", "v11", "--mode", "hybrid", "--seed", "7",
                              "--replay", "x.colo.jsonl"])
    assert (args.dialect, args.mode, args.seed, args.transport, args.replay) == \
        ("v11", "hybrid", 7, "sim", "x.colo.jsonl")
    assert args.func is run_app and args.attach is None and args.proxy is None


def test_app_does_not_import_prompt_toolkit_and_protocol_no_textual() -> None:
    code = ("import sys, colo_tui.tui.app; "
            "assert 'prompt_toolkit' not in sys.modules, 'prompt_toolkit'; "
            "import protocol.sim.core")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    code = "import sys, protocol.sim.core; assert 'textual' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_bad_replay_file_exits_1_as_colo_replay_does(tmp_path, capsys) -> None:
    import argparse

    from colo_tui.cli.tui import run_app
    bad = tmp_path / "broken.colo.jsonl"
    bad.write_text('{"format": "something-else", "version": 1}\n')
    args = argparse.Namespace(dialect="qemu", mode="periodic", seed=1, transport="sim",
                              attach=None, replay=str(bad), proxy=None)
    assert run_app(args) == 1
    assert "not a COLO recording" in capsys.readouterr().err
