"""The edge: everything applied to every request before any route runs, in one layer.

One pure-ASGI middleware (each layer costs a call and a wrapped `send` on every request):
- the request id, echoed as `X-Request-ID`, and the request's log line;
- CORS, when browser origins are configured: preflights are answered here, and every answer
  (a 413, a 429, a bug's 500 included) carries the CORS headers a browser needs to read it;
- headers fit for a JSON API on every answer (authenticated ones are never cached), and the
  headers a dependency left with `add_response_headers`;
- body limits: 413 over `max_body_bytes`, counted on the bytes received (a lying or absent
  `Content-Length` changes nothing), and 415 for a body that is not JSON;
- the one place a bug becomes a 500 problem, answered inside all of the above;
- the fast lane: a request a `fast_lane` claims (the hot reads, api/tasks/hot_reads.py) is
  answered by it, past FastAPI's routing, with all of the above still applied.
"""

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.edge.errors import problem_response
from api.edge.logs import begin_request, end_request, log_request
from api.edge.metrics import REQUESTS_IN_FLIGHT

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


def add_response_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Headers for whatever answer this request gets, an error included.

    A dependency (the rate limit, say) decides them before the route runs; the route may still
    fail. The edge adds them to the response, success or problem details alike.
    """
    request.scope.setdefault("state", {}).setdefault(_ADDED_HEADERS, {}).update(headers)


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive`, so the app's own error handler renders it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes", headers={"Connection": "close"})


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        cors: CORSMiddleware | None = None,
        fast_lane: Callable[[Scope], ASGIApp | None] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.cors = cors  # Starlette's CORS policy, used for its decisions only
        # For a request, the app that answers it past FastAPI's routing, or None (api/tasks/hot_reads.py).
        self.fast_lane = fast_lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context, token = begin_request(scope)
        REQUESTS_IN_FLIGHT.inc()
        headers = Headers(scope=scope)
        status = 500
        answering = _answer_headers(scope, headers, context.request_id)

        async def send_answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answering(message)
                if self.cors is not None and "origin" in headers:
                    await self.cors.send(message, send, headers)  # adds its headers, then sends
                    return
            await send(message)

        try:
            if self.cors is not None and _is_preflight(scope, headers):
                await self.cors.preflight_response(headers)(scope, receive, send_answer)
            elif (rejection := self._rejection(scope, headers)) is not None:
                await rejection(scope, receive, send_answer)
            else:
                await self._answer(scope, self._limited(receive), send_answer)
        finally:
            REQUESTS_IN_FLIGHT.dec()
            log_request(context, scope, status)
            end_request(token)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The fast lane's or the app's answer, or a 500 problem if it fails before it started one."""
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            fast = self.fast_lane(scope) if self.fast_lane is not None else None
            await (fast or self.app)(scope, receive, tracking_send)
        except Exception as exc:
            if response_started:
                raise  # too late for another answer; the server closes the connection
            logger.error("unhandled error", exc_info=exc)
            await problem_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")(scope, receive, send)

    def _rejection(self, scope: Scope, headers: Headers) -> ASGIApp | None:
        """413 for a declared body over the limit, 415 for a body that is not JSON."""
        declared = _first_header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            detail = f"the request body exceeds {self.max_body_bytes} bytes"
            return problem_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, detail, headers={"Connection": "close"})
        has_body = declared not in (None, "0") or "transfer-encoding" in headers
        if (
            scope["method"] in METHODS_WITH_JSON_BODIES
            and has_body
            and not _is_json(_first_header(scope, b"content-type") or "")
        ):
            return problem_response(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
        return None

    def _limited(self, receive: Receive) -> Receive:
        """`receive`, counting the body's bytes as they arrive."""
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return limited_receive


def _answer_headers(scope: Scope, headers: Headers, request_id: str) -> Callable[[Message], None]:
    """What every answer to this request gets: its id, the security headers, the added ones."""
    path: str = scope["path"]
    never_cache = path.startswith("/api/") or "authorization" in headers
    csp = DEMO_PAGE_CSP if path.startswith(DEMO_PATH) else None if path.startswith(DOCS_PATHS) else JSON_ONLY_CSP
    policy = [*_SECURITY_HEADERS_RAW, *([(b"content-security-policy", csp.encode())] if csp else [])]
    request_id_header = (b"x-request-id", request_id.encode())

    def add(message: Message) -> None:
        # Starlette's responses name their headers in lower case, as ASGI asks.
        answer: list[tuple[bytes, bytes]] = message.setdefault("headers", [])
        if never_cache:
            answer[:] = [header for header in answer if header[0] != b"cache-control"]
            answer.append((b"cache-control", b"no-store"))
        present = {name for name, _ in answer}
        answer.append(request_id_header)
        answer.extend(header for header in policy if header[0] not in present)
        added: dict[str, str] = scope.get("state", {}).get(_ADDED_HEADERS, {})
        answer.extend(
            (name.lower().encode(), value.encode())
            for name, value in added.items()
            if name.lower().encode() not in present
        )

    return add


_SECURITY_HEADERS_RAW = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


def _first_header(scope: Scope, name: bytes) -> str | None:
    """What `Headers.get` gives, without the KeyError it raises and catches for a missing header
    (most requests have no body headers; raising was about 2% of a short read's server CPU)."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _is_preflight(scope: Scope, headers: Headers) -> bool:
    return scope["method"] == "OPTIONS" and "access-control-request-method" in headers and "origin" in headers
