"""The command palette: every command of colo_tui.commands.REGISTRY."""
from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


def _registry() -> dict:
    try:
        from ..commands import REGISTRY
    except ImportError:
        return {}
    return REGISTRY


class ColoCommands(Provider):
    """Lists the registry; runs a typed line (``fault drop@ram#1``) through `execute`."""

    def _run(self, line: str) -> None:
        self.app.run_command_line(line)

    async def discover(self) -> Hits:
        for name, cmd in sorted(_registry().items()):
            yield DiscoveryHit(cmd.syntax, partial(self._run, name), help=cmd.summary)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        registry = _registry()
        word = query.strip().split(" ", 1)[0]
        if word in registry and query.strip() != word:
            line = query.strip()
            yield Hit(100, f"run: {line}", partial(self._run, line),
                      help=registry[word].summary)
        for name, cmd in sorted(registry.items()):
            score = matcher.match(f"{name} {cmd.summary}")
            if score > 0:
                yield Hit(score, matcher.highlight(cmd.syntax), partial(self._run, name),
                          help=cmd.summary)
