"""What each command does to a Controller.  handler(controller, parsed) -> str.

A handler raises CommandError (or ValueError) for a user error; ``execute``
turns it into Result(ok=False).  Text views (ladder, failover, guest state)
are built here from the Controller's state; nothing here prints.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass, field

from colo_tui.commands.parser import SIDES, CommandError
from colo_tui.present.sentences import plain as _plain
from colo_tui.present.sentences import sentence as _sentence
from colo_tui.session.words import number, plural
from protocol.core import dialects
from protocol.core import failover as fo
from protocol.core import faults as fl
from protocol.core.events import EventKind as K
from protocol.core.events import Reprotect
from protocol.errors import is_user_error

MAX_RUN_STEPS = 200_000
#: `step N` in a simulation runs this many steps between looks at ctrl+c (pause)
STEP_CHUNK = 50
#: a live session (real peers): how long `step N` waits for N events, and how
#: long `run` waits in all before it gives up
LIVE_STEP_WAIT_S = 10.0
LIVE_RUN_S = 120.0
LADDER_ROWS = 40


@dataclass
class _State:
    running: bool = False
    pause: threading.Event = field(default_factory=threading.Event)


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def state_of(c) -> _State:
    st = _STATES.get(c)
    if st is None:
        st = _STATES[c] = _State()
    return st


def run_state(c) -> str:
    """running / paused / finished, for toolbars and status."""
    if state_of(c).running:
        return "running"
    return "finished" if c.finished else "paused"


def where(c) -> str:
    s = c.status()
    p, q = s["primary"], s["secondary"]
    text = (f"step {s['step']}, t={s['t_ms']:.3f} ms; primary {_side_word(p)}, "
            f"secondary {_side_word(q)}; checkpoint {p['checkpoint']}")
    if s["finished"]:
        # a simulation plays a scenario; live peers and a capture end their own way
        what = "the live session" if s.get("live") else \
            "the scenario" if s.get("seeded", True) else "the recorded session"
        text += f"; {what} has ended: outcome {s['outcome']}"
    return text


def _side_word(st: dict) -> str:
    if not st["alive"]:
        return "dead"
    return f"{st['state']} ({'stalled' if st['stalled'] else st['run_state']})"


def error_text(parsed, exc: Exception) -> str:
    if is_user_error(exc) or isinstance(exc, KeyError):
        msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, OSError) and exc.filename:
            msg = f"{exc.filename}: {msg}"
        return f"{parsed.name}: {msg.strip(chr(39))}"
    return (f"internal error in '{parsed.line}': {type(exc).__name__}: {exc} "
            "(a testbed bug; please report it - the REPL carries on)")


# ------------------------------------------------------------------ stepping
def _nothing_to(verb: str, c) -> str:
    """`step`/`run` at the end: where the session is, and (a simulation) what still
    works there, as an input there is refused (SessionEnded): they said only where."""
    text = f"nothing to {verb}: " + where(c)
    refusal = c.end_refusal() if hasattr(c, "end_refusal") else None
    if refusal is not None:
        text += "\nwhat still works: " + refusal.ways()
    return text


def step(c, p) -> str:
    if c.finished:
        return _nothing_to("step", c)
    n = p.get("n") or 1
    live = c.live and c.wait_for_events
    st = state_of(c)
    if not live:
        # a few steps at a time, so that ctrl+c (pause) stops a long `step N` as it
        # stops `run`: `step 1000000` ran to its end whatever was pressed
        st.running = True
        st.pause.clear()
        count = left = 0
        try:
            for left in range(n, 0, -STEP_CHUNK):
                if c.finished or st.pause.is_set():
                    break
                count += len(c.step(min(STEP_CHUNK, left)))
            else:
                left = 0
        finally:
            st.running = False
        head = plural(count, "new event")
        if left and st.pause.is_set():
            head = f"paused; {head}"
        return head + "; " + where(c)
    # waiting for real events: in short waits, so that ctrl+c (pause) ends the wait
    st.running = True
    st.pause.clear()
    new: list = []
    deadline = time.monotonic() + LIVE_STEP_WAIT_S
    try:
        # a source that has ended sends nothing more: what arrived is all there is
        # (the wait went on for its whole 10 s)
        while len(new) < n and not st.pause.is_set() and not c.finished:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            new += c.step(n - len(new), wait_s=min(0.1, left))
    finally:
        st.running = False
    head = plural(len(new), "new event")
    if st.pause.is_set():
        head = "paused; " + head
    elif len(new) < n and not c.finished:
        head += f" (no more arrived within {LIVE_STEP_WAIT_S:.0f} s)"
    return head + "; " + where(c)


def run(c, p) -> str:
    if c.finished:
        return _nothing_to("run", c)
    st = state_of(c)
    st.running, until, count = True, p.get("event"), p.get("n")
    st.pause.clear()
    start_ckpt = c.side("primary").checkpoint
    first, hit, paused, timed_out = len(c.events), None, False, False
    live = c.live and c.wait_for_events
    # live peers run ahead of what is shown: count the commits that were stepped, the
    # primary's, as the help says (the secondary commits first: counting its commits
    # ended `run 1` with the primary still at checkpoint 0); a --peer session has only
    # its secondary's (the primary is the real QEMU)
    counted = "secondary" if getattr(c.session, "name", "") == "peer" else "primary"
    commits: set = set()
    deadline = time.monotonic() + LIVE_RUN_S
    try:
        for _ in range(MAX_RUN_STEPS):
            if c.finished:
                break
            if st.pause.is_set():
                paused = True
                break
            if live and time.monotonic() > deadline:
                timed_out = True
                break
            for e in (c.step(1, wait_s=0.1) if live else c.step(1)):
                if until is not None and (e.kind == until or getattr(e, "msg", None) == until):
                    hit = hit or e
                if live and e.kind is K.CHECKPOINT and e.phase == "commit" and \
                        e.side == counted:
                    commits.add(e.n)
            if hit is not None:
                break
            if count is not None and (len(commits) if live else
                                      c.side("primary").checkpoint - start_ckpt) >= count:
                break
    finally:
        st.running = False
    head = plural(len(c.events) - first, "new event")
    if paused:
        head = "paused; " + head
    if timed_out:
        head = f"stopped after {LIVE_RUN_S:.0f} s of a live session; " + head
    if until is not None:
        head += (f"; stopped at {until} (event #{hit.seq}, {hit.side})" if hit
                 else f"; {until} did not happen")
    return head + "; " + where(c)


def pause(c, p) -> str:
    st = state_of(c)
    if not st.running:
        return "nothing is running (between commands the session is paused)"
    st.pause.set()
    return "pausing at the next step"


# -------------------------------------------------------------------- inputs
def checkpoint(c, p) -> str:
    n = len(c.events)
    c.checkpoint()
    from colo_tui.present.sentences import checkpoint_answer
    return checkpoint_answer(c.events[n:])      # taken, or ignored and why: one of them


def fault(c, p) -> str:
    c.refuse_after_the_end()            # (before the spec's checks, as the TUI's f)
    spec = p.args["spec"]
    f = fl.parse(spec, channels=True)
    if f.point in fl.CHANNEL_POINTS:       # colo lab's compare channels: the session checks
        c.add_fault(spec)
        return (f"fault {f} armed: {fl.kind_help(f.kind, channel=True)} — on the "
                f"{f.point} channel's "
                f"{_ordinal(f.checkpoint)} TCP data packet from now")
    d = dialects.get(c.config.dialect)
    if f.point not in fl.STAGES + fl.MOMENTS and f.point not in d.ids:
        raise CommandError(f"the {d.name} dialect has no {f.point!r} message "
                           f"(it has: {', '.join(d.messages)})")
    if f.kind == "unexpected" and f.arg not in d.ids:
        raise CommandError(f"{f.arg!r} does not exist in the {d.name} dialect "
                           f"(it has: {', '.join(d.ids)})")
    c.add_fault(spec)
    text = f"fault {f} armed: {fl.kind_help(f.kind)}"
    if f.point in fl.MOMENTS:
        done = getattr(c.session, "failovers", 0)
        if f.checkpoint <= done:
            text += (f"\nwarning: failover {f.checkpoint} already happened, so this step will "
                     f"never run (the next failover is #{done + 1}; or type: reprotect)")
    elif f.checkpoint <= c.side("primary").checkpoint:
        text += (f"\nwarning: checkpoint {f.checkpoint} is already over, so this fault will "
                 "never fire (name a later one with #N)")
    return text


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def failover(c, p) -> str:
    side = p.args["side"]
    n = len(c.events)
    c.failover(side)
    errors = [e for e in c.events[n:] if e.kind is K.QMP_ERROR]
    if errors:
        raise CommandError(f"failover to the {side}: {errors[-1].error}")
    return (f"failover to the {side} (docs/COLO-FT.txt's QMP sequence on it) done; "
            "step or run to see what follows")


def refused_live(c, p) -> str | None:
    """Why a live session refuses this command, or None.  Asked before anything: the
    REPL asked 'go on?' and then refused, and the handler had stopped the recording
    before the controller refused (faults clear, set SETTING, replay)."""
    if not getattr(c, "live", False):
        return None
    from colo_tui.session.control import live_refusal
    from colo_tui.session.options import SETTINGS
    if p.name == "faults" and p.form == ("clear",) and c.faults():
        return live_refusal("clear_faults")
    if p.name == "set" and (p.form[0] in RESTART_FORMS or p.form[0] in SETTINGS):
        return live_refusal("restart")
    if p.name == "replay":
        return live_refusal("load_replay")
    return None


#: `set` forms besides the SETTINGS that start a new session
RESTART_FORMS = ("dialect", "mode", "seed", "guest")


def _refuse_live(c, p) -> None:
    why = refused_live(c, p)
    if why:
        raise CommandError(why)


def faults(c, p) -> str:
    if p.form == ("clear",):
        if not c.faults():
            return "no faults to clear; the session goes on"
        _refuse_live(c, p)
        note = _stop_recording(c)
        c.clear_faults()
        return ("faults cleared; the session restarted from the beginning, without its "
                "faults and its other inputs" + note)
    specs, fired = c.faults(), c.fired()
    if not specs:
        return "no faults (add one with: fault KIND[=ARG]@POINT[#N])"
    return "\n".join(f"  {i + 1}. {s}  {'fired' if i in fired else 'pending'}"
                     for i, s in enumerate(specs))


def _refuse_dead(c, side: str) -> None:
    """A simulated side that is dead already: killing or stalling it again did nothing
    but record an input, and said '{side} killed' as if it had."""
    if not c.live and not c.status()[side]["alive"]:
        raise CommandError(f"the {side} is dead already (status shows both sides)")


def kill(c, p) -> str:
    _refuse_dead(c, p.args["side"])
    c.kill(p.args["side"])
    return f"{p.args['side']} killed; " + where(c)


def stall(c, p) -> str:
    _refuse_dead(c, p.args["side"])
    c.stall(p.args["side"])
    return f"{p.args['side']} stalled (SIGSTOP); " + where(c)


def heartbeat(c, p) -> str:
    side = p.args["side"]
    n = len(c.events)
    c.lost_heartbeat(side)
    errors = [e for e in c.events[n:] if e.kind is K.QMP_ERROR]
    if errors:
        raise CommandError(f"x-colo-lost-heartbeat on the {side}: {errors[-1].error}")
    if c.live:       # the peers answer in their own time: their state shows as it arrives
        return f"x-colo-lost-heartbeat sent to the {side}; step or run to see what follows"
    st = c.status()[side]
    return (f"x-colo-lost-heartbeat sent to the {side}: failover state "
            f"{st['failover_state']}, query-colo-status {_colo(st)}")


def reprotect(c, p) -> str:
    if not hasattr(c, "reprotect"):
        raise CommandError("this session cannot re-protect (it needs the simulator)")
    n = len(c.events)
    try:
        c.reprotect()
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    ev = next((e for e in c.events[n:] if type(e) is Reprotect), None)
    who, base = (ev.survivor, ev.checkpoint) if ev is not None else ("survivor", "?")
    return (f"re-protect: the {who} that survived is the primary of "
            "a new pair; a new secondary starts and takes a fresh initial migration, then "
            f"COLO resumes (checkpoints go on after {base}); step or run "
            "to watch it")


def _colo(st: dict) -> str:
    cs = st["colo_status"]
    return f"(mode {cs['mode']}, last-mode {cs['last-mode']}, reason {cs['reason']})"


# --------------------------------------------------------------------- views
def status(c, p) -> str:
    s = c.status()
    lines = []
    for side in SIDES:
        st = s[side]
        life = "dead" if not st["alive"] else "stalled" if st["stalled"] else "alive"
        lines.append(f"{side:<9}  {life}, vm {st['run_state']}, machine {st['state']}, "
                     f"checkpoint {st['checkpoint']}"
                     + (f" (#{st['in_flight']} in flight)" if st["in_flight"] else "")
                     + f", failover {st['failover_state']}, migration {st['migration']}")
        lines.append(f"{'':<9}  query-colo-status {_colo(st)}"
                     + (f"; error: {st['error']}" if st["error"] else ""))
    run = run_state(c)
    if s["mode"] == "unknown":          # --attach: QMP does not say
        head = "the peers' dialect and COLO mode are not known over QMP"
    elif not s.get("mode_known", True):  # a real capture: its header's mode is a default
        head = f"{s['dialect']} dialect, a real capture"
    else:
        head = f"{s['dialect']} dialect, {s['mode']} mode" + \
            (f", seed {s['seed']}" if s.get("seeded", True) else "")
    lines.append(f"session    {head}; "
                 f"step {s['step']}, t={s['t_ms']:.3f} ms; {run}"
                 + (f", outcome {s['outcome']}" if s["finished"] else ""))
    if s["recording"]:
        lines.append(f"recording  {s['recording']}")
    if s["forked"]:
        lines.append(f"forked     at step {c.forked_at}")
    broken = [k for k, ok in s["invariants"].items() if not ok]
    if s.get("live"):
        lines.append(f"live       {s['live']}: real peers; the simulator's invariants are "
                     "not checked here")
        if s.get("dropped"):            # a long live session keeps its latest events
            lines.append(f"memory     {c.events.dropped_text()}")
    elif not s.get("invariants_checked", True):
        lines.append("invariants not checked: a real capture's events are checked against "
                     "each other (message order, checkpoint numbering, sizes) by colo replay")
    else:
        lines.append("invariants " + ("all hold" if not broken else
                                      "BROKEN: " + ", ".join(broken)))
    return "\n".join(lines)


def show(c, p) -> str:
    return {"ladder": ladder, "failover": failover_view, "ram": guest_ram,
            "packets": guest_packets, "disk": guest_disk,
            "screen": guest_screen}[p.args["what"]](c)


def _mirror(c):
    """The secondary's mirror of a real guest (`--peer`), or None."""
    if c.guest("secondary").kind != "mirror":
        return None
    return c.guest_report().secondary.mirror


def guest_screen(c) -> str:
    sec = _mirror(c)
    if sec is None:
        raise CommandError("no screen to show: only the mirror of a real guest has one "
                           "(colo repl --peer LISTEN, with a QEMU primary)")
    rows = sec.screen_lines
    if not rows:
        return "no VGA RAM yet: the primary's initial migration has not arrived"
    last = max((i for i, r in enumerate(rows) if r), default=-1)
    body = [f"|{r:<80}|" for r in rows[:last + 1]]
    return "\n".join([f"VGA text as of checkpoint {sec.checkpoints} (80x25, "
                      f"{plural(last + 1, 'non-blank row')} shown)", "+" + "-" * 80 + "+",
                      *body, "+" + "-" * 80 + "+"])


def ladder(c, rows: int = LADDER_ROWS) -> str:
    width = 44
    out = []
    for e in c.events:
        if e.kind is K.SEND:
            label = f" {e.msg}" + (f" {e.value}" if e.value else "") + " "
        elif e.kind in (K.SEND_RAM, K.SEND_DEVICE_STATE, K.SEND_INITIAL):
            label = f" [{e.kind[5:]} {e.bytes} B] "
        elif e.kind in _NOTES:
            note = _note(e)
            out.append(f"{e.t_ms:>12.3f}  {'':<9}|{'':^{width}}|  {e.side}: {note}")
            continue
        else:
            continue
        if e.side == "primary":
            arrow = (label.center(width - 1, "-") + ">")
        else:
            arrow = ("<" + label.center(width - 1, "-"))
        out.append(f"{e.t_ms:>12.3f}  {'primary':<9}|{arrow}|  secondary")
    if not out:
        return "no messages yet (step or run)"
    head = f"{'t (ms)':>12}  {'':<9}|{'primary -> secondary':^{width}}|"
    skipped = len(out) - rows
    body = out[-rows:]
    if skipped > 0:
        body.insert(0, f"{'':>12}  ... {plural(skipped, 'earlier row')}")
    if getattr(c, "dropped", 0):        # a long live session, or a recording started late
        body.insert(0, f"{'':>12}  ... {c.events.dropped_text()}")
    return "\n".join([head] + body)


_NOTES = frozenset((K.ERROR, K.COLO_EXIT, K.FAILOVER, K.PROCESS, K.FENCE, K.CLOSED,
                    K.DEFERRED, K.DROPPED, K.PARTITION))


def _note(e) -> str:
    return _sentence(e)


def failover_view(c) -> str:
    d = dialects.get(c.config.dialect)
    chain = (fo.NONE, fo.REQUIRE, fo.ACTIVE, fo.COMPLETED)
    lines = ["failover state machine (migration/colo-failover.c); every move is a CAS:"]
    for (a, b), why in fo.TRANSITIONS.items():
        lines.append(f"  {d.failover_name(a):>9} -> {d.failover_name(b):<9}  {why}")
    for side in SIDES:
        st = c.side(side)
        cur = st.failover

        def mark(s, cur=cur):
            n = d.failover_name(s)
            return f"[{n}]" if s == cur else n
        line = " -> ".join(mark(s) for s in chain) + "   (" + mark(fo.RELAUNCH) + ")"
        hist = ", ".join(f"{d.failover_name(a)}->{d.failover_name(b)}"
                         for a, b in st.failover_history) or "no transitions yet"
        lines.append(f"{side:<9}  {line}   history: {hist}")
    return "\n".join(lines)


def _guests(c, what: str):
    """Both guests in depth (a GuestReport); a CommandError without a guest model."""
    if any(c.guest(s).kind != "model" for s in SIDES):
        if c.playback and not c.live:
            raise CommandError(f"no {what} to show: this session plays back an imported "
                               "capture, which holds what crossed the wire, not the guests' "
                               "memory; `show ladder` draws its messages (the RAM parts' "
                               "page counts are in their events)")
        raise CommandError(f"no {what} to show: this session runs the null guest (control "
                           "protocol only), which has no RAM, packets or disk; the guest "
                           "model has them: `set guest model`, or start with --guest model")
    return c.guest_report()


def _mirror_ram(g) -> str:
    """`show ram` for the mirror of a real guest (`--peer`)."""
    if not g.has_ram:
        return "secondary  no RAM yet: the real primary's initial migration has not arrived"
    blocks = ", ".join(f"{n} {s >> 20 or s >> 10}{' MiB' if s >> 20 else ' KiB'}"
                       for n, s in g.blocks)
    flushed = ", ".join(f"{b} {n}" for b, n in g.flushed_counts) or "nothing yet"
    return "\n".join([
        f"primary    the real peer (machine {g.machine}, as its stream says); the mirror "
        "holds what it sent",
        f"secondary  mirror of the real guest: {blocks}",
        f"{'':<9}  initial migration {plural(g.initial_pages, 'page')}; "
        f"{plural(g.checkpoints, 'checkpoint')} flushed, "
        f"{plural(g.pages_flushed_total, 'page')} in all; last flush: {flushed}",
        f"{'':<9}  device sections {g.devices}; VGA text: "
        f"{(g.screen_lines[0] if g.screen_lines else '') or '—'!r}"])


def guest_ram(c) -> str:
    sec = _mirror(c)
    if sec is not None:
        return _mirror_ram(sec)
    g = _guests(c, "RAM")
    lines = []
    for side in SIDES:
        ram = g.side(side).ram
        blocks = ", ".join(f"{n} {s >> 20} MiB" for n, s in ram.layout)
        line = (f"{side:<9}  {ram.size_bytes >> 20} MiB ({blocks}); dirty pages "
                f"{ram.dirty}; digest {ram.digest[:12]}")
        cache = ram.cache
        if cache is not None:
            line += (f"\n{'':<9}  RAM cache: {plural(cache.pending, 'page')} waiting for the flush, "
                     f"last flush {plural(cache.last_flush_pages, 'page')}, "
                     f"{plural(cache.flushes, 'flush', 'flushes')}, "
                     f"{plural(cache.discards, 'discard')}")
        lines.append(line)
    n = sum(len(v) for _b, v in g.ram_diff)
    lines.append("RAM identical on both sides" if not n else
                 f"the sides differ on {plural(n, 'page')}: " +
                 "; ".join(f"{b} pages {_plain(list(v))}" for b, v in g.ram_diff))
    return "\n".join(lines)


def guest_packets(c) -> str:
    g = _guests(c, "packets")
    pg, sg = g.primary.packets, g.secondary.packets
    lines = [f"clients received {plural(pg.client_received, 'packet')} so far"]
    if pg.filter_held is not None:
        lines.append(f"filter-buffer (periodic): {plural(pg.filter_held, 'packet')} held until the "
                     f"next checkpoint; {pg.filter_released} released")
    if pg.compare_queued is not None:
        prim, sec = pg.compare_queued
        lines.append(f"colo-compare (hybrid): queued primary {prim}, secondary {sec}; matched "
                     f"{pg.compare_matched}; drops {pg.compare_drops}; "
                     f"{plural(len(pg.compare_notifications), 'checkpoint notification')}")
    lines.append(f"secondary: {plural(sg.svm_outbox, 'packet')} on the way to colo-compare, "
                 f"{sg.svm_dropped} dropped")
    return "\n".join(lines)


def guest_disk(c) -> str:
    g = _guests(c, "disk")
    lines = [f"{side:<9}  {plural(g.side(side).disk.sectors, 'sector')} written; digest "
             f"{g.side(side).disk.digest[:12]}" for side in SIDES]
    diff = list(g.disk_diff)
    lines.append("disks identical" if not diff else
                 f"disks differ on {plural(len(diff), 'sector')}: {_plain(diff)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- settings
def _stop_recording(c) -> str:
    path = c.record_stop()
    return (f"\nrecording stopped and saved: {path} (a recording holds one session)"
            + _reader_note(c)) if path else ""


def _reader_note(c) -> str:
    """The note on a recording just saved that readers refuse by default (more
    checkpoints than COLO_MAX_CHECKPOINTS, ...): the setting that reads it back."""
    note = getattr(c, "recording_note", None)
    return f"\nnote: {note}" if note else ""


def set_(c, p) -> str:
    key = p.form[0]
    if key == "checkpoint-delay":
        c.set_checkpoint_delay(p.args["ms"])
        return f"x-checkpoint-delay = {p.args['ms']} ms (QEMU checkpoints at once on a change)"
    if key == "verbosity":
        printer = getattr(c, "printer", None)
        if printer is None:
            raise CommandError("verbosity is the REPL's: the app shows every event in its log")
        printer.level = p.args["v"]
        return f"verbosity {printer.level}"
    from colo_tui.session.options import SETTINGS
    _refuse_live(c, p)
    if key in SETTINGS:
        field_name = SETTINGS[key][0]
        value = p.args[key.replace("-", "_")]
        note = _stop_recording(c)
        c.restart(**{field_name: value})
        shown = ("on" if value else "off") if isinstance(value, bool) else number(value)
        return f"new session with {key} {shown}" + note
    value = p.args[{"dialect": "d", "mode": "m", "seed": "s", "guest": "g"}[key]]
    note = _stop_recording(c)
    c.restart(**{key: value})
    return (f"new session: {c.config.dialect} dialect, {c.config.mode} mode, seed "
            f"{c.config.seed}, {c.config.guest} guest" + note)


def record(c, p) -> str:
    if p.form == ("stop",):
        path = c.record_stop()
        return f"recording saved: {path}{_reader_note(c)}" if path else "not recording"
    if p.get("file"):
        path = os.path.expanduser(p.args["file"])
    else:       # named for the front end it is made in: the TUI's are tui-… (its palette
        # made repl-… ones, beside the tui-… ones its r key made)
        named = getattr(c, "name_recording", None)
        if named is None:
            from colo_tui.session.lifecycle import new_recording_path
            named = lambda: new_recording_path(c.config, "repl")  # noqa: E731
        path = str(named())
    from protocol.errors import OutputFileError
    try:
        source = getattr(c, "replay_source", None)
        if source:      # writers never write over their own input, 'force' or not
            from protocol.record.outfile import check_target
            check_target(path, inputs=(source,), force=True)
        c.record_start(path, force="force" in p.form)
    except OutputFileError as exc:
        raise CommandError(str(exc).replace("give --force", "add 'force'")) from None
    if getattr(c, "dropped", 0):        # a long live session keeps its latest events
        return (f"recording to {path} (the session so far is written too, from event "
                f"#{c.dropped:,}: the {c.dropped:,} older ones were dropped from memory)")
    return f"recording to {path} (the session so far is written too)"


def replay(c, p) -> str:
    _refuse_live(c, p)
    note = _stop_recording(c)
    rec = c.load_replay(os.path.expanduser(p.args["file"]))
    what = ("a real capture" if c.capabilities.plays_recording     # (its header's mode
            else f"{c.config.mode} mode, seed {c.config.seed}")      # is a default)
    return (f"loaded {p.args['file']}: {c.config.dialect} dialect, {what}; {plural(len(rec.inputs), 'input')}, {plural(len(rec.events), 'event')}; step or "
            "run to replay it" + cut_note(rec) + note)


def cut_note(rec) -> str:
    """What a cut recording (its writer was killed) holds: stepping on past its end
    simulates on, without the inputs it lost."""
    if not rec.cut:
        return ""
    return (f"\na cut recording: it holds the first {plural(len(rec.events), 'event')}; beyond them "
            f"the simulation goes on without what was lost ({rec.cut})")


def back(c, p) -> str:
    if c.recording_path:
        raise CommandError("cannot go back while recording: a recording is one linear "
                           "history (record stop first)")
    before = c.steps
    target = max(0, before - (p.get("n") or 1))
    later = sum(1 for i in c.inputs if i["step"] > target)
    now = c.back(before - target)
    text = f"back from step {before} to step {now}; " + where(c)
    if later:
        text += (f"\n{plural(later, 'later input')} will be re-applied as you step; a new input now "
                 "forks the future and drops them")
    return text


def explain_cmd(c, p) -> str:
    from colo_tui.present.explain import explain_last
    return explain_last(c)


def help_(c, p) -> str:
    from colo_tui.commands.registry import COMMANDS, REGISTRY
    name = p.get("cmd")
    if name:
        cmd = REGISTRY[name]
        kinds = _arguments(cmd)
        return (f"{cmd.syntax}\n  {cmd.summary}\n" + "\n".join("  usage: " + u for u in cmd.usages)
                + (f"\n\n{cmd.help}" if cmd.help else "") + kinds)
    # one column for the short forms; a longer form gets a line (wrapped) of its own and
    # its summary below, so the list fits an 80-column terminal
    import textwrap
    w = 21
    lines = []
    for x in COMMANDS:
        if len(x.syntax) <= w:
            lines.append(f"  {x.syntax:<{w}}  {x.summary}")
        else:
            lines += textwrap.wrap(x.syntax, 78, initial_indent="  ", subsequent_indent="      ",
                                   break_on_hyphens=False)
            lines.append(" " * (w + 4) + x.summary)
    return "\n".join(lines) + \
        "\n(help CMD for details; Tab completes; Ctrl-R searches the history)"


def _argument_kinds() -> dict:
    from colo_tui.commands import parser as cp
    from colo_tui.session.options import INTERACTIVE_MAX_CHECKPOINTS
    return {
        "int": f"a whole number, 0 … {number(0xFFFFFFFF)}",
        "count": f"a whole number, 1 … {number(1_000_000)}",
        "length": f"a whole number, 1 … {number(INTERACTIVE_MAX_CHECKPOINTS)}",
        "seed": "a whole number, 0 … 2^64-1",
        "side": "primary or secondary (p, s)",
        "fault-spec": "KIND[=ARG]@POINT[#N], e.g. drop@vmstate-received#2 (Tab completes "
                      "it; `colo faults` has the grammar)",
        "event": "an event kind (failover, colo-exit, error, ...) or a message name, "
                 "all listed here (Tab completes them)",
        "dialect": " or ".join(dialects.DIALECTS),
        "mode": " or ".join(cp.MODES),
        "guest": " or ".join(cp.GUESTS),
        "view": ", ".join(cp.VIEWS),
        "verbosity": ", ".join(cp.VERBOSITY),
        "ms": f"milliseconds, 0 … {number(3_600_000)} (fractions allowed)",
        "arbiter-ms": f"milliseconds, 1 … {number(1e9)}",
        "fraction": "a number, 0 … 1",
        "onoff": "on or off",
        "file": "a file name (in quotes if it has spaces)",
        "command": "a command's name",
    }


def _arguments(cmd) -> str:
    """What each placeholder of `help CMD`'s usage lines takes. It listed the parser's
    kinds ('arguments: int, dialect, ..., length, ms, onoff, arbiter-ms, fraction'),
    which named no value: 'set arbiter ARBITER' did not say on or off."""
    from colo_tui.commands.parser import placeholder
    kinds, seen, lines = _argument_kinds(), set(), []
    for form in cmd.forms:
        for tok in form:
            ph = placeholder(tok)
            if ph is not None and ph[0] not in seen:
                seen.add(ph[0])
                text = kinds.get(ph[1], ph[1])
                if ph[0] == "MS" and not text.startswith("milliseconds"):
                    text = f"milliseconds, {text}"
                lines.append(f"  {ph[0]:<16} {text}")
                if ph[1] == "event":
                    lines += _event_names()
    return "\n\nwhere\n" + "\n".join(lines) if lines else ""


def _event_names() -> list[str]:
    """Every event kind and message name, wrapped under EVENT in `help run` (the list
    the refusal of an unknown one points to)."""
    import textwrap

    from colo_tui.commands.parser import EVENT_KINDS, MESSAGE_NAMES
    out = []
    for head, names in (("event kinds:", EVENT_KINDS), ("message names:", MESSAGE_NAMES)):
        out += textwrap.wrap(f"{head} {', '.join(names)}", 78, initial_indent=" " * 19,
                             subsequent_indent=" " * 21, break_on_hyphens=False)
    return out


def quit_(c, p):
    from colo_tui.commands.registry import Result
    path = c.record_stop()
    return Result(True, f"recording saved: {path}{_reader_note(c)}" if path else "bye",
                  quit=True)
