"""Options are honoured or refused, never ignored: the TUI and the REPL take the
session settings `colo run` takes, on the command line and with `set`."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from colo_tui.session.options import INTERACTIVE_CHECKPOINTS, config_from

ROOT = Path(__file__).resolve().parents[2]


def _repl(*args, script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "colo_tui", "repl", *args], input=script,
                          text=True, capture_output=True, timeout=120, cwd=ROOT)


def test_repl_fault_and_length_are_armed():
    r = _repl("--fault", "kill-primary@ram#2", "--checkpoints", "4", "--guest", "null",
              script="faults\nrun\nstatus\n")
    assert r.returncode == 0, r.stderr
    assert "kill-primary@ram#2" in r.stdout
    assert "failover" in r.stdout and "outcome" in r.stdout


def test_a_long_session_by_default_and_run_n_runs_n_more():
    r = _repl("--guest", "null", script="run 5\nrun 5\nstatus\n")
    assert r.returncode == 0, r.stderr
    assert "checkpoint 10" in r.stdout and "the scenario has ended" not in r.stdout


@pytest.mark.parametrize("ui", ["repl", "tui"])
def test_fault_on_a_live_session_without_proxy_is_refused(ui):
    r = subprocess.run([sys.executable, "-m", "colo_tui", ui, "--transport", "tcp", "--fault",
                        "drop@ram"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert "no fault plan" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("ui", ["repl", "tui"])
def test_a_bad_fault_is_refused_up_front(ui):
    r = subprocess.run([sys.executable, "-m", "colo_tui", ui, "--fault", "explode@nowhere"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "explode" in r.stderr and "Traceback" not in r.stderr


def test_the_tui_parser_takes_what_run_takes():
    from colo_tui.cli.tui import add_arguments
    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from(p.parse_args(["--fault", "drop@ram#2", "--checkpoints", "7",
                                    "--no-arbiter", "--arbiter-ms", "2500", "--load-ms", "150",
                                    "--divergence", "0.1", "--svm-output-lost", "--xbzrle",
                                    "--mode", "hybrid"]))
    assert (cfg.faults, cfg.checkpoints, cfg.arbiter, cfg.arbiter_ms, cfg.load_ms,
            cfg.divergence, cfg.svm_output_lost, cfg.xbzrle, cfg.mode) == \
        (["drop@ram#2"], 7, False, 2500.0, 150.0, 0.1, True, True, "hybrid")
    assert config_from(p.parse_args([])).checkpoints == INTERACTIVE_CHECKPOINTS


def test_set_changes_a_setting_and_restarts():
    r = _repl("--guest", "null", script="step 3\nset arbiter off\nset checkpoints 2\nrun\n")
    assert r.returncode == 0, r.stderr
    assert "new session with arbiter off" in r.stdout
    assert "checkpoint 2; the scenario has ended" in r.stdout


def test_verbosity_hides_the_background_and_says_so():
    r = _repl("--checkpoints", "2", script="run\n")
    assert r.returncode == 0
    assert " client " not in r.stdout.replace("client's", "")
    assert "not shown at verbosity normal" in r.stdout
    normal = len(r.stdout.splitlines())
    r = _repl("--checkpoints", "2", script="set verbosity quiet\nrun\n")
    assert "checkpoint-request" in r.stdout and "not shown at verbosity quiet" in r.stdout
    assert len(r.stdout.splitlines()) < normal / 2          # the wire, not every step
    r = _repl("--checkpoints", "2", script="set verbosity all\nrun\n")
    assert "not shown" not in r.stdout and len(r.stdout.splitlines()) > 2 * normal
