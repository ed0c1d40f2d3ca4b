"""The protocol package stays free of UI imports and starts light."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_protocol_loads_no_ui_and_no_event_loop():
    code = ("import sys, protocol, protocol.sim.core, protocol.record.replay, protocol.guest.model;"
            "bad=[m for m in ('textual','prompt_toolkit','uvloop','asyncio') if m in sys.modules];"
            "print(','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed")
    r = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "broken" not in r.stdout.lower() or "0 broken" in r.stdout.lower()


def test_protocol_has_no_sleep_or_module_random():
    offenders = []
    for path in (ROOT / "protocol").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if any(part in rel for part in ("/drivers/", "/sim/", "/bench/")):
            continue
        text = path.read_text()
        for bad in ("time.sleep(", "random.random(", "random.randint(", "import random",
                    "import asyncio", "import socket", "import time"):
            if bad in text:
                offenders.append(f"{rel}: {bad}")
    assert not offenders


def test_the_core_draws_no_random_numbers():
    core = [ROOT / "protocol" / "guest" / n for n in ("ram.py", "ramcache.py", "net.py",
                                                      "devices.py", "disk.py", "model.py",
                                                      "workload.py", "pagediff.py")]
    core += [ROOT / "protocol" / "migration" / n for n in ("stream.py", "streamdecode.py", "pages.py")]
    for path in core:
        assert "np.random" not in path.read_text() and "numpy.random" not in path.read_text()
