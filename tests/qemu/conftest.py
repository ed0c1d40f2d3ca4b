"""Fixtures for the real-QEMU and run1 tests (tests/qemu)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.qemu.build import build

RUN1 = Path(os.environ.get("COLO_QEMU_RUN1", "/work/shared/qemu-colo/run1"))


@pytest.fixture(scope="session")
def run1() -> Path:
    if not (RUN1 / "primary_to_secondary.bin").exists():
        pytest.skip(f"the run1 capture is not at {RUN1} (set COLO_QEMU_RUN1)")
    return RUN1


@pytest.fixture(scope="session")
def run1_bytes(run1) -> tuple[bytes, bytes]:
    return ((run1 / "primary_to_secondary.bin").read_bytes(),
            (run1 / "secondary_to_primary.bin").read_bytes())


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
    assert all(p.poll() is not None for p in started)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    return build(tmp_path_factory.mktemp("qemu-build"))
