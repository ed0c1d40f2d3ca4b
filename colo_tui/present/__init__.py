"""Toolkit-free presentation: sentences, legend, explanations, views, lessons."""
