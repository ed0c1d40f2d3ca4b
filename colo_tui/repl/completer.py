"""Tab completion derived from the command registry.

``complete(line_before_cursor)`` is a pure function (apart from listing
directories for file names) returning the full words that may replace the
word under the cursor; ``RegistryCompleter`` wraps it for prompt_toolkit.
"""
from __future__ import annotations

import os

from colo_tui.commands import parser as cp
from colo_tui.commands.registry import COMMANDS, lookup
from protocol.core import dialects
from protocol.core import faults as fl
from protocol.errors import FaultSpecError


def _split(line: str) -> tuple[list[str], str]:
    before, cur, _raw = _words(line)
    return before, cur


def _words(line: str) -> tuple[list[str], str, int]:
    """The words before the cursor's, the cursor's word, and how many characters the
    cursor's word takes as typed; quotes and backslashes as the parser's shlex reads
    them (`replay "my recs/a` is one word being typed, not two)."""
    words: list[str] = []
    cur, quote, start, in_word, i = "", "", 0, False, 0
    while i < len(line):
        ch = line[i]
        if not in_word and not ch.isspace():
            in_word, start, cur = True, i, ""
        if not in_word:
            pass
        elif quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and i + 1 < len(line) and line[i + 1] in '"\\':
                i += 1
                cur += line[i]
            else:
                cur += ch
        elif ch in "'\"":
            quote = ch
        elif ch == "\\" and i + 1 < len(line):
            i += 1
            cur += line[i]
        elif ch.isspace():
            words.append(cur)
            in_word, cur = False, ""
        else:
            cur += ch
        i += 1
    if not in_word:
        return words, "", 0
    return words, cur, len(line) - start


def _quoted(word: str) -> str:
    """A completion as it must be typed: a file name with a space or a quote in it is
    quoted, so that it stays one word; a folder's quote is left open, for the name
    that follows it."""
    import shlex
    if not any(ch.isspace() or ch in "'\"\\" for ch in word):
        return word
    return shlex.quote(word)[:-1] if word.endswith("/") else shlex.quote(word)


def complete(line_before_cursor: str, dialect: str | None = None,
             channels: bool = False) -> list[str]:
    """The words that may replace the cursor's; fault specs only those `dialect` (the
    session's, when given) can carry, or with `channels` (colo lab) those on its
    colo-compare channels."""
    before, cur = _split(line_before_cursor)
    if not before:
        names = [c.name for c in COMMANDS] + [a for c in COMMANDS for a in c.aliases]
        return sorted(n for n in names if n.startswith(cur))
    cmd = lookup(before[0])
    if cmd is None:
        return []
    pos = len(before) - 1
    out: list[str] = []
    for form in cmd.forms:
        if pos >= len(form) or not _prefix_matches(form, before[1:]):
            continue
        tok = form[pos]
        ph = cp.placeholder(tok)
        cands = [tok] if ph is None else candidates(ph[1], cur, dialect, channels)
        out += [c for c in cands if c.startswith(cur) and c not in out]
    return out


def _prefix_matches(form: tuple, words: list[str]) -> bool:
    for tok, word in zip(form, words, strict=False):
        if cp.placeholder(tok) is None and tok != word:
            return False
    return True


def candidates(kind: str, cur: str = "", dialect: str | None = None,
               channels: bool = False) -> list[str]:
    """Every value of an argument kind that starts with ``cur``."""
    fixed = {
        "side": cp.SIDES, "mode": cp.MODES, "guest": cp.GUESTS, "view": cp.VIEWS, "event": cp.EVENTS,
        "verbosity": cp.VERBOSITY, "onoff": ("on", "off"),
        "message": cp.MESSAGE_NAMES, "dialect": tuple(dialects.DIALECTS),
        "command": tuple(c.name for c in COMMANDS),
    }
    if kind in fixed:
        return [v for v in fixed[kind] if v.startswith(cur)]
    if kind == "fault-spec":
        return channel_fault_candidates(cur) if channels else fault_candidates(cur, dialect)
    if kind == "file":
        return file_candidates(cur)
    return []


def _fits(spec: str, d) -> bool | None:
    """Whether dialect `d` can carry the fault `spec` (protocol.core.faults.check_fault,
    the check the session makes when it is armed); None if `spec` is off the grammar."""
    try:
        f = fl.parse(spec)
    except FaultSpecError:
        return None
    try:
        fl.check_fault(f, d)
    except FaultSpecError:
        return False
    return True


def fault_candidates(cur: str, dialect: str | None = None) -> list[str]:
    """KIND[=ARG]@POINT[#N], one part at a time; with `dialect`, only what it can carry
    (the prototype has no vmstate-size, and sends RAM inside the device-state blob):
    every dialect's points and messages were offered, and the session refused them."""
    d = None
    if dialect is not None:
        try:
            d = dialects.get(dialect)
        except (KeyError, ValueError):
            d = None
    out = _fault_candidates(cur)
    if d is None:
        return out
    if "@" in cur:
        return [c for c in out if _fits(c, d) is not False]
    if "=" in cur:          # KIND=MSG@: a message some point of the dialect can carry
        return [c for c in out
                if any(_fits(c + p, d) for p in fl.POINTS)]
    return out


def channel_fault_candidates(cur: str) -> list[str]:
    """colo lab's faults: KIND[=MS]@CHANNEL#N on a colo-compare channel's packets (the
    lab takes no other; the protocol points were offered and then refused)."""
    if "@" in cur:
        head, point = cur.split("@", 1)
        if "#" in point or head.split("=", 1)[0] not in fl.CHANNEL_KINDS:
            return []
        return [f"{head}@{p}" for p in fl.CHANNEL_POINTS if p.startswith(point)]
    if "=" in cur:                     # delay=MS: a number, nothing to offer
        return []
    return [k + ("=" if fl.KINDS[k][0] else "@") for k in fl.CHANNEL_KINDS
            if k.startswith(cur)]


def _fault_candidates(cur: str) -> list[str]:
    if "@" in cur:
        head, point = cur.split("@", 1)
        if "#" in point:
            return []
        kind = head.split("=", 1)[0]
        points = [p for p in fl.POINTS if not (p == "load" and kind in fl.LINK_KINDS)
                  and not (kind in ("unexpected", "value") and p in fl.STAGES)
                  and (kind in fl.STEP_KINDS) == (p in fl.MOMENTS)]
        return [f"{head}@{p}" for p in points if p.startswith(point)]
    if "=" in cur:
        kind, arg = cur.split("=", 1)
        if fl.KINDS.get(kind, (None,))[0] == "msg":
            return [f"{kind}={n}@" for n in cp.MESSAGE_NAMES if n.startswith(arg)]
        return []
    return [k + ("=" if a else "@") for k, (a, _) in fl.KINDS.items() if k.startswith(cur)]


def file_candidates(cur: str) -> list[str]:
    head, tail = os.path.split(cur)
    directory = os.path.expanduser(head) or "."
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.startswith(tail) or (name.startswith(".") and not tail.startswith(".")):
            continue
        full = os.path.join(head, name)
        out.append(full + "/" if os.path.isdir(os.path.join(directory, name)) else full)
    return out


def describe(line_before_cursor: str, word: str) -> str:
    """The one-line description shown beside a completion: a command's summary, a
    fault kind's or a message's meaning."""
    before, _cur = _split(line_before_cursor)
    if not before:
        cmd = lookup(word)
        return cmd.summary if cmd else ""
    if lookup(before[0]) is not None and lookup(before[0]).name == "fault":
        kind = word[:-1] if word.endswith(("@", "=")) else ""
        if kind in fl.KINDS:
            return fl.KINDS[kind][1]
    return ""


def make_completer(dialect=None, channels=None):
    """A prompt_toolkit Completer around ``complete`` (imported lazily); `dialect()`
    names the session's dialect as it is at each Tab (`set dialect` changes it), and
    `channels()` says whether its faults go on colo-compare channels (colo lab)."""
    from prompt_toolkit.completion import Completer, Completion

    class RegistryCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            _, _cur, typed = _words(text)
            for word in complete(text, dialect() if dialect is not None else None,
                                 channels is not None and channels()):
                yield Completion(_quoted(word), start_position=-typed, display=word,
                                 display_meta=describe(text, word))

    return RegistryCompleter()
