"""What a capture's run directory says about the COLO parameters (x-checkpoint-delay).

A pcap holds only the migration stream; the run directory beside it may hold the
QMP the capture's orchestration sent: ``run.json`` (``primary_params``, the
primary's query-migrate-parameters) or ``qmp_primary.jsonl`` (every QMP line, with
``migrate-set-parameters {"x-checkpoint-delay": D}``).  Either gives the delay the
primary paced its checkpoints with.  Missing or unreadable files give None: the
caller falls back to the capture's own median interval.
"""
from __future__ import annotations

import json
from pathlib import Path

#: files larger than this are not read for a parameter (a capture's QMP log is KiBs)
MAX_PARAM_FILE = 16 << 20
MAX_QMP_LINES = 200_000


def _delay(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 32:
        return value
    return None


def _read_text(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_PARAM_FILE:
            return None
        return path.read_text(errors="replace")
    except OSError:
        return None


def _from_run_json(path: Path) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        run = json.loads(text)
    except ValueError:
        return None
    params = run.get("primary_params") if isinstance(run, dict) else None
    if isinstance(params, dict):
        return _delay(params.get("x-checkpoint-delay"))
    return None


def _from_qmp_log(path: Path) -> int | None:
    """The last x-checkpoint-delay the primary was set to, or reported."""
    text = _read_text(path)
    if text is None:
        return None
    found = None
    for _, line in zip(range(MAX_QMP_LINES), text.splitlines(), strict=False):
        if "x-checkpoint-delay" not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        msg = rec.get("msg") if isinstance(rec, dict) else None
        if not isinstance(msg, dict):
            continue
        if msg.get("execute") == "migrate-set-parameters":
            args = msg.get("arguments")
            got = _delay(args.get("x-checkpoint-delay")) if isinstance(args, dict) else None
        else:
            ret = msg.get("return")
            got = _delay(ret.get("x-checkpoint-delay")) if isinstance(ret, dict) else None
        if got is not None:
            found = got
    return found


def checkpoint_delay_ms(run_dir: Path) -> tuple[int, str] | None:
    """(x-checkpoint-delay in ms, the file it came from) for a capture's run
    directory, or None when the directory does not say."""
    for name, read in (("run.json", _from_run_json), ("qmp_primary.jsonl", _from_qmp_log)):
        got = read(run_dir / name)
        if got is not None:
            return got, name
    return None
