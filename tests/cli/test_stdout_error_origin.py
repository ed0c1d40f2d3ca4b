"""main's one line for a standard output that cannot be written names the standard
output only when its own write or flush failed.  It took any OSError without a file
name (ENOSPC, EDQUOT, EFBIG, EIO) for the standard output's: an EIO reading
`colo decode`'s input said 'cannot write the standard output: Input/output error'."""
from __future__ import annotations

import errno
import io
import subprocess
import sys
from pathlib import Path

import pytest

from colo_tui.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="no /proc/self/mem")
def test_an_input_that_cannot_be_read_is_named_not_the_standard_output():
    # reading /proc/self/mem at offset 0 (nothing mapped there) fails with EIO
    r = subprocess.run([sys.executable, "-m", "colo_tui", "decode", "--from", "primary",
                        "/proc/self/mem"], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 1, r.stderr
    assert r.stderr == "colo decode: error: cannot read /proc/self/mem: Input/output error\n"


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC])
def test_an_unnamed_oserror_from_elsewhere_is_not_said_to_be_the_standard_output(
        err, monkeypatch, capsys):
    class Stdin(io.StringIO):
        def readline(self, *_args):
            raise OSError(err, "from elsewhere")    # a hung-up terminal, a semaphore …
    monkeypatch.setattr(sys, "stdin", Stdin())
    with pytest.raises(OSError) as exc:       # (not main's to name: it does not know)
        main(["learn", "anatomy"])
    assert exc.value.errno == err
    assert "standard output" not in capsys.readouterr().err


def test_the_standard_output_failing_is_still_named(monkeypatch, capsys):
    class Full(io.StringIO):
        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")
    real = Full()
    monkeypatch.setattr(sys, "stdout", real)
    assert main(["faults"]) == 1
    assert capsys.readouterr().err == ("colo faults: error: cannot write the standard "
                                       "output: No space left on device\n")
    assert sys.stdout is real              # main puts the standard output back
