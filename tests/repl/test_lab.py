"""`colo repl --lab` (colo_tui/cli/lab_repl.py): the REPL on a lab session.

The script runs on the fake lab at the session seam (tests/tui/_fakelab.py,
whose fidelity tests/tui/_lab_contract.py holds against the real lab); the same
script on real QEMU is tests/qemu/test_repl_lab.py.  The options the lab cannot
take are refused before any QEMU starts."""
from __future__ import annotations

import io

import pytest

from colo_tui.cli.main import build_parser, main
from colo_tui.repl.session import run_repl
from protocol.sim.config import SimConfig
from tests.tui._fakelab import FakeLab

#: one experiment: COLO up, a corrupted primary packet, the primary killed, failover.
#: `run until qmp` first: the lab polls the survivor after the kill too, and when its
#: status has moved (a kill during a checkpoint) that status comes before the
#: failover's QMP commands; the status after them is the failover's
SCRIPT = """\
run until verdict
fault corrupt@primary-in#1
run until fault
kill primary
failover secondary
run until qmp
run until status
status
"""


def test_a_script_drives_the_lab_session():
    args = build_parser().parse_args(["repl", "--lab", "--net", "user"])
    assert args.lab and args.live_source is not None
    made = []
    args.live_source = lambda a: made.append(FakeLab(SimConfig(dialect="qemu"))) or made[-1]
    out, err = io.StringIO(), io.StringIO()
    code = run_repl(args, stdin=io.StringIO(SCRIPT), stdout=out, stderr=err)
    text = out.getvalue()
    assert code == 0, (err.getvalue(), text[-2000:])
    assert "stopped at verdict" in text and "stopped at fault" in text, text[-2000:]
    assert "corrupt@primary-in" in text
    # what a corrupt does to a channel's packet, as the TUI's fault menu says it (the
    # REPL said the link's words: "flip bits in the piece's first bytes")
    assert "armed: flip bits in the packet's last payload byte — on the primary-in " \
           "channel's 1st TCP data packet from now" in text, text[-2000:]
    assert "query-colo-status (mode none, last-mode secondary, reason request)" in text, \
        text[-1500:]
    feed = made[0]
    assert feed.fired == {0}                         # the fault reached the pair
    assert not feed.st["primary"].alive
    assert feed.done.is_set()                        # the REPL's end closed the source


@pytest.mark.parametrize("argv,said", [
    (["--transport", "tcp"], "does not go with --transport tcp"),
    (["--proxy", "127.0.0.1:1", "127.0.0.1:2"], "does not go with --proxy"),
    (["--dialect", "v11"], "speaks --dialect qemu, not 'v11'"),
    (["--fault", "drop@checkpoint-request#1"], "compare channels"),
])
def test_what_the_lab_cannot_take_is_a_usage_error(argv, said, capsys):
    assert main(["repl", "--lab", "--net", "user", *argv]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err


def test_a_compare_channel_fault_needs_the_lab(capsys):
    """The parser takes either grammar; without --lab the simulation refuses a
    channel point, naming it."""
    assert main(["repl", "--fault", "corrupt@primary-in#1"]) == 2
    err = capsys.readouterr().err
    assert "primary-in" in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as ended:        # argparse's own usage error
        main(["repl", "--lab", "--fault", "nonsense"])
    assert ended.value.code == 2 and "nonsense" in capsys.readouterr().err
