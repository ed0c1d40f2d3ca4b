"""Input files a command reads whole: regular files only.

A FIFO with no writer blocks the reader in open() until it is killed, and a device
such as /dev/zero never ends; every command that reads a named file (``colo import``,
``decode``, ``replay``, ``export``, ``respond``, ``tui --replay``) asks
`input_refusal` first, so each refuses them with the same one line.  (Standard input,
``-`` where a command takes it, may still be a pipe: the shell opens it.)
"""
from __future__ import annotations

import os
import stat

#: what a stream file is, as the refusals say it
STREAM_FILE = "a capture's bytes, e.g. primary_to_secondary.bin"
#: … and a recording
RECORDING = "a recording, as `colo run --record` writes it"


def input_refusal(path, what: str) -> str | None:
    """Why `path` cannot be read as `what` ('a recording', 'a capture's bytes, e.g.
    primary_to_secondary.bin'), or None: a regular file, or a path whose open() will
    say what is wrong (it does not exist, it may not be read)."""
    try:
        st = os.stat(path)        # follows symlinks: the file open() would reach
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode):
        return None                 # open() says "Is a directory", as every reader did
    kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
        "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
    return (f"{os.fspath(path)}: not a regular file ({kind}: it may never end, or never "
            f"start; give {what})")
