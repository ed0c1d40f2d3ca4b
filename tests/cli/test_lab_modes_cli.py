"""`colo compare-modes --real` and `colo lab --pair-fault`: bad input is a usage
error (exit 2, no traceback) before any QEMU starts; `colo faults` names the pair
faults."""
from __future__ import annotations

import contextlib
import io

import pytest

from colo_tui.cli import main as cli


def run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", [
    ["compare-modes", "--real", "--seconds", "0"],
    ["compare-modes", "--real", "--seconds", "1e3"],
    ["compare-modes", "--real", "--periodic-delay", "0"],
    ["compare-modes", "--real", "--periodic-delay", "4294967296"],   # QEMU's is a uint32
    ["compare-modes", "--real", "--probe-every", "-1"],
    ["lab", "--pair-fault", "drop@nbd#1"],
    ["lab", "--pair-fault", "close@nbd#0"],
    ["lab", "--pair-fault", "corrupt@checkpoint-request"],
    ["lab", "--pair-fault", "stall-primary@nowhere#1"],
])
def test_bad_input_is_a_usage_error(argv, monkeypatch):
    from colo_tui.lab import modes
    monkeypatch.setattr(modes, "cmd_real", lambda args: pytest.fail("ran --real"))
    code, _, err = run(*argv)
    assert code == 2, err
    assert "Traceback" not in err and "error:" in err, err


@pytest.mark.parametrize(("option", "value"), [
    ("--seconds", "5"), ("--periodic-delay", "500"), ("--probe-every", "1")])
def test_real_only_options_without_real_are_a_usage_error(option, value):
    code, out, err = run("compare-modes", "--checkpoints", "1", option, value)
    assert code == 2 and out == "", out
    assert err == f"colo: error: {option} needs --real (the real QEMU pair's phases; the " \
                  "simulated comparison runs --checkpoints N per mode)\n", err


def test_real_gets_its_defaults(monkeypatch):
    from colo_tui.lab import modes
    seen = {}
    monkeypatch.setattr(modes, "cmd_real", lambda args: seen.update(vars(args)) or 0)
    assert run("compare-modes", "--real", "--seconds", "5")[0] == 0
    assert (seen["seconds"], seen["periodic_delay"], seen["probe_every"]) == (5.0, 2000, 3.0)


@pytest.mark.parametrize(("option", "value"), [
    ("--checkpoints", "5"), ("--workload", "hot"), ("--divergence", "0.5"),
    # given at their defaults, they are still refused: the user asked for something
    # --real does not do
    ("--checkpoints", "10"), ("--divergence", "0.02")])
def test_simulation_only_options_with_real_are_a_usage_error(option, value, monkeypatch):
    from colo_tui.lab import modes
    monkeypatch.setattr(modes, "cmd_real", lambda args: pytest.fail("ran --real"))
    code, out, err = run("compare-modes", "--real", option, value)
    assert code == 2 and out == "", out
    assert err == f"colo: error: {option} is not for --real (the simulated comparison's; " \
                  "the real QEMU pair runs its echo workload for --seconds S per phase)\n", \
        err


def test_every_simulation_only_option_given_with_real_is_named(monkeypatch):
    from colo_tui.lab import modes
    monkeypatch.setattr(modes, "cmd_real", lambda args: pytest.fail("ran --real"))
    code, _, err = run("compare-modes", "--real", "--workload", "hot", "--checkpoints", "3")
    assert code == 2
    assert err.startswith("colo: error: --checkpoints and --workload are not for --real "), err


def test_a_dialect_the_real_pair_does_not_speak_is_a_usage_error(monkeypatch):
    from colo_tui.lab import modes
    seen = {}
    monkeypatch.setattr(modes, "cmd_real", lambda args: seen.update(vars(args)) or 0)
    code, _, err = run("compare-modes", "--real", "--dialect", "v11")
    assert code == 2 and not seen
    assert err == "colo: error: --dialect v11 is not for --real (the real pair is QEMU " \
                  "7.2: dialect qemu)\n", err
    assert run("compare-modes", "--real", "--dialect", "qemu")[0] == 0 and seen


def test_the_simulated_comparison_gets_its_defaults(monkeypatch):
    from protocol.sim import compare
    seen = {}
    monkeypatch.setattr(compare, "compare_modes",
                        lambda **kw: seen.update(kw) or {"periodic": {}, "hybrid": {}})
    assert run("compare-modes", "--json")[0] == 0
    assert seen == {"dialect": "qemu", "seed": 1, "checkpoints": 10, "workload": "toggle",
                    "divergence": 0.02}


def test_faults_lists_the_pair_faults():
    code, out, _ = run("faults")
    assert code == 0
    assert "colo lab --pair-fault:" in out and "close@nbd#N" in out
    assert "stall-secondary" in out.split("colo lab --pair-fault:")[1]
