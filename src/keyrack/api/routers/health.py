"""``/healthz`` (process up) and ``/readyz`` (database reachable)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from keyrack.api.deps import RuntimeDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(runtime: RuntimeDep) -> dict[str, str] | JSONResponse:
    """The database answers; 503 otherwise."""
    if await runtime.ping():
        return {"status": "ready"}
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
