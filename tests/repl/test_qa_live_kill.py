"""`colo repl --transport tcp`: a killed side says nothing more."""
import subprocess
import sys

from tests.tcp._nodes import ROOT


def test_a_killed_side_reads_no_eof_and_does_not_exit_colo():
    """`kill secondary` on the in-process TCP pair: the killed secondary's own endpoint
    went on to read the EOF of its own socket ('S reads EOF', 'S error: Can't receive
    COLO message', 'S the COLO thread leaves its loop') and `run until colo-exit`
    stopped at the dead side's COLO_EXIT.  Now only the primary notices (at its next
    checkpoint, as QEMU 7.2's primary does) and the COLO_EXIT is the primary's."""
    script = ("set checkpoint-delay 200\nrun 1\nkill secondary\nrun until colo-exit\n"
              "status\n")
    r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--transport", "tcp"],
                       input=script, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    after = r.stdout.split("colo> run until colo-exit", 1)[1]
    after_kill = after.split("the process is killed", 1)[1]
    said = [line for line in after_kill.splitlines() if line[12:16] == " S  "]
    assert said == [], after
    assert "stopped at colo-exit" in after and ", primary)" in after, after
    assert "secondary  dead" in after


def test_a_kill_is_stamped_on_the_engines_clock():
    """The kill event was stamped on the source's clock, which starts before the
    engines': 'kill' read 271.6 ms and the primary's EOF it caused 213.8 ms."""
    script = "set checkpoint-delay 200\nrun 1\nkill secondary\nrun until colo-exit\n"
    r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--transport", "tcp"],
                       input=script, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split("the process is killed", 1)
    t_kill = float(lines[0].splitlines()[-1].split()[0])
    t_eof = float(next(x for x in lines[1].splitlines() if "reads EOF" in x).split()[0])
    assert t_kill <= t_eof, r.stdout
