"""One VM side: role, run state, COLO status, failover, checkpoint, guest layers."""
from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import Static

from colo_tui.tui.widgets.contrast import themed_style as _themed
from colo_tui.tui.widgets.heatmap import heat_text

#: run state -> (theme colour variable, extra style); theme variables, not ANSI names,
#: so that every theme keeps the state readable (text-* variables are made for legibility)
_RUN_STYLE = {"running": ("text-success", "bold"), "colo": ("text-warning", "bold"),
              "paused": ("text-warning", ""), "shutdown": ("text-error", "bold"),
              "finish-migrate": ("text-warning", "")}

if TYPE_CHECKING:
    from colo_tui.present.models import SideView


class SidePanel(Static):
    """A dumb view of a SideView; a click asks for this side to be selected."""

    class Chosen(Message):
        def __init__(self, side: str) -> None:
            super().__init__()
            self.side = side

    def __init__(self, side: str, **kw) -> None:
        super().__init__(id=side, **kw)
        self.side = side
        self._last: SideView | None = None
        self._restyling = False

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Chosen(self.side))

    def on_resize(self, event: events.Resize) -> None:
        if self._last is not None:
            self.show(self._last)

    def notify_style_update(self) -> None:
        """A class change (dead, selected) changes the background: the state colours
        are re-chosen against it, so they stay legible."""
        super().notify_style_update()
        if self._last is not None and not self._restyling:
            self._restyling = True
            try:
                self.show(self._last)
            finally:
                self._restyling = False

    def show(self, v: SideView) -> None:
        self._last = v
        self.set_class(v.selected, "-selected")
        self.set_class(not v.alive, "-dead")
        t = Text(no_wrap=True, overflow="ellipsis")
        head = v.name.upper() + ("" if v.alive else "  ☠") + ("  ◆" if v.selected else "")
        t.append(head + "\n", style="bold reverse" if v.selected else "bold")
        if not v.alive:
            t.append("process is dead\n", style=_themed(self, "text-error", "bold"))
        elif v.stalled:
            t.append("stalled (SIGSTOP)\n", style=_themed(self, "text-warning", "bold"))

        room = max(4, (self.content_size.width or 24) - 9)

        def row(label: str, value: str, style: str = "", cells: bool = False) -> None:
            t.append(f"{label:<9}", style="italic")
            if len(value) > room:     # a long value goes under its label, wrapped
                wide = room + 7
                # screen text is character cells: cut at the width, so what the guest
                # wrote at the line's start stays together ('COLO step 0000007C' of a
                # line that still holds the BIOS's '.16.2-debian…' after it)
                lines = ([value[i:i + wide] for i in range(0, len(value), wide)] if cells
                         else textwrap.wrap(value, wide)) or [value]
                if len(lines) > 3:
                    lines = lines[:3]
                    lines[2] = lines[2][: room + 6] + "…"
                value = "".join("\n  " + line for line in lines)
            t.append(value + "\n", style=style)

        since = "—" if v.since_ms is None else f"{v.since_ms / 1000:.1f} s ago"
        if not v.alive:
            # a dead process has no run state, COLO mode or failover state to report:
            # show what it had reached, not the last values it reported while alive
            row("run", "— (no process)", _themed(self, "text-error", "bold"))
            row("ckpt", f"#{v.checkpoint}, final")
            if v.error:
                t.append(f"✖ {v.error}\n", style=_themed(self, "text-error", "bold"))
            t.rstrip()
            self.update(t)
            return
        row("run", v.run_state, _themed(self, *_RUN_STYLE[v.run_state])
            if v.run_state in _RUN_STYLE else "bold")
        row("mode", v.colo_mode)
        row("failover", v.failover,
            "" if v.failover == "none" else _themed(self, "text-accent", "bold underline"))
        row("last", f"{v.last_mode} / {v.reason}")
        row("ckpt", f"#{v.checkpoint} {since}")
        row("state", v.state)
        if v.error:
            t.append(f"✖ {v.error}\n", style=_themed(self, "text-error", "bold"))
        width = max(4, self.content_size.width or 20)
        if v.heat is None:
            row("RAM", "—")
        elif not v.heat:             # a real guest (colo lab): its RAM is not read here
            row("guest", v.heat_label)
        else:
            t.append(f"{v.heat_label} {v.heat_count}\n", style="italic")
            t.append_text(heat_text(v.heat, width))
            t.append("\n")
        if v.screen:
            row("screen", v.screen, "bold", cells=True)
        row("packets", v.packets)
        row("disk", v.disk)
        t.rstrip()
        self.update(t)
