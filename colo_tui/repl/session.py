"""The REPL loop (interactive, through prompt_toolkit) and the script runner.

Interactive: history file in the user's data directory, Ctrl-R search, Tab
completion, a bottom toolbar, confirmation of destructive commands; an error
in a command never ends the session; events print as they happen.

Non-interactive (``-f SCRIPT`` or stdin that is not a tty): the same commands,
no prompts or confirmations, ``#`` comments and blank lines ignored; the first
failing line ends the run and is named on stderr: exit status 2 if it does not
follow a command's grammar (a usage error, as on the command line), 1 if the
command ran and failed (colo_tui.session.exitcodes).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys

from colo_tui.commands import confirmation, execute, run_state, state_of
from colo_tui.commands.parser import CommandError, parse, strip_comment
from colo_tui.repl import render
from colo_tui.session import exitcodes
from colo_tui.session.words import plural

_strip = strip_comment


def _controller(args, out):
    from colo_tui.repl.verbosity import Printer
    from colo_tui.session.control import Controller
    from colo_tui.session.live import live_controller, make_live
    from colo_tui.session.options import config_from
    from protocol.sim.core import Simulation
    show = Printer(out, render.event_line)
    # a source the command line wired in (`colo repl --lab`: colo_tui/cli/lab_repl.py)
    factory = getattr(args, "live_source", None)
    source = factory(args) if factory is not None else None
    if source is not None:
        live = live_controller(source, on_event=show)
    else:
        cfg = config_from(args)
        # validates dialect, mode, faults and settings (ValueError names the choices);
        # no guest to build
        Simulation(dataclasses.replace(cfg, guest="null"))
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
    from protocol.errors import is_user_error
    try:
        c = _controller(args, out)
    except Exception as exc:       # a live source that cannot start too
        if not is_user_error(exc):
            raise
        print(f"colo repl: error: {exitcodes.error_text(exc)}", file=err)
        return exitcodes.code_for(exc)
    from colo_tui.session.lifecycle import SessionGuard

    def saved(path) -> None:          # (SIGTERM, SIGHUP: the note as `quit` gives it)
        note = getattr(c, "recording_note", None)
        # a second signal during a command ends it wherever its output is: a line of
        # its own (a blank line, at worst)
        start = "\n" if prompts.running is not None else ""
        try:
            print(f"{start}recording saved: {path}" + (f"\nnote: {note}" if note else ""),
                  file=out, flush=True)
        except OSError:      # the terminal has gone (a hang-up): nobody to tell; raised,
            _drop_output()   # it made the REPL exit 1, not 128 + SIGHUP
    prompts = _Prompts()              # the interactive prompts (interactive fills it)
    with SessionGuard(c, report=saved, on_signal=lambda sig: _end_prompt(prompts, sig)):
        return _run(c, args, stdin, out, err, prompts)


def _drop_output() -> None:
    """stdout and stderr go nowhere from now on (their terminal has gone): the
    interpreter's last flush of them would fail and make the exit status 120."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    sys.stdout = sys.stderr = devnull


def _terminal_gone(prompts) -> None:
    """The prompt could not draw: its terminal has gone (closed under the REPL).  The
    REPL ends as the hang-up's SIGHUP asks (128 + 1), or 1 without one; the guard
    completes the recording.  prompt_toolkit's OSError went up as a traceback to the
    closed terminal, exit 1."""
    _drop_output()
    prompts.check()
    raise SystemExit(exitcodes.FAILURE)


class _Prompts(list):
    """The REPL's prompt sessions, and a signal that is ending them (if any)."""
    signalled: int | None = None
    #: the session's controller while a command runs (None between commands)
    running = None

    def check(self) -> None:
        """A prompt returned a line, or a command ended, as the signal came: end now,
        as it would have."""
        if self.signalled is not None:
            raise SystemExit(128 + self.signalled)

    def command(self, c, run):
        """`run()`, a command of controller `c`; a SIGTERM/SIGHUP that comes meanwhile
        ends the REPL once the command has stopped (see _end_prompt)."""
        self.running = c
        try:
            return run()
        except BaseException:
            self.check()             # (e.g. its output failed on a closed terminal)
            raise
        finally:
            self.running = None
            self.check()


def _end_prompt(prompts: _Prompts, signum: int) -> bool:
    """SIGTERM/SIGHUP while a prompt waits for a line: the prompt is erased as it ends
    and SystemExit(128 + signum) leaves the REPL (the guard then completes the
    recording).  The handler's SystemExit went through prompt_toolkit's last redraw,
    which drew 'colo> ' once more, below 'recording saved'.

    While a command runs, the signal pauses it at its next step, as ctrl+c does, and
    the REPL ends after it: ended from the handler, 'recording saved' was printed in
    the middle of the line the command was writing ('… request 521recording saved:').
    A second signal does not wait.  False (the guard ends the session itself) when
    neither a prompt nor a command is running, or on that second signal."""
    if prompts.running is not None:
        if prompts.signalled is not None:
            return False
        prompts.signalled = signum
        state_of(prompts.running).pause.set()
        return True
    for session in prompts:
        app = session.app
        loop = getattr(app, "loop", None)
        if not app.is_running or loop is None:
            continue
        prompts.signalled = signum

        def end(app=app) -> None:
            if app.is_running and not app.future.done():
                app.erase_when_done = True
                app.exit(exception=SystemExit(128 + signum))
        try:
            loop.call_soon_threadsafe(end)       # (wakes the loop out of its select)
        except RuntimeError:                     # the loop closed meanwhile
            return False
        return True
    return False


def _run(c, args, stdin, out, err, prompts: _Prompts | None = None) -> int:
    path = getattr(args, "file", None)
    if path:
        try:
            fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:             # cannot read it: a failure, as `colo replay`
            # (a control character in the name written as its escape, not sent raw)
            print(f"colo repl: error: cannot read {_shown(path)}: {exc.strerror}", file=err)
            return exitcodes.FAILURE
        with fh:
            return run_script(c, script_lines(fh), path, out, err, prompts)
    if not stdin.isatty():
        return run_script(c, script_lines(stdin), "<stdin>", out, err, prompts)
    return interactive(c, out, prompts)


class ScriptLineTooLong(CommandError):
    """A script line over MAX_LINE_CHARS: refused as it is read, never read whole."""


def script_lines(fh):
    """The lines of a script, read one at a time: a line longer than a command line can
    be is refused after MAX_LINE_CHARS + 1 characters (`-f /dev/zero` is one endless
    line), so memory stays bounded whatever the input."""
    from colo_tui.commands.parser import MAX_LINE_CHARS
    first = True
    while True:
        line = fh.readline(MAX_LINE_CHARS + 2)
        if not line:
            return
        body = line.rstrip("\r\n")
        if first:                   # a UTF-8 byte-order mark (Notepad writes one)
            body, first = body.removeprefix("\ufeff"), False
        if len(body) > MAX_LINE_CHARS:
            raise ScriptLineTooLong(f"line too long: over {MAX_LINE_CHARS} characters (a "
                                    "command line has at most that many)")
        yield body


def _guarded(lines):
    """The lines, then (in place of the next one) the error that stopped reading them:
    a line too long, bytes that are not UTF-8."""
    try:
        yield from lines
    except UnicodeDecodeError as exc:
        yield CommandError(f"the script is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                           f"at offset {exc.start} of the block read): is it a command file?")
    except (CommandError, OSError) as exc:
        yield exc


def _shown(line: str, limit: int = 200, *, escape: bool = True) -> str:
    """A line as echoed and named in errors: a huge one is cut (it is refused anyway),
    and a control character is written as its escape (\\x1b, \\x00): echoed raw, a
    script's stray ESC sequence cleared the screen or recoloured the terminal."""
    if escape and not line.isprintable():      # (repr() escapes them itself)
        line = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in line)
    return line if len(line) <= limit else f"{line[:limit]}… ({len(line):,} characters)"


def _failure_code(line: str) -> int:
    """A line that does not follow a command's grammar is a usage error (2), as the
    same mistake on the command line is (`colo run --fault BAD`); a command that
    ran and failed is 1."""
    try:
        parse(line)
    except CommandError:
        return exitcodes.USAGE
    return exitcodes.FAILURE


def run_script(c, lines, name: str, out, err, prompts: _Prompts | None = None) -> int:
    """Run commands without prompts; 0 if all succeed; at the first failure 2 for a
    line that does not parse, 1 for a command that failed.  A SIGTERM/SIGHUP ends the
    script after the command it came in (`prompts`: see _end_prompt)."""
    if prompts is None:
        prompts = _Prompts()
    status, no = 0, 0
    try:
        for no, raw in enumerate(_guarded(lines), 1):
            if isinstance(raw, BaseException):
                print(f"{name}:{no}: error: {raw}", file=err)
                status = exitcodes.USAGE if isinstance(raw, CommandError) \
                    else exitcodes.FAILURE
                break
            line = _strip(raw)
            if not line:
                continue
            print(f"colo> {_shown(line)}", file=out)
            res = prompts.command(c, lambda line=line: execute(c, line))
            if res.text and res.ok:       # (a failure's text: once, on stderr, below)
                print(res.text, file=out)
            _note_hidden(c, out)
            out.flush()
            if not res.ok:
                print(f"{name}:{no}: error: {_shown(line, escape=False)!r} failed: {res.text}", file=err)
                status = _failure_code(line)
                break
            if failure := c.take_recording_failure():   # the script's recording is cut
                print(f"{name}:{no}: error: {failure}", file=err)
                status = exitcodes.FAILURE
                break
            if res.quit:
                break
    finally:
        path = c.record_stop()
        if path:
            print(f"recording saved: {path}", file=out)
            if c.recording_note:
                print(f"note: {c.recording_note}", file=out)
        out.flush()
    return status


# ----------------------------------------------------------------- interactive
def history_path() -> str:
    import platformdirs
    return os.path.join(platformdirs.user_data_dir("colo-testbed"), "repl-history")


def _unusable(path: str) -> str | None:
    """Why the history cannot live at `path` (None when it can): its folder cannot be
    made, or the path is not a regular file. prompt_toolkit reads the whole file in a
    thread: a FIFO there blocked every key typed and the exit, /dev/full or /dev/zero
    filled memory (GBs in seconds), and a SIGTERM waited for that thread forever."""
    import stat
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file"


def _history(path: str):
    """The file history at `path`, or an in-memory one that carries a note saying why
    the file is not used."""
    why = _unusable(path)
    if why is None:
        return _file_history(path)
    from prompt_toolkit.history import InMemoryHistory
    history = InMemoryHistory()
    history.problem = f"note: the history is not kept in {path} ({why})"
    return history


def _file_history(path: str):
    """prompt_toolkit's FileHistory, except that a history file it cannot read or
    write (another user's file, a full disk) is a note, not a traceback
    at every prompt: the session's lines are then kept in memory only."""
    from prompt_toolkit.history import FileHistory

    class History(FileHistory):
        problem: str | None = None

        def _failed(self, exc: OSError) -> None:
            if self.problem is None:
                self.problem = (f"note: the history is not kept in {path} "
                                f"({exc.strerror or exc})")

        def load_history_strings(self):
            try:
                return list(super().load_history_strings())
            except OSError as exc:
                self._failed(exc)
                return []

        def store_string(self, string: str) -> None:
            try:
                super().store_string(string)
            except OSError as exc:
                self._failed(exc)

    return History(path)


def _history_problem(history, out) -> None:
    problem = getattr(history, "problem", None)
    if problem:
        print(problem, file=out)
        history.problem = ""                  # said once


def _dialect_of(c) -> str | None:
    """The session's dialect, for completing fault specs (None: not known)."""
    config = getattr(c, "config", None)
    return getattr(config, "dialect", None)


def _channels_of(c) -> bool:
    """The session's faults go on colo-compare channels (colo lab's live pair)."""
    caps = c.session.capabilities
    return caps.is_live and caps.takes_faults


def interactive(c, out, prompts: _Prompts | None = None) -> int:
    from prompt_toolkit import PromptSession

    from colo_tui.repl.completer import make_completer
    history = _history(history_path())
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    session = PromptSession(history=history,
                            completer=make_completer(lambda: _dialect_of(c),
                                                     lambda: _channels_of(c)),
                            complete_while_typing=False, auto_suggest=AutoSuggestFromHistory(),
                            bottom_toolbar=lambda: render.toolbar_text(c.status(), run_state(c)))
    ask = PromptSession()
    if prompts is None:
        prompts = _Prompts()
    prompts += [session, ask]
    print("COLO testbed REPL - 'help' lists the commands, Tab completes, Ctrl-R searches "
          "the history, Ctrl-D quits.", file=out)
    pasted: list[str] = []        # the lines of a paste still to run
    while True:
        if pasted:
            line = pasted.pop(0)
            print(f"colo> {_shown(line)}", file=out)
        else:
            try:
                text = session.prompt("colo> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                text = "quit"
            except OSError:
                _terminal_gone(prompts)
            prompts.check()
            _history_problem(history, out)
            # several lines pasted at once (a terminal's bracketed paste gives them as
            # one input) run one by one, as a script's do
            lines = [s for s in (_strip(raw) for raw in text.splitlines()) if s]
            if not lines:
                continue
            line, pasted = lines[0], lines[1:]
        question = confirmation(c, line)
        unreadable = _unreadable_replay(line) if question else None
        if unreadable:                  # nothing to discard it for: said at once
            _show(f"error: {unreadable}", out)
            if pasted:
                _say(_not_run(pasted).strip(), out)
                pasted = []
            continue
        if question:
            try:
                answer = ask.prompt(f"{question} [y/N] ").strip().lower()
            except (KeyboardInterrupt, EOFError):
                answer = ""
            except OSError:
                _terminal_gone(prompts)
            prompts.check()
            if answer not in ("y", "yes"):
                _say("cancelled" + _not_run(pasted), out)
                pasted = []
                continue
        res = prompts.command(c, lambda line=line: _execute_interruptible(c, line))
        if res.text:
            _show(res.text if res.ok else f"error: {res.text}", out)
        _note_hidden(c, out)
        if failure := c.take_recording_failure():
            _say(f"error: {failure}", out)
        if res.quit:
            return 0
        if not res.ok and pasted:
            _say(_not_run(pasted).strip(), out)
            pasted = []


def _unreadable_replay(line: str) -> str | None:
    """`replay FILE` of a file that cannot be opened: the command's own error, said
    before it asks whether to discard the session for it (None: the file opens, or
    the line is no replay)."""
    try:
        p = parse(line)
    except CommandError:
        return None
    if p.name != "replay":
        return None
    path = os.path.expanduser(p.args["file"])
    from protocol.record.infile import RECORDING, input_refusal
    if input_refusal(path, RECORDING) is None:     # (open() of a FIFO would block)
        try:
            with open(path, "rb"):
                return None
        except OSError:
            pass
    from protocol.record import format as rf
    try:                         # its error, in the words `replay` itself gives
        rf.read(path)
    except Exception as exc:     # noqa: BLE001 - said as the command says it
        from colo_tui.commands.handlers import error_text
        return error_text(p, exc)
    return None


def _not_run(pasted: list[str]) -> str:
    """What a paste left undone after a line that failed or was cancelled."""
    if not pasted:
        return ""
    return (f"\n({plural(len(pasted), 'more pasted line')} not run, from {_shown(pasted[0], 60, escape=False)!r} "
            "on)")


def _width(out) -> int | None:
    """The terminal's width when `out` is one (None: a pipe or a file, left as is)."""
    import shutil
    isatty = getattr(out, "isatty", None)
    if not (isatty and isatty()):
        return None
    return shutil.get_terminal_size((80, 24)).columns


def wrapped(text: str, width: int | None) -> str:
    """`text` with each line longer than `width` wrapped at spaces, as `help` is (the
    terminal broke words: '… could not release yet ar' / 'e released now …'); a
    wrapped line's next lines keep its indent.  A word longer than the line is left
    whole (a path, a hex dump: the terminal breaks it, nothing better can)."""
    import textwrap
    if not width or width < 20:
        return text
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip(" "))]
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False,
                             break_on_hyphens=False, drop_whitespace=True) or [line]
    return "\n".join(out)


def _say(text: str, out) -> None:
    """A line of prose (a note, an error, a cancel) at the terminal's width."""
    print(wrapped(text, _width(out)), file=out)


def _show(text: str, out) -> None:
    """A command's output, wrapped at the terminal's width; longer than the terminal,
    it goes through a pager ($PAGER, else less) so its start does not scroll away."""
    import shutil
    rows = shutil.get_terminal_size((80, 24)).lines
    isatty = getattr(out, "isatty", None)
    text = wrapped(text, _width(out))
    if isatty and isatty() and text.count("\n") + 1 > rows - 2 and \
            os.environ.get("COLO_PAGER", "1") != "0":
        if _page(text):
            return
        print(text, file=out)
        print(f"note: the pager {os.environ.get('PAGER') or 'less'!r} could not run; the "
              "text is above (set PAGER, or COLO_PAGER=0 for no pager)", file=out)
        return
    print(text, file=out)


def _page(text: str) -> bool:
    """Shows `text` through $PAGER (else less); False if the pager could not run (not
    found, not executable: the shell's 127 or 126), so that the caller prints it.
    pydoc's pager said nothing then: PAGER=nosuch lost the output, bar the shell's
    'nosuch: not found'. ctrl+c is left to the pager: it reached the REPL too, whose
    handler for SIGINT outside a command (the session guard's) ended the REPL, exit
    130, as soon as the pager was quit."""
    import subprocess
    old = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        # less's defaults as git sets them: -X leaves the text on the screen when the
        # pager quits (without it `help` vanished with the pager, before the command it
        # was read for could be typed), -F quits at once when it fits, -R shows colours
        env = dict(os.environ, LESS=os.environ.get("LESS", "FRX"))
        proc = subprocess.Popen(os.environ.get("PAGER") or "less", shell=True,  # noqa: S602
                                stdin=subprocess.PIPE, env=env)
        try:
            proc.stdin.write(text.encode(sys.stdout.encoding or "utf-8", "replace") + b"\n")
            proc.stdin.close()
        except OSError:              # the pager quit before reading it all
            pass
        return proc.wait() not in (126, 127)
    except OSError:
        return False
    finally:
        signal.signal(signal.SIGINT, old)


def _note_hidden(c, out) -> None:
    printer = getattr(c, "printer", None)
    note = printer.take_note() if printer is not None else ""
    if note:
        _say(note, out)
    gap = c.take_gap_notice()   # a live view that fell a full queue behind says so
    if gap:
        _say(f"note: {gap}", out)


def _execute_interruptible(c, line: str):
    """Ctrl-C during a command pauses a run at the next step instead of tearing it."""
    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: state_of(c).pause.set())
    try:
        return execute(c, line)
    finally:
        signal.signal(signal.SIGINT, old)
