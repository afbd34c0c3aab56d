"""SQLAlchemy 2 (async) persistence: tables, repositories, unit of work and migrations.

Implements ``keyrack.services.ports``; may import ``keyrack.domain``, ``keyrack.services.ports``
and ``keyrack.errors``.
"""
