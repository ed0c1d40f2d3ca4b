"""The fault menu: build KIND[=ARG]@POINT[#N] from protocol.core.faults.KINDS / POINTS."""
from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from colo_tui.tui.screens.prompt import DIALOG_CSS, QUIT_ON_CTRL_C
from protocol.core import faults as fl


def build_spec(kind: str, point: str, checkpoint: str, arg: str) -> str:
    want = fl.KINDS.get(kind, (None, ""))[0]
    spec = kind + (f"={arg.strip()}" if want and arg.strip() else "") + f"@{point}"
    n = checkpoint.strip()
    return spec + (f"#{n}" if n else "")


class FaultMenu(ModalScreen[str | None]):
    """Returns a valid spec (or None); defaults come from the selected message/side."""

    DEFAULT_CSS = ("FaultMenu {" + DIALOG_CSS +
                   "#fault-spec { color: $accent; text-style: bold; } }")
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"), QUIT_ON_CTRL_C]

    def __init__(self, kind: str = "drop", point: str = "checkpoint-request",
                 checkpoint: int = 1, *, channels: bool = False) -> None:
        super().__init__()
        #: colo lab: faults on colo-compare's channels (#N: the Nth TCP data packet)
        self.channels = channels
        kinds, points = self.choices()
        self.kind = kind if kind in kinds else kinds[0]
        self.point = point if point in points else points[0]
        self.checkpoint = max(1, checkpoint)

    def choices(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if self.channels:
            return fl.CHANNEL_KINDS, fl.CHANNEL_POINTS
        return tuple(fl.KINDS), fl.POINTS

    def compose(self):
        kinds, points = self.choices()
        with Vertical(classes="dialog", id="fault-dialog"):
            yield Label("[b]Inject a fault[/b]  KIND[=ARG]@POINT[#N]" + (
                "  (a colo-compare channel; N: its Nth TCP data packet from now)"
                if self.channels else ""))
            with Horizontal(classes="row"):
                yield Select([(k, k) for k in kinds], value=self.kind,
                             allow_blank=False, id="fault-kind")
                yield Select([(p, p) for p in points], value=self.point,
                             allow_blank=False, id="fault-point")
            with Horizontal(classes="row"):
                yield Input(placeholder="ARG", id="fault-arg")
                yield Input(value=str(self.checkpoint), placeholder="#N", type="integer",
                            id="fault-n")
            yield Label("", id="fault-help")
            yield Label("", id="fault-spec")
            with Horizontal(classes="row"):
                yield Button("arm", variant="primary", id="fault-arm")
                yield Button("cancel", id="fault-cancel")

    def on_mount(self) -> None:
        self._update()

    def spec(self) -> str:
        return build_spec(str(self.query_one("#fault-kind", Select).value),
                          str(self.query_one("#fault-point", Select).value),
                          self.query_one("#fault-n", Input).value,
                          self.query_one("#fault-arg", Input).value)

    def _check(self) -> str | None:
        try:
            fl.parse(self.spec(), channels=self.channels)
        except ValueError as exc:
            return str(exc)
        return None

    @on(Select.Changed, "#fault-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        """A plan step (reprotect) happens at a moment of the run (failover), a fault at a
        piece of output: the point follows the kind."""
        point = self.query_one("#fault-point", Select)
        step = str(event.value) in fl.STEP_KINDS
        if step and point.value not in fl.MOMENTS:
            point.value = fl.MOMENTS[0]
        elif not step and point.value in fl.MOMENTS:
            point.value = "checkpoint-request"

    @on(Select.Changed)
    @on(Input.Changed)
    def _update(self, _event=None) -> None:
        kind = str(self.query_one("#fault-kind", Select).value)
        want = fl.KINDS.get(kind, (None, ""))[0]
        # a colo-compare channel's packet (colo lab), or a piece of the link
        help_ = fl.kind_help(kind, channel=self.channels) if kind in fl.KINDS else ""
        self.query_one("#fault-arg", Input).disabled = want is None
        self.query_one("#fault-help", Label).update(
            f"{kind}: {help_}" + (f" (ARG: {want})" if want else ""))
        problem = self._check()
        self.query_one("#fault-spec", Label).update(
            f"spec: {self.spec()}" + (f"\n⚠ {problem}" if problem else "  ✓"))
        self.query_one("#fault-arm", Button).disabled = problem is not None

    @on(Input.Submitted)
    @on(Button.Pressed, "#fault-arm")
    def _arm(self, _event=None) -> None:
        if self._check() is None:
            self.dismiss(self.spec())

    @on(Button.Pressed, "#fault-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
