"""The pure domain: key format, hashing, models and verify rules.

May import only the standard library and ``keyrack.errors``: no I/O, no clock, no randomness
unless passed in. import-linter enforces this (see ``pyproject.toml``).
"""
