"""The Textual app, its widgets and screens."""
