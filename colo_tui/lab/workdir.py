"""The lab's work directories (disk images, QMP sockets, serial consoles, traces:
about 70 MiB each).  While a lab runs its directory is `colo-lab-<pid>-XXXXXXXX`
in the temporary directory; a lab killed with SIGKILL cannot delete its own, so
the next lab deletes every such directory whose process is gone, as netns.py does
with the namespaces.  A directory kept with --keep is named without the pid and
is never deleted."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

_OWNED = re.compile(r"colo-(?:lab|modes)-(\d+)-[^-]+")


def reap_stale(root: Path | None = None) -> list[Path]:
    """Delete the work directories of labs whose process is gone."""
    root = Path(root or tempfile.gettempdir())
    gone = []
    for d in (*root.glob("colo-lab-*-*"), *root.glob("colo-modes-*-*")):
        m = _OWNED.fullmatch(d.name)
        if m and d.is_dir() and not d.is_symlink() and not Path(f"/proc/{m[1]}").exists():
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    return gone


def make(keep: bool, prefix: str = "colo-lab-") -> Path:
    """A new work directory; `keep`: one the lab leaves behind for the user."""
    reap_stale()
    if keep:
        return Path(tempfile.mkdtemp(prefix=prefix))
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


@contextmanager
def temporary(prefix: str = "colo-lab-"):
    """A work directory deleted when the block ends (the next lab deletes it
    should this process be killed first)."""
    d = make(False, prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
