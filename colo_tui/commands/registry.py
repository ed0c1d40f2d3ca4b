"""The one registry of commands, as data; ``execute`` runs a line against a Controller.

Both front ends derive from it: the REPL's completer and help, and the Textual
command palette (``REGISTRY`` lists the commands; ``execute(controller, line)``
runs one and returns a ``Result``; it never raises for a user error).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from colo_tui.commands import handlers as h
from colo_tui.commands.parser import CommandError, form_syntax, parse, placeholder
from colo_tui.present.legend import legend_text
from colo_tui.session.options import SETTINGS


@dataclass(frozen=True)
class Result:
    ok: bool
    text: str
    quit: bool = False


@dataclass(frozen=True)
class Command:
    name: str
    syntax: str                      # e.g. "run [N | until EVENT]"
    summary: str                     # one line, for lists and the palette
    help: str                        # a paragraph, for `help CMD`
    handler: Callable                # handler(controller, ParsedCommand) -> str | Result
    forms: tuple = ((),)             # the grammar (see parser.py)
    destructive: bool = False        # the REPL asks before running it in a tty
    aliases: tuple = ()
    arg_kinds: tuple = field(default=())   # derived from forms unless given

    def __post_init__(self) -> None:
        if not self.arg_kinds:
            kinds: list[str] = []
            for form in self.forms:
                for tok in form:
                    ph = placeholder(tok)
                    if ph is not None and ph[1] not in kinds:
                        kinds.append(ph[1])
            object.__setattr__(self, "arg_kinds", tuple(kinds))

    @property
    def usages(self) -> list[str]:
        return [(self.name + " " + form_syntax(f)).strip() for f in self.forms]


def _c(name, syntax, summary, help_, handler, forms=((),), **kw) -> Command:
    return Command(name, syntax, summary, help_, handler, forms, **kw)


COMMANDS = [
    _c("step", "step [N]", "advance the simulation by N happenings (default 1)",
       "One step is one scheduled happening: a delivery of bytes, a timer, an operator "
       "input, the arbiter. The events it caused are printed. On live peers (a proxy, "
       "QMP, colo lab) and in a recording's playback one step is one event, as it "
       "arrived or was recorded.", h.step, (("N:count?",),)),
    _c("run", "run [N | until EVENT]", "run N more checkpoints, until an event, or to the end",
       "'run' alone runs until the scenario ends. 'run 2' runs until two more checkpoints "
       "have committed on the primary. 'run until EVENT' stops after the first event of "
       "that kind (e.g. failover, colo-exit, error) or the first send/recv of that message "
       "(e.g. vmstate-received). Ctrl-C or 'pause' stops a run.", h.run,
       (("until", "EVENT:event"), ("N:count?",))),
    _c("pause", "pause", "stop a run in progress",
       "Stops a running 'run' at the next step (the Textual app runs in the background; "
       "in the REPL Ctrl-C does the same).", h.pause),
    _c("checkpoint", "checkpoint", "ask the primary for a checkpoint now",
       "Like a colo-compare mismatch or a changed x-checkpoint-delay: the primary starts a "
       "checkpoint immediately (absorbed if one is already running). A testbed shortcut: "
       "QEMU 7.2 has no QMP command that asks for a checkpoint; re-setting "
       "x-checkpoint-delay ('set checkpoint-delay MS') is the nearest real way.",
       h.checkpoint),
    _c("fault", "fault SPEC", "inject a fault: KIND[=ARG]@POINT[#N]",
       "SPEC is KIND[=ARG]@POINT[#N], e.g. drop@vmstate-received#2, delay=500@ram, "
       "kill-primary@vmstate-size, unexpected=vmstate-loaded@checkpoint-reply. POINT is a "
       "message or a stage (ram, device-state, load); N is the checkpoint (default 1). In "
       "colo lab, POINT may also be a colo-compare channel (mirror, primary-in, compare-in, "
       "compare-out) with drop, delay=MS, corrupt or duplicate; N is then the channel's Nth "
       "TCP data packet from now, e.g. corrupt@compare-in#1.",
       h.fault, (("SPEC:fault-spec",),)),
    _c("faults", "faults [clear]", "list the injected faults, or clear them",
       "'faults' lists every fault and whether it has fired. 'faults clear' restarts the "
       "session from the beginning without any fault: fired or not, every fault is "
       "forgotten, and so is every other input given so far (kill, heartbeat, ...).",
       h.faults,
       ((), ("clear",))),
    _c("kill", "kill primary|secondary", "kill a side (SIGKILL): its socket closes",
       "The process dies; the kernel closes its socket, so the peer sees EOF. The arbiter "
       "(the external manager COLO assumes) then tells the survivor to take over.", h.kill,
       (("SIDE:side",),), destructive=True),
    _c("stall", "stall primary|secondary", "stop a side (SIGSTOP): the socket stays open",
       "The process stops answering but its connection stays open (half-dead peer). COLO has "
       "no timeout (docs/protocol.md §7.4): the other side waits until the arbiter fences the silent one.",
       h.stall, (("SIDE:side",),)),
    _c("heartbeat", "heartbeat primary|secondary", "x-colo-lost-heartbeat on one side",
       "The QMP command a manager sends when it thinks the peer is dead: the primary leaves "
       "COLO and keeps serving; the secondary takes over. Given to a side whose peer is "
       "alive it breaks COLO's premise and can end in split brain.", h.heartbeat,
       (("SIDE:side",),)),
    _c("failover", "failover primary|secondary", "fail over to a side as docs/COLO-FT.txt "
       "does (colo lab)",
       "On a real pair (colo lab): the QMP sequence of docs/COLO-FT.txt on the side that "
       "takes over. 'failover secondary' (the primary died): nbd-server-stop, "
       "x-colo-lost-heartbeat, object-del f2 f1, chardev-remove red1 red0. 'failover "
       "primary' (the secondary died): x-blockdev-change (the NBD child out of the quorum), "
       "drive_del replication0, object-del comp0 iothread1 m0 redire0 redire1, "
       "x-colo-lost-heartbeat. The simulator's arbiter fails over by itself; there the "
       "operator's way is 'heartbeat SIDE'.", h.failover, (("SIDE:side",),),
       destructive=True),
    _c("reprotect", "reprotect", "after a failover: a new secondary, COLO again",
       "QEMU's resuming of COLO (docs/COLO-FT.txt; docs/protocol.md §7.5): a new secondary "
       "starts, the survivor of the failover migrates to it with x-colo (a whole initial "
       "migration) and COLO resumes with the survivor as the primary. Checkpoints count on "
       "from the survivor's last one. It needs a failover that finished with one survivor; "
       "in a fault plan it is the step reprotect@failover#N.", h.reprotect,
       aliases=("re-protect",)),
    _c("status", "status", "query-colo-status of both sides plus run state",
       "For each side: alive/stalled, run state, machine state, last checkpoint, failover "
       "state and query-colo-status {mode, last-mode, reason}; then the session.", h.status),
    _c("show", "show ladder|ram|packets|disk|failover|screen", "draw a view of the session",
       "ladder: the messages as arrows between the two lifelines. ram/packets/disk: the "
       "guest model's state. failover: the failover state machine with each side's state. "
       "screen: the VGA text screen of a real guest, as the mirror secondary holds it "
       "(--peer).",
       h.show, (("WHAT:view",),)),
    _c("set", "set checkpoint-delay MS | dialect D | mode M | seed S | guest G | verbosity V"
       " | SETTING VALUE",
       "change a parameter",
       "checkpoint-delay is migrate-set-parameters x-checkpoint-delay (takes effect now, and "
       "QEMU starts a checkpoint at once). dialect, mode, seed and guest (model: RAM, "
       "devices, disk and packets; null: the control protocol alone) restart the session. "
       "verbosity (REPL): quiet prints only the wire messages, errors and failovers; "
       "normal (the default) every protocol event but not the client's background "
       "requests; all prints everything. The session settings restart the session too: "
       + "; ".join(f"{k} ({v[2]})" for k, v in SETTINGS.items()) + ".",
       h.set_, (("checkpoint-delay", "MS:int"), ("dialect", "D:dialect"), ("mode", "M:mode"),
                ("seed", "S:seed"), ("guest", "G:guest"), ("verbosity", "V:verbosity"),
                *((k, f"{k.upper().replace('-', '_')}:{v[1]}") for k, v in SETTINGS.items()))),
    _c("record", "record start [FILE [force]] | record stop", "record the session to a file",
       "Writes a versioned JSON Lines recording (header, inputs, events) that 'replay' and "
       "the test suite can re-run and compare. Without FILE it goes to the user's data "
       "directory (~/.local/share/colo-testbed/recordings, or $COLO_RECORDINGS_DIR); every "
       "way of leaving the session completes it. An existing FILE is refused unless "
       "'force' follows it (it is then replaced when the recording ends).", h.record,
       (("start", "FILE:file", "force"), ("start", "FILE:file?"), ("stop",))),
    _c("replay", "replay FILE", "load a recording and step through it",
       "The session restarts from the recording's header; its inputs are re-applied at their "
       "steps as you step or run.", h.replay, (("FILE:file",),), destructive=True),
    _c("back", "back [N]", "travel N steps back in time (default 1)",
       "Re-runs the session up to an earlier step. Stepping forward replays the later inputs; "
       "a new input given now forks the future and drops them.", h.back, (("N:count?",),)),
    _c("explain", "explain", "what just happened, and why COLO does it",
       "Explains the latest interesting event for someone learning COLO.", h.explain_cmd),
    _c("help", "help [CMD]", "list the commands, or explain one", "", h.help_,
       (("CMD:command?",),)),
    _c("legend", "legend", "what the symbols and abbreviations on screen mean",
       "The symbols of the ladder, the panels and the status line, and the words and "
       "abbreviations the testbed uses; the protocol itself is in docs/protocol.md.",
       lambda c, p: legend_text()),
    _c("quit", "quit", "leave (stops a recording first)", "Aliases: exit.", h.quit_,
       aliases=("exit",)),
]
REGISTRY: dict[str, Command] = {c.name: c for c in COMMANDS}
_ALIASES = {a: c.name for c in COMMANDS for a in c.aliases}


def lookup(word: str, registry: dict | None = None) -> Command | None:
    reg = REGISTRY if registry is None else registry
    return reg.get(word) or reg.get(_ALIASES.get(word, ""))


def _input_refused(controller, p) -> bool:
    """kill or failover that the session refuses whatever the answer: one that takes no
    inputs (a proxy watches), or a simulation that has ended (SessionEnded)."""
    if p.name not in ("kill", "failover"):
        return False
    caps = getattr(controller, "capabilities", None)
    if caps is not None and not caps.takes_inputs:
        return True
    refusal = getattr(controller, "end_refusal", None)
    return refusal is not None and refusal() is not None       # execute says it


def confirmation(controller, line: str) -> str | None:
    """The question to ask before running ``line`` in a tty, or None."""
    try:
        p = parse(line)
    except CommandError:
        return None
    cmd = REGISTRY[p.name]
    if h.refused_live(controller, p) or _input_refused(controller, p):
        return None                        # refused at once: nothing to confirm
    rec = getattr(controller, "recording_path", None)
    if p.name == "quit":
        return f"still recording to {rec}; stop the recording and quit?" if rec else None
    if p.name == "kill":
        return f"kill the {p.args['side']}?"
    if p.name == "failover":
        return f"fail over to the {p.args['side']}?"
    if p.name == "set" and (p.form[0] in h.RESTART_FORMS
                            or p.form[0] in SETTINGS):     # each restarts the session
        return f"restart the session with {p.form[0]} {p.line.split()[-1]}?"
    if p.name == "replay":
        return f"discard this session and replay {p.args['file']}?"
    if p.name == "faults" and p.form == ("clear",):
        # (with none, nothing restarts: it says so)
        armed = getattr(controller, "faults", None)
        return ("clearing faults restarts the session; go on?" if armed is None or armed()
                else None)
    return "are you sure?" if cmd.destructive else None


def execute(controller, line: str) -> Result:
    """Run one command line; user errors come back as Result(ok=False, text=why)."""
    try:
        parsed = parse(line)
    except CommandError as exc:
        return Result(False, str(exc))
    forked_before = getattr(controller, "forked", False)
    try:
        out = REGISTRY[parsed.name].handler(controller, parsed)
    except KeyboardInterrupt:
        h.state_of(controller).running = False
        return Result(True, "interrupted: " + h.where(controller))
    except Exception as exc:       # noqa: BLE001 - the REPL and the palette must survive
        return Result(False, h.error_text(parsed, exc))
    res = out if isinstance(out, Result) else Result(True, out or "")
    if not forked_before and getattr(controller, "forked", False):
        res = Result(res.ok, (res.text + "\n" if res.text else "") +
                     f"this input forked the future at step {controller.forked_at}: the inputs "
                     "recorded after it were dropped", res.quit)
    return res
