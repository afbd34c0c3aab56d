"""How a command reaches the services: settings from the group, one runtime per command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from keyrack.config import Settings
from keyrack.runtime import Runtime, open_runtime

T = TypeVar("T")

pass_settings = click.make_pass_decorator(Settings)
"""Hand a command the ``Settings`` the ``keyrack`` group read from ``KEYRACK_*``."""


def run(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open the runtime (migrating first), run ``work`` on it, and always close it.

    Closing flushes the write-behind buffer, so a verify's ``last_used_at`` is saved too.
    """

    async def scoped() -> T:
        runtime = await open_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(scoped())
