"""Commands as data: one registry for the REPL and the Textual command palette.

    REGISTRY: dict[str, Command]      name -> Command(name, syntax, summary, help,
                                      handler, forms, destructive, aliases, arg_kinds)
    parse(line) -> ParsedCommand      pure; raises CommandError naming the problem
    execute(controller, line) -> Result(ok, text, quit)   never raises for a user error
    confirmation(controller, line) -> str | None          the question to ask in a tty
    run_state(controller) -> "running" | "paused" | "finished"
"""
from colo_tui.commands.handlers import run_state, state_of
from colo_tui.commands.parser import CommandError, ParsedCommand, parse
from colo_tui.commands.registry import (
           COMMANDS,
           REGISTRY,
           Command,
           Result,
           confirmation,
           execute,
           lookup,
)

__all__ = ["COMMANDS", "REGISTRY", "Command", "CommandError", "ParsedCommand", "Result",
           "confirmation", "execute", "lookup", "parse", "run_state", "state_of"]
