"""The explanation of the selected step, and the selected message's bytes."""
from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


class ExplainPane(VerticalScroll):
    DEFAULT_CSS = "ExplainPane { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }"
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._text = Static(id="explain-text")   # updates may come before it is mounted

    def compose(self):
        yield self._text

    def show(self, text: str, hex_bytes: str) -> None:
        first, _, rest = text.partition("\n")
        t = Text()
        t.append(first, style="bold")
        if rest:
            t.append("\n" + rest)
        if hex_bytes:
            spaced = " ".join(hex_bytes[i:i + 2] for i in range(0, len(hex_bytes), 2))
            t.append("\nbytes: ", style="dim")
            t.append(spaced, style="bold cyan")
            t.append("  (y copies)", style="dim")
        self._text.update(t)
