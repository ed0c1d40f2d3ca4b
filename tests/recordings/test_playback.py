"""An imported real capture opens like any recording and steps through the real session."""
import subprocess
import sys
from pathlib import Path

import pytest

from colo_tui.commands import execute
from colo_tui.session.control import Controller

RUN1 = Path(__file__).resolve().parents[3] / "shared" / "qemu-colo" / "run1"
pytestmark = pytest.mark.skipif(not RUN1.exists(), reason="../shared/qemu-colo/run1 missing")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("imp") / "run1.colo.jsonl"
    r = subprocess.run([sys.executable, "-m", "colo_tui", "import", str(RUN1 / "capture.pcap"),
                        "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out


def test_step_through_the_real_session(imported):
    c = Controller()
    c.load_replay(str(imported))
    assert c.playback
    c.step(12)
    assert c.status()["primary"]["checkpoint"] == 1
    c.run()
    st = c.status()
    assert st["primary"]["checkpoint"] == 20 and st["finished"]
    assert "lone-request" in st["primary"]["error"]
    msgs = [w["msg"] for w in c.wire()]
    assert msgs[:7] == ["checkpoint-ready", "checkpoint-request", "checkpoint-reply",
                        "vmstate-send", "vmstate-size", "vmstate-received", "vmstate-loaded"]


def test_time_travel_works_and_changes_are_refused(imported):
    c = Controller()
    c.load_replay(str(imported))
    c.run()
    end = c.steps
    assert c.back(10) == end - 10
    res = execute(c, "heartbeat secondary")
    assert not res.ok and "imported real session" in res.text
    c.step(10)
    assert c.steps == end


def test_replay_and_export_of_an_imported_capture(imported, tmp_path):
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(imported), "--json"],
                       capture_output=True, text=True, timeout=120)
    import json
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["imported"] and out["checkpoints_committed"] == 20
    r = subprocess.run([sys.executable, "-m", "colo_tui", "export", str(imported), "--to",
                        "mermaid"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "never arrived" not in r.stdout
    assert r.stdout.count("Primary->>Secondary: checkpoint-request") == 21
    r = subprocess.run([sys.executable, "-m", "colo_tui", "export", str(imported), "--to",
                        "pcap", "-o", str(tmp_path / "x.pcap")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "imported from a real capture" in r.stderr


def test_the_primary_is_in_colo_once_checkpoint_ready_is_seen(imported):
    """The tracker gave a seen side the state of what it last sent, so the primary,
    which sends nothing until its first checkpoint-request, stayed INIT through the
    whole first checkpoint delay (10 s in colo lab) while QMP said mode primary.
    Now it waits for checkpoint-ready (WAIT_READY) once its initial migration is
    seen, and is IDLE, in COLO, once checkpoint-ready is."""
    c = Controller()
    c.load_replay(str(imported))
    seen = []
    for _ in range(40):
        evs = c.step()
        if not evs:
            break
        seen.append((evs[-1].kind, getattr(evs[-1], "msg", None),
                     c.status()["primary"]["state"]))
        if evs[-1].kind == "send" and evs[-1].msg == "checkpoint-request":
            break
    ready = next(i for i, (k, msg, _s) in enumerate(seen) if msg == "checkpoint-ready")
    assert seen[ready][2] == "IDLE", seen[:ready + 1]
    assert all(s == "IDLE" for _k, _m, s in seen[ready:-1]), seen[ready:]
    assert seen[-1][2] == "WAIT_REPLY", seen[-1]
    assert "INIT" not in {s for _k, _m, s in seen[ready:]}
