"""RFC 9457 problem+json rendering: the ONLY place HTTP status codes are chosen for errors."""

from __future__ import annotations

import logging
from typing import Final

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from keyrack import errors

logger = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"

STATUS: Final[dict[type[errors.KeyrackError], int]] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.AuthenticationFailed: 401,
    errors.PermissionDenied: 403,
    errors.InvalidInput: 422,
    errors.PermissionQuerySyntax: 400,
    errors.Gone: 410,
    errors.TooManyAttempts: 429,
    errors.SecretUnreadable: 500,
    errors.BackendUnavailable: 503,
    errors.ConfigurationError: 500,
}

_TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_of(error: errors.KeyrackError) -> int:
    """The HTTP status of a keyrack error (most specific class in ``STATUS`` wins)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(
    status: int,
    *,
    code: str,
    detail: str,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> Response:
    """Render a problem+json response."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
        **extra,
    }
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def request_id_of(request: Request) -> str | None:
    """The id the request-id middleware assigned."""
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def from_error(error: errors.KeyrackError, request_id: str | None) -> Response:
    """Render a keyrack error; its message is public-safe by contract."""
    status = status_of(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    retry_after = error.details.get("retry_after")
    if status == 429 and isinstance(retry_after, int):
        headers = {"Retry-After": str(retry_after)}
    extra = {k: v for k, v in error.details.items() if isinstance(v, str | int | bool | list)}
    return problem(
        status,
        code=error.code,
        detail=error.message,
        request_id=request_id,
        headers=headers,
        **extra,
    )


def invalid_request(
    exc: RequestValidationError | ValidationError, request_id: str | None, *, detail: str
) -> Response:
    """A 422 listing pydantic's errors without the offending input (it may be a secret)."""
    found = [
        {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    return problem(422, code="request.invalid", detail=detail, request_id=request_id, errors=found)


def internal_error(request_id: str | None) -> Response:
    """The answer to an unexpected exception (already logged by the caller)."""
    return problem(
        500,
        code="internal",
        detail="an unexpected error occurred; it has been logged",
        request_id=request_id,
    )


async def _keyrack_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.KeyrackError)  # noqa: S101  # registered for this class only
    if status_of(exc) >= 500:
        logger.error("request.failed", extra={"code": exc.code}, exc_info=exc)
    return from_error(exc, request_id_of(request))


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101  # registered for this class only
    return invalid_request(
        exc,
        request_id_of(request),
        detail="the request body or parameters are invalid; see 'errors'",
    )


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101  # registered for this class only
    code = {
        404: "route.not_found",
        405: "route.method_not_allowed",
        413: "request.body_too_large",
    }.get(exc.status_code, "http.error")
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
    return problem(exc.status_code, code=code, detail=detail, request_id=request_id_of(request))


async def _unexpected_handler(request: Request, exc: Exception) -> Response:
    logger.error("request.unexpected_error", exc_info=exc)
    return internal_error(request_id_of(request))


def install(app: FastAPI) -> None:
    """Register the problem handlers on ``app``."""
    app.add_exception_handler(errors.KeyrackError, _keyrack_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
