"""`colo repl -f PATH`: a path that names no file is refused clearly.  '' said 'give a
file or directory name' (a script is a file); a NUL byte reached open(), whose
ValueError ('embedded null byte') was a traceback and exit 1 where a bad path is a
usage error (2, as '' is); a control character in a missing file's name was printed
raw.  A NUL in a REPL command's FILE ('record start', 'replay') failed the script
with 1 and 'embedded null byte'."""
from __future__ import annotations

import subprocess
import sys

import pytest

from colo_tui.cli import main as cli
from tests.tcp._nodes import ROOT


def code(*argv) -> int:
    try:
        return cli.main(list(argv))
    except SystemExit as exc:
        return exc.code


def test_an_empty_script_path_names_the_script(capsys):
    assert code("repl", "-f", "") == 2
    err = capsys.readouterr().err
    assert "argument -f/--file: an empty path (give the script's file name)" in err, err


@pytest.mark.parametrize("argv", [["repl", "-f", "a\0b"], ["replay", "a\0b"],
                                  ["run", "--record", "a\0b"]])
def test_a_nul_byte_in_a_path_is_a_usage_error(argv, capsys):
    assert code(*argv) == 2
    err = capsys.readouterr().err
    assert "has a NUL byte, which no file name can hold" in err, err
    assert "Traceback" not in err


def test_a_control_character_in_a_missing_scripts_name_is_escaped(tmp_path, capsys):
    missing = tmp_path / "a\x1bb"
    assert code("repl", "-f", str(missing)) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "a\\x1bb: No such file or directory" in err, err


@pytest.mark.parametrize("line", ["record start a\0b", "replay a\0b"])
def test_a_nul_byte_in_a_commands_file_is_a_usage_error(line):
    r = subprocess.run([sys.executable, "-m", "colo_tui", "repl"], input=line + "\n",
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "FILE: the path has a NUL byte" in r.stderr, r.stderr
    assert "embedded null byte" not in r.stderr
