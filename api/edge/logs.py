"""Logs: one line per request, and every line written during a request carries its request id.

The request line has the method, the route template (never the raw path, which holds user
ids), the status, the duration, the request id (echoed as `X-Request-ID`), the user id hashed,
and the client's address. Tokens, bodies and query strings are never logged. JSON for
machines, or plain text in a terminal.
"""

import hashlib
import logging
import random
import re
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from typing import Any, cast

import orjson
from starlette.types import Scope

from api.edge.metrics import observe_request

request_logger = logging.getLogger("api.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STANDARD_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})))
_STANDARD_FIELD_COUNT = len(_STANDARD_RECORD_FIELDS)


@dataclass
class RequestContext:
    """What a log line needs to know about the request it was written in."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    user_id: str | None = None  # set once the caller is known


_current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def begin_request(scope: Scope) -> tuple[RequestContext, Any]:
    """The request's context, current until `end_request` (with the token this returns)."""
    context = RequestContext(request_id=_request_id(scope))
    return context, _current.set(context)


def end_request(token: Any) -> None:
    _current.reset(token)


def identify_user(user_id: str) -> None:
    """Record the caller for the request's log lines (the id is hashed before it is written)."""
    context = _current.get()
    if context is not None:
        context.user_id = user_id


def log_request(context: RequestContext, scope: Scope, status: int) -> None:
    """The request's one line, and its duration in the metrics."""
    route = getattr(scope.get("route"), "path", None)
    seconds = time.perf_counter() - context.started
    method = scope["method"]
    observe_request(method, route or "unmatched", status, seconds)
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "user": hash_user_id(context.user_id) if context.user_id else None,
        # The peer, or what X-Forwarded-For says if the peer is in FORWARDED_ALLOW_IPS.
        "client": scope["client"][0] if scope.get("client") else None,
    }
    handler = _sole_json_handler()
    if handler is None:
        request_logger.info("%s %s %s", method, route or "unmatched", status, extra=fields)
    else:
        handler.write_request_line(f"{method} {route or 'unmatched'} {status}", context.request_id, fields)


def _sole_json_handler() -> "_TaskapiHandler | None":
    """Our JSON handler, when a request line would reach it and nothing else.

    Then the line is written straight to it: the same JSON a record would become, without the
    record (making and handling records was about 8% of a short read's server CPU, profiled).
    Anything else configured (another handler, a filter, a level) takes the usual way.
    """
    if not request_logger.isEnabledFor(logging.INFO) or request_logger.filters:
        return None
    logger: logging.Logger | None = request_logger
    while logger is not None and logger.parent is not None:  # up to the root
        if logger.handlers or not logger.propagate:
            return None
        logger = logger.parent
    handlers = logging.root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if not isinstance(handler, _TaskapiHandler) or handler.filters or handler.level > logging.INFO:
        return None
    return handler if type(handler.formatter) is JsonFormatter else None


@lru_cache(maxsize=4096)
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
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._timestamp = ""

    def format(self, record: logging.LogRecord) -> str:
        # A record's own fields come first in its __dict__; what `extra` and the request context
        # added follows them.
        fields = {
            key: value
            for key, value in islice(record.__dict__.items(), _STANDARD_FIELD_COUNT, None)
            if key not in _STANDARD_RECORD_FIELDS
        }
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return self.line(record.created, record.levelname.lower(), record.name, record.getMessage(), fields)

    def line(self, created: float, level: str, logger: str, message: str, fields: dict[str, Any]) -> str:
        """One JSON line: when, how bad, whose, what, then the line's own fields."""
        line = {"time": self._time(created), "level": level, "logger": logger, "message": message, **fields}
        return orjson.dumps(line, default=str).decode()

    def _time(self, created: float) -> str:
        """The record's second, formatted once per second (a busy server logs many per second)."""
        second = int(created)
        if second != self._second:
            self._second, self._timestamp = second, time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(second))
        return self._timestamp


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [request {request_id}]" if request_id else text


class _TaskapiHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """The one handler configure_logging installs (its class marks it as ours)."""

    def write_request_line(self, message: str, request_id: str, fields: dict[str, Any]) -> None:
        """A request's line, as JsonFormatter would write its record (api.requests, info)."""
        formatter = cast(JsonFormatter, self.formatter)
        line = formatter.line(time.time(), "info", request_logger.name, message, {"request_id": request_id, **fields})
        text = line + self.terminator
        try:
            with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
                self.stream.write(text)
                self.flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"name": request_logger.name, "msg": message}))


def configure_logging(log_format: str) -> None:
    """JSON lines unless `text` is asked for, or `auto` and the output is a terminal.

    Adds one handler to the root logger, once per process (each server worker calls this).
    """
    root = logging.getLogger()
    if any(isinstance(handler, _TaskapiHandler) for handler in root.handlers):
        return
    # No line names its source file, thread or process: skip finding them for every record.
    logging._srcfile = None  # the documented switch (logging HOWTO, "Optimization")
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if not isinstance(logging.getLogRecordFactory(), _StampRequestIds):
        logging.setLogRecordFactory(_StampRequestIds(logging.getLogRecordFactory()))
    as_text = log_format == "text" or (log_format == "auto" and sys.stderr.isatty())
    handler = _TaskapiHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if as_text else JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # replaced by api.requests
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # the embedded server's chatter


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SAFE_REQUEST_ID.fullmatch(candidate):
                return candidate
    # 128 random bits name a request uniquely; they need not be secret, so not os.urandom's
    # system call per request. `random` is reseeded in every forked worker.
    return f"{random.getrandbits(128):032x}"
