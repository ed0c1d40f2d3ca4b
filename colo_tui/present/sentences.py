"""One plain sentence per event, for the TUI's log, the explanation pane, the REPL and
`colo run --events`.  No toolkit, no protocol objects: an event (or its JSON dict) in,
text out.

Every event kind the simulator, the endpoints, the guest model, the arbiter, the
playback of an imported capture and the live sources emit has its own entry in
`KINDS`; a kind nobody knows yet still gets a readable line (`_generic`).  No value
is ever shown as a Python repr: `plain()` turns None, booleans, lists and dicts
into words.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

#: the one-letter/short column names the REPL uses for a side
SIDE_SHORT = {"primary": "P", "secondary": "S", "link": "~", "operator": "op", "sim": "sim",
              "arbiter": "arb", "client": "cli", "live": "live"}

_SCALARS = (str, int, float)     # exact types: a bool is an int but becomes a word


def _ranges(values) -> str:
    """[1, 2, 3, 7] -> '1-3, 7' (sorted, duplicates dropped, at most 8 runs shown)."""
    nums = sorted({int(v) for v in values})
    runs: list[str] = []
    start = prev = None
    for v in nums:
        if prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            runs.append(f"{start}" if start == prev else f"{start}-{prev}")
        start = prev = v
    if start is not None:
        runs.append(f"{start}" if start == prev else f"{start}-{prev}")
    more = len(runs) - 8
    return ", ".join(runs[:8]) + (f" and {more} more range{'s' * (more > 1)}" if more > 0
                                  else "")


def _count(value, noun: str) -> str:
    """A count an event carries and its noun, agreeing ('1 session', '3 sessions'), as
    colo_tui.session.words.plural says it (present sits below session: not imported)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,} {noun if value == 1 else noun + 's'}"
    return f"{plain(value)} {noun}s"


def plain(value) -> str:
    """Any value an event carries, as words (never a repr)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{len(value)} B"
    if isinstance(value, Mapping):
        return ", ".join(f"{_words(k)} {plain(v)}" for k, v in value.items()) or "nothing"
    try:
        items = list(value)
    except TypeError:
        return str(value)
    if not items:
        return "none"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        return _ranges(items)
    return ", ".join(plain(v) for v in items)


def _words(key) -> str:
    return str(key).replace("_", " ")


def _extras(d: Mapping, skip=()) -> str:
    """The fields no sentence used, as ', key value' (None and empty values left out)."""
    parts = [f"{_words(k)} {plain(v)}" for k, v in d.items()
             if k not in skip and k != "hex" and v is not None and v != "" and v != {}
             and v != []]
    return ("; " + ", ".join(parts)) if parts else ""


def _n(d: Mapping, key: str, unit: str) -> str:
    v = d.get(key)
    return "" if v is None else f"{plain(v)} {unit}"


def _why(d: Mapping, key: str = "why") -> str:
    v = d.get(key)
    return f": {plain(v)}" if v not in (None, "") else ""


# ------------------------------------------------------------------ messages
def _message(verb: str, size_note: str):
    """The sentence of a control message sent or received; vmstate-size's value is a
    byte count (`size_note` says of what)."""
    def sentence_of(side, d) -> str:
        msg = d.get("msg") or "a message"
        value = d.get("value")
        text = f"{verb} {msg}"
        if msg == "vmstate-size" and value is not None:
            text += f" ({plain(value)} {size_note})"
        elif value:
            text += f" with value {plain(value)}"
        return text + _extras(d, ("msg", "value", "id", "n", "dir", "offset"))
    return sentence_of


_send = _message("sends", "bytes of device state follow")
_recv = _message("receives", "bytes")


def _pages(d: Mapping) -> str:
    kinds = [f"{plain(d[k])} {k}" for k in ("zero", "full", "page", "xbzrle")
             if d.get(k) not in (None, 0)]
    pages = d.get("pages")
    if isinstance(pages, Mapping):
        kinds = [f"{plain(v)} {k}" for k, v in pages.items() if v]
        pages = sum(v for v in pages.values() if isinstance(v, int))
    text = f"{plain(pages)} pages" if pages is not None else ""
    if kinds:
        text += (" (" if text else "") + ", ".join(kinds) + (")" if text else " pages")
    return text


def _payload(what: str, verb: str) -> Callable:
    def fn(side, d) -> str:
        size = _n(d, "bytes", "B")
        pages = _pages(d)
        body = ", ".join(x for x in (pages, size) if x)
        n = d.get("n")
        of = f" of checkpoint {plain(n)}" if n not in (None, 0) else ""
        skip = ("bytes", "pages", "zero", "full", "page", "xbzrle", "n")
        return (f"{verb} {what}{of}" + (f": {body}" if body else "")
                + _extras(d, skip))
    return fn


# ------------------------------------------------------------------- actions
_ACTIONS: dict[str, Callable[[Mapping], str]] = {
    "release-output": lambda d: f"releases {plain(d.get('packets', 0))} buffered packets "
                                "to the clients (output commit)",
    "cache-pages": lambda d: f"puts {plain(d.get('pages', 0))} received pages in its RAM cache",
    "flush-cache": lambda d: f"flushes {plain(d.get('pages', 0))} pages from the RAM cache "
                             "into guest RAM",
    "load-devices": lambda d: f"loads the device state ({plain(d.get('bytes', 0))} B)",
    "save-devices": lambda d: f"saves its device state ({plain(d.get('bytes', 0))} B)",
    "replication-checkpoint": lambda d: "takes a block-replication checkpoint",
    "take-over": lambda d: "takes over and runs alone",
    "discard-cache": lambda d: "discards the partly received checkpoint in its RAM cache",
    "shutdown-sockets": lambda d: "shuts down the migration socket in both directions",
    "load-initial": lambda d: "loads the initial migration"
                              + (f" ({plain(d['bytes'])} B)" if "bytes" in d else ""),
    "start-dirty-log": lambda d: "starts logging the pages its own VM dirties",
    "expect-blob": lambda d: f"expects {plain(d.get('bytes', 0))} B of device state",
}
_ACTION_USED = {"release-output": ("packets",), "cache-pages": ("pages",),
                "flush-cache": ("pages",), "load-devices": ("bytes",),
                "save-devices": ("bytes",), "load-initial": ("bytes",),
                "expect-blob": ("bytes",)}


def _action(side, d) -> str:
    name = d.get("name") or "something"
    fn = _ACTIONS.get(name)
    if fn is None:
        return f"does {name}" + _extras(d, ("name",))
    return fn(d) + _why(d) + _extras(d, ("name", "why") + _ACTION_USED.get(name, ()))


# ------------------------------------------------------------- other events
def _state(side, d) -> str:
    machine = d.get("machine")
    who = f"{machine} machine" if machine and machine != side else "state machine"
    return f"{who}: {plain(d.get('from'))} → {plain(d.get('to'))}"


def _vm(side, d) -> str:
    run = d.get("run") or "in an unknown state"
    text = f"VM is {run}" + _why(d)
    if d.get("qmp"):
        text += f" (QMP event {d['qmp']})"
    return text


def _checkpoint(side, d) -> str:
    n = plain(d.get("n"))
    phase = d.get("phase")
    if phase == "begin":
        return f"checkpoint {n} begins" + (f" (trigger: {d['reason']})" if d.get("reason")
                                            else "")
    text = f"checkpoint {n} committed"
    if d.get("reason"):             # how a watcher knows (--attach: from QMP's events)
        text += f" ({d['reason']})"
    if d.get("loaded_sent") is False:
        text += " without sending vmstate-loaded (a failover was deferred)"
    pages = _pages(d)
    if pages:
        text += f": {pages}"
    if d.get("device_bytes") is not None:
        text += f", device state {plain(d['device_bytes'])} B"
    return text + _extras(d, ("n", "phase", "reason", "loaded_sent", "zero", "full",
                              "xbzrle", "pages", "device_bytes", "sections"))


def _failover(side, d) -> str:
    if side == "arbiter" or ("from" not in d and "to" not in d):
        who = d.get("side")
        return (f"the arbiter tells the {who} to take over (x-colo-lost-heartbeat)"
                if who else "failover") + _why(d)
    return f"failover state {plain(d.get('from'))} → {plain(d.get('to'))}" + \
        _extras(d, ("from", "to"))


def _colo_exit(side, d) -> str:
    reason = d.get("reason")
    text = "the COLO thread leaves its loop"
    if reason == "request":
        text += " because a failover completed"
    elif reason == "error":
        text += " after an error"
    elif reason:
        text += f" (reason {plain(reason)})"
    return text + _extras(d, ("reason", "mode"))


_OUTCOMES = {"ok": "both sides still in COLO, every checkpoint committed",
             "failover": "a failover left exactly one VM running",
             "split-brain": "split brain: both VMs run on their own",
             "error": "an error ended COLO (or it hung: COLO has no timeout)"}


def outcome_words(outcome) -> str:
    return _OUTCOMES.get(outcome, f"outcome {plain(outcome)}")


def _end(side, d) -> str:
    steps = d.get("steps")
    return ("the scenario ends: " + outcome_words(d.get("outcome"))
            + (f" (after {plain(steps)} steps)" if steps is not None else ""))


def _process(side, d) -> str:
    what = d.get("what")
    text = {"killed": "the process is killed", "stalled": "the process stops (SIGSTOP)",
            "exit": "the process exits"}.get(what, f"the process: {plain(what)}")
    return text + _why(d)


def _closed(side, d) -> str:
    text = "the connection closes"
    how = d.get("how")
    if d.get("by"):
        text += f" (closed by the {d['by']})"
    if how:
        text += f": {_CLOSE_HOW.get(how, plain(how))}"
    text += _why(d)
    if d.get("note"):
        text += f" ({plain(d['note'])})"
    if d.get("last_checkpoint") is not None:
        text += f"; the last checkpoint seen was {plain(d['last_checkpoint'])}"
    return text + _extras(d, ("how", "why", "note", "last_checkpoint", "by"))


#: how an imported capture's connection ended (protocol/record/qemu_import.py)
_CLOSE_HOW = {
    "lone-request": "the capture ends right after a checkpoint-request that nobody answered",
    "eof-mid-checkpoint": "the stream stops in the middle of a checkpoint",
    "rst": "a TCP reset", "fin": "a TCP FIN", "clean": "the capture ends between checkpoints",
    "close": "closed", "reset": "reset",
}


def _where(d: Mapping) -> str:
    if d.get("point") in _CHANNEL_ROUTE and d.get("n") not in (None, 0):
        # colo lab's compare channels count packets, not checkpoints
        return f"packet {plain(d['n'])} on {plain(d['point'])}"
    bits = []
    if d.get("point"):
        bits.append(str(d["point"]))
    if d.get("dir"):
        bits.append(f"({d['dir']})")
    if d.get("n") not in (None, 0):
        bits.append(f"of checkpoint {plain(d['n'])}")
    return " ".join(bits)


def _link(verb: str) -> Callable:
    def fn(side, d) -> str:
        where = _where(d)
        size = f" ({plain(d['bytes'])} B)" if d.get("bytes") is not None else ""
        return (f"{where}{size} {verb}" if where else verb) + _why(d) + \
            _extras(d, ("point", "dir", "n", "why", "bytes"))
    return fn


def _fault(side, d) -> str:
    where = _where(d)
    return f"fault {plain(d.get('spec', ''))} fires" + (f" at {where}" if where else "") + \
        _extras(d, ("spec", "point", "dir", "n"))


def _qmp_error(side, d) -> str:
    cmd = d.get("command") or "a QMP command"
    on = f" on the {d['side']}" if d.get("side") else ""
    return f"{cmd}{on} fails" + _why(d, "error") + _extras(d, ("command", "side", "error"))


def _qmp(side, d) -> str:
    args = d.get("args")
    return f"QMP {plain(d.get('command', '?'))}" + (f" {plain(args)}" if args else "") + \
        _extras(d, ("command", "args"))


def _input(side, d) -> str:
    cmd = d.get("cmd") or "input"
    args = " ".join(plain(v) for k, v in d.items() if k != "cmd" and v is not None)
    return f"asks for {cmd} {args}".rstrip()


def _simple(text: str, *used: str, why: str = "why") -> Callable:
    def fn(side, d) -> str:
        return text + _why(d, why) + _extras(d, used + (why,))
    return fn


def _load(side, d) -> str:
    n = plain(d.get("n"))
    return (f"starts loading checkpoint {n}" if d.get("phase") == "begin"
            else f"has loaded checkpoint {n}") + _extras(d, ("n", "phase"))


def _deliver(side, d) -> str:
    return f"delivers {_where(d) or 'a piece'}" + \
        (f", {plain(d['bytes'])} B" if d.get("bytes") is not None else "") + \
        _extras(d, ("point", "dir", "n", "bytes"))


def _partition(side, d) -> str:
    until = d.get("until")
    return "network partition" + (f" until {plain(until)} ms" if until is not None else "") + \
        _extras(d, ("until",))


def _status(side, d) -> str:
    return "QMP status: " + ", ".join(f"{_words(k)} {plain(v)}" for k, v in d.items()
                                       if v is not None)


def _qmp_event(side, d) -> str:
    return f"QMP event {plain(d.get('event', '?'))}" + _extras(d, ("event",))


def _client(side, d) -> str:
    to = d.get("to")
    return f"a client sends request {plain(d.get('id'))}" + (f" to the {to}" if to else "") + \
        _extras(d, ("id", "to"))


def _reprotect(side, d) -> str:
    was = d.get("survivor")
    who_ = f"the {plain(was)} that survived" if was else "the survivor"
    gen = d.get("generation")
    return (f"re-protect{f' {plain(gen)}' if gen is not None else ''}: {who_} is the "
            "primary of a new pair; a new secondary starts and takes a fresh initial "
            "migration, then COLO resumes"
            + (f" after checkpoint {plain(d['checkpoint'])}" if d.get("checkpoint") is not None
               else "") + _extras(d, ("survivor", "generation", "checkpoint", "why")))


#: who sends on each colo-compare channel, and to whom (colo_tui/lab/relay.py)
_CHANNEL_ROUTE = {"mirror": "filter-mirror → the secondary's guest",
                  "primary-in": "the primary's guest → colo-compare",
                  "compare-in": "the secondary's guest → colo-compare",
                  "compare-out": "colo-compare releases → the client"}


def _packet(side, d) -> str:
    ch = d.get("channel", "?")
    what = plain(d.get("proto") or "frame")
    if d.get("flow"):
        what += f" {d['flow']}"
    if d.get("flags"):
        what += f" flags {plain(d['flags'])}"
    if d.get("tcp_seq") is not None:
        what += f" seq {plain(d['tcp_seq'])}"
    if d.get("payload_len"):
        what += f", {plain(d['payload_len'])} B of data"
    text = (f"packet {plain(d.get('n'))} on {plain(ch)} "
            f"({_CHANNEL_ROUTE.get(ch, 'a compare channel')}): {what}")
    if d.get("fault"):
        copies = d.get("copies")
        text += f"; fault {plain(d['fault'])} hits it" + (
            "" if copies is None else " (dropped)" if copies == 0
            else " (sent on once)" if copies == 1 else f" ({plain(copies)} copies sent on)")
    return text + _extras(d, ("channel", "n", "proto", "flow", "flags", "tcp_seq",
                              "payload_len", "fault", "copies", "length", "tcp_ack"))


_VERDICTS = {"match": "the secondary sent the same bytes: released at once",
             "mismatch": "the secondary's bytes differ: colo-compare asks for a checkpoint",
             "no-secondary": "no secondary packet came: released by the next checkpoint "
                             "(colo-compare's timeout asks for one)"}


def _verdict(side, d) -> str:
    v = d.get("verdict", "?")
    text = (f"colo-compare: {plain(v)} for {plain(d.get('flow', '?'))} seq "
            f"{plain(d.get('tcp_seq'))} ({plain(d.get('length'))} B): "
            + _VERDICTS.get(v, plain(v)))
    if d.get("forced_checkpoint") is not None:
        text += f"; it forced checkpoint {plain(d['forced_checkpoint'])}"
    if d.get("held_ms") is not None:
        text += f"; held {plain(d['held_ms'])} ms"
    if d.get("first_difference") is not None:
        text += f"; first different byte at {plain(d['first_difference'])}"
    return text + _extras(d, ("verdict", "flow", "tcp_seq", "length", "forced_checkpoint",
                              "held_ms", "first_difference", "primary_n", "secondary_n",
                              "out_n"))


def _generic(side, d) -> str:
    return ""   # the kind, then the fields: see sentence()


KINDS: dict[str, Callable[[str, Mapping], str]] = {
    "send": _send, "recv": _recv, "state": _state, "vm": _vm, "action": _action,
    "checkpoint": _checkpoint,
    "checkpoint-requested": _simple("a checkpoint is requested", why="reason"),
    "send-ram": _payload("the RAM pages", "sends"),
    "recv-ram": _payload("the RAM pages", "receives"),
    "ram": _payload("RAM pages", "the stream carries"),
    "send-device-state": _payload("the device state", "sends"),
    "recv-device-state": _payload("the device state", "receives"),
    "device-state": _payload("device state", "the stream carries"),
    "send-initial": _payload("the initial migration", "sends"),
    "recv-initial": _payload("the initial migration", "receives"),
    "load": _load, "migration": _simple("migration status", "status", why="status"),
    "failover": _failover, "deferred": _simple("the failover is deferred"),
    "colo-exit": _colo_exit,
    "error": _simple("error", "remote", "during", "action", why="message"),
    "eof": _simple("reads EOF: the peer closed the connection", "dir"),
    "abort": _simple("the checkpoint is abandoned"),
    "absorbed": _simple("the checkpoint request is absorbed"),
    "ignored": lambda side, d: "ignores " + (f"{plain(d['bytes'])} B that arrived"
                                             if d.get("bytes") is not None else "the request")
    + _why(d) + _extras(d, ("bytes", "why")),
    "unnoticed": _simple("nobody notices yet"),
    "error-report": _simple("logs an error and carries on", why="message"),
    "default-failover": _simple("v11's default failover", why="action"),
    "parameter": lambda side, d: f"sets {plain(d.get('name', '?'))} to {plain(d.get('value'))}"
    + _extras(d, ("name", "value")),
    "qmp": _qmp, "qmp-error": _qmp_error, "qmp-event": _qmp_event, "status": _status,
    "input": _input, "process": _process,
    "fence": lambda side, d: f"the arbiter fences the {plain(d.get('side', '?'))}" + _why(d),
    "watchdog": _simple("the arbiter's watchdog fires"),
    "deliver": _deliver,
    "held": _link("is held in the stopped receiver's socket buffer"),
    "lost": _link("is lost"), "dropped": _link("is dropped on the wire"),
    "fault": _fault, "partition": _partition,
    "closing": _simple("the connection is closing"), "closed": _closed,
    "end": _end,
    "stopped-for-checkpoint": lambda side, d: "the VM stops for checkpoint "
    f"{plain(d.get('n'))}" + _extras(d, ("n",)),
    "guest-shutdown-requested": _simple("the guest asks to power off"),
    "request": _client,
    "listening": lambda side, d: (plain(d["hint"]) if d.get("hint") else
                                  "listening on " + plain(d.get("address") or d.get("listen")))
    + _extras(d, ("address", "listen", "hint")),
    "connection": lambda side, d: "a peer connects"
    + (f" from {d['peer']}" if d.get("peer") else "")
    + (": a COLO session" if d.get("colo") else ": not (yet) a COLO session"
       if d.get("colo") is False else "") + _extras(d, ("peer", "colo")),
    "upstream-failed": _simple("cannot reach the upstream peer", why="error"),
    "undecodable": _simple("bytes that cannot be decoded", "dir", why="error"),
    "connection-error": _simple("connection error", "dir", why="error"),
    "callback-error": _simple("a fault callback failed", "spec", why="error"),
    # a `colo node` process (protocol/drivers/node.py)
    "node": lambda side, d: {"started": "the node process starts",
                             "exit": "the node process exits",
                             "crash": "the node process crashes"}.get(
        d.get("what"), f"node: {plain(d.get('what'))}") + _why(d, "error")
    + _extras(d, ("what", "error")),
    "progress-timeout": lambda side, d: "gives up: the peer made no progress for "
    f"{plain(d.get('timeout_ms'))} ms in {plain(d.get('stage') or 'the stream')} "
    "(a testbed bound; QEMU waits forever)" + _extras(d, ("timeout_ms", "stage")),
    "stopped": lambda side, d: "the proxy stops" + _why(d)
    + (f" after {_count(d['sessions'], 'session')}" if d.get("sessions") is not None else "")
    + (", a session was under way" if d.get("busy") else "")
    + _extras(d, ("why", "sessions", "busy")),
    "heartbeat": lambda side, d: "the keepalive channel to the peer is "
    + plain(d.get("what") or "up") + _extras(d, ("what",)),
    "heartbeat-lost": lambda side, d: "the keepalive says the peer is gone" + _why(d)
    + (f" (timeout {plain(d['timeout_ms'])} ms)" if d.get("timeout_ms") is not None else "")
    + _extras(d, ("why", "timeout_ms")),
    "reprotect": _reprotect,
    "packet": _packet, "verdict": _verdict,
    "reprotect-refused": _simple("the re-protect step cannot run", "spec"),
    "heartbeat-failover-refused": _simple("the failover the keepalive asked for is refused",
                                          why="error"),
}


def _fields(ev):
    if type(ev) is dict or isinstance(ev, Mapping):
        return ev.get("side") or "", ev.get("kind") or "?", ev.get("data") or {}
    return ev.side, str(ev.kind), ev.payload()


def clean(d: Mapping) -> dict:
    """Field values a sentence can put in text as they are: None, str and numbers stay;
    booleans, lists, dicts and bytes become words (an import's page counts stay a dict)."""
    for v in d.values():                 # the common case: nothing to change, no copy
        if v is not None and type(v) not in _SCALARS:
            break
    else:
        return d
    out = {}
    for k, v in d.items():
        if v is None or isinstance(v, (str, int, float)) and not isinstance(v, bool):
            out[k] = v
        elif k == "pages" and isinstance(v, Mapping) and all(
                isinstance(x, int) and not isinstance(x, bool) for x in v.values()):
            out[k] = v
        else:
            out[k] = plain(v)
    return out


def sentence(ev) -> str:
    """One event (an Event or its JSON dict) as one plain line, without its side."""
    side, kind, d = _fields(ev)
    d = clean(d) if type(d) is dict or isinstance(d, Mapping) else {"data": plain(d)}
    if type(side) is not str or type(kind) is not str:
        side, kind = plain(side), plain(kind)
    fn = KINDS.get(kind)
    if fn is not None:
        try:
            text = fn(side, d)
        except (TypeError, ValueError, AttributeError, KeyError):   # odd data: say it plainly
            text = ""
        if text:
            return text
    return f"{_words(kind)}" + _extras(d).replace("; ", ": ", 1)


def who(side: str) -> str:
    return {"link": "the link", "sim": "the simulator", "operator": "the operator",
            "arbiter": "the arbiter", "client": "a client", "live": "the live session"}.get(
        side, f"the {side}" if side else "")


_VERBS = frozenset(("sends", "receives", "releases", "puts", "flushes", "loads", "saves",
                    "takes", "discards", "shuts", "starts", "expects", "does", "reads",
                    "delivers", "sets", "has", "asks", "ignores"))


def line(ev) -> str:
    """The sentence with its actor: 'The primary sends checkpoint-request'."""
    side = _fields(ev)[0]
    text = sentence(ev)
    actor = who(side)
    if not actor or (side not in ("primary", "secondary")
                     and text.startswith(("the ", "a ", "an "))):
        return text[:1].upper() + text[1:]
    actor = actor[:1].upper() + actor[1:]
    return f"{actor} {text}" if text.split(" ", 1)[0] in _VERBS else f"{actor}: {text}"


def _is_cause(kind: str, d: Mapping) -> bool:
    if kind == "process":
        return d.get("what") in ("killed", "stalled")
    return kind in ("fault", "error", "qmp", "dropped", "closing", "closed", "partition",
                    "fence", "watchdog", "guest-shutdown-requested", "default-failover")


def ending(events, outcome) -> str:
    """How a finished session ended, and what started it: the first event that broke the
    happy path (a fault, a death, an error, an operator's failover), in words."""
    text = "The scenario ended: " + outcome_words(outcome) + "."
    reprotects = sum(1 for ev in events if _fields(ev)[1] == "reprotect")
    if reprotects:
        text += (f" A survivor was re-protected {reprotects} time"
                 f"{'s' if reprotects > 1 else ''} (a new secondary, COLO again).")
    for ev in events:
        side, kind, d = _fields(ev)
        if _is_cause(kind, d):
            return text + " It started with: " + line(ev) + "."
    if getattr(events, "dropped", 0):   # a long live session keeps its latest events
        return text + (f" Nothing went wrong in the events from #{events.dropped:,} on "
                       "(the older ones are not in memory).")
    return text + " Nothing went wrong: it ran the checkpoints it was set to run."


def checkpoint_answer(new_events) -> str:
    """What an operator's checkpoint request came to, in one true sentence, from the
    events it caused at once: the primary took it (step or run to see the checkpoint),
    or ignored it (no checkpoint in its state: COLO has not started, or one runs).
    `colo checkpoint`'s REPL answer said both: 'P ignores the request: no checkpoint
    in state INIT' then 'checkpoint requested; step or run to see it'."""
    for ev in new_events:
        side, kind, d = _fields(ev)
        if kind == "ignored" and side == "primary" and d.get("bytes") is None:
            return "the primary ignores the checkpoint request" + _why(d)
    return "checkpoint requested; step or run to see it"
