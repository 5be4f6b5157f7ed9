"""Request logs: one line per request, JSON for machines or plain text in a terminal.

Each line has the method, the route template (never the raw path, which holds user ids), the
status, the duration, a request id echoed as `X-Request-ID`, the user id hashed, and the
client's address. Tokens, bodies and query strings are never logged.
"""

import hashlib
import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_logger = logging.getLogger("api.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({})))


def hash_user_id(user_id: str) -> str:
    """Enough to correlate one user's requests; not the id itself."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


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


def configure_logging(log_format: str) -> None:
    """JSON lines unless `text` is asked for, or `auto` and the output is a terminal.

    Adds one handler to the root logger, once per process (each server worker calls this).
    """
    root = logging.getLogger()
    if any(getattr(handler, "taskapi", False) for handler in root.handlers):
        return
    as_text = log_format == "text" or (log_format == "auto" and sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.taskapi = True  # type: ignore[attr-defined]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s") if as_text else JsonFormatter()
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # replaced by api.requests
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # the embedded server's chatter


class RequestLog:
    """Assigns the request id, echoes it, and logs the request when the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            user_id = state.get("user_id")
            request_logger.info(
                "%s %s %s",
                scope["method"],
                getattr(route, "path", "unmatched"),
                status,
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": getattr(route, "path", None),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user": hash_user_id(user_id) if user_id else None,
                    # The peer, or what X-Forwarded-For says if the peer is in FORWARDED_ALLOW_IPS.
                    "client": scope["client"][0] if scope.get("client") else None,
                },
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SAFE_REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex
