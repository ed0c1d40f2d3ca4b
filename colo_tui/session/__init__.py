"""Sessions the UIs drive: controller, live sources, recording lifecycle."""
