"""The ``keyrack`` command line: the local operator's surface (DESIGN.md §1, §5, §11).

Holds the click commands (``main.py`` wires them), their parameter types and their output
rendering. It may import every other room: it is an entrypoint, like ``keyrack.api``, so it
reads ``Settings``, configures logging and opens the runtime; nothing else imports it.
Commands act as ``keyrack.services.authz.OPERATOR`` (whoever holds the database and the secrets).
"""
