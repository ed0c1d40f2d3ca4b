"""QMP's JSON layer as QEMU's json-streamer and json-parser treat input.

`JsonSplitter` cuts a byte stream into top-level JSON texts (``qemu.qmp``
sends no newline); `parse_json` / `dump_json` refuse and write what QEMU
refuses and writes.  One value may be at most MAX_INPUT_BYTES (ours: QEMU
allows 64 MiB) and MAX_NESTING deep (QEMU's).
"""
from __future__ import annotations

import json
import sys

__all__ = ["MAX_INPUT_BYTES", "MAX_NESTING", "TOO_DEEP", "JsonSplitter", "dump_json",
           "parse_json"]

MAX_INPUT_BYTES = 64 << 10
#: QEMU's json-streamer: more than this many open brackets and braces is refused
MAX_NESTING = 1024
#: what JsonSplitter.feed returns for a value nested deeper than MAX_NESTING
TOO_DEEP = b""


class JsonSplitter:
    """Split a byte stream into top-level JSON texts (as QEMU's json-streamer).

    A value nested deeper than MAX_NESTING comes out as TOO_DEEP (QEMU: "JSON
    nesting depth limit exceeded"); the rest of it is skipped up to its end.
    """

    def __init__(self, limit: int = MAX_INPUT_BYTES) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.depth = 0
        self.in_str = False
        self.esc = False
        self.pos = 0
        self.too_deep = False

    def feed(self, data: bytes) -> list[bytes]:
        """Complete texts; raises ValueError when one grows beyond the limit."""
        self.buf += data
        out: list[bytes] = []
        buf = self.buf
        i = self.pos
        start = 0
        while i < len(buf):
            c = buf[i]
            if self.in_str:
                if self.esc:
                    self.esc = False
                elif c == 0x5C:
                    self.esc = True
                elif c == 0x22:
                    self.in_str = False
            elif c == 0x22:
                self.in_str = True
            elif c in b"{[":
                self.depth += 1
                if self.depth > MAX_NESTING and not self.too_deep:
                    self.too_deep = True
                    out.append(TOO_DEEP)
            elif c in b"}]":
                self.depth -= 1
                if self.depth <= 0:
                    if not self.too_deep:
                        out.append(bytes(buf[start:i + 1]))
                    self.too_deep = False
                    start, self.depth = i + 1, 0
            elif self.depth == 0 and c in b" \t\r\n":
                if buf[start:i].strip():
                    out.append(bytes(buf[start:i]))
                start = i + 1
            i += 1
        if self.too_deep:           # skipping the rest of a refused value: keep none
            start = len(buf)
        del buf[:start]
        self.pos = len(buf)
        if len(buf) > self.limit:
            self.buf = bytearray()
            self.pos = self.depth = 0
            self.in_str = self.esc = self.too_deep = False
            raise ValueError(f"QMP input exceeds {self.limit} bytes")
        return out


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
