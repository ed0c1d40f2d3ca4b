"""The failover state machine as a small diagram, each side's state lit."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widget import Widget

_SIDE_STYLE = {"primary": "bold black on green", "secondary": "bold black on cyan"}

if TYPE_CHECKING:
    from colo_tui.present.models import FailoverView


class FailoverDiagram(Widget):
    # never wrapped: a wrapped row pushes the secondary's out of the three lines
    DEFAULT_CSS = ("FailoverDiagram { height: 3; background: $boost; "
                   "text-wrap: nowrap; text-overflow: ellipsis; }")

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        from colo_tui.present.models import FailoverView
        self.view = FailoverView(current={"primary": "none", "secondary": "none"})

    def show(self, view: FailoverView) -> None:
        self.view = view
        self.refresh()

    def render(self) -> Text:
        v = self.view
        chain, relaunch = v.states[:4], v.states[4]
        width = self.size.width or 80
        roomy = 3 + sum(len(s) for s in v.states) + 12 <= width
        full = 3 + sum(len(s) for s in v.states) + 4 <= width
        # narrow: each name cut to the longest prefix that keeps a row on its line
        # ("S ", the ▸ mark, the names, three → and the ↺), a cut
        # name ends in … (the legend's promise: cut text is marked)
        cut = next((k for k in range(8, 1, -1)
                    if 3 + sum(min(len(s), k) for s in v.states) + 4 <= width), 2)

        def name(s: str) -> str:
            return s if full or len(s) <= cut else s[:cut - 1] + "…"
        arrow = " → " if roomy else "→"
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("failover state" + (" (colo-failover.c)" if roomy else "") + "\n", style="bold")
        for side in ("primary", "secondary"):
            cur = v.current.get(side, "none")
            t.append(f"{side[0].upper()} ", style="bold")
            for i, s in enumerate(chain):
                if i:
                    t.append(arrow, style="dim")
                # the current state is marked by a symbol too, not only by colour
                t.append(("▸" + name(s)) if s == cur else name(s),
                         style=_SIDE_STYLE[side] if s == cur else "")
            t.append("  ↺" if roomy else "↺")
            t.append(("▸" + name(relaunch)) if cur == relaunch else name(relaunch),
                     style=_SIDE_STYLE[side] if cur == relaunch else "")
            if side == "primary":
                t.append("\n")
        return t
