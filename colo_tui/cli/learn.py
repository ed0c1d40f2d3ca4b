"""`colo learn`: the guided lessons in the terminal, one beat at a time."""
from __future__ import annotations

import sys


def add_parser(subparsers):
    p = subparsers.add_parser(
        "learn", help="guided lessons: narrated tours of COLO that pause on each step",
        description="Short narrated tours: a checkpoint, output commit, failovers, "
                    "relaunch, split brain, colo-compare, re-protect after a failover, v11 "
                    "against QEMU. Each beat "
                    "pauses; some ask you to act (type the command shown). In the app, "
                    "press L.")
    p.add_argument("lesson", nargs="?", default=None, help="a lesson's name (--list)")
    p.add_argument("--list", action="store_true", help="list the lessons")
    p.add_argument("--auto", action="store_true",
                   help="no pauses: perform every action and print the whole tour")
    p.set_defaults(func=run_learn)
    return p


def run_learn(args, *, stdin=None, out=None) -> int:
    from colo_tui.commands.lessons import BY_NAME, LESSONS
    stdin, out = stdin or sys.stdin, out or sys.stdout
    if args.list or args.lesson is None:
        for i, lesson in enumerate(LESSONS, 1):
            print(f"{i:>2}. {lesson.name:<19} {lesson.title}", file=out)
        if args.lesson is None and not args.list:
            print("\ncolo learn NAME starts one (or press L in the app).", file=out)
        return 0
    lesson = BY_NAME.get(args.lesson)
    # a number in ASCII digits only: str.isdigit and int take '１' (full width), '١' …
    number = args.lesson.isascii() and args.lesson.isdigit()
    if lesson is None and number and 1 <= int(args.lesson) <= len(LESSONS):
        lesson = LESSONS[int(args.lesson) - 1]
    if lesson is None:
        why = ""
        if args.lesson.isdigit() and not number:
            why = " (a lesson's number is written in ASCII digits 0-9)"
        print(f"colo learn: no lesson {args.lesson!r}{why}; one of: {', '.join(BY_NAME)}, "
              f"or its number, 1 to {len(LESSONS)}", file=sys.stderr)
        return 2
    return _tour(lesson, stdin, out, auto=args.auto)


#: typed at a prompt, these leave the lesson (as Ctrl-D does): the REPL's words for it
LEAVE_WORDS = ("quit", "exit", "q")


#: the rest of a line too long to take is read (and dropped) up to this many characters;
#: a line with no end within it (`colo learn < /dev/zero`) ends the lesson
SKIP_MAX_CHARS = 1 << 20


class _TooLong:
    """A line refused for its length (`ends`: its end was found, so the next line can
    be read)."""

    def __init__(self, ends: bool) -> None:
        self.ends = ends


def _read_line(stdin) -> str | _TooLong:
    """One whole line ('' at the end of input), however it is split in reads: a line
    longer than a command line can be (MAX_LINE_CHARS) is refused as one, its rest read
    and dropped in bounded pieces, never held (it was read as several lines before)."""
    from colo_tui.commands.parser import MAX_LINE_CHARS
    line = stdin.readline(MAX_LINE_CHARS + 2)
    if len(line.rstrip("\r\n")) <= MAX_LINE_CHARS:
        return line
    if line.endswith("\n"):
        return _TooLong(ends=True)
    for _ in range(SKIP_MAX_CHARS // MAX_LINE_CHARS):      # bounded: the rest, dropped
        rest = stdin.readline(MAX_LINE_CHARS)
        if not rest or rest.endswith("\n"):
            return _TooLong(ends=True)
    return _TooLong(ends=False)


def _ask(prompt: str, stdin, out) -> str | None:
    """The learner's line; None when they leave (end of input, or a word of LEAVE_WORDS)."""
    from colo_tui.commands.parser import MAX_LINE_CHARS
    for _ in range(1000):           # a learner who keeps typing over-long lines: bounded
        print(prompt, end="", file=out, flush=True)
        line = _read_line(stdin)
        if not isinstance(line, _TooLong):
            break
        if not line.ends:
            print(f"  line too long: no end within {SKIP_MAX_CHARS:,} characters; "
                  "leaving the lesson", file=out, flush=True)
            return None
        print(f"  line too long: over {MAX_LINE_CHARS} characters (a command line has at "
              "most that many); ignored", file=out, flush=True)
    else:
        return None
    if not line:
        print(file=out)
        return None
    line = line.strip()
    return None if line.lower() in LEAVE_WORDS else line


def _tour(lesson, stdin, out, *, auto: bool) -> int:
    try:
        return _tour_beats(lesson, stdin, out, auto=auto)
    except KeyboardInterrupt:       # ctrl+c: the prompt's line ends, and so does the tour
        print("\n(left the lesson)", file=out, flush=True)
        from colo_tui.session import exitcodes
        return exitcodes.INTERRUPTED


def _tour_beats(lesson, stdin, out, *, auto: bool) -> int:
    from colo_tui.commands.lessons import LessonRun, matches
    from colo_tui.repl import render
    from colo_tui.repl.verbosity import shown
    from colo_tui.session.control import Controller
    run = LessonRun(lesson, Controller())
    run.start()
    print(f"== {lesson.title} ==  (Enter goes on; quit or Ctrl-D leaves)\n", file=out)
    while not run.done:
        beat = run.beat
        print(f"[{run.index + 1}/{len(lesson.beats)}] {beat.say}", file=out)
        if beat.do is not None:
            while not run.acted:
                line = beat.do if auto else _ask(f"  your turn, type: {beat.do}\n  > ",
                                                 stdin, out)
                if line is None:
                    return 0
                res = run.act(line)
                if res.text:
                    print("\n".join("  " + x for x in res.text.splitlines()[:40]), file=out)
        elif not auto and _ask("  (Enter)\n", stdin, out) is None:
            return 0
        for ev in run.advance():
            # the event the beat waited for is shown even when quiet hides its kind (a
            # colo-compare request, the RAM part, the output's release): the text names it
            if shown(ev, "quiet") or any(matches(ev, m) for m in beat.until):
                print("  " + render.event_line(ev).strip(), file=out)
        print(file=out)
    problems = run.broken_promises()
    if problems:
        print("✗ this lesson did not show what it promised: " + "; ".join(problems), file=out)
        return 1
    print(f"✓ {lesson.recap}", file=out)
    return 0
