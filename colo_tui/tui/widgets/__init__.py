"""Dumb Textual views: each shows a view object (see models.py) and posts messages up."""
from colo_tui.tui.widgets.event_log import EventLog, LogLines
from colo_tui.tui.widgets.explain_pane import ExplainPane
from colo_tui.tui.widgets.failover import FailoverDiagram
from colo_tui.tui.widgets.keybar import KeyBar
from colo_tui.tui.widgets.ladder import LadderView
from colo_tui.tui.widgets.side_panel import SidePanel
from colo_tui.tui.widgets.status import StatusBar

__all__ = ["EventLog", "ExplainPane", "FailoverDiagram", "KeyBar", "LadderView", "LogLines",
           "SidePanel", "StatusBar"]
