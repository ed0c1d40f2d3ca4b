"""`record start FILE force` on the recording being replayed. Every writer refuses
its own input (README: 'never write over their own input ... nor over an existing
file without --force'); the REPL replaced it: 'replay recordings/happy-qemu-periodic
.colo.jsonl', 'record start <the same> force', 'step 3', quit cut the golden
recording to 3 steps."""
import os
import shutil

from colo_tui.commands import execute
from colo_tui.session.control import Controller
from tests.tcp._nodes import ROOT

GOLDEN = os.path.join(str(ROOT), "recordings", "happy-qemu-periodic.colo.jsonl")


def test_the_replayed_recording_is_not_written_over(tmp_path):
    src = tmp_path / "r.colo.jsonl"
    shutil.copy(GOLDEN, src)
    before = src.read_bytes()
    link = tmp_path / "link.colo.jsonl"
    os.symlink(src, link)
    c = Controller()
    assert execute(c, f"replay {src}").ok
    for target in (src, link):
        res = execute(c, f"record start {target} force")
        assert not res.ok and "own input" in res.text, res.text
    assert c.recording_path is None
    assert execute(c, "step 3").ok and execute(c, "quit").ok
    assert src.read_bytes() == before
    res = execute(c, f"record start {tmp_path / 'other.colo.jsonl'}")    # elsewhere: fine
    assert res.ok, res.text
    c.record_stop()
