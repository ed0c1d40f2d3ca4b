"""A RAM heat map as text: one cell per bucket of pages, shaded by how many are set."""
from __future__ import annotations

from rich.text import Text

SHADES = " ░▒▓█"


def heat_text(values: tuple[float, ...] | None, width: int, style: str = "") -> Text:
    """`values` are fractions (0..1) per bucket; wraps to `width` cells per line."""
    if values is None:
        return Text("—", style="dim")
    width = max(4, width)
    cells = []
    for v in values:
        k = 0 if v <= 0 else min(len(SHADES) - 1, 1 + int(v * (len(SHADES) - 1)))
        cells.append(SHADES[k])
    lines = ["".join(cells[i:i + width]) for i in range(0, len(cells), width)]
    return Text("\n".join(lines), style=style or "on grey15")
