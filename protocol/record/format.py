"""The recording format: versioned JSON Lines (see recordings/README.md).

Line 1 is the header: {"format": "colo-recording", "version": 1, "tool": ...,
"dialect", "mode", "seed", "params": {...}, "faults": [...]}.  Then one
object per line: either an event {"t", "seq", "side", "kind", "data"} or an
operator input {"input": {...}, "step": k}.  Lines starting with ``#`` are
comments.  Readers ignore unknown fields and kinds; a file newer than this
reader, truncated or corrupt is refused with a message naming the line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import RecordingError

FORMAT = "colo-recording"
VERSION = 1
TOOL = "colo-testbed 0.1.0"
MAX_LINE_BYTES = 1 << 20


@dataclass
class Recording:
    header: dict
    events: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    stop_step: int | None = None

    @property
    def config(self):
        from ..sim.config import SimConfig
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


class Writer:
    """Streams a recording to a file as the session runs."""

    def __init__(self, path, header: dict, comments: list[str] = ()) -> None:
        self.path = str(path)
        # line-buffered: each line reaches the file as it is written (a kill keeps them)
        self._fh = open(self.path, "w", encoding="utf-8", buffering=1)   # noqa: SIM115
        for c in comments:
            for line in c.splitlines() or [""]:
                self._fh.write(f"# {line}\n")
        self._write(header)

    def _write(self, obj: dict) -> None:
        self._fh.write(json.dumps(obj, separators=(",", ":"), sort_keys=False) + "\n")

    def event(self, ev) -> None:
        self._write(ev.to_json() if hasattr(ev, "to_json") else ev)

    def input(self, item: dict, step: int) -> None:
        self._write({"input": {k: v for k, v in item.items() if k != "step"}, "step": step})

    def stop(self, step: int) -> None:
        """The session was cut here (it had not finished): replay stops at this step."""
        self._write({"stop": {"step": step}})

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def write(path, header: dict, events, inputs=(), comments=()) -> None:
    """Write a whole recording: inputs are interleaved at their step."""
    w = Writer(path, header, comments)
    for item in inputs:
        w.input(item, item["step"])
    for ev in events:
        w.event(ev)
    w.close()


def read(path) -> Recording:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc.strerror}") from None
    return parse(raw, str(path))


def parse(raw: bytes, name: str = "<recording>") -> Recording:
    header = None
    rec = None
    lines = raw.split(b"\n")
    if raw and not raw.endswith(b"\n"):
        last = lines[-1].strip()
        if last and not last.startswith(b"#"):
            try:
                json.loads(last)
            except ValueError:
                raise RecordingError(f"{name}: line {len(lines)} is truncated "
                                     "(the file ends in the middle of a line)") from None
    for no, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_BYTES:
            raise RecordingError(f"{name}: line {no} is longer than {MAX_LINE_BYTES} bytes")
        text = line.strip()
        if not text:
            continue
        if text.startswith(b"#"):
            if rec is None:
                continue
            rec.comments.append(text[1:].strip().decode("utf-8", "replace"))
            continue
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordingError(f"{name}: line {no} is not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise RecordingError(f"{name}: line {no} is not a JSON object")
        if header is None:
            header = _check_header(obj, name, no)
            rec = Recording(header)
            continue
        if "input" in obj:
            item = obj["input"]
            if not isinstance(item, dict) or not isinstance(obj.get("step"), int):
                raise RecordingError(f"{name}: line {no}: an input needs an object and a step")
            rec.inputs.append({**item, "step": obj["step"]})
        elif "kind" in obj and "seq" in obj:
            rec.events.append(obj)
        elif isinstance(obj.get("stop"), dict) and isinstance(obj["stop"].get("step"), int):
            rec.stop_step = obj["stop"]["step"]
        # anything else: an unknown kind of line, ignored
    if header is None:
        raise RecordingError(f"{name}: empty recording (no header line)")
    return rec


def _check_header(obj: dict, name: str, no: int) -> dict:
    if obj.get("format") != FORMAT:
        raise RecordingError(f"{name}: line {no}: not a COLO recording "
                             f"(format {obj.get('format')!r}, expected {FORMAT!r})")
    version = obj.get("version")
    if not isinstance(version, int):
        raise RecordingError(f"{name}: line {no}: the header has no integer version")
    if version > VERSION:
        raise RecordingError(f"{name}: line {no}: recording format version {version} is newer "
                             f"than this tool reads ({VERSION}); upgrade colo-testbed")
    from ..dialects import DIALECTS
    if obj.get("dialect", "qemu") not in DIALECTS:
        raise RecordingError(f"{name}: line {no}: unknown dialect {obj.get('dialect')!r} "
                             f"(this tool knows {', '.join(DIALECTS)})")
    if obj.get("mode", "periodic") not in ("periodic", "hybrid"):
        raise RecordingError(f"{name}: line {no}: unknown mode {obj.get('mode')!r} "
                             "(periodic or hybrid)")
    if not isinstance(obj.get("params", {}), dict):
        raise RecordingError(f"{name}: line {no}: params must be an object")
    return obj
