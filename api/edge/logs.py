"""Logs: one line per request, and every line written during a request carries its request id.

The request line has the method, the route template (never the raw path, which holds user
ids), the status, the duration, the request id (echoed as `X-Request-ID`), the user id hashed,
and the client's address. Tokens, bodies and query strings are never logged. JSON for
machines, or plain text in a terminal.
"""

import hashlib
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from api.edge.middleware import HttpMiddleware, on_response_start

request_logger = logging.getLogger("api.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({})))


@dataclass
class RequestContext:
    """What a log line needs to know about the request it was written in."""

    request_id: str
    user_id: str | None = None  # set once the caller is known


_current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def identify_user(user_id: str) -> None:
    """Record the caller for the request's log lines (the id is hashed before it is written)."""
    context = _current.get()
    if context is not None:
        context.user_id = user_id


def hash_user_id(user_id: str) -> str:
    """Enough to correlate one user's requests; not the id itself."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


class _StampRequestIds:
    """A LogRecord factory that stamps every record written during a request with its id, so
    an error line (from any logger, to any handler) leads back to the request."""

    def __init__(self, factory: Callable[..., logging.LogRecord]) -> None:
        self.factory = factory

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.factory(*args, **kwargs)
        context = _current.get()
        if context is not None:
            record.request_id = context.request_id
        return record


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: value for key, value in vars(record).items() if key not in _STANDARD_RECORD_FIELDS})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [request {request_id}]" if request_id else text


class _TaskapiHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """The one handler configure_logging installs (its class marks it as ours)."""


def configure_logging(log_format: str) -> None:
    """JSON lines unless `text` is asked for, or `auto` and the output is a terminal.

    Adds one handler to the root logger, once per process (each server worker calls this).
    """
    root = logging.getLogger()
    if any(isinstance(handler, _TaskapiHandler) for handler in root.handlers):
        return
    as_text = log_format == "text" or (log_format == "auto" and sys.stderr.isatty())
    if not isinstance(logging.getLogRecordFactory(), _StampRequestIds):
        logging.setLogRecordFactory(_StampRequestIds(logging.getLogRecordFactory()))
    handler = _TaskapiHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if as_text else JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # replaced by api.requests
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # the embedded server's chatter


class RequestLog(HttpMiddleware):
    """Assigns the request id, echoes it, and logs the request once it is answered."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        context = RequestContext(request_id=_request_id(scope))
        token = _current.set(context)
        status = 500

        def note_status(message: Message) -> None:
            nonlocal status
            status = message["status"]
            MutableHeaders(scope=message)[REQUEST_ID_HEADER] = context.request_id

        try:
            await self.app(scope, receive, on_response_start(send, note_status))
        finally:
            route = getattr(scope.get("route"), "path", None)
            request_logger.info(
                "%s %s %s",
                scope["method"],
                route or "unmatched",
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user": hash_user_id(context.user_id) if context.user_id else None,
                    # The peer, or what X-Forwarded-For says if the peer is in FORWARDED_ALLOW_IPS.
                    "client": scope["client"][0] if scope.get("client") else None,
                },
            )
            _current.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SAFE_REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex
