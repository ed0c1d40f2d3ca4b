"""An imported real capture at its end: a key that would give an input gets the
capture's own refusal (it takes no inputs), not the simulation's 'an input there
forks the future' (f57195b said that of a capture)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from tests.tui.conftest import run_to_the_end


def _capture(tmp_path: Path) -> Path:
    from tests.stream._synth import colo_session, make_pcap, page
    fwd, rev, _ = colo_session([[page("pc.ram", 0x2000)], [page("pc.ram", 0x4000)]])
    pcap, rec = tmp_path / "s.pcap", tmp_path / "s.colo.jsonl"
    pcap.write_bytes(make_pcap(fwd, rev))
    r = subprocess.run([sys.executable, "-m", "colo_tui", "import", str(pcap), "-o", str(rec)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return rec


async def test_a_capture_at_its_end_refuses_inputs_as_a_capture(tmp_path: Path) -> None:
    app = ColoApp(Controller(), replay=str(_capture(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await run_to_the_end(app, pilot)
        for key in ("c", "k"):
            await pilot.press(key)
            await pilot.pause()
            notice = app.bridge.view().status.notice
            assert "imported real session" in notice and "forks" not in notice
        await pilot.press("n")
        await pilot.pause()
        notice = app.bridge.view().status.notice
        assert notice.startswith("the session has ended") and "forks" not in notice
