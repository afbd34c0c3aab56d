"""Log configuration, called only by entrypoints (the CLI and the server factory).

Library code logs with ``logging.getLogger(__name__)`` and event names (``key.revoked``) plus
``extra`` fields; this renders them through structlog as JSON lines (production) or console
lines (development). Secrets never reach a log call in the first place.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Final

import structlog

from keyrack.config import Settings

_STD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    # uvicorn's ANSI-coloured duplicate of the message has no place in a JSON line.
    | {"message", "asctime", "color_message"}
)


def _extras(_: object, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    record = event_dict.get("_record")
    if record is not None:
        for name, value in record.__dict__.items():
            if name not in _STD_ATTRS and not name.startswith("_"):
                event_dict.setdefault(name, value)
    return event_dict


def configure(settings: Settings) -> None:
    """Route stdlib logging through structlog's renderer at the configured level."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _extras,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
