"""Dumb Textual views: each shows a view object (see models.py) and posts messages up."""
from .event_log import EventLog, LogLines
from .explain_pane import ExplainPane
from .failover import FailoverDiagram
from .keybar import KeyBar
from .ladder import LadderView
from .side_panel import SidePanel
from .status import StatusBar

__all__ = ["EventLog", "ExplainPane", "FailoverDiagram", "KeyBar", "LadderView", "LogLines",
           "SidePanel", "StatusBar"]
