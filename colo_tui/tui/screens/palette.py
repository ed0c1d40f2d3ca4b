"""The command palette: every command of colo_tui.commands.REGISTRY."""
from __future__ import annotations

from functools import partial

from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider

from colo_tui.tui.screens.prompt import QUIT_ON_CTRL_C


class Palette(CommandPalette):
    """Textual's command palette, on which ctrl+c quits as on every other screen (its
    search field took it as 'copy', and nothing happened)."""

    BINDINGS = [QUIT_ON_CTRL_C]


def _registry() -> dict:
    from colo_tui.commands import REGISTRY
    return REGISTRY


#: registry commands the palette lists by their key binding only ("quit  (q)"): typing
#: "quit" listed three quits (Textual's system one, the registry's, the key's), which
#: all end the app the same way (the recording completed)
KEYED_COMMANDS = frozenset({"quit"})


class ColoCommands(Provider):
    """Lists the registry; runs a typed line (``fault drop@ram#1``) through `execute`."""

    def _run(self, line: str) -> None:
        self.app.run_command_line(line)

    def _entries(self):
        """(text to match, label, callback, help) for every command, scenario preset and
        key binding; a command with arguments shows its syntax."""
        for name, cmd in sorted(_registry().items()):
            if name in KEYED_COMMANDS:     # listed once: by its key entry, below
                continue
            yield f"{name} {cmd.summary}", cmd.syntax, partial(self._run, name), cmd.summary
        from colo_tui.tui.screens.presets import PRESETS
        for p in PRESETS:
            yield (f"scenario preset {p.key} {p.title} {p.section}",
                   f"scenario {p.key}: {p.title}", partial(self.app.run_action,
                                                          f"preset('{p.key}')"), p.what)
        from colo_tui.tui.widgets.keybar import key_label
        keyed = getattr(self.app, "_bindings_as_keyed", None)   # the user's [keys] applied
        for b in keyed() if keyed else self.app.BINDINGS:
            if b.description and not b.action.startswith("preset"):
                keys = " / ".join(filter(None, map(key_label, b.key.split(","))))  # ? and →
                yield (f"key {keys} {b.description} {b.action}", f"{b.description}  ({keys})",
                       partial(self.app.run_action, b.action), f"key: {keys}")

    async def discover(self) -> Hits:
        for _text, label, callback, help_text in self._entries():
            yield DiscoveryHit(label, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        registry = _registry()
        word = query.strip().split(" ", 1)[0]
        if word in registry and query.strip() != word:
            line = query.strip()
            yield Hit(100, f"run: {line}", partial(self._run, line),
                      help=registry[word].summary)
        for text, label, callback, help_text in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(label), callback, help=help_text)
