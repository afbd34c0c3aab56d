"""ASGI apps that ``bench/http_verify.py`` serves with uvicorn in a subprocess.

- ``create``: the real keyrack app (``create_app`` with settings from ``KEYRACK_*``, logging set
  up as ``keyrack serve`` does) plus two no-ops that read the body and answer a small orjson
  JSON object:

  - ``POST /bench/noop`` is served exactly as ``/v1/verify`` is: a *fast route* of
    ``KeyrackAPI`` (behind the request guard only, see ``keyrack.api.app``). This is the
    reference of the ratio: the same server stack, the same position, minus the verify.
  - ``POST /bench/noop-route`` is an ordinary Starlette route placed first in FastAPI's router:
    what any route of the app costs, printed for context.
- ``raw_app``: a bare ASGI callable that reads the body and answers the same small JSON: the
  floor of what uvicorn itself costs, printed for context.
"""

from __future__ import annotations

from typing import Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from keyrack.api.app import KeyrackAPI, create_app
from keyrack.config import Settings
from keyrack.logging import configure

NOOP_PATH: Final = "/bench/noop"
NOOP_LAST_PATH: Final = "/bench/noop-route"
VERIFY_PATH: Final = "/v1/verify"
_NOOP_BODY: Final = orjson.dumps({"valid": False, "code": "NOOP"})
_RAW_HEADERS: Final = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_NOOP_BODY)).encode()),
]


async def noop(request: Request) -> Response:
    """Read the body and answer a small JSON object: verify's route minus the verify."""
    await request.body()
    return Response(orjson.dumps({"valid": False, "code": "NOOP"}), media_type="application/json")


async def noop_fast(_scope: Scope, receive: Receive, send: Send) -> None:
    """Read the body and answer the same small JSON: served exactly as verify is."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _RAW_HEADERS})
    await send({"type": "http.response.body", "body": _NOOP_BODY})


def add_noop_routes(app: KeyrackAPI) -> None:
    """Add ``/bench/noop`` as a fast route (like verify) and ``/bench/noop-route`` as a route."""
    app.fast_routes[NOOP_PATH] = ("POST", noop_fast)
    app.add_route(NOOP_LAST_PATH, noop, methods=["POST"])
    app.router.routes.insert(0, app.router.routes.pop())


def create() -> KeyrackAPI:
    """The real app plus the no-op routes (``uvicorn --factory _server:create``)."""
    settings = Settings()
    configure(settings)
    app = create_app(settings)
    add_noop_routes(app)
    return app


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI no-op: read the body, answer the same small JSON."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _RAW_HEADERS})
    await send({"type": "http.response.body", "body": _NOOP_BODY})
