"""Parsing a command line: a pure function of the line and the registry.

A command is declared by its *forms*: each form is a tuple of tokens, either a
literal word (``"until"``, ``"clear"``) or a placeholder ``"NAME:kind"``
(``"N:int"``, ``"SIDE:side"``, ``"SPEC:fault-spec"``).  A placeholder ending in
``?`` is optional (only at the end of a form).  Completion and help derive
from the same forms, so there is one grammar, written once, as data.

Nothing here touches the Controller, the terminal or prompt_toolkit.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from colo_tui.session.options import INTERACTIVE_MAX_CHECKPOINTS
from protocol.core import dialects
from protocol.core import faults as fl
from protocol.core import messages as m
from protocol.core.events import EventKind
from protocol.core.grammar import SEED_MAX
from protocol.errors import FaultSpecError, UsageError

SIDES = ("primary", "secondary")
MODES = ("periodic", "hybrid")
GUESTS = ("model", "null")
VIEWS = ("ladder", "ram", "packets", "disk", "failover", "screen")
VERBOSITY = ("quiet", "normal", "all")
SETTINGS = ("checkpoint-delay", "dialect", "mode", "seed", "guest")
MAX_INT = (1 << 32) - 1

#: Event kinds (for ``run until EVENT``): every kind the event classes define.
EVENT_KINDS = tuple(str(k) for k in EventKind)
MESSAGE_NAMES = tuple(n for n in m.ALL_MESSAGES if n != m.INVALID)
EVENTS = EVENT_KINDS + MESSAGE_NAMES


class CommandError(UsageError):
    """A user error in a command line: the message names what is wrong."""


@dataclass(frozen=True)
class ParsedCommand:
    name: str
    args: dict = field(default_factory=dict)
    line: str = ""
    form: tuple = ()

    def get(self, key: str, default=None):
        return self.args.get(key, default)


# ------------------------------------------------------------------ values
def resolve_side(text: str) -> str:
    s = text.strip().lower()
    hits = [name for name in SIDES if s and name.startswith(s)]
    if len(hits) != 1:
        raise CommandError(f"side must be primary or secondary (or p / s), not {text!r}")
    return hits[0]


def _int(text: str, what: str, lo: int = 0, hi: int = MAX_INT) -> int:
    """ASCII decimal digits only, as every front end takes them (protocol.core.grammar):
    no 0x10, no ٣, no 1_000."""
    from protocol.core.grammar import parse_decimal
    from protocol.errors import UsageError
    try:
        return parse_decimal(text, what, lo, hi)
    except UsageError as exc:
        raise CommandError(str(exc).replace("must be a whole number in decimal ASCII digits",
                                            "must be a whole number")) from None


def _choice(text: str, what: str, choices) -> str:
    if text in choices:
        return text
    hits = [c for c in choices if c.startswith(text)]
    if len(hits) == 1:
        return hits[0]
    raise CommandError(f"unknown {what} {text!r}; choose one of: {', '.join(choices)}")


def _number(text: str, what: str, lo: float, hi: float) -> float:
    """ASCII digits with an optional point, as the command line takes them
    (protocol.core.grammar): float() let through -0, 1e-400, 1_0 and ٠.5.  The bounds
    are said in digits: 3,600,000, not 3.6e+06."""
    from protocol.core.grammar import parse_decimal_number
    try:
        return parse_decimal_number(text, what, lo, hi)
    except UsageError as exc:
        raise CommandError(str(exc)) from None


def _onoff(text: str, what: str) -> bool:
    word = _choice(text.lower(), what, ("on", "off"))
    return word == "on"


def _fault(text: str) -> str:
    try:
        return str(fl.parse(text, channels=True))   # the session decides (colo lab's channels)
    except FaultSpecError as exc:
        raise CommandError(str(exc)) from None


def _event(text: str) -> str:
    """An event kind or a message name.  A name that is neither is refused with the
    closest ones: the refusal listed all 70-odd, a screenful that hid the typo."""
    if text in EVENTS:
        return text
    import difflib
    close = difflib.get_close_matches(text, EVENTS, n=3, cutoff=0.6)
    named = ", ".join(close[:-1]) + " or " * (len(close) > 1) + "".join(close[-1:])
    hint = (f"did you mean {named}?" if close else
            "use an event kind (e.g. failover, colo-exit, error) or a message name "
            "(e.g. vmstate-received)")
    raise CommandError(f"unknown event {text!r}; {hint} ('help run' lists them all; "
                       "Tab completes them)")


def _file(text: str, what: str) -> str:
    """A file name, not empty ('' would read as no file given), as `colo`'s options."""
    if not text:
        raise CommandError(f"{what}: an empty path (give a file name)")
    if "\0" in text:       # open() said only 'embedded null byte', and a script exited 1
        raise CommandError(f"{what}: the path has a NUL byte, which no file name can hold")
    return text


def _command(text: str) -> str:
    from colo_tui.commands.registry import lookup
    cmd = lookup(text)
    if cmd is None:
        raise CommandError(f"no command {text!r}; type 'help' for the list")
    return cmd.name


#: kind -> converter(text, placeholder name) -> value
CONVERTERS = {
    "int": lambda t, n: _int(t, n),
    "count": lambda t, n: _int(t, n, 1, 1_000_000),
    "length": lambda t, n: _int(t, n, 1, INTERACTIVE_MAX_CHECKPOINTS),
    "seed": lambda t, n: _int(t, n, 0, SEED_MAX),     # what `colo run --seed` takes
    "side": lambda t, n: resolve_side(t),
    "fault-spec": lambda t, n: _fault(t),
    "event": lambda t, n: _event(t),
    "message": lambda t, n: _choice(t, "message", MESSAGE_NAMES),
    "dialect": lambda t, n: _choice(t, "dialect", tuple(dialects.DIALECTS)),
    "mode": lambda t, n: _choice(t, "mode", MODES),
    "guest": lambda t, n: _choice(t, "guest", GUESTS),
    "view": lambda t, n: _choice(t, "view", VIEWS),
    "verbosity": lambda t, n: _choice(t, "verbosity", VERBOSITY),
    "ms": lambda t, n: _number(t, n, 0, 3_600_000),
    # what --arbiter-ms takes (argtypes.arbiter_ms), so that the recording reads back
    "arbiter-ms": lambda t, n: _number(t, n, 1, 1e9),
    "fraction": lambda t, n: _number(t, n, 0, 1),
    "onoff": lambda t, n: _onoff(t, n),
    "file": lambda t, n: _file(t, n),
    "command": lambda t, n: _command(t),
}


def placeholder(token: str) -> tuple[str, str, bool] | None:
    """``"N:int?"`` -> ("N", "int", True); a literal -> None."""
    if ":" not in token:
        return None
    name, kind = token.split(":", 1)
    optional = kind.endswith("?")
    return name, kind.rstrip("?"), optional


def form_syntax(form: tuple) -> str:
    parts = []
    for tok in form:
        ph = placeholder(tok)
        if ph is None:
            parts.append(tok)
        else:
            parts.append(f"[{ph[0]}]" if ph[2] else ph[0])
    return " ".join(parts)


#: a command line is short (a fault spec, a path); shlex's cost grows with the square
#: of a word's length (2M characters took 100 s), so a longer line is refused first
MAX_LINE_CHARS = 4096


def tokenize(line: str) -> list[str]:
    if len(line) > MAX_LINE_CHARS:
        raise CommandError(f"line too long: {len(line)} characters (a command line has at "
                           f"most {MAX_LINE_CHARS})")
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise CommandError(f"cannot split the line into words: {exc}") from None


# --------------------------------------------------------------------- parse
def _match(form: tuple, words: list[str]) -> tuple[dict | None, float, str | None]:
    """Try one form; returns (args or None, how far it matched, error)."""
    args: dict = {}
    for i, tok in enumerate(form):
        ph = placeholder(tok)
        if i >= len(words):
            if ph is not None and ph[2]:
                return args, i, None
            what = tok if ph is None else ph[0]
            return None, i, f"missing {what}"
        word = words[i]
        if ph is None:
            if word != tok:
                return None, i, f"expected {tok!r}, got {word!r}"
            continue
        name, kind, _ = ph
        try:
            args[name.lower().replace("-", "_")] = CONVERTERS[kind](word, name)
        except CommandError as exc:
            return None, i + 1, str(exc)
    if len(words) > len(form):
        extra = " ".join(words[len(form):])
        return None, len(form) - 0.5, f"unexpected extra words: {extra!r}"
    return args, len(form), None


def parse(line: str, registry=None) -> ParsedCommand:
    """Parse one line into a ParsedCommand; raises CommandError naming the problem."""
    if registry is None:
        from colo_tui.commands.registry import REGISTRY as registry
    words = tokenize(line)
    if not words:
        raise CommandError("empty command; type 'help' for the list")
    from colo_tui.commands.registry import lookup
    cmd = lookup(words[0], registry)
    if cmd is None:
        near = [n for n in registry if n.startswith(words[0][:2])]
        hint = f" (did you mean: {', '.join(near)}?)" if near else ""
        raise CommandError(f"unknown command {words[0]!r}{hint}; type 'help' for the list")
    best: tuple[float, str] | None = None
    for form in cmd.forms:
        args, depth, err = _match(form, words[1:])
        if args is not None:
            return ParsedCommand(cmd.name, args, line.strip(), form)
        if best is None or depth > best[0]:
            best = (depth, err or "does not match")
    assert best is not None
    # each head once: `record start`, `record start FILE`, … are one "start"
    heads = list(dict.fromkeys(f[0] for f in cmd.forms if f and placeholder(f[0]) is None))
    if best[0] == 0 and len(words) > 1 and len(heads) > 1:
        raise CommandError(f"{cmd.name}: unknown {words[1]!r}; expected one of: "
                           f"{', '.join(heads)}; usage: {cmd.syntax}")
    if best[0] == 0 and len(words) == 1 and len(heads) > 1:     # `set` alone: which?
        raise CommandError(f"{cmd.name}: missing what to {cmd.name}, one of: "
                           f"{', '.join(heads)}; usage: {cmd.syntax}")
    raise CommandError(f"{cmd.name}: {best[1]}; usage: {cmd.syntax}")


_COMMENT = re.compile(r"(^|\s)#.*$")     # '#N' inside a fault spec is not a comment


def strip_comment(raw: str) -> str:
    """A script line without its ``# comment`` (``#N`` inside a fault spec stays)."""
    return _COMMENT.sub("", raw).strip()


def read_script(path: str, err) -> list[str] | None:
    """The lines of a script file, or None after printing why it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except OSError as exc:
        print(f"colo repl: error: cannot read {path}: {exc.strerror}", file=err)
        return None
