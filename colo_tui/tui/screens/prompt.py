"""Small modal prompts: a number (x-checkpoint-delay) and a choice from a list."""
from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

#: shared by the modal dialogs (parsed when a dialog first opens, not at startup)
DIALOG_CSS = """
    align: center middle;
    .dialog {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    .dialog Label { width: 1fr; }      /* a long question wraps, never cut off */
    .dialog .row { height: auto; }
    .dialog Select { width: 1fr; }
    .dialog Input { width: 1fr; }
    .dialog Button { margin: 0 1; }
"""


#: the app's ctrl+c does not reach a modal screen: each dialog quits on it too, before
#: the focused widget sees it (a priority binding): the delay prompt's Input took it
#: as 'copy' (its value is selected when it opens), and ctrl+c did nothing there
QUIT_ON_CTRL_C = Binding("ctrl+c", "app.quit", show=False, priority=True)


class NumberPrompt(ModalScreen[int | None]):
    DEFAULT_CSS = "NumberPrompt {" + DIALOG_CSS + "}"
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"), QUIT_ON_CTRL_C]

    def __init__(self, question: str, value: int | None = None) -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self):
        with Vertical(classes="dialog"):
            yield Label(self.question)
            yield Input(value="" if self.value is None else str(self.value),
                        type="integer", id="number")
            yield Label("enter accepts, escape cancels", classes="dim")

    @on(Input.Submitted, "#number")
    def _submit(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(int(event.value))
        except ValueError:
            self.notify("a whole number, please", severity="error")


class ChoicePrompt(ModalScreen[str | None]):
    DEFAULT_CSS = "ChoicePrompt {" + DIALOG_CSS + "#choices { height: auto; max-height: 10; } }"
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"), QUIT_ON_CTRL_C]

    def __init__(self, title: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text, self.choices = title, choices

    def compose(self):
        with Vertical(classes="dialog"):
            yield Label(self.title_text)
            yield OptionList(*[Option(label, id=value) for value, label in self.choices],
                             id="choices")

    @on(OptionList.OptionSelected, "#choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
