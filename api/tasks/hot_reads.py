"""The two hottest routes, `listTasks` and `getTask`, answered without FastAPI's routing.

FastAPI's own work for a request (its middleware layers, route matching, dependency solving,
parameter validation and wrapped sends) was about 30% of a read's server CPU (profiled, see
docs/benchmarks.md). So the edge hands a well-formed `GET` of these two routes here, and this
answers it with the very functions FastAPI would have called: the same `ListQuery` model checks
the query, `api/deps.transaction` checks the token, the path and the rate limit, the route
functions in `api/tasks/router.py` build the answer, and `error_answer` renders a failure as
the exception handlers do. Nothing about the answer is decided here.

What this decides is only whether a request is well-formed in the plain way: the path's user
id and task id, the query, and the `If-None-Match` header, each checked by the route's own
type (`PathUserId`, `TaskId`, `ListQuery`, `IfNoneMatch`). Anything else, or anything FastAPI
would refuse with a 422, is not answered here: the edge passes it to FastAPI, which answers it
as always. That is decided before anything is done, so a request is never answered twice.
`tests/api/test_hot_reads.py` sends the same requests both ways and compares the answers.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Any, get_origin
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.common.http import IfNoneMatch
from api.deps import PathUserId, transaction
from api.edge.errors import error_answer
from api.tasks import router as tasks
from api.tasks.queries import ListQuery

_PATH = re.compile(r"/api/([^/]+)/tasks(?:/([^/]+))?")
_IF_NONE_MATCH = b"if-none-match"
# The routes' own parameter types, so the lane accepts exactly what FastAPI would.
_USER_ID: TypeAdapter[str] = TypeAdapter(PathUserId)
_TASK_ID: TypeAdapter[int] = TypeAdapter(tasks.TaskId)
_IF_NONE_MATCH_VALUE: TypeAdapter[str | None] = TypeAdapter(IfNoneMatch)
# Query parameters FastAPI collects with getlist(); every other one takes the last value given.
_REPEATABLE = {name for name, field in ListQuery.model_fields.items() if get_origin(field.annotation) is list}
_SINGLE = ListQuery.model_fields.keys() - _REPEATABLE

Answer = Callable[[Scope, Receive, Send], Awaitable[None]]
Endpoint = Callable[[Request], Awaitable[Response]]


class HotReads:
    """Finds, for a request, the answer these routes give it, or None to leave it to FastAPI."""

    def __init__(self) -> None:
        # The routes as FastAPI records them in the scope: their templates name the log line.
        self._routes = {route.name: route for route in tasks.router.routes if isinstance(route, APIRoute)}

    def answer_for(self, scope: Scope) -> Answer | None:
        if scope["method"] != "GET" or scope.get("root_path"):
            return None
        match = _PATH.fullmatch(scope["path"])
        if match is None:
            return None
        user_id, task_id = match.groups()
        try:
            user_id = _USER_ID.validate_python(user_id)
            if task_id is None:
                query = ListQuery.model_validate(_list_query_values(scope["query_string"]))
                return self._answer("list_tasks", _list(user_id, query))
            task = _TASK_ID.validate_python(task_id)
            if_none_match = _IF_NONE_MATCH_VALUE.validate_python(_single_if_none_match(scope["headers"]))
        except (ValidationError, _Repeated):
            return None
        return self._answer("get_task", _get(user_id, task, if_none_match))

    def _answer(self, name: str, endpoint: Endpoint) -> Answer:
        route = self._routes[name]

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            scope["route"] = route  # the template, for the request's log line and metrics
            request = Request(scope, receive)
            try:
                response = await endpoint(request)
            except Exception as exc:
                response = error_answer(exc)  # a bug is raised on, for the edge's 500
            await response(scope, receive, send)

        return answer


def _list(user_id: str, query: ListQuery) -> Endpoint:
    async def list_tasks(request: Request) -> Response:
        return await tasks.list_tasks(await transaction(request, user_id), request, query)

    return list_tasks


def _get(user_id: str, task_id: int, if_none_match: str | None) -> Endpoint:
    async def get_task(request: Request) -> Response:
        return await tasks.get_task(await transaction(request, user_id), task_id, if_none_match)

    return get_task


class _Repeated(Exception):
    """A header given more than once: FastAPI decides which one counts."""


def _list_query_values(query_string: bytes) -> dict[str, Any]:
    """The query as FastAPI reads it (Starlette's `QueryParams` parses it so): the last value of a
    parameter, or all of a repeatable one, in order. Only the parameters given are looked at."""
    values: dict[str, Any] = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in _REPEATABLE:
            values.setdefault(name, []).append(value)
        elif name in _SINGLE:
            values[name] = value
    return values


def _single_if_none_match(headers: list[tuple[bytes, bytes]]) -> str | None:
    values = [value for name, value in headers if name == _IF_NONE_MATCH]
    if len(values) > 1:
        raise _Repeated
    return values[0].decode("latin-1") if values else None
