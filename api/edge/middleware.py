"""The edge: limits and headers applied to every request before any route runs.

Pure ASGI middleware, so the body limit counts the bytes actually received (a lying or
absent `Content-Length` changes nothing) and rejects before the body is buffered. Each
middleware is an `HttpMiddleware`: it sees HTTP requests only, and edits a response's headers
through `on_response_start`.
"""

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.edge.errors import problem_response

logger = logging.getLogger("api.edge")

JSON_MEDIA_TYPES = ("application/json",)
METHODS_WITH_JSON_BODIES = {"POST", "PUT", "PATCH"}

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The interactive docs load their scripts and styles; everything else is plain JSON.
JSON_ONLY_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")
# The demo page: its own scripts and styles only; it may call an API on any origin.
DEMO_PATH = "/demo"
DEMO_PAGE_CSP = (
    "default-src 'self'; connect-src 'self' http: https:; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Where a dependency leaves headers for whatever answer its request gets (see add_response_headers).
_ADDED_HEADERS = "added_response_headers"


class HttpMiddleware:
    """A pure ASGI middleware for HTTP requests; anything else (lifespan) passes straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


def on_response_start(send: Send, edit: Callable[[Message], None]) -> Send:
    """`send`, with `edit` applied to the message that starts the response (status, headers)."""

    async def edited(message: Message) -> None:
        if message["type"] == "http.response.start":
            edit(message)
        await send(message)

    return edited


def add_response_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Headers for whatever answer this request gets, an error included.

    A dependency (the rate limit, say) decides them before the route runs; the route may still
    fail. `ResponseHeaders` adds them to the response, success or problem details alike.
    """
    request.scope.setdefault("state", {}).setdefault(_ADDED_HEADERS, {}).update(headers)


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive`, so the app's own error handler renders it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes", headers={"Connection": "close"})


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


class RequestLimits(HttpMiddleware):
    """413 for bodies over `max_body_bytes`, 415 for bodies that are not JSON."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        super().__init__(app)
        self.max_body_bytes = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._reject(scope, receive, send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        has_body = declared not in (None, "0") or "transfer-encoding" in headers
        if scope["method"] in METHODS_WITH_JSON_BODIES and has_body and not _is_json(headers.get("content-type", "")):
            await self._reject(scope, receive, send, HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, status: HTTPStatus) -> None:
        detail = {
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE: f"the request body exceeds {self.max_body_bytes} bytes",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "send the body as application/json",
        }[status]
        headers = {"Connection": "close"} if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE else None
        await problem_response(status, detail, headers=headers)(scope, receive, send)


class ResponseHeaders(HttpMiddleware):
    """Headers fit for a JSON API on every answer (authenticated ones are never cached), and the
    headers dependencies left with `add_response_headers`."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        never_cache = path.startswith("/api/") or "authorization" in Headers(scope=scope)
        csp = DEMO_PAGE_CSP if path.startswith(DEMO_PATH) else None if path.startswith(DOCS_PATHS) else JSON_ONLY_CSP

        def add_headers(message: Message) -> None:
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                headers.setdefault(name, value)
            if csp:
                headers.setdefault("Content-Security-Policy", csp)
            if never_cache:
                headers["Cache-Control"] = "no-store"
            for name, value in scope.get("state", {}).get(_ADDED_HEADERS, {}).items():
                headers.setdefault(name, value)

        await self.app(scope, receive, on_response_start(send, add_headers))


class UnexpectedErrors(HttpMiddleware):
    """A bug's 500 as problem details: the one place an unexpected error is answered.

    Starlette answers an unhandled exception from its outermost layer, outside CORS, the
    security headers and the request id, so a browser could not even read that it failed.
    Installed innermost, this answers first, and every layer above still adds its headers.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response_started = False

        def note_start(_: Message) -> None:
            nonlocal response_started
            response_started = True

        try:
            await self.app(scope, receive, on_response_start(send, note_start))
        except Exception as exc:
            if response_started:
                raise  # too late for another answer; the server closes the connection
            logger.error("unhandled error", exc_info=exc)
            await problem_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")(scope, receive, send)
