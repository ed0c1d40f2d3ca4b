"""The Textual app: composition, key bindings and wiring only.

Attributes go down (the app hands each widget its view object), messages come
up (widgets post selections and filters; the bridge posts `Bridge.Updated`).
What to do with a key lives in the bridge; what to show lives in the widgets.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import MountError
from textual.widgets import Static

from colo_tui.session.config_file import UserConfig
from colo_tui.tui import screens
from colo_tui.tui.widgets.keybar import KeyBar
from colo_tui.tui.widgets.ladder import LadderView
from colo_tui.tui.widgets.side_panel import SidePanel
from colo_tui.tui.widgets.status import StatusBar

if TYPE_CHECKING:
    from colo_tui.session.control import Controller
    from colo_tui.tui.bridge import Bridge
    from colo_tui.tui.widgets.event_log import EventLog

THEMES = ("textual-dark", "textual-light", "nord", "gruvbox", "tokyo-night", "monokai")
TICK_S = 1 / 30
#: a paused live view is refreshed this often (how many events wait for it)
IDLE_LIVE_S = 1.0
#: below this (columns, rows) the app says so instead of cutting its panels silently
MIN_SIZE = (60, 18)


class ColoApp(App):
    """COLO testbed: a live ladder of one simulated COLO pair."""

    CSS_PATH = "app.tcss"
    TITLE = "COLO testbed"
    COMMANDS = App.COMMANDS | {lambda: screens.ColoCommands}   # imported on first use
    BINDINGS = [
        Binding("n,right", "step", "step", id="step"),
        Binding("left", "back", "back", id="back"),
        Binding("space", "toggle_run", "run/pause", id="run"),
        Binding("plus,equals_sign", "speed(1)", "faster", id="faster"),
        Binding("minus", "speed(-1)", "slower", id="slower"),
        Binding("c", "checkpoint", "ckpt", id="checkpoint"),
        Binding("f", "fault", "fault", id="fault"),
        Binding("k", "kill", "kill", id="kill"),
        Binding("s", "stall", "stall", id="stall"),
        Binding("h", "heartbeat", "heartbeat", id="heartbeat"),
        # a real pair's failover (colo lab): the simulator's arbiter does its own
        Binding("x", "failover", "failover", show=False, id="failover"),
        Binding("o", "other_side", "other side", id="other-side"),
        Binding("d", "delay", "delay", id="delay"),
        # after a failover only: less often needed than the side and the delay
        Binding("p", "reprotect", "re-protect", id="reprotect"),
        Binding("v", "dialect", "dialect", id="dialect"),
        Binding("m", "mode", "mode", id="mode"),
        Binding("g", "guest", "guest", id="guest"),
        Binding("r", "record", "rec", id="record"),
        Binding("y", "copy", "copy hex", id="copy"),
        Binding("t", "theme", "theme", show=False, id="theme"),
        Binding("slash", "filter", "filter", show=False, id="filter"),
        Binding("escape", "unfocus", show=False),
        Binding("L", "lesson", "lessons", id="lessons"),
        Binding("question_mark", "help", "help", id="help"),
        Binding("q", "quit", "quit", id="quit"),
        Binding("ctrl+c", "quit", show=False),        # quits too (Textual's only hints)
        *[Binding(k, f"preset('{k}')", show=False, id=f"preset-{k}") for k in "1234567890"],
        Binding("exclamation_mark", "preset('!')", show=False, id="preset-hybrid-mismatch"),
        Binding("at", "preset('@')", show=False, id="preset-hybrid-stale"),
        Binding("number_sign", "preset('#')", show=False, id="preset-reprotect"),
    ]

    def __init__(self, controller: Controller | None = None, *, replay: str | None = None,
                 tick_s: float = TICK_S, record_dir: str | None = None,
                 user_config: UserConfig | None = None,
                 start: Callable[[], Controller] | None = None,
                 on_start: Callable[[Controller], None] | None = None,
                 after_first_frame: Callable[[], None] | None = None) -> None:
        """`controller`, or `start`: a factory the app calls after its first frame
        (the layout paints before the session and its guest model are built;
        `on_start` is then told the controller, e.g. a SessionGuard's).  Anything
        that needs the session before that builds it at once (`bridge`).
        `after_first_frame` is called once the first frame is painted (before a
        deferred session is built)."""
        super().__init__()
        self._after_first_frame = after_first_frame
        if controller is None and start is None:
            from colo_tui.session.control import Controller
            controller = Controller()
        self._start, self._on_start = start, on_start
        self.controller = controller
        self._bridge: Bridge | None = None
        self._begun = False
        self._record_dir = record_dir
        self.replay = replay
        self.tick_s = tick_s
        self._widgets: dict | None = None
        self._loop = None
        self.user_config = user_config or UserConfig()
        if self.user_config.keys:
            self._drop_key_clashes()
            self.set_keymap(self.user_config.keys)
        if self.user_config.theme:
            if self.user_config.theme in self.available_themes:
                self.theme = self.user_config.theme
            else:
                self.user_config.problems.append(
                    f"theme {self.user_config.theme!r} is not one of: "
                    f"{', '.join(sorted(self.available_themes))}")
        if controller is not None:
            self._make_bridge()

    def get_driver_class(self):
        """Textual's own choice, except that its Linux driver becomes one that
        survives the terminal going away (`colo_tui.tui.driver`)."""
        import sys
        chosen = super().get_driver_class()
        if sys.platform == "win32":
            return chosen
        from textual.drivers.linux_driver import LinuxDriver
        if chosen is LinuxDriver:
            from colo_tui.tui.driver import HangupSafeDriver
            return HangupSafeDriver
        return chosen

    @property
    def bridge(self) -> Bridge:
        if self._bridge is None and not self._start_session():
            raise RuntimeError("colo tui: the session did not start")
        return self._bridge

    def _make_bridge(self) -> None:
        from colo_tui.tui.bridge import Bridge
        self._bridge = Bridge(self.controller, target=self)
        self._bridge.record_dir = self._record_dir
        if self.user_config.problems:
            self._bridge.notice = "⚠ config: " + "; ".join(self.user_config.problems)
            # the status line cuts them: the explanation pane lists them whole, one a
            # line, until the first step
            self._bridge.output = ("⚠ config: the app started with the defaults for these\n"
                                   + "\n".join(self.user_config.problems))

    def _start_session(self) -> bool:
        """Build the deferred session, once.  A user error doing so ends the app
        with its message (as it would have before the terminal was taken)."""
        if self._bridge is not None:
            return True
        start, self._start = self._start, None
        if start is None:                       # it failed before: the app is exiting
            return False
        try:
            self.controller = start()
        except Exception as exc:
            from protocol.errors import is_user_error
            if not is_user_error(exc):
                raise
            from colo_tui.session import exitcodes
            self.exit(return_code=exitcodes.code_for(exc),
                      message=f"colo tui: error: {exitcodes.error_text(exc)}")
            return False
        if self._on_start is not None:
            self._on_start(self.controller)
        self._make_bridge()
        return True

    def _begin(self) -> None:
        """Show the session: at mount, or after the first frame for a deferred one."""
        if self._begun:
            return
        self._begun = True
        if not self._start_session():
            return
        if self.replay:
            self._bridge.load_replay(self.replay)
        if self.controller.live:            # a deferred live session: its keys are known now
            self.query_one(KeyBar).set_bindings(self._bindings_as_keyed())
            # paused, the view still says how many events have arrived: a slow
            # refresh while the run timer rests
            self.set_interval(IDLE_LIVE_S, self._idle_live)
        self.refresh_view()
        self.call_after_refresh(self._mount_bottom)

    def _drop_key_clashes(self) -> None:
        """A key the file gives to a binding that already has it as another's (e.g.
        quit = "n", n being step's) is left out and named: a key does one thing, and
        the footer must not show a key doing what it does not."""
        keys = self.user_config.keys
        taken = {k: b.id or b.action for b in self.BINDINGS if b.id not in keys
                 for k in b.key.split(",")}
        for name in list(keys):
            mine = []
            for k in keys[name].split(","):
                if k in taken:
                    self.user_config.problems.append(
                        f"[keys] {name}: {k} is already the key of {taken[k]}")
                else:
                    mine.append(k)
                    taken[k] = name
            if mine:
                keys[name] = ",".join(mine)
            else:                             # none left: the binding keeps its own keys
                del keys[name]

    #: the actions that start a new simulated session: a live one has none to start
    NEW_SESSION_ACTIONS = frozenset({"dialect", "mode", "guest", "preset", "lesson"})

    def _bindings_as_keyed(self) -> list[Binding]:
        """BINDINGS with the user's [keys] applied, so the footer shows the keys that work
        (and, on a live session, not those that would start a new simulated one)."""
        import dataclasses
        keys = self.user_config.keys
        live = self.controller is not None and self.controller.live    # (None: deferred)
        return [dataclasses.replace(b, key=keys[b.id]) if b.id in keys else b
                for b in self.BINDINGS
                if not (live and b.action.split("(")[0] in self.NEW_SESSION_ACTIONS)]

    def _live_refuses(self, action) -> bool:
        """On a live session, an action that would start a new simulated one says at
        once that it is not for it (instead of asking to discard the session, then
        refusing): one check for every key, click and palette line."""
        if not isinstance(action, str) or not self.controller.live:
            return False
        from textual.actions import parse
        _ns, name, params = parse(action)
        if name not in self.NEW_SESSION_ACTIONS:
            return False
        from colo_tui.session.control import live_refusal
        what = f"scenario {params[0]}" if name == "preset" and params else name
        self.bridge.warn(f"{what}: {live_refusal('restart')}")
        return True

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """Every key, click and palette action: what the session cannot do is a
        warning on the status line, never the end of the app.  A key pressed
        before the deferred session started starts it first."""
        if not self._begun:
            self._begin()
            if self._bridge is None:            # it failed to start: the app is exiting
                return True
        if self._live_refuses(action):
            return True
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except Exception as exc:
            from colo_tui.tui.bridge import USER_ERRORS, describe_error
            if not isinstance(exc, USER_ERRORS):
                raise
            self.bridge.running = False
            self.bridge.warn(describe_error(exc))
            return True

    def end_on_signal(self, signum: int) -> None:
        """SIGTERM/SIGHUP/SIGINT (from a signal handler): leave the app as quitting
        does; the SessionGuard completes the recording after it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise SystemExit(128 + signum)
        loop.call_soon_threadsafe(lambda: self.exit(return_code=128 + signum))

    def compose(self) -> ComposeResult:
        yield Static("", id="too-small")
        yield StatusBar(id="status")
        with Horizontal(id="main"):
            yield SidePanel("primary")
            yield LadderView(id="ladder")
            yield SidePanel("secondary")
        yield KeyBar(self._bindings_as_keyed(), id="keys")   # the lower half mounts later

    async def _mount_bottom(self) -> None:
        """The lower half mounts after the first frame: a faster first paint (its
        modules, and their CSS, load then too)."""
        from colo_tui.tui.widgets.event_log import EventLog
        from colo_tui.tui.widgets.explain_pane import ExplainPane
        from colo_tui.tui.widgets.failover import FailoverDiagram
        try:
            await self.mount(Horizontal(
                Vertical(FailoverDiagram(id="failover"), ExplainPane(id="explain"), id="left"),
                EventLog(id="log"), id="bottom"), before=self.query_one(KeyBar))
        except MountError:               # the app was closed before its second frame
            pass

    def on_mount(self) -> None:
        import asyncio
        self._loop = asyncio.get_running_loop()
        self._timer = self.set_interval(self.tick_s, self._tick, pause=True)
        self.query_one(LadderView).focus()
        if self._after_first_frame is not None:
            self.call_after_refresh(self._after_first_frame)
        if self._bridge is None:             # the first frame: the layout, then the session
            self.query_one(StatusBar).update(" COLO   starting the session…")
            self.call_after_refresh(self._begin)
        else:
            self._begin()

    # ----------------------------------------------------------- attributes down
    def _views(self) -> dict:
        if self._widgets is None or (len(self._widgets) < 8 and self.query("EventLog")):
            q = self.query_one
            self._widgets = {"status": q(StatusBar),
                             "primary": q("#primary", SidePanel),
                             "secondary": q("#secondary", SidePanel), "ladder": q(LadderView)}
            if self.query("EventLog"):                  # absent until the lazy mount
                self._widgets.update(failover=q("FailoverDiagram"), explain=q("ExplainPane"),
                                     log=q("EventLog"))
        return self._widgets

    def refresh_view(self) -> None:
        v, w = self.bridge.view(), self._views()
        w["status"].show(v.status)
        w["primary"].show(v.sides["primary"])
        w["secondary"].show(v.sides["secondary"])
        w["ladder"].show(v.ladder, v.ladder_version, v.selected_seq)
        if "log" in w:
            w["failover"].show(v.failover)
            w["explain"].show(v.explanation, v.selected_hex)
            w["log"].show(v.log)
        if self.bridge.running and self.bridge.speed == 0:
            self._timer.pause()                 # full speed: compute, paint, repeat
            self.call_after_refresh(self._tick)
        elif self.bridge.running:
            self._timer.resume()
        else:
            self._timer.pause()

    def _tick(self) -> None:
        self.bridge.tick(self.tick_s)

    def _idle_live(self) -> None:
        """A live session while paused: refresh the view (its waiting count)."""
        if not self.bridge.running:
            from textual.css.query import NoMatches
            try:
                self.refresh_view()
            except NoMatches:        # the app is tearing down
                pass

    def on_resize(self, event) -> None:
        w, h = event.size.width, event.size.height
        # the main screen, also when a dialog is on top (the dialog's own content was
        # hidden by -too-small, and the main screen kept its old size classes)
        main = self.screen_stack[0] if self.screen_stack else self.screen
        main.set_class(w >= 140, "-wide")
        main.set_class(w < 80, "-narrow")
        small = w < MIN_SIZE[0] or h < MIN_SIZE[1]
        if small != main.has_class("-too-small"):
            main.set_class(small, "-too-small")
            self.refresh_bindings()           # check_action's answers changed
        if small:
            main.query_one("#too-small").update(
                f"The terminal is too small ({w}×{h}).\n"
                f"COLO testbed needs at least {MIN_SIZE[0]}×{MIN_SIZE[1]}: "
                "make the window larger (q quits).")

    #: what a key may still do behind the "terminal is too small" note (it says q quits)
    ACTIONS_WHEN_TOO_SMALL = frozenset({"quit", "unfocus"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Behind the "terminal is too small" note the session is hidden: keys that
        would step, run, inject or restart it do nothing until the window is larger."""
        if action not in self.ACTIONS_WHEN_TOO_SMALL and self.screen_stack and \
                self.screen is self.screen_stack[0] and self.screen.has_class("-too-small"):
            return False
        return True

    # -------------------------------------------------------------- messages up
    def on_bridge_updated(self, _message: Bridge.Updated) -> None:
        from textual.css.query import NoMatches
        try:
            self.refresh_view()
        except NoMatches:        # a live update that arrives while the app tears down
            pass

    def on_side_panel_chosen(self, message: SidePanel.Chosen) -> None:
        self.bridge.select_side(message.side)

    def on_ladder_view_selected(self, message: LadderView.Selected) -> None:
        self.bridge.select_row(message.seq if message.seq is not None
                               else self.bridge.selected_seq, message.side)

    def on_event_log_filter_changed(self, message: EventLog.FilterChanged) -> None:
        self.bridge.log.set_filter(message.text)
        self.bridge.changed()

    def on_event_log_ready(self, _message: EventLog.Ready) -> None:
        self.refresh_view()

    def on_event_log_picked(self, message: EventLog.Picked) -> None:
        self.bridge.select_row(message.seq)

    # ------------------------------------------------------------------ actions
    def action_step(self) -> None:
        self.bridge.step()

    def action_back(self) -> None:
        self.bridge.back()

    def action_toggle_run(self) -> None:
        self.bridge.toggle_run()

    def action_speed(self, delta: int) -> None:
        self.bridge.faster(delta)

    def action_checkpoint(self) -> None:
        self.bridge.checkpoint()

    def action_kill(self) -> None:
        self.bridge.kill()

    def action_stall(self) -> None:
        self.bridge.stall()

    def action_heartbeat(self) -> None:
        self.bridge.lost_heartbeat()

    def action_failover(self) -> None:
        self.bridge.failover()

    def action_reprotect(self) -> None:
        self.bridge.reprotect()

    def action_other_side(self) -> None:
        self.bridge.select_side()

    def action_fault(self) -> None:
        if self.bridge.ended("fault"):          # no menu for a fault that cannot happen
            return
        caps = self.controller.capabilities
        if not caps.is_live and not caps.takes_inputs:  # an imported capture: no menu,
            if not self.bridge.refuse_fault():          # refused at once, as k and c are
                return
        row = self.bridge.selected_row()
        if caps.is_live and caps.takes_faults:       # colo lab: its compare channels
            from protocol.core.faults import CHANNEL_POINTS
            point = row.point if row is not None and row.point in CHANNEL_POINTS \
                else "primary-in"
            menu = screens.FaultMenu("corrupt", point, 1, channels=True)
        elif row is not None and row.point and row.point != "initial":
            menu = screens.FaultMenu("drop", row.point, row.checkpoint or 1)
        else:
            side = self.bridge.selected_side
            menu = screens.FaultMenu(f"kill-{side}", "checkpoint-request",
                             self.controller.side("primary").checkpoint + 1)
        self.push_screen(menu, lambda spec: spec and self.bridge.add_fault(spec))

    def action_delay(self) -> None:
        if self.bridge.ended("x-checkpoint-delay"):
            return
        current = self.controller.side("primary").checkpoint_delay_ms
        self.push_screen(screens.NumberPrompt(
                             "x-checkpoint-delay in ms (QEMU default 20000):", current),
                         lambda ms: ms is not None and self.bridge.set_delay(ms))

    def _discarding(self, what: str, start, new: str = "the new session") -> None:
        """Run `start()`, which replaces the session; one with something in it is only
        discarded after the user says yes (escape or no keeps it)."""
        lost = self.bridge.what_a_restart_loses()
        if not lost:
            start()
            return
        self.push_screen(
            screens.ChoicePrompt(f"{what}: this discards {lost}. Go on?",
                         [("yes", f"yes: discard it and start {new}"),
                          ("no", "no: keep this session")]),
            lambda answer: answer == "yes" and start())

    def _restart_asking(self, what: str, notice: str, **changes) -> None:
        self._discarding(what, lambda: self.bridge.restart(notice, **changes))

    def action_dialect(self) -> None:
        from protocol.core import dialects
        names = [(d.name, f"{d.name:<10} {d.title}") for d in
                 (dialects.get(n) for n in ("qemu", "v11", "prototype"))]
        self.push_screen(screens.ChoicePrompt("Dialect (restarts the session):", names),
                         lambda name: name and self._restart_asking(
                             f"dialect {name}", f"dialect {name}: new session", dialect=name))

    def action_mode(self) -> None:
        mode = "hybrid" if self.controller.config.mode == "periodic" else "periodic"
        self._restart_asking(f"mode {mode}", f"mode {mode}: new session", mode=mode)

    def action_guest(self) -> None:
        guest = "null" if self.controller.config.guest == "model" else "model"
        what = ("the guest model: RAM, packets, disk" if guest == "model"
                else "the null guest: the control protocol alone")
        self._restart_asking(f"{guest} guest", f"{what}: new session", guest=guest)

    def action_lesson(self) -> None:
        from colo_tui.commands.lessons import LESSONS

        def chosen(name: str | None) -> None:
            if name:
                self._discarding(f"lesson {name}", lambda: self.bridge.start_lesson(name),
                                 "the lesson")
        self.push_screen(screens.ChoicePrompt(
                             "A guided lesson (n goes on; some beats ask you to act):",
                             [(x.name, f"{x.name:<19} {x.title}") for x in LESSONS]),
                         chosen)

    def action_preset(self, key: str) -> None:
        p = screens.BY_KEY[key]
        self._restart_asking(f"scenario {key} ({p.title})",
                             f"scenario {key}: {p.title} ({p.section}) — {p.what}",
                             **screens.config_changes(p, self.controller.config.seed))

    def action_record(self) -> None:
        self.bridge.toggle_record()

    def action_copy(self) -> None:
        row = self.bridge.selected_row()
        if row is None or not row.hex:
            self.bridge.changed("select a control message first (↑/↓ or click)")
            return
        self.copy_to_clipboard(row.hex)
        self.bridge.changed(f"copied {len(row.hex) // 2} bytes: {row.hex}")

    def action_theme(self) -> None:
        names = [t for t in THEMES if t in self.available_themes]
        i = names.index(self.theme) + 1 if self.theme in names else 0
        self.theme = names[i % len(names)]
        if self.user_config.path is not None:          # remembered for the next start
            from colo_tui.session.config_file import save_theme
            save_theme(self.theme, self.user_config.path)
            self.bridge.changed(f"theme {self.theme} (saved in {self.user_config.path})")

    def action_filter(self) -> None:
        found = self.query("#log-filter")
        if found:                  # the lower half mounts after the first frame
            found.first().focus()

    def action_unfocus(self) -> None:
        self.query_one(LadderView).focus()

    def action_help(self) -> None:
        self.push_screen(screens.HelpScreen())

    def get_system_commands(self, screen):
        """Textual's system commands but its Quit: the palette's "quit  (q)" is the
        one quit it lists (it completes the recording, as q does)."""
        for cmd in super().get_system_commands(screen):
            if cmd.title != "Quit":
                yield cmd

    def action_command_palette(self) -> None:
        """Textual's palette, where ctrl+c quits too."""
        from textual.command import CommandPalette
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(screens.Palette(id="--command-palette"))

    def run_command_line(self, line: str) -> None:
        """The palette's way in: one registry command through `execute`."""
        result = self.bridge.execute(line)
        if result is None:
            return
        if result.text:
            self.bridge.show_output(line, result.text, ok=result.ok)
        if result.quit:
            self.exit()
