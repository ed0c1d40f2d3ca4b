"""Output files that never destroy what a user owns.

Every one-shot writer (``export -o``, ``import -o``, ``respond -o``) goes through
`atomic_output`: it refuses a target that is one of the command's inputs (the
same file: same device and inode, through symlinks and hard links), refuses to
overwrite an existing file unless forced, and writes to a temporary file in
the target's directory that is fsynced and renamed over the target only on
success — a crash leaves the old file or the new one, never half of one.
A target that exists but is not a regular file (``/dev/null``, a FIFO) is
written in place: there is nothing there to destroy (a FIFO only with --force,
as a regular file: a write into it blocks until someone reads).
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from protocol.errors import OutputFileError

FORCE_HINT = "give --force to overwrite it"


def _stat(path) -> os.stat_result | None:
    try:
        return os.stat(path)             # follows symlinks: the file a write would reach
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputFileError(f"cannot use {path} as output: {exc.strerror}") from None


def check_target(path, *, inputs=(), force: bool = False) -> os.stat_result | None:
    """Refuse `path` as an output (OutputFileError) when it is one of `inputs` or an
    existing regular file without `force`; returns the target's stat (None: new)."""
    st = _stat(path)
    if st is None:
        return None
    for src in inputs:
        try:
            sst = os.stat(src)
        except OSError:
            continue
        if (sst.st_dev, sst.st_ino) == (st.st_dev, st.st_ino):
            same = "is" if os.path.abspath(src) == os.path.abspath(path) else "is the same file as"
            raise OutputFileError(f"the output {path} {same} the input {src}: "
                                  "refusing to overwrite the command's own input")
    if stat.S_ISDIR(st.st_mode):
        raise OutputFileError(f"the output {path} is a directory")
    if (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)) and not force:
        # (a FIFO too: writing into it blocks until a reader comes, and the bytes go to
        # whoever reads it; a device such as /dev/null is written without --force)
        raise OutputFileError(f"the output {path} already exists; {FORCE_HINT}")
    return st


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(path) -> None:
    """Make a rename in `path`'s directory durable (best effort: not every FS allows it)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class TempTarget:
    """A temporary file next to `path` that becomes `path` on `commit()`.

    ``replace=False``: the rename fails (OutputFileError) if `path` appeared in the
    meantime (a hard link, then unlink: atomic where links exist).
    """

    def __init__(self, path, *, mode: int | None = None, replace: bool = True) -> None:
        self.path = os.fspath(path)
        self.replace = replace
        directory = os.path.dirname(os.path.abspath(self.path))
        base = os.path.basename(self.path)
        try:
            fd, self.tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.", suffix=".tmp")
        except OSError as exc:           # reported like any write failure, naming the target
            raise OSError(exc.errno, exc.strerror, self.path) from None
        os.fchmod(fd, _default_mode() if mode is None else mode)
        self.fh = os.fdopen(fd, "wb")
        self.done = False

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        try:
            if self.replace:
                os.replace(self.tmp, self.path)
            else:
                self._link_into_place()
        except BaseException:
            self.discard()
            raise
        fsync_dir(self.path)

    def _link_into_place(self) -> None:
        try:
            os.link(self.tmp, self.path)
        except FileExistsError:
            raise OutputFileError(f"the output {self.path} appeared while it was being "
                                  f"written; {FORCE_HINT}") from None
        except OSError:                    # no hard links here: check, then rename
            if os.path.lexists(self.path):
                raise OutputFileError(f"the output {self.path} already exists; "
                                      f"{FORCE_HINT}") from None
            os.replace(self.tmp, self.path)
            return
        os.unlink(self.tmp)

    def discard(self) -> None:
        self.done = True
        with contextlib.suppress(OSError):
            self.fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


@contextlib.contextmanager
def atomic_output(path, *, inputs=(), force: bool = False):
    """``with atomic_output(out, inputs=[src], force=args.force) as fh: fh.write(...)``.

    The target appears (or is replaced) only when the block ends without an exception.
    """
    st = check_target(path, inputs=inputs, force=force)
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "wb") as fh:       # a device or a FIFO: nothing to destroy
            yield fh
        return
    target = TempTarget(path, mode=stat.S_IMODE(st.st_mode) if st is not None else None,
                        replace=st is not None)
    try:
        yield target.fh
    except BaseException:
        target.discard()
        raise
    target.commit()


def write_bytes(path, data: bytes, *, inputs=(), force: bool = False) -> None:
    with atomic_output(path, inputs=inputs, force=force) as fh:
        fh.write(data)

