"""The lab's side panels: the client's view (answers, round trip, the longest gap
between answers) sits on the primary's panel while the primary serves it, and moves
to the secondary's once the secondary has taken over, where its answers now come
from. Before, it stayed with the dead primary, whose panel shows no guest rows, so
what the failover cost the client was nowhere on the screen."""
from __future__ import annotations

from types import SimpleNamespace

from colo_tui.lab.client import ClientView
from colo_tui.lab.feed import LabFeed, LabSettings
from protocol.sim.config import SimConfig

VIEW = ClientView(sent=300, answered=299, connections=1, last_rtt_ms=4.0,
                  longest_gap_s=3.2)


def _feed() -> LabFeed:
    feed = LabFeed(SimConfig(dialect="qemu", mode="hybrid"), LabSettings())
    feed.client = SimpleNamespace(view=lambda: VIEW)
    feed._verdicts = {"match": 274, "mismatch": 5, "no-secondary": 1}
    return feed


def test_the_client_is_on_the_primary_s_panel_while_colo_runs():
    feed = _feed()
    feed.views["secondary"].colo = {"mode": "secondary", "last-mode": "none"}
    primary, secondary = feed._lab_guests()
    assert primary.packets == VIEW.line() == "client 299/300, rtt 4 ms, max gap 3.2 s"
    assert secondary.packets == "compare ✓274 ✗5, 1 unpaired"


def test_after_a_failover_onto_the_secondary_the_client_is_on_its_panel():
    feed = _feed()
    feed.views["primary"].alive = False
    feed.views["secondary"].colo = {"mode": "none", "last-mode": "secondary",
                                    "reason": "request"}
    primary, secondary = feed._lab_guests()
    assert secondary.packets == f"{VIEW.line()}; compare ✓274 ✗5, 1 unpaired"
    assert "answered by the secondary" in primary.packets


def test_a_dead_primary_before_any_failover_keeps_the_client_where_it_was():
    """The primary is gone but nobody has failed over yet: nothing answers the
    client, and the panels do not pretend the secondary does."""
    feed = _feed()
    feed.views["primary"].alive = False
    feed.views["secondary"].colo = {"mode": "secondary", "last-mode": "none"}
    primary, secondary = feed._lab_guests()
    assert primary.packets == VIEW.line()
    assert secondary.packets == "compare ✓274 ✗5, 1 unpaired"
