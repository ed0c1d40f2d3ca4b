"""Guided lessons: short narrated tours of COLO that pause on each beat.

A lesson is data: a session configuration, then beats.  A beat says something,
may ask the learner to act (a registry command such as ``kill primary``, or
its key in the app), then runs the session until something named happens (an
event matcher, see `matches`).  At the end the lesson checks that what it
promised really happened (`LessonRun.broken_promises`), so a lesson cannot
silently teach something the simulator did not show.

Toolkit-free: `colo learn` (text), the app (key L) and the tests drive the
same `LessonRun`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAX_STEPS_PER_BEAT = 20_000
#: commands a learner may type during a lesson without changing its session
LOOK_ONLY = frozenset({"status", "show", "explain", "help", "faults", "wire"})


def matches(ev, matcher: str) -> bool:
    """``kind`` or ``kind:what`` (what = the message, failover target, action name or
    reason), optionally prefixed by ``side/``: ``primary/send:checkpoint-request``."""
    side, _, rest = matcher.rpartition("/")
    if side and ev.side != side:
        return False
    kind, _, what = rest.partition(":")
    if ev.kind != kind:
        return False
    if not what:
        return True
    return what in (getattr(ev, "msg", None), getattr(ev, "to", None),
                    getattr(ev, "name", None), getattr(ev, "reason", None),
                    getattr(ev, "outcome", None), getattr(ev, "phase", None))


@dataclass(frozen=True)
class Beat:
    say: str
    until: tuple[str, ...] = ()        # run until one of these happens ("" = one step)
    do: str | None = None              # the command the learner runs first
    key: str | None = None             # … or this key in the app


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    config: dict
    beats: tuple[Beat, ...]
    promises: tuple[str, ...] = ()     # matchers that must have happened by the end
    outcome: str | None = None         # the session's outcome, if it must end
    check: Callable | None = None      # extra: controller -> problem text or ""
    recap: str = ""


def _compare_noticed(why: str):
    def check(c) -> str:
        packets = c.guest_report().primary.packets
        seen = list(packets.compare_notifications) if packets is not None else []
        return "" if why in seen else f"colo-compare never reported a {why} ({seen or 'none'})"
    return check


_CKPT = dict(guest="model", checkpoints=6, checkpoint_delay_ms=2000)

LESSONS: tuple[Lesson, ...] = (
    Lesson("anatomy", "The anatomy of a checkpoint", dict(_CKPT), (
        Beat("Both VMs start from the same state: the initial migration copies the whole "
             "guest, then the secondary says it is ready.", ("send:checkpoint-ready",)),
        Beat("The primary runs; after x-checkpoint-delay it asks for a checkpoint.",
             ("send:checkpoint-request",)),
        Beat("The secondary stops its VM and answers checkpoint-reply. (In this periodic "
             "session it was paused already; in QEMU 7.2 the secondary runs between "
             "checkpoints.)", ("send:checkpoint-reply",)),
        Beat("Only now does the primary stop. It sends vmstate-send, saves its device state "
             "into a memory buffer, then streams the pages its guest dirtied since the last "
             "checkpoint straight onto the socket: the RAM part.", ("send-ram",)),
        Beat("Then the buffered device state: vmstate-size says how many bytes follow.",
             ("send-device-state",)),
        Beat("The secondary has it all: vmstate-received. It now flushes its RAM cache and "
             "loads the devices.", ("send:vmstate-received",)),
        Beat("vmstate-loaded: the two VMs are identical again. The checkpoint commits and "
             "the primary resumes.", ("primary/checkpoint:commit",)),
    ), promises=("send:checkpoint-request", "send:vmstate-received", "send:vmstate-loaded",
                 "primary/checkpoint:commit", "secondary/checkpoint:commit"),
        recap="request → reply → RAM → device state → received → loaded: one checkpoint."),
    Lesson("output-commit", "Output commit: packets wait for their checkpoint",
           dict(_CKPT, mode="periodic"), (
        Beat("Clients talk to the primary. In this periodic session its answers are held in "
             "a buffer (filter-buffer, as in the 2015 v11 series; QEMU 7.2 holds them in "
             "colo-compare) until a checkpoint covers the state that made them.",
             ("send:checkpoint-request",)),
        Beat("A checkpoint is on its way; the held packets still wait.",
             ("send:vmstate-received",)),
        Beat("The primary reads vmstate-received: the secondary holds the state that made "
             "those answers, so they leave now, while the secondary is still loading. That "
             "is QEMU 7.2's moment; v11 waited for vmstate-loaded.",
             ("action:release-output",)),
    ), promises=("action:release-output",),
        recap="Nothing a client sees can be lost by a failover: output waits for its "
              "checkpoint."),
    Lesson("failover-primary", "The primary dies: the secondary takes over",
           dict(_CKPT), (
        Beat("Let one checkpoint commit first.", ("primary/checkpoint:commit",)),
        Beat("Now kill the primary.",
             ("failover:completed",), do="kill primary", key="k, the primary selected"),
        Beat("The secondary only saw EOF (COLO_EXIT, reason error) and waited: QEMU has no "
             "heartbeat. The arbiter, standing in for the external manager, gave it "
             "x-colo-lost-heartbeat: none → require → active → completed. It resumes from "
             "its last whole checkpoint and serves the clients.",
             ("end",)),
    ), promises=("secondary/failover:completed",), outcome="failover",
        recap="The survivor runs from the last checkpoint both sides agreed on."),
    Lesson("failover-secondary", "The secondary dies: the primary carries on alone",
           dict(_CKPT), (
        Beat("Let one checkpoint commit first.", ("primary/checkpoint:commit",)),
        Beat("Now kill the secondary.",
             ("primary/colo-exit",), do="kill secondary", key="o to select it, then k"),
        Beat("Between checkpoints the primary does not read the socket: it noticed "
             "nothing until the arbiter's x-colo-lost-heartbeat. Now it has left COLO and "
             "keeps serving, unprotected. Its COLO_EXIT says error although the failover "
             "was asked for: QEMU 7.2's COLO thread reads the failover state before it "
             "reaches completed (seen on a real pair); query-colo-status says request.",
             ("end",)),
    ), promises=("primary/colo-exit", "primary/failover:completed"), outcome="failover",
        recap="Losing the secondary costs protection, not service."),
    Lesson("relaunch", "A failover that meets a load: relaunch",
           dict(guest="model", checkpoints=4, load_ms=3000.0, arbiter_ms=1000.0), (
        Beat("Loading a checkpoint takes the secondary 3 s here. Arm a fault that kills "
             "the primary when the load starts.", ("load",),
             do="fault kill-primary@load#1", key="f"),
        Beat("The external manager notices after 1 s and asks the secondary to take over "
             "— but it is still loading.", ("failover:active",)),
        Beat("A failover cannot interrupt a load: it goes to relaunch and starts again "
             "once the load is over.", ("failover:relaunch",)),
        Beat("The load ends without vmstate-loaded, and the failover runs again: "
             "relaunch → none → require → active → completed.",
             ("failover:completed",)),
    ), promises=("secondary/failover:relaunch", "secondary/failover:completed"),
        recap="QEMU defers a failover that arrives during a load (FAILOVER_STATUS_RELAUNCH)."),
    Lesson("split-brain", "Split brain: two primaries",
           dict(guest="null", checkpoints=4), (
        Beat("Let COLO run.", ("primary/checkpoint:commit",)),
        Beat("Give x-colo-lost-heartbeat to the secondary while the primary is alive.",
             ("end",), do="heartbeat secondary", key="o to select the secondary, then h"),
        Beat("Both VMs now run and serve: COLO's premise (only one side decides it is "
             "alone) was broken by the operator.", ()),
    ), outcome="split-brain",
        recap="COLO trusts its external manager: a wrong lost-heartbeat makes two primaries."),
    Lesson("compare-mismatch", "Hybrid mode: colo-compare forces a checkpoint",
           dict(guest="model", mode="hybrid", divergence=0.3, checkpoints=4), (
        Beat("In hybrid mode both VMs run and colo-compare compares their answers packet "
             "by packet; equal answers leave at once.", ("send:checkpoint-ready",)),
        Beat("Here the secondary answers differently now and then: a mismatch asks for a "
             "checkpoint at once, whatever the delay.",
             ("checkpoint-requested:colo-compare",)),
        Beat("The checkpoint makes the secondary identical again.",
             ("primary/checkpoint:commit",)),
    ), promises=("checkpoint-requested:colo-compare",), check=_compare_noticed("mismatch"),
        recap="COLO checkpoints when the VMs diverge, not on a clock."),
    Lesson("stale-packet", "Hybrid mode: a packet that waits too long",
           dict(guest="model", mode="hybrid", svm_output_lost=True, checkpoints=3), (
        Beat("The secondary's answers never reach colo-compare here.",
             ("send:checkpoint-ready",)),
        Beat("A primary packet with no partner waits; after 3 s the stale scan asks for a "
             "checkpoint, and the checkpoint releases it.",
             ("checkpoint-requested:colo-compare",)),
    ), promises=("checkpoint-requested:colo-compare",), check=_compare_noticed("stale"),
        recap="Without the secondary's answer, a packet leaves at the next checkpoint."),
    Lesson("reprotect", "Re-protect: COLO again after a failover", dict(_CKPT), (
        Beat("Let one checkpoint commit first.", ("primary/checkpoint:commit",)),
        Beat("Now kill the primary.",
             ("failover:completed",), do="kill primary", key="k, the primary selected"),
        Beat("The secondary serves alone: nothing protects it now. Re-protect it: "
             "a new secondary starts and the survivor migrates to it with x-colo.",
             ("reprotect",), do="reprotect", key="p"),
        Beat("The survivor is the primary of the new pair: it stops and sends a whole "
             "initial migration; the new secondary loads it.",
             ("secondary/action:load-initial",)),
        Beat("checkpoint-ready, and checkpoints resume, numbered on from the survivor's "
             "last one.", ("primary/checkpoint:commit",)),
    ), promises=("secondary/failover:completed", "reprotect", "secondary/action:load-initial"),
        outcome="ok",
        recap="After a failover, re-protect = a new secondary + a fresh migration with x-colo "
              "(QEMU docs/COLO-FT.txt): the survivor is protected again."),
    Lesson("v11-vs-qemu", "v11 against QEMU 7.2: the same handshake, other words",
           dict(guest="model", dialect="v11", checkpoints=3), (
        Beat("The 2015 v11 series: the same messages, numbered from 1 (0 was 'invalid'), "
             "each followed by a be64 value word.",
             ("send:checkpoint-request",)),
        Beat("v11 releases the held output only after vmstate-loaded (QEMU 7.2 after "
             "vmstate-received).", ("send:vmstate-loaded",)),
        Beat("Here it is.", ("action:release-output",)),
    ), promises=("send:vmstate-loaded", "action:release-output"),
        recap="Same protocol, other framing; `colo tui --dialect` switches between them."),
)
BY_NAME = {lesson.name: lesson for lesson in LESSONS}


@dataclass
class LessonRun:
    """One lesson on a controller: `beat` is the current beat; `act` performs its
    command; `advance` runs to its goal."""

    lesson: Lesson
    controller: object
    index: int = 0
    acted: bool = False
    missed: list[str] = field(default_factory=list)      # beats whose goal never came
    cursor: int = 0                    # the events before it belong to earlier beats

    def start(self) -> None:
        from protocol.sim.config import SimConfig
        base = SimConfig(seed=self.controller.config.seed).to_dict()   # not the UI's settings
        self.controller.restart(**{**base, **self.lesson.config})
        self.index, self.acted, self.cursor, self.missed = 0, False, 0, []

    @property
    def done(self) -> bool:
        return self.index >= len(self.lesson.beats)

    @property
    def beat(self) -> Beat | None:
        return None if self.done else self.lesson.beats[self.index]

    def waiting_for_learner(self) -> bool:
        b = self.beat
        return b is not None and b.do is not None and not self.acted

    def act(self, line: str | None = None):
        """Run the beat's command, or a look-only command of the learner's (status,
        show …); anything else would change the lesson's session: refused, with
        what the beat asks for."""
        from colo_tui.commands import execute
        from colo_tui.commands.registry import Result
        if line is None:
            line = self.beat.do if self.beat is not None and self.beat.do else ""
        expected = self.beat.do if self.beat is not None else None
        word = line.split()[0].lower() if line.split() else ""
        if expected is not None and _same(line, expected):
            result = execute(self.controller, line)
            self.acted = self.acted or result.ok
            return result
        if word in LOOK_ONLY:
            return execute(self.controller, line)
        return Result(False, f"this beat asks for: {expected}" if expected
                      else "this beat needs no command: press Enter (n in the app)")

    def noticed(self, line: str) -> None:
        """The learner did something through the app's own keys."""
        if self.beat is not None and self.beat.do is not None and _same(line, self.beat.do):
            self.acted = True

    def advance(self) -> list:
        """Run the session until the current beat's goal happens (bounded).  A beat
        looks from just after the event that ended the one before: one step may
        bring several beats' events at once."""
        b = self.beat
        if b is None:
            return []
        if self.waiting_for_learner():
            raise ValueError(f"first: {b.do}")
        c = self.controller
        start = self.cursor
        reached = not b.until
        for _ in range(MAX_STEPS_PER_BEAT):
            if reached:
                break
            events = c.events
            while self.cursor < len(events):
                ev = events[self.cursor]
                self.cursor += 1
                if any(matches(ev, m) for m in b.until):
                    reached = True
                    break
            if reached or c.finished:
                break
            c.step()
        if not reached:
            self.missed.append(f"beat {self.index + 1}: {' or '.join(b.until)} never came")
        self.index += 1
        self.acted = False
        return c.events[start:self.cursor]

    def broken_promises(self) -> list[str]:
        c = self.controller
        out = list(self.missed) + [f"{m} never happened" for m in self.lesson.promises
                                   if not any(matches(e, m) for e in c.events)]
        if self.lesson.outcome is not None:
            if not c.finished:
                c.run()
            got = c.status()["outcome"]
            if got != self.lesson.outcome:
                out.append(f"the session ended {got}, not {self.lesson.outcome}")
        if self.lesson.check is not None and (problem := self.lesson.check(c)):
            out.append(problem)
        return out


def _same(line: str, expected: str) -> bool:
    return " ".join(line.split()).lower() == " ".join(expected.split()).lower()


def narration(run: LessonRun) -> str:
    """What the app's explanation pane shows during a lesson."""
    lesson = run.lesson
    head = f"Lesson: {lesson.title} ({min(run.index + 1, len(lesson.beats))}/{len(lesson.beats)})"
    b = run.beat
    if b is None:
        problems = run.broken_promises()
        end = (f"✓ {lesson.recap}" if not problems
               else "✗ this lesson did not show what it promised: " + "; ".join(problems))
        return f"{head}\n\n{end}\n\nL picks another lesson; the session goes on as usual."
    todo = (f"\n\nYour turn: {b.do}" + (f" (key {b.key})" if b.key else "")
            if run.waiting_for_learner() else "\n\nPress n to see it happen.")
    return f"{head}\n\n{b.say}{todo}"
