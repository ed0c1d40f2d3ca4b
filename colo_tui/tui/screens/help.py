"""The help screen: keys, and what the picture shows."""
from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from colo_tui.tui.screens.presets import PRESETS
from colo_tui.tui.screens.prompt import QUIT_ON_CTRL_C

KEYS = [
    ("n / →", "step one happening (the events it causes)"),
    ("←", "step back (time travel); an input after it forks the future"),
    ("space", "run / pause (stepping on a timer)"),
    ("+ / -", "faster / slower (up to full speed)"),
    ("c", "request a checkpoint now"),
    ("f", "fault menu for the selected message or side"),
    ("k / s / h", "kill / stall / x-colo-lost-heartbeat on the selected side"),
    ("x", "colo lab: docs/COLO-FT.txt's failover onto the selected side (the "
          "simulator's arbiter fails over by itself)"),
    ("p", "re-protect after a failover: a new secondary, a fresh migration, COLO again"),
    ("o", "select the other side (or click a panel or a lifeline)"),
    ("tab / shift+tab", "move the focus (ladder, log filter, every field of a dialog)"),
    ("d", "change x-checkpoint-delay"),
    ("v / m", "switch dialect / mode (a new session: asks first if this one has steps)"),
    ("g", "guest model on/off: RAM heat map, buffered packets, disk layers"),
    ("1 … 9, 0", "scenario presets (docs/protocol.md §11; asks before discarding steps)"),
    ("! / @", "hybrid presets: a colo-compare mismatch / a stale packet"),
    ("#", "preset: failover, then re-protect (a new secondary, COLO again)"),
    ("L", "guided lessons: narrated tours, some beats ask you to act"),
    ("r", "start / stop recording (to your data directory; the status line says where)"),
    ("↑ / ↓", "select a message in the ladder (then y copies its bytes)"),
    ("y", "copy the selected message's bytes as hex"),
    ("/", "filter the event log (escape leaves the filter)"),
    ("↑ / ↓, enter", "cursor of the event log (tab reaches it): ↑ / ↓ move it; enter "
                     "explains its event, as a click on a line does"),
    ("t", "next theme"),
    ("ctrl+p", "command palette: every command of the registry"),
    ("?", "this help"),
    ("q / ctrl+c", "quit (a recording in progress is completed)"),
]

PRIMER = """\
Side panels: run state, COLO mode (query-colo-status), failover state,
last-mode / reason, checkpoint number and virtual time since it committed. With
the guest model (g): "RAM dirty" = pages the PVM dirtied this epoch (they go in
the next checkpoint), "RAM cache pending" = PVM pages waiting in the SVM's RAM
cache for the flush; packets held by filter-buffer / colo-compare; disk layers
(secondary: active, hidden and base; primary: local image, writes to forward).
A dead side shows "process is dead" and only the checkpoint it had reached.

The ladder is the seed's picture, live: the Primary's lifeline on the left, the
Secondary's on the right, one arrow per control message (─) or payload (═:
RAM pages, device state), newest at the bottom. ✗ marks a message that was
dropped or lost; a shaded row happens inside a fault window (link closed,
partition, a side dead or stopped); ↯ is an injected fault, ✖ an error.

One checkpoint (QEMU 7.2): checkpoint-request → checkpoint-reply → the PVM
stops → vmstate-send, RAM, vmstate-size N, N bytes of device state →
vmstate-received (the PVM releases its buffered packets) → the SVM flushes
its RAM cache and loads the devices → vmstate-loaded → the PVM resumes.

The protocol, step by step, with the fault grammar and every scenario:
docs/protocol.md in the repository (QEMU 7.2: migration/colo.c).
"""


def _table(title: str, rows):
    """Two columns, the first bold and never wrapped: a row that wraps goes on under
    its second column (as text lines, it went on at the left edge, under the keys)."""
    from rich.table import Table
    t = Table(title=title, title_justify="left", title_style="bold", box=None,
              show_header=False, padding=(0, 1), expand=True)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(ratio=1)
    for row in rows:
        t.add_row(*row)
    return t


def key_tables():
    """The keys and the scenario presets, as tables (markup in the cells)."""
    from rich.console import Group
    return Group(_table("COLO testbed — keys", KEYS), "",
                 _table("Scenarios", [(p.key, f"{p.title} ({p.section}): {p.what}")
                                      for p in PRESETS]))


def legend_tables():
    """The legend as two tables: a wrapped meaning keeps its column at any width."""
    from rich.console import Group

    from colo_tui.present.legend import ABBREVIATIONS, SYMBOLS
    table = _table
    return Group(table("Legend: symbols",
                       [(sym, f"{what} [dim]({where})[/dim]") for sym, where, what in SYMBOLS]),
                 table("Legend: words and abbreviations", ABBREVIATIONS))


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help-box {
        width: 96; max-width: 100%; height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close"), QUIT_ON_CTRL_C]

    def compose(self):
        with VerticalScroll(id="help-box"):
            yield Static(key_tables(), id="help-keys")
            yield Static(PRIMER, markup=False, id="help-primer")
            yield Static(legend_tables(), id="help-legend")
            yield Static("[dim]escape closes[/dim]")
