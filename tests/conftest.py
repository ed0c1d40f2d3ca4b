"""Suite-wide: recordings a test starts without naming a file go to a temporary
folder, never into the user's data directory or the repository."""
import pytest


@pytest.fixture(autouse=True)
def _recordings_in_tmp(tmp_path_factory, monkeypatch):
    import os
    if "COLO_RECORDINGS_DIR" not in os.environ:
        monkeypatch.setenv("COLO_RECORDINGS_DIR",
                           str(tmp_path_factory.getbasetemp() / "user-recordings"))
