"""The help screen lists every key README gives the app, `x` of `colo lab` too."""
from __future__ import annotations


def test_help_lists_the_failover_key():
    # README: in `colo lab`'s TUI, `x` runs docs/COLO-FT.txt's failover onto the
    # selected side; the binding exists (hidden from the footer) but `?` never said so
    from colo_tui.tui.app import ColoApp
    from colo_tui.tui.screens.help import KEYS
    assert any(b.key == "x" and b.action == "failover" for b in ColoApp.BINDINGS)
    rows = {k: what for k, what in KEYS}
    assert "x" in rows, sorted(rows)
    assert "failover" in rows["x"] and "colo lab" in rows["x"], rows["x"]
