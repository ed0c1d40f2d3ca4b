"""QMP's JSON layer as QEMU's json-streamer and json-parser treat input.

`protocol.drivers.qmp.JsonSplitter` cuts a byte stream into top-level JSON texts,
at most MAX_NESTING deep (QEMU's); `parse_json` / `dump_json` refuse and
write what QEMU refuses and writes.
"""
from __future__ import annotations

import json
import sys

__all__ = ["MAX_NESTING", "TOO_DEEP", "dump_json", "parse_json"]

#: QEMU's json-streamer: more than this many open brackets and braces is refused
MAX_NESTING = 1024
#: what JsonSplitter.feed returns for a value nested deeper than MAX_NESTING
TOO_DEEP = b""


def _deep(fn, *args, **kw):
    """fn(...), with room for MAX_NESTING levels: the splitter lets that many
    through (as QEMU), more than Python's default recursion limit allows, so the
    limit is raised for this one call when it is hit."""
    try:
        return fn(*args, **kw)
    except RecursionError:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(old + 2 * MAX_NESTING)
        try:
            return fn(*args, **kw)
        finally:
            sys.setrecursionlimit(old)


def parse_json(text: bytes):
    """json.loads with QEMU's refusals: duplicate keys, NaN/Infinity."""
    return _deep(json.loads, text, object_pairs_hook=_no_duplicates,
                 parse_constant=_no_constant)


def dump_json(msg) -> bytes:
    """One QMP output line (an echoed id may be nested MAX_NESTING deep)."""
    return (_deep(json.dumps, msg) + "\r\n").encode()


def _no_duplicates(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _no_constant(name: str):
    raise ValueError(f"stray '{name[0]}'")
