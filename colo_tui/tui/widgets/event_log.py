"""The event log: one line per event, a column per side, filterable by text."""
from __future__ import annotations

from rich.segment import Segment
from rich.style import Style as RichStyle
from textual import events, on
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widgets import Input

from colo_tui.tui.widgets.contrast import legible_rich
from colo_tui.tui.widgets.follow import FollowTail

SIDE_COL = {"primary": 0, "secondary": 1}


def _fit(text: str, n: int) -> str:
    """`text` in `n` cells: a cut one ends with … (the full line: click it)."""
    return text if len(text) <= n else text[: max(0, n - 1)] + "…"


class LogLines(FollowTail, can_focus=True):
    inherit_bindings = False
    BINDINGS = [Binding("up", "lines(-1)", show=False), Binding("down", "lines(1)", show=False),
                Binding("pageup", "lines(-10)", show=False),
                Binding("pagedown", "lines(10)", show=False),
                Binding("home", "lines(-1000000000)", show=False),
                Binding("end", "lines(1000000000)", show=False),
                Binding("enter", "pick", show=False)]
    DEFAULT_CSS = """
    LogLines { height: 1fr; scrollbar-size-vertical: 1; }
    LogLines > .log--seq { color: $text-muted; }
    LogLines > .log--primary { color: $text-success; }
    LogLines > .log--secondary { color: $text-secondary; }
    LogLines > .log--other { color: $text-warning; }
    """
    COMPONENT_CLASSES = {"log--seq", "log--primary", "log--secondary", "log--other"}

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.model = None
        self.count = 0
        self._key: tuple = ()
        #: the line the keys move (shown reversed; enter explains its event), None
        #: until they first move it
        self.cursor: int | None = None

    def show(self, model) -> None:
        count = model.count
        # rows that left the top (a live session dropped old events from memory)
        offset = getattr(model, "offset", 0)
        key = (id(model), count, model.filter, offset)
        if key == self._key:
            return
        same = self._key[:1] == (id(model),) and self._key[2] == model.filter
        shift = offset - self._key[3] if same else 0
        if self.cursor is not None:
            # on its line while rows leave the top; gone with them, or with another view
            cursor = self.cursor - shift if same else -1
            self.cursor = cursor if 0 <= cursor < count else None
        self.model, self.count, self._key = model, count, key
        self.virtual_size = Size(0, count)
        if shift and not self.follow:        # a view scrolled back keeps its place
            self.scroll_to(y=max(0, int(self.scroll_y) - shift), animate=False,
                           immediate=True)
        if self.follow:
            self.call_after_refresh(self._to_end)
        self.refresh()

    def action_lines(self, delta: int) -> None:
        """Move the cursor `delta` lines, scrolling only as far as keeps it in view.
        The first ↑ or ↓ puts it on the last line shown (home, end and the page
        keys move it from there)."""
        if self.model is None or not self.count:
            return
        top, height = self._top(), max(1, self.scrollable_content_region.height)
        if self.cursor is None:
            start = min(self.count - 1, top + height - 1)
            delta = 0 if abs(delta) == 1 else delta
        else:
            start = self.cursor
        self.cursor = cursor = max(0, min(self.count - 1, start + delta))
        if cursor < top:
            top = cursor
        elif cursor >= top + height:
            top = cursor - height + 1
        self.follow = False
        self.scroll_to(y=top, animate=False, immediate=True)
        self.call_after_refresh(self._at_end)
        self.refresh()

    def action_pick(self) -> None:
        """Explain the cursor's event (as a click on its line does)."""
        if self.model is not None and self.cursor is not None and self.cursor < self.count:
            self.post_message(EventLog.Picked(self.model.line(self.cursor)[0]))

    def _top(self) -> int:
        """First shown line: pinned to the end while following (whatever the
        scroll offset says during a layout), else the scroll offset."""
        if self.follow:
            return max(0, self.count - self.scrollable_content_region.height)
        return int(self.scroll_y)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self._top() + y
        if self.model is None or index >= self.count or width <= 0:
            return Strip.blank(width, self.rich_style)
        seq, _t, side, text = self.model.line(index)
        base = self.rich_style
        if index == self.cursor:
            base += RichStyle(reverse=True)
        seqw = 6
        col = max(1, (width - seqw) // 2)
        segs = [Segment(f"{seq:>5} ", legible_rich(base + self.get_component_rich_style(
            "log--seq")))]
        if side in SIDE_COL:
            cell = _fit(text, col - 1).ljust(col)
            style = legible_rich(base + self.get_component_rich_style(f"log--{side}"))
            if SIDE_COL[side]:
                segs += [Segment("·".ljust(col), base), Segment(cell, style)]
            else:
                segs += [Segment(cell, style)]
        else:
            segs.append(Segment(_fit(text, width - seqw), legible_rich(
                base + self.get_component_rich_style("log--other"))))
        return Strip(segs).crop_extend(0, width, base)

    def on_click(self, event: events.Click) -> None:
        index = self._top() + event.y
        if self.model is not None and 0 <= index < self.count:
            self.cursor = index
            self.refresh()
            self.post_message(EventLog.Picked(self.model.line(index)[0]))


#: the filter's placeholder, longest first: the longest that fits its width is shown
#: (Textual cuts a placeholder mid-word with no mark)
FILTER_PLACEHOLDERS = ("filter events (text or kind) — / to focus",
                       "filter (text or kind) — / to focus", "filter events — / to focus",
                       "filter — / to focus", "/ = filter")


def filter_placeholder(cells: int) -> str:
    """The filter's placeholder in `cells` cells (a cut one ends with …)."""
    return next((p for p in FILTER_PLACEHOLDERS if len(p) <= cells),
                _fit(FILTER_PLACEHOLDERS[-1], cells))


class FilterInput(Input):
    """The log's filter: its placeholder fits its width, whole words or a … ."""

    def on_resize(self, _event) -> None:
        # one cell is the cursor's
        self.placeholder = filter_placeholder(max(1, self.content_size.width - 1))


class EventLog(Vertical):
    DEFAULT_CSS = """
    EventLog { width: 1fr; border-left: solid $primary 50%; }
    EventLog #log-filter { height: 1; border: none; padding: 0 1; background: $boost; }
    EventLog #log-filter:focus { background: $accent 20%; }
    """
    class FilterChanged(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Ready(Message):
        """Mounted (it may be mounted lazily): ask for the current view."""

    class Picked(Message):
        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    def compose(self):
        yield FilterInput(placeholder=FILTER_PLACEHOLDERS[0], id="log-filter")
        yield self._lines

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._lines = LogLines(id="log-lines")   # updates may come before it is mounted

    def on_mount(self) -> None:
        self.post_message(self.Ready())

    @on(Input.Changed, "#log-filter")
    def _filter(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(event.value))

    def show(self, model) -> None:
        self._lines.show(model)
