"""Textual screens, one module each."""
