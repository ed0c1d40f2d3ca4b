"""Colours that stay legible: WCAG contrast, and a theme colour nudged until text
in it reaches 4.5:1 on the background it is drawn on."""
from __future__ import annotations

from functools import lru_cache

MIN_RATIO = 4.5


def luminance(rgb: tuple[int, int, int]) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def ratio(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def legible(colour: str, background, minimum: float = MIN_RATIO) -> str:
    """`colour` (a CSS colour) as a hex string that reaches `minimum` against
    `background` (a textual Color): darkened on a light background, lightened on a
    dark one, in small steps (the hue stays recognisable)."""
    from textual.color import Color
    try:
        c = Color.parse(colour)
    except Exception:                     # noqa: BLE001 - not a colour: leave it alone
        return colour
    bg = background.rgb
    light_bg = luminance(bg) > 0.18
    for _ in range(20):
        if ratio(c.rgb, bg) >= minimum:
            break
        c = c.darken(0.05) if light_bg else c.lighten(0.05)
    return c.hex6


_THEMED: dict[tuple, str] = {}


def themed_style(widget, variable: str, extra: str = "") -> str:
    """A Rich style in the app's theme colour `variable`, nudged to 4.5:1 against the
    widget's background (just `extra` before the app has a theme).  Cached by theme,
    variable and background: the app's CSS variables take ~0.25 ms to compute, and
    panels ask for them on every repaint."""
    try:
        app, bg = widget.app, widget.background_colors[1]
        key = (app.theme, variable, bg.rgb)
        colour = _THEMED.get(key)
        if colour is None:
            colour = app.get_css_variables().get(variable, "")
            if colour:
                colour = legible(colour, bg)
            if len(_THEMED) > 512:
                _THEMED.clear()
            _THEMED[key] = colour
    except Exception:                       # noqa: BLE001 - not mounted yet: no theme
        colour = ""
    return " ".join(x for x in (extra, colour) if x)


@lru_cache(maxsize=512)
def legible_rich(style):
    """A Rich Style whose colour reaches MIN_RATIO against its own background (a
    style without both colours is returned as it is).  Cached: styles repeat."""
    if style.color is None or style.bgcolor is None:
        return style
    from rich.style import Style
    from textual.color import Color
    fg, bg = style.color.get_truecolor(), style.bgcolor.get_truecolor()
    if ratio(tuple(fg), tuple(bg)) >= MIN_RATIO:
        return style
    fixed = legible(Color(*fg).hex6, Color(*bg))
    return style + Style(color=fixed)
