"""Modal screens of the Textual app (help, fault menu, prompts) and the palette."""
from .fault_menu import FaultMenu, build_spec
from .help import HelpScreen
from .palette import ColoCommands
from .presets import BY_KEY, PRESETS, Preset, config_changes
from .prompt import ChoicePrompt, NumberPrompt

__all__ = ["BY_KEY", "PRESETS", "ChoicePrompt", "ColoCommands", "FaultMenu", "HelpScreen",
           "NumberPrompt", "Preset", "build_spec", "config_changes"]
