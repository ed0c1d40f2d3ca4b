"""The REPL's bottom toolbar is cut at the terminal's width: what matters most comes
first. It ended with the run state and REC after about 100 characters, so an
80-column terminal never showed that the session was being recorded (nor the step,
nor paused / running / finished)."""
from colo_tui.commands import execute, run_state
from colo_tui.repl.render import toolbar_text
from colo_tui.session.control import Controller


def test_an_80_column_toolbar_shows_the_run_state_recording_step_and_checkpoint(tmp_path):
    c = Controller()
    assert execute(c, f"record start {tmp_path / 'r.colo.jsonl'}").ok
    assert execute(c, "step 9").ok
    seen = toolbar_text(c.status(), run_state(c))[:80]
    assert "paused" in seen and "REC" in seen
    assert f"step {c.steps}" in seen and f"ckpt {c.side('primary').checkpoint}" in seen
    assert f"P {c.status()['primary']['state']}/" in seen     # the primary's machine state
    c.record_stop()


def test_the_whole_toolbar_still_says_everything():
    c = Controller()
    text = toolbar_text(c.status(), run_state(c))
    for word in ("paused", "ckpt 0", "step 0", "P INIT/running/fo:none",
                 "S INIT/inmigrate/fo:none", "qemu", "periodic", "seed 1"):
        assert word in text
    assert "REC" not in text


def test_a_real_session_s_playback_names_no_seed(tmp_path):
    """An imported capture (and live peers) has no seed: the REPL's toolbar and
    `status` said 'seed 1' (the default config's) for colo repl --lab and a replayed
    capture; the TUI already left it out."""
    from tests.repl.test_session_interface import playback_controller
    c = playback_controller(tmp_path, checkpoints=2)
    assert "seed" not in toolbar_text(c.status(), run_state(c))
    text = execute(c, "status").text
    # nor a mode: its header's is a default, not what the capture shows (QA stop 31)
    assert "seed" not in text and "qemu dialect, a real capture" in text
    sim_c = Controller()                    # a simulation still names its seed
    assert "seed 1" in execute(sim_c, "status").text
