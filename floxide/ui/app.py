"""The dashboard application: its options, the Redis client's lifetime, routes and error answers.

::

    app = create_app(UiOptions(redis=RedisSettings(url="redis://localhost:6379/0")))
    uvicorn.run(app, host="127.0.0.1", port=8080)

The Redis client is made when the application starts (not when this module is imported) and
closed when it stops. Errors become JSON answers with a ``detail`` line: 404 for an unknown
run or node, 403 for an action on a read-only dashboard, 409 for an action the run's status
refuses, 503 while Redis is unavailable.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from floxide.errors import FloxideError, NotStarted
from floxide.redis import RedisSettings
from floxide.redis.index import UNAVAILABLE
from floxide.run_picture import GraphvizMissing
from floxide.ui import api, events, pages
from floxide.ui.data import Dashboard
from floxide.ui.hub import Hub

__all__ = ["UiOptions", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"


class UiOptions(BaseModel):
    """How the dashboard runs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    redis: RedisSettings = Field(description="How to reach Redis.")
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces shown; empty: every namespace found in Redis."
    )
    allow_actions: bool = Field(False, description="Allow pause, resume, cancel and retry (else read-only).")
    refresh: float = Field(1.0, gt=0, description="Seconds between two looks of a live page at Redis.")


def create_app(options: UiOptions) -> FastAPI:
    """The dashboard as an ASGI application."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = options.redis.client()
        app.state.dashboard = Dashboard(
            client, namespaces=options.namespaces, allow_actions=options.allow_actions
        )
        app.state.hub = Hub[list[tuple[str, str]]](options.refresh)
        try:
            yield
        finally:
            await app.state.hub.close()
            await client.aclose()

    app = FastAPI(
        title="Floxide dashboard",
        summary="Runs, their graphs and workers, read from Redis; actions when allowed.",
        version=_version(),
        lifespan=lifespan,
    )
    app.include_router(api.router)
    app.include_router(events.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    async def forbidden(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        message = " ".join(str(exc).split()) or type(exc).__name__
        return JSONResponse({"detail": f"Redis is unavailable: {message}"}, status_code=503)

    async def no_picture(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    app.add_exception_handler(NotStarted, not_found)
    app.add_exception_handler(GraphvizMissing, no_picture)
    app.add_exception_handler(PermissionError, forbidden)
    app.add_exception_handler(FloxideError, refused)
    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("floxide")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without installation
        return "0"
