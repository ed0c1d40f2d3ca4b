"""The message ladder: two lifelines, one arrow per message, newest at the bottom.

A line-API view: only the visible rows are drawn, whatever the session length.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from colo_tui.tui.widgets.contrast import legible_rich
from colo_tui.tui.widgets.follow import FollowTail

_ICON = {"fault": "↯ ", "error": "✖ ", "lost": "✗ ", "note": ""}

if TYPE_CHECKING:
    from colo_tui.present.models import LadderRow


def row_text(row: LadderRow, inner: int) -> str:
    """The text between the two lifelines (exactly `inner` cells)."""
    if inner < 3:
        return " " * max(0, inner)
    if row.kind in ("msg", "payload"):
        line = "═" if row.kind == "payload" else "─"
        label = f" {row.label} "
        body = max(0, inner - 2)
        label = label[:body]
        left = (body - len(label)) // 2
        text = line * left + label + line * (body - left - len(label))
        if row.direction == "P>S":
            out = line + text + "▶"
        else:
            out = "◀" + text + line
        if row.flying and not row.lost:
            # in flight: dashed, its head half-way across; it lands when received
            span = min(inner, max(inner // 2, len(label) + 3))
            body = span - 2
            lab = label[:body]
            left = (body - len(lab)) // 2
            text = "┄" * left + lab + "┄" * (body - left - len(lab))
            if row.direction == "P>S":
                return ("┄" + text + "▷")[:inner].ljust(inner)
            return ("◁" + text + "┄")[:inner].rjust(inner)
        if row.lost:
            tag = "dropped" if row.lost == "dropped" else "lost"
            out = (out[: inner - len(tag) - 2] + " ✗" + tag) if row.direction == "P>S" else \
                (tag + "✗ " + out[2:])[:inner]
        return out[:inner].ljust(inner)
    label = _ICON.get(row.kind, "") + row.label
    if len(label) > inner - 2:
        label = label[: inner - 3] + "…"
    if row.side == "primary":
        return (" " + label).ljust(inner)
    if row.side == "secondary":
        return (label + " ").rjust(inner)
    return label.center(inner)


class LadderView(FollowTail, can_focus=True):
    """Rows come down as data; clicks and cursor moves go up as `Selected`."""

    inherit_bindings = False
    BINDINGS = [
        Binding("up", "move(-1)", "prev", show=False),
        Binding("down", "move(1)", "next", show=False),
        Binding("pageup", "move(-10)", show=False),
        Binding("pagedown", "move(10)", show=False),
        Binding("home", "move(-1000000)", show=False),
        Binding("end", "move(1000000)", show=False),
    ]
    COMPONENT_CLASSES = {"ladder--msg", "ladder--payload", "ladder--note", "ladder--fault",
                         "ladder--error", "ladder--lost", "ladder--shaded",
                         "ladder--selected", "ladder--lifeline", "ladder--time",
                         "ladder--side-note"}

    class Selected(Message):
        def __init__(self, seq: int | None, side: str | None = None) -> None:
            super().__init__()
            self.seq = seq
            self.side = side

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.rows: list[LadderRow] = []
        self.version = -1
        self.selected: int | None = None
        self._base: Style | None = None     # the widget's rich style, during render_lines

    # ---------------------------------------------------------------- data
    def show(self, rows: list[LadderRow], version: int, selected: int | None) -> None:
        changed = version != self.version or rows is not self.rows or len(rows) != len(self.rows)
        top = self._top()                       # where the view is before the update
        self.rows, self.version = rows, version
        moved = selected != self.selected
        self.selected = selected
        if changed:
            self.virtual_size = Size(0, len(rows))
        if moved:
            idx = None if selected is None else self._index(selected)
            self.follow = idx is None or idx == len(rows) - 1
            if not self.follow:
                h = max(1, self.scrollable_content_region.height)
                top = idx if idx < top else (idx - h + 1 if idx >= top + h else top)
                self.scroll_to(y=top, animate=False, immediate=True)
        if self.follow and (changed or moved):
            self.call_after_refresh(self._to_end)
        if changed or moved:
            self.refresh()

    def _index(self, seq: int) -> int | None:
        for i in range(len(self.rows) - 1, -1, -1):
            if self.rows[i].seq == seq:
                return i
        return None

    # ------------------------------------------------------------- drawing
    def _prefix_width(self) -> int:
        return 11 if self.scrollable_content_region.width >= 60 else 0

    def _top(self) -> int:
        """First shown row: pinned to the end while following, else the scroll offset."""
        if self.follow:
            return max(0, len(self.rows) - self.scrollable_content_region.height)
        return int(self.scroll_y)

    def render_lines(self, crop):
        """The rows of one frame share the widget's rich style: it is worked out once
        (from every ancestor's styles), not once a row."""
        self._base = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._base = None

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self._top() + y
        base = self.rich_style if self._base is None else self._base
        if index >= len(self.rows) or width <= 0:
            return Strip.blank(width, base)
        row = self.rows[index]
        style = self.get_component_rich_style(f"ladder--{row.kind}")
        if row.kind == "note" and row.side:
            style = self.get_component_rich_style("ladder--side-note")
        if row.lost:
            style = self.get_component_rich_style("ladder--lost")
        if row.shaded:
            style = style + Style(bgcolor=self.get_component_rich_style(
                "ladder--shaded").bgcolor)
        life = self.get_component_rich_style("ladder--lifeline")
        segs = []
        prefix = self._prefix_width()
        if prefix:
            segs.append(Segment(f"{row.t_ms / 1000:>10.3f} "[:prefix],
                                legible_rich(base + self.get_component_rich_style(
                                    "ladder--time"))))
        inner = max(0, width - prefix - 2)
        segs += [Segment("│", base + life),
                 Segment(set_cell_size(row_text(row, inner), inner), legible_rich(base + style)),
                 Segment("│", base + life)]
        strip = Strip(segs)
        if row.seq == self.selected:
            strip = strip.apply_style(self.get_component_rich_style("ladder--selected"))
        return strip.crop_extend(0, width, base)

    # ---------------------------------------------------------------- input
    def on_click(self, event: events.Click) -> None:
        index = self._top() + event.y
        prefix = self._prefix_width()
        side = None
        if event.x <= prefix:
            side = "primary"
        elif event.x >= self.scrollable_content_region.width - 1:
            side = "secondary"
        seq = self.rows[index].seq if 0 <= index < len(self.rows) else None
        if seq is None and side is None:
            return
        self.post_message(self.Selected(seq, side))

    def action_move(self, delta: int) -> None:
        if not self.rows:
            return
        idx = self._index(self.selected) if self.selected is not None else None
        if idx is None:
            idx = len(self.rows) if delta < 0 else -1
        idx = max(0, min(len(self.rows) - 1, idx + delta))
        self.post_message(self.Selected(self.rows[idx].seq))
