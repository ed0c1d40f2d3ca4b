"""Modal screens of the Textual app (help, fault menu, prompts) and the palette."""
from colo_tui.tui.screens.fault_menu import FaultMenu, build_spec
from colo_tui.tui.screens.help import HelpScreen
from colo_tui.tui.screens.palette import ColoCommands
from colo_tui.tui.screens.presets import BY_KEY, PRESETS, Preset, config_changes
from colo_tui.tui.screens.prompt import ChoicePrompt, NumberPrompt

__all__ = ["BY_KEY", "PRESETS", "ChoicePrompt", "ColoCommands", "FaultMenu", "HelpScreen",
           "NumberPrompt", "Preset", "build_spec", "config_changes"]
