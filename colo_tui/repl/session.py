"""The REPL loop (interactive, through prompt_toolkit) and the script runner.

Interactive: history file in the user's data directory, Ctrl-R search, Tab
completion, a bottom toolbar, confirmation of destructive commands; an error
in a command never ends the session; events print as they happen.

Non-interactive (``-f SCRIPT`` or stdin that is not a tty): the same commands,
no prompts or confirmations, ``#`` comments and blank lines ignored; the first
failing line ends the run with exit status 1 and is named on stderr.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys

from ..commands import confirmation, execute, run_state, state_of
from ..commands.parser import read_script, strip_comment
from . import render

_strip = strip_comment


def _controller(args, out):
    from protocol.sim.core import Simulation

    from ..control import Controller
    from ..session_args import config_from
    cfg = config_from(args)
    # validates dialect, mode, faults and settings (ValueError names the choices);
    # no guest to build
    Simulation(dataclasses.replace(cfg, guest="null"))

    from .verbosity import Printer
    show = Printer(out, render.event_line)
    from ..live import make_live
    live = make_live(args, cfg, on_event=show)
    if live is not None:
        live.wait_for_events = True      # the REPL may block: `step`/`run` wait for peers
        live.printer = show
        return live
    c = Controller(cfg, on_event=show)
    c.printer = show
    return c


def run_repl(args, *, stdin=None, stdout=None, stderr=None) -> int:
    stdin = stdin or sys.stdin
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if getattr(args, "attach", None):
        from ..attach import run_attached
        return run_attached(args, stdin, out, err)
    from protocol.errors import ColoError
    try:
        c = _controller(args, out)
    except (ValueError, OSError, ColoError) as exc:   # a live source that cannot start too
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"colo repl: error: {why}", file=err)
        return 2
    from ..lifecycle import SessionGuard

    def saved(path) -> None:
        print(f"recording saved: {path}", file=out, flush=True)
    with SessionGuard(c, report=saved):
        return _run(c, args, stdin, out, err)


def _run(c, args, stdin, out, err) -> int:
    if getattr(args, "file", None):
        lines = read_script(args.file, err)
        if lines is None:
            return 2
        return run_script(c, lines, args.file, out, err)
    if not stdin.isatty():
        return run_script(c, stdin.read().splitlines(), "<stdin>", out, err)
    return interactive(c, out)


def run_script(c, lines, name: str, out, err) -> int:
    """Run commands without prompts; 0 if all succeed, 1 at the first failure."""
    status = 0
    try:
        for no, raw in enumerate(lines, 1):
            line = _strip(raw)
            if not line:
                continue
            print(f"colo> {line}", file=out)
            res = execute(c, line)
            if res.text:
                print(res.text, file=out)
            _note_hidden(c, out)
            out.flush()
            if not res.ok:
                print(f"{name}:{no}: error: {line!r} failed: {res.text}", file=err)
                status = 1
                break
            if res.quit:
                break
    finally:
        path = c.record_stop()
        if path:
            print(f"recording saved: {path}", file=out)
        out.flush()
    return status


# ----------------------------------------------------------------- interactive
def history_path() -> str | None:
    try:
        import platformdirs
        d = platformdirs.user_data_dir("colo-testbed")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, "repl-history")
    except OSError:
        return None


def interactive(c, out) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    from .completer import make_completer
    path = history_path()
    history = FileHistory(path) if path else InMemoryHistory()
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    session = PromptSession(history=history, completer=make_completer(),
                            complete_while_typing=False, auto_suggest=AutoSuggestFromHistory(),
                            bottom_toolbar=lambda: render.toolbar_text(c.status(), run_state(c)))
    ask = PromptSession()
    print("COLO testbed REPL - 'help' lists the commands, Tab completes, Ctrl-R searches "
          "the history, Ctrl-D quits.", file=out)
    while True:
        try:
            line = _strip(session.prompt("colo> "))
        except KeyboardInterrupt:
            continue
        except EOFError:
            line = "quit"
        if not line:
            continue
        question = confirmation(c, line)
        if question:
            try:
                answer = ask.prompt(f"{question} [y/N] ").strip().lower()
            except (KeyboardInterrupt, EOFError):
                answer = ""
            if answer not in ("y", "yes"):
                print("cancelled", file=out)
                continue
        res = _execute_interruptible(c, line)
        if res.text:
            _show(res.text if res.ok else f"error: {res.text}", out)
        _note_hidden(c, out)
        if res.quit:
            return 0


def _show(text: str, out) -> None:
    """A command's output; longer than the terminal, it goes through a pager ($PAGER,
    else less) so its start does not scroll away."""
    import shutil
    rows = shutil.get_terminal_size((80, 24)).lines
    isatty = getattr(out, "isatty", None)
    if isatty and isatty() and text.count("\n") + 1 > rows - 2 and \
            os.environ.get("COLO_PAGER", "1") != "0":
        import pydoc
        pydoc.pager(text)
        return
    print(text, file=out)


def _note_hidden(c, out) -> None:
    printer = getattr(c, "printer", None)
    note = printer.take_note() if printer is not None else ""
    if note:
        print(note, file=out)


def _execute_interruptible(c, line: str):
    """Ctrl-C during a command pauses a run at the next step instead of tearing it."""
    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: state_of(c).pause.set())
    try:
        return execute(c, line)
    finally:
        signal.signal(signal.SIGINT, old)
