"""The status line and, under it, the notice/hint line (a view of a StatusView)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from colo_tui.tui.widgets.contrast import themed_style

if TYPE_CHECKING:
    from colo_tui.present.models import StatusView


class StatusBar(Static):
    DEFAULT_CSS = "StatusBar { height: 2; text-wrap: nowrap; text-overflow: ellipsis; }"

    _last: StatusView | None = None

    def on_resize(self, _event) -> None:
        if self._last is not None:            # the order of the line depends on its width
            self.show(self._last)

    def show(self, v: StatusView) -> None:
        self._last = v
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" COLO ", style="bold reverse")
        # the session's state comes first: a narrow terminal cuts the end of the line,
        # never whether it is paused, running or ended
        if v.finished:
            t.append(f" ■ ended: {v.outcome} ", style="bold")
        elif v.running:
            t.append(f" ▶ running {v.speed} ", style=themed_style(self, "text-success", "bold"))
        else:
            t.append(f" ⏸ paused ({v.speed}) ", style="bold")
        if v.recording:       # with the state: at the end of the line a narrow terminal
            # cut it off while the recording ran ('… │ ●…' at 60 columns, running)
            t.append(" ● REC ", style="bold white on dark_red")
        t.append("│")
        where = Text(f" step {v.step} · t={v.t_ms / 1000:.3f} s ")
        rest = Text()
        if v.forked:
            rest.append(f" FORKED at step {v.forked_at} ", style="bold white on red")
            rest.append(" ")
        if v.replay:
            rest.append(f" ⏵ replay {v.replay} ", style="bold black on yellow")
            rest.append(" ")
        seed = "" if v.seed is None else f" · seed {v.seed}"
        rest.append(f" {v.dialect} · {v.mode}{seed} ", style="bold")
        if t.cell_len + rest.cell_len + where.cell_len + 1 <= (self.size.width or 10**6):
            t.append_text(rest)
            t.append("│")
            t.append_text(where)
        else:       # too narrow for it all: where the session is comes next, never cut
            t.append_text(where)
            t.append("│")
            t.append_text(rest)
        warn = themed_style(self, "text-warning")
        faults = "faults: " + ", ".join(v.faults) if v.faults else ""
        if faults and v.notice:
            t.append("│ " + faults, style=warn)
        if v.notice or not faults:
            notice = Text(" " + v.notice, no_wrap=True, overflow="ellipsis",
                          style=themed_style(self, "text-error", "bold")
                          if v.notice.startswith("⚠") else "italic")
        else:       # nothing to say: the fault plan gets the whole second line
            notice = Text(" " + faults, no_wrap=True, overflow="ellipsis", style=warn)
        self.update(Text("\n", no_wrap=True).join([t, notice]))
