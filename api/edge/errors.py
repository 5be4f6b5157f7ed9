"""Typed errors and the one place that renders every error as RFC 9457 problem details."""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import errors as pg_errors
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.database.errors import Failure, classify
from api.database.pool import PoolTimeout
from api.edge.metrics import TOO_MANY_REQUESTS, UNAVAILABLE

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """An expected failure with an HTTP status; `detail` is safe to show to the client."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class Unauthorized(AppError):
    status = HTTPStatus.UNAUTHORIZED

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        # RFC 6750 section 3: no error code when the request carried no credentials at all.
        challenge = 'Bearer realm="taskapi"'
        if error:
            challenge += f', error="{error}", error_description="{detail}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(AppError):
    status = HTTPStatus.FORBIDDEN


class NotFound(AppError):
    status = HTTPStatus.NOT_FOUND


class Conflict(AppError):
    status = HTTPStatus.CONFLICT


class PreconditionFailed(AppError):
    status = HTTPStatus.PRECONDITION_FAILED


class Unprocessable(AppError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(self, detail: str, *, field: list[str] | None = None, code: str = "invalid") -> None:
        super().__init__(detail)
        # A field the database refused, named as a validation error would name it.
        self.errors = None if field is None else [{"loc": field, "msg": detail, "type": code}]


class TooManyRequests(AppError):
    status = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, detail: str, *, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers)
        self.reason = reason  # for the metrics: rate_limit or database_share


class ServiceUnavailable(AppError):
    status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, detail: str, *, cause: str, retry_after_seconds: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})
        self.cause = cause  # for the metrics: what the service could not reach or finish


class FieldError(BaseModel):
    """One invalid field of a 422: where it is, what is wrong, and a machine-readable code."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "loc": ["body", "title"],
                    "msg": "String should have at most 200 characters",
                    "type": "string_too_long",
                }
            ]
        }
    )

    loc: list[str | int] = Field(examples=[["body", "title"]])
    msg: str = Field(examples=["String should have at most 200 characters"])
    type: str = Field(examples=["string_too_long"])


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "task 42 not found"},
                {
                    "type": "about:blank",
                    "title": "Unprocessable Entity",
                    "status": 422,
                    "detail": "the request has invalid fields",
                    "errors": [
                        {
                            "loc": ["body", "title"],
                            "msg": "String should have at most 200 characters",
                            "type": "string_too_long",
                        }
                    ],
                },
            ]
        }
    )

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["task 42 not found"])
    errors: list[FieldError] | None = Field(
        default=None, description="Present on validation errors: one entry per bad field."
    )


def documented_header(description: str, schema_type: str = "string") -> dict[str, Any]:
    """A response header as the OpenAPI document describes it."""
    return {"description": description, "schema": {"type": schema_type}}


RETRY_AFTER_HEADER = {"Retry-After": documented_header("Seconds to wait before retrying", "integer")}


def documented_problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error response for the OpenAPI document: problem details, with these headers."""
    schema = {"$ref": "#/components/schemas/Problem"}  # `model` below registers it
    documented = {"description": description, "model": Problem, "content": {PROBLEM_JSON: {"schema": schema}}}
    return {**documented, "headers": headers} if headers else documented


def problem_response(
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _render(error: AppError) -> JSONResponse:
    if isinstance(error, ServiceUnavailable):
        UNAVAILABLE.labels(error.cause).inc()
    elif isinstance(error, TooManyRequests):
        TOO_MANY_REQUESTS.labels(error.reason).inc()
    errors = error.errors if isinstance(error, Unprocessable) else None
    return problem_response(error.status, error.detail, headers=error.headers, errors=errors)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: never echo the rejected input back.
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in jsonable_encoder(exc.errors())
    ]


def _is_malformed_json(exc: RequestValidationError) -> bool:
    return any(error.get("type") == "json_invalid" for error in exc.errors())


def _database_failure(exc: BaseException) -> JSONResponse:
    """A database failure as its answer; a bug is raised on, for the edge to answer (api/edge/middleware.py)."""
    failure = classify(exc)
    if failure is Failure.BAD_VALUE:
        return problem_response(422, "a value is outside what a task can hold")
    if failure is Failure.POOL_TIMEOUT:
        return _render(ServiceUnavailable("the server is busy, retry shortly", cause=failure))
    if failure is Failure.BUG:
        raise exc
    return _render(ServiceUnavailable("the database is unavailable, retry shortly", cause=failure))


_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route fully matches for this path (asked through the public matches())."""
    return [
        method
        for method in _HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes
        )
    ]


def error_answer(exc: Exception) -> JSONResponse:
    """The answer to a failure a route raised: what the handlers below answer, for a request
    answered outside FastAPI's routing (api/tasks/hot_reads.py). A bug is raised on."""
    if isinstance(exc, AppError):
        return _render(exc)
    if isinstance(exc, pg_errors.Error | PoolTimeout):
        return _database_failure(exc)
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> JSONResponse:
        return _render(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        if _is_malformed_json(exc):
            return problem_response(400, "the request body is not valid JSON")
        return problem_response(422, "the request has invalid fields", errors=_field_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers or {})
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            # Starlette names only the first route matching the path; Allow must name them all.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(exc.status_code, detail, headers=headers)

    @app.exception_handler(pg_errors.Error)
    @app.exception_handler(PoolTimeout)
    async def database_failure(_: Request, exc: Exception) -> JSONResponse:
        return _database_failure(exc)
