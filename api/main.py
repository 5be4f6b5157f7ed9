"""The application factory: the app-wide services, the edge, the routes and error handling."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig
from starlette.types import Receive, Scope, Send

from api.config import Settings, get_settings
from api.deps import BEARER_SCHEME
from api.edge.errors import RETRY_AFTER_HEADER, ServiceUnavailable, documented_problem, install_error_handlers
from api.edge.logs import configure_logging
from api.edge.metrics import exposition
from api.edge.middleware import Edge
from api.lists.router import router as lists_router
from api.ops import migrations
from api.ops.preflight import check_database
from api.state import Services
from api.tasks.hot_reads import HotReads
from api.tasks.router import router as tasks_router

DEMO_PAGE_DIR = Path(__file__).resolve().parent.parent / "web"
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"]
CORS_EXPOSED_HEADERS = [
    "Location",
    "Link",
    "ETag",
    "Retry-After",
    "X-Request-ID",
    "Idempotent-Replayed",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "WWW-Authenticate",
]

DESCRIPTION = """
A per-user task list. Every route under `/api/{user_id}` needs `Authorization: Bearer <JWT>`
whose `sub` equals `{user_id}`. Which rows a caller can see is decided inside PostgreSQL by
row-level-security policies; errors are RFC 9457 problem details.
"""


NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None, *, answer_hot_reads: bool = True) -> FastAPI:
    """The app; `answer_hot_reads=False` leaves every request to FastAPI's routing (tests compare)."""
    settings = settings or get_settings()
    if settings.jwt_secret is None and settings.jwt_jwks_url is None:
        raise RuntimeError("set JWT_SECRET (at least 32 bytes), JWT_JWKS_URL, or both")
    services = Services.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            for database in services.databases:
                await check_database(database, expected_revision=migrations.head_revision())
            if services.jwks is not None:
                await services.jwks.start()
            yield
        finally:
            for database in services.databases:
                await database.stop()

    # No trailing-slash redirects: Starlette would build their Location from the Host header.
    app = FastAPI(
        title="Task API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
        # Metrics are Prometheus's and logs our JSON lines. FastAPI's OpenTelemetry hooks would
        # look up three global providers on every request, to find none configured.
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.services = services
    configure_logging(settings.log_format)
    fast_lane = HotReads().answer_for if answer_hot_reads else None
    app.add_middleware(Edge, max_body_bytes=settings.max_body_bytes, cors=_cors_policy(settings), fast_lane=fast_lane)
    install_error_handlers(app)
    app.include_router(tasks_router)
    app.include_router(lists_router)

    @app.get("/healthz", tags=["health"], operation_id="healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        operation_id="readyz",
        summary="Readiness: the database answers",
        response_model=dict[str, str],
        responses={503: documented_problem("The database is unreachable", RETRY_AFTER_HEADER)},
    )
    async def readyz() -> JSONResponse:
        try:
            async with services.primary.pool.connection() as connection:
                await connection.execute("select 1")
        except Exception:
            raise ServiceUnavailable(
                "the database is unreachable", cause="unreachable", retry_after_seconds=2
            ) from None
        return JSONResponse({"status": "ready"})

    if settings.metrics_enabled:

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            body, content_type = exposition()
            return Response(body, media_type=content_type)

    if settings.serves_demo_page:
        app.mount("/demo", StaticFiles(directory=DEMO_PAGE_DIR, html=True), name="demo")

    _document_bearer_scheme(app)
    return app


def _document_bearer_scheme(app: FastAPI) -> None:
    """Every task route needs a bearer token: the OpenAPI document says so (api/deps.py reads it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes[BEARER_SCHEME.scheme_name] = BEARER_SCHEME.model.model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
            for path, operations in document["paths"].items():
                if path.startswith("/api/"):
                    for operation in operations.values():
                        operation["security"] = [{BEARER_SCHEME.scheme_name: []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise it


def _cors_policy(settings: Settings) -> CORSMiddleware | None:
    """Starlette's CORS rules for the configured origins; the edge applies them to every answer."""
    if not settings.allowed_origins:
        return None
    return CORSMiddleware(
        _no_app,
        allow_origins=settings.allowed_origins,
        allow_credentials=False,  # bearer tokens, never cookies
        allow_methods=CORS_METHODS,
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=settings.cors_max_age_seconds,
    )


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the CORS policy only decides; it never calls an app")
