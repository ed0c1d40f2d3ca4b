"""The recording format: versioned JSON Lines (see recordings/README.md).

Line 1 is the header: {"format": "colo-recording", "version": 2, "tool": ...,
"dialect", "mode", "seed", "params": {...}, "faults": [...]}.  Then one
object per line: either an event {"t", "seq", "side", "kind", "data"} or an
operator input {"input": {...}, "step": k}.  Lines starting with ``#`` are
comments.  Version 2 ends with a trailer {"digest": {"lines": n, "sha256": h}}:
a running SHA-256 over every JSON line before it (header included, comments
not), each line's bytes followed by ``\\n``.  A version-2 file without the
trailer was cut (its writer was killed): it is read up to its last complete
line and marked `Recording.cut`.  Version 1 (no trailer) is still read; a
trailer that does not match is an error in either version.

Readers ignore unknown fields and kinds; every known field is validated
(`protocol.record.schema`); a file is read line by line with a length cap, so
no file is ever held whole; strict UTF-8.  A file newer than this reader,
corrupt or out of range is refused with a message naming the line.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from dataclasses import dataclass, field

import msgspec

from protocol import TOOL  # the tool and version that wrote a file (its header)
from protocol.errors import OutputFileError, RecordingError
from protocol.record import schema
from protocol.record.eventjson import to_json
from protocol.record.outfile import FORCE_HINT, TempTarget, check_target, fsync_dir

FORMAT = "colo-recording"
VERSION = 2
MAX_LINE_BYTES = 1 << 20
MAX_COMMENTS = 10_000          # comments kept in Recording.comments (the rest are skipped)


@dataclass
class Recording:
    header: dict
    events: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    stop_step: int | None = None
    #: the events the writer had written when it stopped (None: not counted, older
    #: writers): more than `stop_step` steps make when a session was cut mid-step
    stop_events: int | None = None
    version: int = VERSION
    #: why the recording ends early (its writer never closed it), or None
    cut: str | None = None
    #: the SHA-256 chain the trailer carried and the reader checked (None: no trailer)
    digest: str | None = None
    #: the file it was read from (as given), and the line number of each event in it
    name: str = "<recording>"
    event_lines: list[int] = field(default_factory=list)

    @property
    def imported(self) -> bool:
        return bool(self.header.get("imported"))

    @property
    def config(self):
        from protocol.sim.config import SimConfig
        params = dict(self.header.get("params", {}))
        params.update(dialect=self.header.get("dialect", "qemu"),
                      mode=self.header.get("mode", "periodic"),
                      seed=self.header.get("seed", 1),
                      faults=list(self.header.get("faults", [])))
        return SimConfig.from_dict(params)


def make_header(config, **extra) -> dict:
    params = config.to_dict()
    head = {"format": FORMAT, "version": VERSION, "tool": TOOL,
            "dialect": params.pop("dialect"), "mode": params.pop("mode"),
            "seed": params.pop("seed"), "faults": params.pop("faults"), "params": params}
    head.update(extra)
    return head


def _line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


#: room kept for the stop line and the digest trailer when a writer keeps its file
#: within the readers' size limit
STOP_RESERVE_BYTES = 512


class Writer:
    """Streams a recording to a file as the session runs.

    Every line reaches the file as it is written (one ``write`` per line, no
    buffer), so a process killed mid-session leaves each line written before it;
    `close` adds the digest trailer and fsyncs.  A new file is written in place,
    so it is at the path given from the first line on.  An existing file is
    refused (OutputFileError) unless ``force``; then the recording goes to a
    temporary file next to it that replaces it at `close`.  ``atomic``: a new file
    too is written next to its path and appears there at `close` (one-shot
    writers); ``inputs``: files the output must not be (OutputFileError).

    `close` is idempotent and may be called from a signal handler or atexit (in
    the thread that writes): if it interrupts a write, it closes the file
    without the trailer, and the reader reports the recording as cut.  Writes
    after `close` are ignored.
    """

    def __init__(self, path, header: dict, comments: list[str] = (), *,
                 force: bool = False, inputs=(), atomic: bool = False,
                 step=None) -> None:
        self.path = os.fspath(path)
        self._target: TempTarget | None = None
        self._closed = self._writing = False
        self._sha = hashlib.sha256()
        self.lines = 0
        self.events = 0          # event lines written (the stop line counts them)
        self.inputs = 0          # input lines written
        self.bytes = 0
        #: every byte in the file, comments too (what the reader's size limit counts)
        self._file_bytes = 0
        #: `step` given (the session's step count, a callable): the file stays within
        #: what readers take by default (`within_reader_limits`); the first event or
        #: input that would go beyond is not written, a stop line at that step ends the
        #: session's lines, and `limited` says where and why
        self._step = step
        self._limits: tuple[int, int] | None = None      # (events, bytes), read once
        self.limited: str | None = None
        self._stopped = False
        self._checkpoints = int((header.get("params") or {}).get("checkpoints") or 0)
        st = check_target(self.path, inputs=inputs, force=force)
        try:
            if st is None and atomic:               # one-shot: appears whole or not at all
                self._target = TempTarget(self.path, replace=False)
                self._fh = self._target.fh
            elif st is None:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                self._fh = io.FileIO(fd, "wb")
            elif stat.S_ISREG(st.st_mode):
                self._target = TempTarget(self.path, mode=stat.S_IMODE(st.st_mode))
                self._fh = self._target.fh
            else:                                   # /dev/null, a FIFO: write into it
                self._fh = io.FileIO(self.path, "wb")
        except FileExistsError:
            raise OutputFileError(f"the output {self.path} already exists; "
                                  f"{FORCE_HINT}") from None
        try:
            for c in comments:
                for line in c.splitlines() or [""]:
                    self._put(f"# {line}\n".encode())
            self._write(header)
        except BaseException:
            self.abort()
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        self._file_bytes += len(data)
        try:
            while view:
                n = self._fh.write(view)
                view = view[n:]
            if self._target is not None:
                self._fh.flush()                # a buffered temp file: push the line out
        except OSError as exc:
            if exc.filename is None:            # a write's error (ENOSPC) names no file
                exc.filename = self.path
            raise

    def _write(self, obj: dict, line: bytes | None = None) -> bool:
        """Write one line (`obj`, or its `line` already made); whether it was written.
        An exception out of the write (a KeyboardInterrupt in the middle of it) leaves
        `_writing` set: the line may be in the file in part, so nothing more is written
        and `close` adds no trailer (the file reads as cut, up to its last complete
        line)."""
        if self._closed or self._writing:
            return False
        if line is None:
            line = _line(obj) + b"\n"
        self._writing = True
        try:
            self._put(line)
        except ValueError:
            if not self._closed:            # not "closed by a signal handler meanwhile"
                raise
            return False
        self._sha.update(line)
        self.lines += 1
        self.bytes += len(line)
        self._writing = False
        return True

    def _session_line(self, obj: dict) -> bytes | None:
        """One more event or input line (`obj`), made; None when it is not to be written:
        with `step`, a line that would take the file beyond the readers' limits (the
        session's lines end there instead: a stop line at the current step)."""
        line = _line(obj) + b"\n"
        if self._step is None:
            return line
        if self._stopped:
            return None
        if self._limits is None:
            from protocol.record import schema
            self._limits = schema.max_events(), schema.max_bytes()
        max_events, max_bytes = self._limits
        if self.events + self.inputs + 1 > max_events:
            why = f"{max_events:,} events and inputs", "COLO_MAX_RECORDING_EVENTS"
        elif self._file_bytes + len(line) + STOP_RESERVE_BYTES > max_bytes:
            why = f"{max_bytes >> 20:,} MiB", "COLO_MAX_RECORDING_MIB"
        else:
            return line
        step = self._step()
        self.stop(step)
        self.limited = (f"the recording {self.path} stops at step {step:,} ({self.events:,} "
                        f"events): it holds at most {why[0]}, what readers take (`colo "
                        f"replay` replays it up to there); set {why[1]} higher, for the "
                        "recording and for its readers, to record further")
        return None

    def beyond_reader_limits(self) -> str | None:
        """What in this recording a reader refuses with its default limits (and the
        setting that lets it read the file), or None; with `step`, where the recording
        stopped to stay within them (`limited`)."""
        from protocol.record import schema
        if self.limited:
            return self.limited
        over = []
        if self._checkpoints > schema.max_checkpoints():
            over.append(("COLO_MAX_CHECKPOINTS", self._checkpoints, "checkpoints"))
        if self.events > schema.max_events():
            over.append(("COLO_MAX_RECORDING_EVENTS", self.events, "events"))
        if self.bytes > schema.max_bytes():
            over.append(("COLO_MAX_RECORDING_MIB", -(-self.bytes >> 20), "MiB"))
        if not over:
            return None
        what = ", ".join(f"{n:,} {unit}" for _var, n, unit in over)
        env = " ".join(f"{var}={n}" for var, n, _unit in over)
        return (f"the recording {self.path} holds {what}, more than readers take by default; "
                f"read it with {env} set (e.g. {env} colo replay {self.path})")

    def event(self, ev) -> None:
        obj = ev if isinstance(ev, dict) else to_json(ev)
        line = self._session_line(obj)
        if line is not None and self._write(obj, line):
            self.events += 1

    def input(self, item: dict, step: int) -> None:
        obj = {"input": {k: v for k, v in item.items() if k != "step"}, "step": step}
        line = self._session_line(obj)
        if line is not None and self._write(obj, line):
            self.inputs += 1

    def stop(self, step: int) -> None:
        """The session was cut here (it had not finished): replay stops after `step`
        steps and the events written so far (a session stopped in the middle of a step
        holds that step's first events: replay compares exactly those).  Once only:
        the lines after a stop line are not the session's."""
        if self._stopped:
            return
        self._stopped = True
        self._write({"stop": {"step": step, "events": self.events}})

    def close(self, stop_step: int | None = None) -> None:
        """Finish the file: a ``stop`` line first if `stop_step` is given (the session had
        not ended: replay stops there), then the digest trailer; fsync.  Idempotent."""
        if self._closed:
            return
        interrupted = self._writing
        if stop_step is not None and not interrupted:
            self.stop(stop_step)
        self._closed = True
        try:
            if not interrupted:
                self._put(_line({"digest": {"lines": self.lines,
                                            "sha256": self._sha.hexdigest()}}) + b"\n")
            if self._target is not None:
                self._target.commit()
                return
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            if self._target is not None:
                self._target.discard()
            raise OutputFileError(f"cannot finish the recording {self.path}: "
                                  f"{exc.strerror or exc}") from None
        finally:
            if self._target is None and not self._fh.closed:
                self._fh.close()
        fsync_dir(self.path)

    def abort(self) -> None:
        """Give up: a temporary file is removed (the old file, if any, stays); a file
        written in place is closed without its trailer (it reads as cut)."""
        if self._closed:
            return
        self._closed = True
        if self._target is not None:
            self._target.discard()
        elif not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write(path, header: dict, events, inputs=(), comments=(), *, force: bool = False,
          sources=()) -> None:
    """Write a whole recording: inputs are interleaved at their step.  The file appears
    whole or not at all; ``sources``: the input files it must not overwrite."""
    w = Writer(path, header, comments, force=force, inputs=sources, atomic=True)
    try:
        for item in inputs:
            w.input(item, item["step"])
        for ev in events:
            w.event(ev)
    except BaseException:
        w.abort()
        raise
    w.close()


# ------------------------------------------------------------------- reading
def read(path) -> Recording:
    """Read and validate a recording, line by line (never the whole file at once).
    A FIFO or a device is refused before it is opened (`protocol.record.infile`)."""
    from protocol.record.infile import RECORDING, input_refusal
    if why := input_refusal(path, RECORDING):
        raise RecordingError(why)
    try:
        fh = open(path, "rb")   # noqa: SIM115 - closed below
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc.strerror}") from None
    with fh:
        try:
            return _parse(fh, str(path))
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {exc.strerror}") from None


def parse(raw: bytes, name: str = "<recording>") -> Recording:
    return _parse(io.BytesIO(raw), name)


def _lines(fh, name: str):
    """(line number, bytes without the newline, ended by a newline) with bounded memory."""
    limit, total, no = schema.max_bytes(), 0, 0
    while True:
        line = fh.readline(MAX_LINE_BYTES + 2)
        if not line:
            return
        no += 1
        total += len(line)
        ended = line.endswith(b"\n")
        body = line[:-1] if ended else line
        if len(body) > MAX_LINE_BYTES:
            raise RecordingError(f"{name}: line {no} is longer than {MAX_LINE_BYTES} bytes")
        if total > limit:
            raise RecordingError(f"{name}: line {no}: the recording is larger than "
                                 f"{limit >> 20} MiB (set COLO_MAX_RECORDING_MIB to raise it)")
        yield no, body, ended


def _decode(text: str, name: str, no: int):
    try:
        return msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise RecordingError(f"{name}: line {no} is not valid JSON ({why})") from None


def _parse(fh, name: str) -> Recording:
    rec: Recording | None = None
    sha, count, sealed = hashlib.sha256(), 0, False
    max_events = schema.max_events()
    for no, body, ended in _lines(fh, name):
        try:
            text = body.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise RecordingError(f"{name}: line {no} is not valid UTF-8 "
                                 f"(byte {exc.start + 1} of the line)") from None
        if not text:
            continue
        if text.startswith("#"):
            if rec is not None and len(rec.comments) < MAX_COMMENTS:
                rec.comments.append(text[1:].strip())
            continue
        if not ended:            # the last line, cut in the middle?
            try:
                msgspec.json.decode(text)
            except (msgspec.DecodeError, RecursionError):
                if rec is not None and rec.version >= 2 and not sealed:
                    rec.cut = (f"line {no} is cut in the middle; read up to line {no - 1}, "
                               "its last complete line")
                    break
                raise RecordingError(f"{name}: line {no} is truncated "
                                     "(the file ends in the middle of a line)") from None
        if sealed:
            raise RecordingError(f"{name}: line {no}: a line after the digest trailer")
        obj = _decode(text, name, no)
        if not isinstance(obj, dict):
            raise RecordingError(f"{name}: line {no} is not a JSON object")
        where = f"{name}: line {no}"
        if rec is None:
            version = _check_header(obj, name, no)
            rec = Recording(obj, version=version, name=name)
        elif "digest" in obj and "kind" not in obj:
            lines, digest = schema.check_digest(obj, where)
            if lines != count:
                raise RecordingError(f"{where}: the digest trailer counts {lines} lines, the "
                                     f"recording has {count}: lines were added or removed")
            if digest != sha.hexdigest():
                raise RecordingError(f"{where}: the digest does not match the lines before it:"
                                     " the recording was changed after it was written")
            rec.digest, sealed = digest, True
            continue
        elif "input" in obj:
            _room(rec, max_events, where)
            rec.inputs.append(schema.check_input(obj, where))
        elif "kind" in obj:           # an event (check_event: with its seq and the rest)
            schema.check_event(obj, where)
            _room(rec, max_events, where)
            rec.events.append(obj)
            rec.event_lines.append(no)
        elif "stop" in obj:
            rec.stop_step, rec.stop_events = schema.check_stop(obj, where)
            if rec.stop_events is not None and rec.stop_events != len(rec.events):
                raise RecordingError(f"{where}: the stop line counts {rec.stop_events} "
                                     f"events, the recording has {len(rec.events)} before it")
        # anything else: an unknown kind of line, ignored (but part of the digest)
        sha.update(text.encode() + b"\n")
        count += 1
    if rec is None:
        raise RecordingError(f"{name}: empty recording (no header line)")
    if rec.version >= 2 and not sealed and rec.cut is None:
        rec.cut = "it has no digest trailer (its writer never closed it); read up to its " \
                  "last complete line"
    return rec


def _room(rec: Recording, limit: int, where: str) -> None:
    if len(rec.events) + len(rec.inputs) >= limit:
        raise RecordingError(f"{where}: more than {limit} events and inputs (set "
                             "COLO_MAX_RECORDING_EVENTS to raise the limit)")


def _check_header(obj: dict, name: str, no: int) -> int:
    where = f"{name}: line {no}"
    if obj.get("format") != FORMAT:
        raise RecordingError(f"{where}: not a COLO recording "
                             f"(format {str(obj.get('format'))[:80]!r}, expected {FORMAT!r})")
    version = obj.get("version")
    if type(version) is not int:
        raise RecordingError(f"{where}: the header's version must be an integer "
                             f"(got {json.dumps(version)[:40]})")
    if version > VERSION:
        raise RecordingError(f"{where}: recording format version {version} is newer "
                             f"than this tool reads ({VERSION}); upgrade colo-testbed")
    if version < 1:
        raise RecordingError(f"{where}: recording format version {version} does not exist "
                             f"(versions 1 to {VERSION})")
    schema.check_header(obj, where, version)
    return version
