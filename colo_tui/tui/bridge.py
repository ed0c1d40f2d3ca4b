"""The one bridge between the protocol world and Textual.

The Controller produces `protocol.core.events.Event`s; the bridge turns them into
view objects (`colo_tui.present.models`) and tells the app, with one
coalescing message (`Bridge.Updated`), that there is something new to show.
Work is done once per repaint, not once per event: the message carries no
data, replaces any older one still queued, and the app pulls a fresh view
when it handles it.  No widget ever sees a protocol object.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from colo_tui.present.explain import explain, explain_last
from colo_tui.present.models import SIDE_NAMES, FailoverView, LadderRow, SideView, StatusView
from colo_tui.present.tui_views import Ladder, LogModel
from protocol.core import dialects
from protocol.core.eventwindow import EventDropped
from protocol.errors import ColoError

HINT = "press n or → to step, space to run, ? for help"
SPEEDS = (1, 2, 5, 10, 20, 50, 100, 500, 2000, 0)       # steps per second; 0 = full speed
MAX_TICK_S = 0.15                                     # a full-speed tick's compute budget


@dataclass(slots=True)
class SessionView:
    status: StatusView
    sides: dict[str, SideView]
    failover: FailoverView
    ladder: list[LadderRow]
    ladder_version: int
    log: LogModel
    explanation: str
    selected_seq: int | None
    selected_hex: str


#: what an operator's action may raise when the session cannot do it (a live session
#: cannot step back, a fault spec does not parse, a file cannot be written …): these
#: become a warning on the status line, never a traceback
USER_ERRORS = (ColoError, ValueError, KeyError, OSError)


def user_action(fn):
    """A bridge action: a user error becomes a `⚠` notice and the session goes on."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except USER_ERRORS as exc:
            self.running = False
            self.changed(f"⚠ {describe_error(exc)}")
            return None
    return wrapper


def describe_error(exc: BaseException) -> str:
    """One line for the status bar: the error's own words (an OSError's reason and file)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if isinstance(exc, KeyError) and exc.args:
        return f"unknown: {exc.args[0]}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def explain_event(ev, dialect: str) -> str:
    return explain(ev, dialect)


class Bridge:
    """Drives a Controller for the app and turns what happens into view objects."""

    class Updated(Message):
        """Something changed: pull a fresh view.  Coalesces (no payload)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, Bridge.Updated)

    def __init__(self, controller, target=None) -> None:
        self.c = controller
        self.target = target
        self.running = False
        self.speed_index = 3
        self.selected_side = "primary"
        self.selected_seq: int | None = None
        self.record_dir: str | None = None          # None: the user's data directory
        self.output = ""                            # a palette command's output, kept
        self.lesson = None                          # a guided lesson in progress
        # a live source may say what the user must do first (e.g. start the primary)
        self.notice = controller.hint
        # `record start` (the palette) names a recording as `r` does: tui-…, in record_dir
        controller.name_recording = self.new_recording_path
        self._credit = 0.0
        self._reset()

    # ---------------------------------------------------------------- plumbing
    def _reset(self) -> None:
        self._session = self.c.session
        old = getattr(self, "log", None)
        # a simulation reports receptions: its messages are drawn in flight until then
        self.ladder = Ladder(flight=self.c.capabilities.reports_receptions)
        self.log = LogModel(self.c.events)
        if old is not None:
            self.log.set_filter(old.filter)
        self._fed = 0
        self._explained: tuple | None = None
        self._explanation = ""

    def changed(self, notice: str | None = None) -> None:
        if notice is not None:
            self.notice = notice
        failure = self.c.take_recording_failure()
        if failure:                       # the REC mark goes off: say why, and pause
            self.running = False
            self.warn(failure)
            return
        gap = self.c.take_gap_notice()
        if gap:                           # a live view fell a full queue behind the peers
            self.notice = f"⚠ {gap}"
        if self.target is not None:
            self.target.post_message(self.Updated())

    def _waiting_notice(self) -> str:
        """Paused on a live session whose events keep arriving: how many wait, so the
        source's start-up hint ("starting the lab…") does not stand there unchanged
        while hundreds of events are ready (the view is refreshed while paused:
        `ColoApp._idle_live`)."""
        if self.running or not self.c.live or self.notice not in ("", self.c.hint):
            return ""
        n = self.c.waiting()
        if not n:
            return ""
        return (f"{n:,} {'event has' if n == 1 else 'events have'} arrived: "
                "space follows them, n steps through them one by one")

    def warn(self, text: str) -> None:
        """A refusal or a failure: the status line says it, cut to the terminal's
        width; the explanation pane keeps the whole sentence (its advice is at the
        end) until the next step or selection, as it keeps a palette command's."""
        self.output = f"⚠ {text}"
        self._explained = None
        self.changed(f"⚠ {text}")

    def _guard(self, fn, *args, ok: str = "") -> bool:
        try:
            fn(*args)
        except USER_ERRORS as exc:                     # FaultSpecError is a ValueError
            self.warn(describe_error(exc))
            return False
        self.changed(ok)
        return True

    # ---------------------------------------------------------------- stepping
    @property
    def speed(self) -> int:
        return SPEEDS[self.speed_index]

    def speed_label(self) -> str:
        return "full speed" if self.speed == 0 else f"{self.speed} steps/s"

    # ----------------------------------------------------------------- lessons
    @user_action
    def start_lesson(self, name: str) -> None:
        from colo_tui.commands.lessons import BY_NAME, LessonRun
        self.running = False
        run = LessonRun(BY_NAME[name], self.c)
        run.start()
        self.lesson, self.output, self.selected_seq = run, "", None
        self.changed(f"lesson: {run.lesson.title} — n goes on, L picks another")

    def _lesson_step(self) -> bool:
        """n during a lesson: run to the current beat's goal (True if it handled n)."""
        run = self.lesson
        if run is None:
            return False
        if run.done:
            self.lesson = None              # the lesson is over: n steps as usual again
            return False
        if run.waiting_for_learner():
            b = run.beat
            self.changed(f"your turn: {b.do}" + (f" (key {b.key})" if b.key else "")
                         + " — or type it in the palette (ctrl+p)")
            return True
        run.advance()
        self.changed("")
        return True

    def _noticed(self, line: str) -> None:
        if self.lesson is not None:
            self.lesson.noticed(line)

    @user_action
    def step(self, n: int = 1) -> None:
        self.output = ""
        if self._lesson_step():
            return
        if self.c.finished:
            self.changed(f"the session has ended ({self.c.status()['outcome']}); "
                         + self._after_the_end())
            return
        self.c.step(n)
        self.changed("")

    @user_action
    def back(self, n: int = 1) -> None:
        self.output = ""
        self.running = False
        self.c.back(n)
        caps = self.c.session.capabilities
        self.changed("stepped back: an input given now forks the future" if caps.takes_inputs
                     else "stepped back (a recording plays as it was: it takes no inputs)")

    @user_action
    def toggle_run(self) -> None:
        self.running = not self.running and not self.c.finished
        self._credit = 0.0
        if self.running:         # a run is steps: theirs are explained, not the last output
            self.output = ""
        self.changed("" if self.running else "paused")

    def faster(self, delta: int) -> None:
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + delta))
        self.changed(f"speed: {self.speed_label()}")

    @user_action
    def tick(self, dt_s: float) -> None:
        """One timer tick while running: step as many events as the speed allows."""
        if not self.running:
            return
        if self.speed == 0:
            deadline = time.perf_counter() + MAX_TICK_S
            c = self.c
            while not c.finished and time.perf_counter() < deadline:
                if not c.step(50) and c.live:
                    break            # nothing more has arrived: the next tick looks again
        else:
            self._credit += self.speed * dt_s
            n, self._credit = int(self._credit), self._credit - int(self._credit)
            if n:
                self.c.step(n)
        if self.c.finished:
            self.running = False
            self.notice = f"finished: {self.c.status()['outcome']}"
        self.changed()

    # ------------------------------------------------------------------ inputs
    #: what still works once a session has ended (SessionEnded.still), in keys
    AFTER_THE_END_KEYS = {"back": "← = back (an input there forks the future)",
                          "reprotect": "p = re-protect", "new": "1-9 = a scenario"}

    def _after_the_end(self) -> str:
        """What the keys can still do once a session has ended."""
        if not self.c.session.capabilities.takes_inputs:   # an imported capture
            return "← = back, 1-9 = a scenario"
        return ", ".join(self.AFTER_THE_END_KEYS[s] for s in self.c.after_the_end())

    def ended(self, what: str) -> bool:
        """The Controller's refusal of an input after a simulated session has ended
        (SessionEnded), said with the keys. Says so and returns True. A capture is
        left to its own refusal (it takes no inputs)."""
        from colo_tui.session.control import SessionEnded  # loaded with the session
        try:
            self.c.refuse_after_the_end()
        except SessionEnded as exc:
            self.warn(f"{what}: " + exc.say(self.AFTER_THE_END_KEYS))
            return True
        return False

    def checkpoint(self) -> None:
        if self.ended("checkpoint"):
            return
        n = len(self.c.events)
        if self._guard(self.c.checkpoint, ok="checkpoint requested"):
            from colo_tui.present.sentences import checkpoint_answer
            answer = checkpoint_answer(self.c.events[n:])
            if "ignores" in answer:          # one true thing: not 'requested' alone
                self.changed(answer)

    def kill(self) -> None:
        if self.ended("kill"):
            return
        if self._guard(self.c.kill, self.selected_side, ok=f"killed the {self.selected_side}"):
            self._noticed(f"kill {self.selected_side}")

    def stall(self) -> None:
        if self.ended("stall"):
            return
        if self._guard(self.c.stall, self.selected_side,
                       ok=f"stalled the {self.selected_side}"):
            self._noticed(f"stall {self.selected_side}")

    def lost_heartbeat(self) -> None:
        if self.ended("x-colo-lost-heartbeat"):
            return
        if self._guard(self.c.lost_heartbeat, self.selected_side,
                       ok=f"x-colo-lost-heartbeat on the {self.selected_side}"):
            self._noticed(f"heartbeat {self.selected_side}")

    def failover(self) -> None:
        if self.ended("failover"):
            return
        if self._guard(self.c.failover, self.selected_side,
                       ok=f"failover to the {self.selected_side} (docs/COLO-FT.txt)"):
            self._noticed(f"failover {self.selected_side}")

    def reprotect(self) -> None:
        if self._guard(getattr(self.c, "reprotect", self._no_reprotect),
                       ok="re-protect: a new secondary, a fresh initial migration, COLO again"):
            self._noticed("reprotect")

    def _no_reprotect(self) -> None:
        raise ValueError("this session cannot re-protect (it needs the simulator)")

    def refuse_fault(self) -> bool:
        """Before the fault menu opens: a session that takes no faults (an imported
        capture) says so at once, in its own words, as it does for k and c.  False
        when it refused (the menu would only be refused on arm)."""
        return self._guard(self.c.session.check_fault, None)

    def add_fault(self, spec: str) -> bool:
        if self.ended("fault"):
            return False
        ok = self._guard(self.c.add_fault, spec, ok=f"fault armed: {spec}")
        if ok:
            self._noticed(f"fault {spec}")
        return ok

    def set_delay(self, ms: int) -> None:
        if self.ended("x-checkpoint-delay"):
            return
        self._guard(self.c.set_checkpoint_delay, ms, ok=f"x-checkpoint-delay = {ms} ms")

    def restart(self, notice: str = "", **changes) -> bool:
        self.output = ""
        self.lesson = None
        self.running = False
        try:
            self.c.restart(**changes)
        except (*USER_ERRORS, ImportError, AttributeError) as exc:
            self.warn(f"cannot restart: {describe_error(exc)}")
            return False
        self.selected_seq = None
        self.changed(notice or "restarted")
        return True

    def what_a_restart_loses(self) -> str:
        """What restarting would throw away, in words; "" when nothing would be lost."""
        parts = []
        if self.c.steps:
            parts.append(f"this session ({self.c.steps} steps)")
        if self.c.recording_path:
            parts.append(f"the recording to {self.c.recording_path} (it is saved and stopped)")
        return " and ".join(parts)

    def show_output(self, line: str, text: str, *, ok: bool = True) -> None:
        """A palette command's output: it stays in the explanation pane until the next
        step or selection (a toast would vanish)."""
        self.output = f"{'' if ok else '⚠ '}› {line}\n{text}"
        self._explained = None
        self.changed(("" if ok else "⚠ ") + text.splitlines()[0] if text else "")

    @user_action
    def load_replay(self, path: str) -> None:
        self.running = False
        self.c.load_replay(path)
        self.changed(f"replaying {Path(path).name}: step through it")

    def new_recording_path(self) -> Path:
        """A fresh file for a recording made in the TUI: tui-…, in `record_dir` (None:
        the user's recordings folder)."""
        from colo_tui.session.lifecycle import new_recording_path
        return new_recording_path(self.c.config, "tui", self.record_dir)

    @user_action
    def toggle_record(self) -> str | None:
        """Start a recording in the user's recordings folder (or `record_dir`), or
        stop the one in progress; the status line says where it is."""
        # the path (and what a reader refuses in the file by default, with the setting
        # that reads it) is said whole in the explanation pane: the status line cuts
        # a long path's file name, which `colo replay FILE` needs
        if self.c.recording_path:
            path = self.c.record_stop()
            note = self.c.recording_note
            self.output = f"recording saved: {path}" + (f"\nnote: {note}" if note else "")
            self._explained = None
            self.changed(f"recording saved: {path}" + (f" — note: {note}" if note else ""))
            return path
        path = self.new_recording_path()
        self.c.record_start(str(path))
        self.output = f"recording to {path}\n(r stops it; quitting in any way completes it)"
        self._explained = None
        self.changed(f"recording to {path}")
        return str(path)

    @user_action
    def execute(self, line: str):
        """Run a command-registry line (the palette); returns its Result or None."""
        from colo_tui.commands import execute as execute_command  # after the first paint
        result = execute_command(self.c, line)
        if result.ok:
            self._noticed(line)
        self.changed(("" if result.ok else "⚠ ") + (result.text or "").splitlines()[0]
                     if result.text else "")
        return result

    # --------------------------------------------------------------- selection
    def select_side(self, side: str | None = None) -> None:
        self.selected_side = side or ("secondary" if self.selected_side == "primary"
                                      else "primary")
        self.changed(f"selected: {self.selected_side}")

    def select_row(self, seq: int | None, side: str | None = None) -> None:
        self.output = ""
        self.selected_seq = seq
        if side:
            self.selected_side = side
        self.changed()

    def selected_row(self) -> LadderRow | None:
        if self.selected_seq is None:
            return None
        for row in reversed(self.ladder.rows):
            if row.seq == self.selected_seq:
                return row
        return None

    # ------------------------------------------------------------------- views
    def _feed(self) -> None:
        if self.c.session is not self._session:
            self._reset()
        events = self.c.events
        if self._fed < len(events):
            self.ladder.feed(events[self._fed:])
            self._fed = len(events)

    def _explain(self) -> str:
        if self.output:
            return self.output
        if self.lesson is not None:
            from colo_tui.commands.lessons import narration
            return narration(self.lesson)
        events = self.c.events
        key = (id(self.c.session), self.selected_seq, len(events))
        if key == self._explained:
            return self._explanation
        if self.selected_seq is not None and self.selected_seq < len(events):
            try:
                ev = events[self.selected_seq]
            except EventDropped as exc:     # a long live session keeps its latest events
                text = f"#{self.selected_seq}\n{exc}"
            else:
                text = f"#{ev.seq} {ev.side} {ev.kind}\n{explain_event(ev, self.c.config.dialect)}"
        elif events and self.running and (self.speed == 0 or self.speed > 100):
            # too fast to read: the last explanation of an event stays (not the empty
            # session's "nothing has happened yet")
            said = self._explained is not None and self._explained[2] > 0
            return self._explanation if said and self._explanation else \
                "running… pause (space) to read about a step"
        elif events:
            text = explain_last(self.c)
        else:
            text = "Nothing has happened yet: press n to step."
        self._explained, self._explanation = key, text
        return text

    def view(self) -> SessionView:
        self._feed()
        st = self.c.status()
        now = st["t_ms"]
        sides = {}
        for s in SIDE_NAMES:
            d = st[s]
            cs = d.get("colo_status", {})
            last = self.ladder.last_commit.get(s)
            sides[s] = SideView(
                name=s, role=d.get("role", s), run_state=d.get("run_state", "—"),
                colo_mode=cs.get("mode", "—"), failover=d.get("failover_state", "none"),
                last_mode=cs.get("last-mode", "—"), reason=cs.get("reason", "—"),
                checkpoint=d.get("checkpoint", 0),
                since_ms=None if last is None else now - last, state=d.get("state", "—"),
                alive=d.get("alive", True), stalled=d.get("stalled", False),
                error=d.get("error") or "", selected=s == self.selected_side,
                **self.c.guest(s).summary())
        dialect = dialects.get(self.c.config.dialect)
        names = tuple(dialect.failover_name(x) for x in
                      ("none", "require", "active", "completed", "relaunch"))
        status = StatusView(
            dialect=st["dialect"] + (f"↔{peer}" if (peer := getattr(
                self.c.config, "secondary_dialect", None)) else ""),
            # a real capture: its header's mode is a default, not what it shows
            mode=st["mode"] if st.get("mode_known", True) else "real capture",
            # a live session or a real capture has no seed (a capture's header says 0)
            seed=st["seed"] if st["seeded"] else None, step=st["step"],
            t_ms=now, running=self.running, speed=self.speed_label(), forked=st["forked"],
            forked_at=self.c.forked_at, recording=st.get("recording") or "",
            replay=Path(self.c.replay_source).name if self.c.replay_source else "",
            finished=st["finished"], outcome=st["outcome"] or "",
            faults=tuple(self.c.faults()),
            notice=self._waiting_notice() or self.notice or (HINT if st["step"] == 0 else ""))
        row = self.selected_row()
        return SessionView(
            status=status, sides=sides,
            failover=FailoverView(names, {s: sides[s].failover for s in SIDE_NAMES}),
            ladder=self.ladder.rows, ladder_version=self.ladder.version, log=self.log,
            explanation=self._explain(), selected_seq=self.selected_seq,
            selected_hex=row.hex if row else "")


__all__ = ["Bridge", "SessionView", "LogModel", "Ladder", "HINT", "SPEEDS"]
