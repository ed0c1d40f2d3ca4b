"""Exit codes that agree: usage errors are 2 in every front end, a broken pipe is a
quiet 0, and numbers follow the grammar (ASCII decimal, in range) or are refused."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colo_tui.cli import main as cli
from colo_tui.repl.session import run_repl
from protocol.core import faults
from protocol.errors import FaultSpecError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("COLO_FUZZ_EXAMPLES", 60))


def code(*argv) -> int:
    """`colo ARGV` in this process: its exit status, argparse's SystemExit included."""
    try:
        return cli.main(list(argv))
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("argv", [
    ["run", "--fault", "BAD"],
    ["run", "--fault", "opcode=4294967296@checkpoint-reply"],
    ["run", "--fault", "value=18446744073709551616@vmstate-size"],
    ["run", "--fault", "drop@checkpoint-reply#\u0663"],
    ["run", "--fault", "delay=0x10@checkpoint-reply"],
    ["run", "--fault", "drop@checkpoint-reply#0"],
    ["run", "--checkpoints", "0x10"],
    ["run", "--checkpoints", "1_000"],
    ["run", "--checkpoints", "\u0663"],
    ["run", "--checkpoints", " 3"],
    ["run", "--checkpoints", "+3"],
    ["run", "--seed", "\u0663"],
    ["run", "--seed", "-1"],
    ["run", "--checkpoint-delay", "1e3"],
    ["run", "--load-ms", "1e3"],
    ["run", "--load-ms", "\u0663"],
    ["run", "--load-ms", "1_0"],
    ["run", "--load-ms", "inf"],
    ["compare-modes", "--divergence", "\u0660.5"],
    ["run", "--ram-mib", "0x10"],
    ["compare-modes", "--seed", "0x1"],
    ["respond", "--role", "primary", "--idle-ticks", "0x10", "in.bin", "-o", "out.bin"],
    ["repl", "--proxy", "bogus", "bogus"],
    ["tui", "--proxy", "bogus", "bogus"],
    ["repl", "--peer", "127.0.0.1:\u0663"],
    ["tui", "--seed", "0x10"],
    ["repl", "--fault", "BAD"],
    # in range for the type, but beyond what a session can run (each hung or grew
    # without bound before): a client request more often than every 1 ms, a model
    # guest simulating days between checkpoints, a delay beyond QEMU's uint32
    ["run", "--client-every-ms", "0.5"],
    ["run", "--checkpoint-delay", "4294967295"],
    ["run", "--checkpoint-delay", "4294967296", "--guest", "null"],
    ["run", "--checkpoint-delay", "9223372036854775807"],
    ["tui", "--checkpoint-delay", "4294967295"],
    ["compare-modes", "--checkpoints", "99999999999"],
    ["explore", "--swarm", "2", "--workers", "100000"],    # a pool that size forks each
    ["explore", "--swarm", "2", "--seed", "-1"],           # no `colo run --seed` for it
    # node options are checked whatever the guest (a closed port: exit 1 if not)
    ["node", "primary", "--connect", "127.0.0.1:1", "--guest", "null", "--workload", "zzz"],
    ["node", "primary", "--connect", "127.0.0.1:1", "--seed", "18446744073709551616"],
    # the guest model's RAM as `colo run --ram-mib` bounds it (exit 1 before: a connect
    # or a map that failed)
    ["node", "primary", "--connect", "127.0.0.1:1", "--guest", "model", "--ram-mib", "65537"],
])
def test_usage_errors_exit_2(argv, capsys):
    assert code(*argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_a_fault_the_dialect_cannot_carry_is_a_usage_error_too(capsys):
    # parses, but the prototype dialect sends RAM inside the blob: found by the Simulation
    assert code("run", "--dialect", "prototype", "--fault", "drop@ram") == 2
    assert "colo: error:" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "option"), [
    (["run", "--guest", "null", "--record", ""], "--record"),
    (["run", "--guest", "null", "--dump-wire", ""], "--dump-wire"),
    (["replay", ""], "file"),
    (["decode", "--from", "primary", ""], "file"),
    (["export", "recordings/happy-qemu-periodic.colo.jsonl", "--to", "json", "-o", ""],
     "-o/--output"),
    (["import", "", "-o", "x.colo.jsonl"], "CAPTURE"),
    (["respond", "--role", "secondary", "in.bin", "-o", ""], "-o/--output"),
    (["explore", "--swarm", "1", "--repro-dir", ""], "--repro-dir"),
    (["node", "primary", "--connect", "127.0.0.1:1", "--record", ""], "--record"),
    (["node", "primary", "--connect", "127.0.0.1:1", "--template", ""], "--template"),
    (["tui", "--replay", ""], "--replay"),
    (["tui", "--record-dir", ""], "--record-dir"),
    (["repl", "-f", ""], "-f/--file"),
    (["template", "x.pcap", "--out", ""], "--out"),
    # (a bad --pair-fault after it: no QEMU starts, whatever happens to --capture)
    (["lab", "--capture", "", "--pair-fault", "drop@nbd#1"], "--capture"),
])
def test_an_empty_path_is_a_usage_error_naming_the_option(argv, option, capsys):
    assert code(*argv) == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: an empty path" in err, err


@pytest.mark.parametrize("ui", ["tui", "repl"])
@pytest.mark.parametrize(("addresses", "why"), [
    (["", "unix:/tmp/s.qmp"], "an empty QMP address"),
    (["unix:/tmp/p.qmp", ""], "an empty QMP address"),
    (["foo", "bar"], "bad QMP address 'foo': use unix:PATH, tcp:HOST:PORT or HOST:PORT"),
    (["unix:", "unix:/tmp/s.qmp"], "bad QMP address 'unix:'"),
    (["tcp:", "unix:/tmp/s.qmp"], "bad QMP address 'tcp:'"),
    (["127.0.0.1:99999", "unix:/tmp/s.qmp"], "bad QMP address '127.0.0.1:99999'"),
    (["tcp:127.0.0.1:\u0663", "unix:/tmp/s.qmp"], "bad QMP address 'tcp:127.0.0.1:\u0663'"),
    (["127.0.0.1:0", "unix:/tmp/s.qmp"], "bad QMP address '127.0.0.1:0': port 0 is no "
     "server's port"),
])
def test_an_attach_address_is_checked_up_front(ui, addresses, why, capsys):
    assert code(ui, "--attach", *addresses) == 2
    err = capsys.readouterr().err
    assert f"colo {ui}: error: argument --attach: {why}" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("ui", ["tui", "repl"])
@pytest.mark.parametrize(("primary", "secondary"), [
    ("unix:/tmp/p.qmp", "unix:/tmp/p.qmp"),
    ("unix:/tmp/p.qmp", "unix:/tmp/./x/../p.qmp"),      # the same socket, spelt apart
    ("127.0.0.1:4444", "127.0.0.1:4444"),
    ("127.0.0.1:4444", "tcp:127.0.0.1:4444"),
    (":4444", "tcp:127.0.0.1:4444"),                     # (an empty host is 127.0.0.1)
])
def test_attaching_both_sides_to_one_address_is_a_usage_error(ui, primary, secondary,
                                                              capsys):
    # (it was taken: one process answered as both sides, or the attach failed later)
    assert code(ui, "--attach", primary, secondary) == 2
    err = capsys.readouterr().err
    assert f"colo {ui}: error: argument --attach: {primary!r} and {secondary!r} are the " \
           "same QMP socket" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(("argv", "option"), [
    (["node", "primary", "--connect", "127.0.0.1:\u0663"], "--connect"),
    # (a bad --qmp after it: no node starts listening, whatever --listen reads as)
    (["node", "secondary", "--listen", "127.0.0.1:\u0663\u0660\u0660\u0660\u0661",
      "--qmp", "bogus"], "--listen"),
    (["node", "secondary", "--listen", "127.0.0.1:0", "--qmp", "tcp:127.0.0.1:\u0663"],
     "--qmp"),
    # (a --listen that cannot bind: exit 1 before the fix, never a wait for a primary)
    (["proxy", "--listen", "999.0.0.1:5", "--connect", "127.0.0.1:\u0663"], "--connect"),
    (["proxy", "--listen", "", "--connect", "127.0.0.1:1"], "--listen"),
])
def test_a_port_is_ascii_decimal_or_a_usage_error_naming_the_option(argv, option, capsys):
    # str.isdigit takes '٣', and int() reads it as 3: `--listen 127.0.0.1:٣٠٠٠١` listened
    # on port 30001
    assert code(*argv) == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: bad " in err and "Traceback" not in err, err


def test_attach_takes_what_the_qmp_client_connects_to():
    from colo_tui.session.argtypes import qmp_address
    from protocol.drivers.qmpclient import parse_client_address
    for text, want in [("unix:/run/p.qmp", ("unix", "/run/p.qmp")),
                       ("tcp:10.0.0.1:4444", ("tcp", ("10.0.0.1", 4444))),
                       ("10.0.0.1:4444", ("tcp", ("10.0.0.1", 4444))),
                       (":4444", ("tcp", ("127.0.0.1", 4444))),
                       ("[::1]:4444", ("tcp", ("::1", 4444)))]:
        assert qmp_address(text) == text and parse_client_address(text) == want


@pytest.mark.parametrize(("ui", "option", "value"), [
    ("run", "--arbiter-ms", "0"), ("run", "--arbiter-ms", "0.5"),
    ("run", "--arbiter-ms", "1000000001"), ("tui", "--arbiter-ms", "0"),
    ("repl", "--arbiter-ms", "0.5"), ("run", "--rate", "1000001"),
    ("run", "--ram-mib", "65537"), ("run", "--liveness-checkpoints", "10001"),
])
def test_a_setting_a_recording_cannot_carry_is_a_usage_error(ui, option, value, capsys):
    # each wrote a recording that `colo replay` refused ("params.arbiter_ms: Expected
    # `float` >= 1.0")
    assert code(ui, "--guest", "null", option, value) == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: the value must be between " in err, err


def test_the_settings_at_their_bounds_make_a_recording_that_reads(tmp_path, capsys):
    from protocol.record import format as rf
    f = tmp_path / "r.colo.jsonl"
    # (10,000 liveness checkpoints: cut short by --max-steps, exit 1, a cut recording)
    assert code("run", "--guest", "null", "--checkpoints", "1", "--max-steps", "40",
                "--record", str(f), "--arbiter-ms", "1000000000", "--rate", "1000000",
                "--ram-mib", "65536", "--liveness-checkpoints", "10000") == 1
    assert "stopped at the step bound (40 steps)" in capsys.readouterr().err
    params = rf.read(str(f)).header["params"]
    assert (params["arbiter_ms"], params["rate"], params["ram_mib"],
            params["liveness_checkpoints"]) == (1e9, 1e6, 65536, 10000)


@pytest.mark.parametrize(("argv", "option"), [
    # x-checkpoint-delay is a uint32 in QEMU (a node's QMP refused it; the CLI took it)
    (["node", "primary", "--connect", "127.0.0.1:1", "--checkpoint-delay", "4294967296"],
     "--checkpoint-delay"),
    (["respond", "--role", "primary", "--checkpoint-delay", "4294967296", "in.bin",
      "-o", "out.bin"], "--checkpoint-delay"),
    # (a bad --pair-fault after them: no QEMU starts, whatever happens to the option)
    (["lab", "--checkpoint-delay", "4294967296", "--pair-fault", "drop@nbd#1"],
     "--checkpoint-delay"),
    (["lab", "--probes", "1001", "--pair-fault", "drop@nbd#1"], "--probes"),
    (["lab", "--load", "3601", "--pair-fault", "drop@nbd#1"], "--load"),
])
def test_a_real_pairs_settings_are_bounded(argv, option, capsys):
    assert code(*argv) == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: the value must be between " in err, err


def _script(text: str, tmp_path) -> int:
    path = tmp_path / "s.colo"
    path.write_text(text)
    args = cli.build_parser().parse_args(["repl", "--guest", "null", "-f", str(path)])
    return run_repl(args, stdout=io.StringIO(), stderr=io.StringIO())


def test_the_same_error_has_one_code_in_every_front_end(tmp_path, capsys):
    missing = str(tmp_path / "missing.colo.jsonl")
    # a file that cannot be read: 1 everywhere
    assert code("replay", missing) == 1
    assert code("tui", "--replay", missing) == 1
    assert _script(f"replay {missing}\n", tmp_path) == 1
    assert code("repl", "-f", str(tmp_path / "missing.colo")) == 1
    # a fault spec that does not follow the grammar: 2 everywhere
    assert code("run", "--fault", "drop@nowhere") == 2
    assert _script("fault drop@nowhere\n", tmp_path) == 2
    assert code("tui", "--proxy", "127.0.0.1:1", "127.0.0.1:2", "--fault",
                "drop@nowhere") == 2
    # a command that ran and failed (nothing to step back to is fine; an invariant
    # or a file is what fails): 1
    assert _script("step\nrecord start /nonexistent-dir/x.colo.jsonl\n", tmp_path) == 1
    assert _script("run 1\n", tmp_path) == 0
    capsys.readouterr()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(text=st.text(min_size=1, max_size=12))
def test_a_checkpoint_number_is_ascii_decimal_or_refused(text):
    spec = f"drop@checkpoint-reply#{text}"
    ok = text.isascii() and text.isdigit() and int(text) >= 1
    try:
        f = faults.parse(spec)
    except FaultSpecError as exc:
        assert not ok, (spec, exc)
        assert "#" in str(exc) or "form is" in str(exc)
        return
    assert ok and f.checkpoint == int(text)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(n=st.integers(0, 1 << 70), kind=st.sampled_from(["opcode", "value", "delay"]))
def test_numeric_fault_arguments_are_refused_out_of_range_never_wrapped(n, kind):
    hi = faults.ARG_RANGE[kind][1]
    point = "vmstate-size" if kind == "value" else "checkpoint-reply"
    try:
        f = faults.parse(f"{kind}={n}@{point}")
    except FaultSpecError as exc:
        assert n > hi and "between" in str(exc)
        return
    assert n <= hi and f.arg == n


def _pipe_to_closed_reader(*argv, keep: int):
    """Run `colo ARGV`, read `keep` bytes of its stdout, close the pipe (as `head`)."""
    p = subprocess.Popen([sys.executable, "-m", "colo_tui", *argv], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(keep)
    p.stdout.close()
    try:
        err = p.stderr.read()
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    return rc, err.decode()


@pytest.mark.parametrize("argv,keep", [
    (["run", "--guest", "null", "--events", "--checkpoints", "3000"], 80),  # `| head -1`
    (["run", "--guest", "null", "--json", "--checkpoints", "3000"], 10),    # `| head -c 10`
])
def test_a_broken_pipe_exits_0_quietly(argv, keep):
    rc, err = _pipe_to_closed_reader(*argv, keep=keep)
    assert rc == 0 and err == ""


def test_decode_into_a_closed_pipe_exits_0_quietly(tmp_path):
    assert code("run", "--guest", "null", "--checkpoints", "3000", "--dump-wire", str(tmp_path)) == 0
    rc, err = _pipe_to_closed_reader("decode", "--initial", "--from", "primary",
                                     str(tmp_path / "primary_to_secondary.bin"), keep=40)
    assert rc == 0 and err == ""


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(text=st.one_of(st.text(max_size=12), st.integers(-5, 1 << 70).map(str),
                      st.integers(0, 1 << 20).map(hex)))
def test_an_int_option_takes_ascii_decimal_in_range_or_refuses(text):
    import argparse

    from colo_tui.session.argtypes import int_in
    parse = int_in(1, 1000)
    ok = text.isascii() and text.isdigit() and 1 <= int(text) <= 1000
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as exc:
        assert not ok and "the value must be" in str(exc)
        return
    assert ok and value == int(text)


def test_the_null_guest_takes_any_uint32_checkpoint_delay(capsys):
    assert code("run", "--guest", "null", "--checkpoints", "2",
                "--checkpoint-delay", "4294967295") == 0


def test_the_tui_without_a_terminal_is_an_error_not_a_stream_of_escapes():
    r = subprocess.run([sys.executable, "-m", "colo_tui", "tui"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and r.stdout == b""
    assert b"needs a terminal" in r.stderr and b"Traceback" not in r.stderr


@pytest.mark.parametrize(("argv", "named"), [
    (["--listen", "999.0.0.1:5", "--connect", "127.0.0.1:6"], "listen 999.0.0.1:5"),
    (["--listen", "127.0.0.1:0", "--connect", "127.0.0.1:6", "--record", "/nonexistent/d/r"],
     "/nonexistent/d/r: "),
])
def test_proxy_os_errors_name_what_they_are_about(argv, named, capsys):
    assert code("proxy", *argv) == 1
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
