"""A one-line footer of key bindings: one widget (the stock Footer mounts one per key).

Clicking a key runs its action, like the stock Footer.
"""
from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget

_KEY_NAMES = {"space": "space", "right": "→", "left": "←", "question_mark": "?",
              "plus": "+", "minus": "-", "equals_sign": "=", "slash": "/", "tab": "tab"}


def key_label(keys: str) -> str:
    return "/".join(_KEY_NAMES.get(k, k) for k in keys.split(",") if k != "equals_sign")


#: never dropped, whatever the width: how to get help, the palette, and out
PINNED = ("help", "command_palette", "quit")


class KeyBar(Widget):
    """The bindings in order of importance (their order in BINDINGS); those that do
    not fit the width are dropped, but help, the palette and quit always show."""

    DEFAULT_CSS = "KeyBar { height: 1; }"
    COMPONENT_CLASSES = {"keybar--key", "keybar--desc"}

    def __init__(self, bindings, **kw) -> None:
        super().__init__(**kw)
        self._spans: list[tuple[int, int, str]] = []
        self.set_bindings(bindings)

    def set_bindings(self, bindings) -> None:
        """Show these bindings (the app's, once it knows which apply)."""
        items = [(key_label(b.key), b.description, b.action) for b in bindings
                 if b.show and b.description]
        items.append(("^p", "palette", "command_palette"))
        self.pinned = [i for i in items if i[2] in PINNED]
        self.items = [i for i in items if i[2] not in PINNED]
        self.refresh()

    @staticmethod
    def _cells(item) -> int:
        key, desc, _ = item
        return len(f" {key} ") + len(f"{desc} ")

    def shown(self, width: int) -> list[tuple[str, str, str]]:
        """The items that fit `width` columns: the first ones in order, then the pinned."""
        room = width - sum(self._cells(i) for i in self.pinned)
        out = []
        for item in self.items:
            if self._cells(item) > room:
                break
            out.append(item)
            room -= self._cells(item)
        return out + self.pinned

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        desc_style = self.get_component_rich_style("keybar--desc")
        t = Text(no_wrap=True, overflow="crop")
        self._spans = []
        for key, desc, action in self.shown(self.size.width or 80):
            start = len(t)
            t.append(f" {key} ", style=key_style)
            t.append(f"{desc} ", style=desc_style)
            self._spans.append((start, len(t), action))
        return t

    async def on_click(self, event: events.Click) -> None:
        for start, end, action in self._spans:
            if start <= event.x < end:
                await self.app.run_action(action)
                return
