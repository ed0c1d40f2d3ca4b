"""A script line with control characters in it is echoed with them escaped. The echo
('colo> LINE') wrote them raw to the terminal: a stray ESC sequence in a script
(\\x1b[2J, a colour) cleared the screen or recoloured what followed; the error on
stderr already showed them escaped."""
from tests.repl.test_script import repl


def test_control_characters_are_echoed_escaped():
    r = repl(stdin="step 1\x1b[2J\x07\nstep 1\n")
    assert r.returncode == 2
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "colo> step 1\\x1b[2J\\x07" in r.stdout
    assert "'step 1\\x1b[2J\\x07' failed" in r.stderr


def test_a_plain_line_is_echoed_as_it_is():
    r = repl(stdin="step 2   # ünïcödé comment\n")
    assert r.returncode == 0 and "colo> step 2\n" in r.stdout
