"""What the interactive REPL asks before a command that throws the session away.
`set checkpoints|load-ms|arbiter|arbiter-ms|divergence|svm-output-lost|xbzrle`
restart the session as `set seed` does (their help says so), but only dialect, mode,
seed and guest asked: `set load-ms 10` after an hour's stepping lost it at once."""
import pytest

from colo_tui.commands import confirmation
from colo_tui.session.options import SETTINGS

VALUES = {"checkpoints": "50", "load-ms": "10", "arbiter": "off", "arbiter-ms": "500",
          "divergence": "0.5", "svm-output-lost": "on", "xbzrle": "on"}


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_every_session_setting_asks_before_restarting(key):
    assert confirmation(None, f"set {key} {VALUES[key]}") == \
        f"restart the session with {key} {VALUES[key]}?"


@pytest.mark.parametrize("line", ["set seed 2", "set dialect v11", "set mode hybrid",
                                  "set guest null"])
def test_the_other_restarts_still_ask(line):
    assert confirmation(None, line).startswith("restart the session with")


@pytest.mark.parametrize("line", ["set verbosity all", "set checkpoint-delay 500", "step",
                                  "set load-ms bad"])
def test_what_keeps_the_session_does_not_ask(line):
    assert confirmation(None, line) is None
