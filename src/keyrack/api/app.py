"""``create_app(settings)``: the FastAPI application and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from keyrack._version import __version__
from keyrack.api import access, problems
from keyrack.api.middleware import GuardMiddleware
from keyrack.api.routers import (
    accounts,
    auth,
    health,
    identities,
    keys,
    limits,
    people,
    rbac,
    systemkeys,
    tenants,
    verify,
)
from keyrack.config import Settings
from keyrack.runtime import Runtime, open_runtime
from keyrack.schemas.common import Problem
from keyrack.schemas.verify import VerifyRequest, VerifyResponse

logger = logging.getLogger(__name__)

_DESCRIPTION = (
    "Issue, verify, rotate and revoke API keys for a multi-tenant platform. Management routes "
    "take a root key as `Authorization: Bearer krroot_…`; errors are RFC 9457 problem+json."
)


def _verify_openapi(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (VerifyRequest, VerifyResponse, Problem):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(generated.pop("$defs", {}))
        components[model.__name__] = generated

    def ref(name: str) -> dict[str, Any]:
        return {"schema": {"$ref": f"#/components/schemas/{name}"}}

    schema["paths"]["/v1/verify"] = {
        "post": {
            "tags": ["verify"],
            "summary": "Verify an API key",
            "description": (
                "Always 200 for an answer about the key (`valid`, `code`); 401/403 only for the "
                "caller's own root key, which needs `keys.verify`."
            ),
            "operationId": "verify_key",
            "security": [{"HTTPBearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": ref("VerifyRequest")},
            },
            "responses": {
                "200": {
                    "description": "The verify answer",
                    "content": {"application/json": ref("VerifyResponse")},
                },
                "401": {
                    "description": "Missing or invalid root key",
                    "content": {"application/problem+json": ref("Problem")},
                },
                "403": {
                    "description": "Root key lacks keys.verify",
                    "content": {"application/problem+json": ref("Problem")},
                },
                "422": {
                    "description": "Invalid body",
                    "content": {"application/problem+json": ref("Problem")},
                },
            },
        }
    }


class KeyrackAPI(FastAPI):
    """FastAPI plus *fast routes*: hot ASGI endpoints served before the framework's stack.

    ``fast_routes`` maps a path to ``(method, endpoint)``. A request for one of those paths
    goes through ``GuardMiddleware`` (request id, size limits) straight to the endpoint, which
    must answer every outcome itself (errors as problem+json). Every other request takes the
    normal FastAPI path.
    """

    def __init__(self, **kwargs: Any) -> None:  # FastAPI's own keyword arguments
        super().__init__(**kwargs)
        self.fast_routes: dict[str, tuple[str, ASGIApp]] = {}
        self._fast = GuardMiddleware(self._dispatch_fast)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a fast route, or hand the request to FastAPI."""
        if scope["type"] == "http" and scope["path"] in self.fast_routes:
            scope["app"] = self
            await self._fast(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _dispatch_fast(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, endpoint = self.fast_routes[scope["path"]]
        request_id = scope.get("state", {}).get("request_id")
        if scope["method"] != method:
            response = problems.problem(
                405,
                code="route.method_not_allowed",
                detail="Method Not Allowed",
                request_id=request_id,
                headers={"Allow": method},
            )
            await response(scope, receive, send)
            return
        try:
            await endpoint(scope, receive, send)
        except Exception:  # the framework's error middleware is bypassed: answer like it would
            logger.exception("request.unexpected_error")
            await problems.internal_error(request_id)(scope, receive, send)


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> KeyrackAPI:
    """Build the application. Nothing connects until the lifespan starts.

    Args:
        settings: The process settings.
        runtime: Services built by the caller (tests, embedding); the caller then owns
            their lifetime. By default the lifespan opens and closes its own.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        rt = (
            runtime
            if runtime is not None
            else await open_runtime(settings, run_migrations=settings.migrate_on_start)
        )
        app.state.runtime = rt
        rt.start_background()
        if rt.secrets_from_file:
            logger.warning(
                "secrets.from_file",
                extra={
                    "path": str(settings.secrets_file),
                    "advice": "in production, hold KEYRACK_PEPPERS and KEYRACK_MASTER_KEYS "
                    "in a secret store and pass them as environment variables",
                },
            )
        logger.info("server.started")
        try:
            yield
        finally:
            if owned:
                await rt.close()

    app = KeyrackAPI(
        title="keyrack",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry hooks cost 15-25% of a request and would record
        # exception messages; keyrack logs what it needs itself.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    if runtime is not None:
        app.state.runtime = runtime
    problems.install(app)
    app.add_middleware(GuardMiddleware)
    app.fast_routes[verify.PATH] = ("POST", verify.verify)
    routers = (
        health.router,
        tenants.router,
        keys.router,
        limits.router,
        accounts.router,
        identities.router,
        rbac.router,
        auth.router,
        people.router,
        systemkeys.router,
    )
    for router in routers:
        app.include_router(router, dependencies=[Depends(access.enforce)])
    access.check_routes(
        [
            *access.served_routes(
                [
                    route
                    for router in routers
                    for route in router.routes
                    if isinstance(route, APIRoute)
                ]
            ),
            ("POST", verify.PATH),
        ]
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _verify_openapi(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def create_app_from_env() -> KeyrackAPI:
    """The factory ``keyrack serve`` hands to uvicorn: settings from ``KEYRACK_*``."""
    from keyrack.logging import configure  # noqa: PLC0415  # only entrypoints configure logging

    settings = Settings()
    configure(settings)
    return create_app(settings)
