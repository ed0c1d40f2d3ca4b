"""Suite-wide: recordings a test starts without naming a file, and the user's
config file, live in temporary folders, never in the user's data or config
directories or the repository."""
import os

import pytest


@pytest.fixture(autouse=True)
def _user_files_in_tmp(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.getbasetemp()
    if "COLO_RECORDINGS_DIR" not in os.environ:
        monkeypatch.setenv("COLO_RECORDINGS_DIR", str(base / "user-recordings"))
    if "COLO_CONFIG" not in os.environ:
        monkeypatch.setenv("COLO_CONFIG", str(base / "user-config" / "config.toml"))
