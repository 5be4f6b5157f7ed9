"""The six task routes: parse, call the service, shape the HTTP response."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response, status
from pydantic import BeforeValidator, WithJsonSchema

from api.deps import Transaction
from api.edge.errors import RETRY_AFTER_HEADER, documented_header, documented_problem
from api.tasks import service
from api.tasks.etags import EntityTags, etag
from api.tasks.models import BIGINT_MAX, TaskCompletion, TaskCreate, TaskRead, TaskUpdate
from api.tasks.queries import ListQuery
from api.tasks.representation import Task, task_json, tasks_json

COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: documented_problem("Malformed JSON body"),
    401: documented_problem(
        "Missing, malformed, expired or badly signed token",
        {
            "WWW-Authenticate": documented_header(
                '`Bearer realm="taskapi"`, with `error` and `error_description` for a bad token'
            )
        },
    ),
    403: documented_problem("The token belongs to another user than the one in the path"),
    413: documented_problem("The request body is larger than the server accepts"),
    422: documented_problem("Invalid fields; `errors` names each one"),
    429: documented_problem("Too many requests from this user; retry after `Retry-After` seconds", RETRY_AFTER_HEADER),
    503: documented_problem("The database is unavailable; retry after `Retry-After` seconds", RETRY_AFTER_HEADER),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented_problem("No such task, or it belongs to someone else")}
JSON_BODY: dict[int | str, dict[str, Any]] = {415: documented_problem("A body was sent that is not `application/json`")}
BAD_PRECONDITION: dict[int | str, dict[str, Any]] = {
    412: documented_problem("`If-Match` names a version that is no longer current; GET the task and retry")
}
ETAG_HEADER = {"ETag": documented_header('The task\'s version, quoted (`"3"`): send it back in `If-Match`')}

JSON = "application/json"

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=COMMON_ERRORS)


def plain_digits(value: object) -> object:
    """Python's int() also takes "1_0", " 10", "+10" and other scripts' digits: a path is not code."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a positive integer written in plain digits")
    return value


TaskId = Annotated[
    int,
    Path(ge=1, le=BIGINT_MAX, description="The task's id.", examples=[42]),
    BeforeValidator(plain_digits),
]
IF_MATCH = (
    'Change only if the task is still at this version (its `ETag`, e.g. `"3"`), else 412. '
    "A value naming none of the task's versions (weak, malformed) never matches."
)
IF_NONE_MATCH = "Answer 304 Not Modified, without a body, if the task is still at this version."
IDEMPOTENCY_KEY = (
    "A unique key per intended creation (e.g. a UUID). Retrying with the same key and body "
    "replays the first answer and creates nothing; the same key with another body is a 422. "
    "Keys are per user and remembered for IDEMPOTENCY_KEY_TTL_SECONDS (default 24 h)."
)
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"


def _optional_header_schema(title: str, description: str, example: str, **constraints: Any) -> WithJsonSchema:
    """An optional header is absent or a string, never null: its published schema says so."""
    schema = {"type": "string", **constraints, "description": description, "examples": [example], "title": title}
    return WithJsonSchema(schema)


IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", max_length=1024, description=IF_MATCH, examples=['"3"']),
    _optional_header_schema("If-Match", IF_MATCH, '"3"', maxLength=1024),
]
IfNoneMatch = Annotated[
    str | None,
    Header(alias="If-None-Match", max_length=1024, description=IF_NONE_MATCH, examples=['"3"']),
    _optional_header_schema("If-None-Match", IF_NONE_MATCH, '"3"', maxLength=1024),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=IDEMPOTENCY_KEY,
        examples=["5f0c8f1e-3b7a-4d2c-9a51-2f8e6c1d0b47"],
    ),
    _optional_header_schema(
        "Idempotency-Key",
        IDEMPOTENCY_KEY,
        "5f0c8f1e-3b7a-4d2c-9a51-2f8e6c1d0b47",
        maxLength=255,
        minLength=1,
        pattern=IDEMPOTENCY_KEY_PATTERN,
    ),
]


def if_match_tags(field: str | None) -> EntityTags | None:
    return EntityTags.parse(field) if field is not None else None


def _task_response(task: Task, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The task as JSON, with its version as the ETag."""
    headers = {"ETag": etag(task["version"]), **(headers or {})}
    return Response(task_json(task), status_code=status_code, headers=headers, media_type=JSON)


def _task_location(task: Task) -> str:
    return f"/api/{quote(task['user_id'], safe='')}/tasks/{task['id']}"


@router.get(
    "",
    operation_id="listTasks",
    summary="List the caller's tasks",
    response_model=list[TaskRead],
    responses={
        200: {
            "description": 'A page of tasks; `Link: <...>; rel="next"` when more exist.',
            "headers": {"Link": documented_header("RFC 8288 link to the next page")},
        }
    },
)
async def list_tasks(tx: Transaction, request: Request, query: Annotated[ListQuery, Query()]) -> Response:
    page = await service.list_tasks(tx, query=query, search_timeout_ms=tx.settings.db_search_timeout_ms)
    headers = {}
    if page.next_cursor is not None:
        headers["Link"] = f'<{next_page_link(request, page.next_cursor.encode())}>; rel="next"'
    return Response(tasks_json(page.tasks), headers=headers, media_type=JSON)


def next_page_link(request: Request, cursor: str) -> str:
    """The next page's URL, relative (RFC 8288 resolves it against the request's URL): built
    from the client's own query, never from the `Host` header, which anyone can set."""
    query = request.url.include_query_params(cursor=cursor).query
    return f"{quote(request.scope['path'])}?{query}"


@router.post(
    "",
    operation_id="createTask",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskRead,
    responses={
        201: {
            "description": "Created; or, for a repeated `Idempotency-Key`, the first answer replayed.",
            "headers": {
                "Location": documented_header("The new task's URL"),
                **ETAG_HEADER,
                "Idempotent-Replayed": documented_header("`true` when this answer is a replay"),
            },
        },
        409: documented_problem("A request with this `Idempotency-Key` is still in progress; retry shortly"),
        **JSON_BODY,
    },
)
async def create_task(tx: Transaction, data: TaskCreate, idempotency_key: IdempotencyKey = None) -> Response:
    replayed = False
    if idempotency_key is None:
        task = await service.create_task(tx, data=data)
    else:
        ttl = tx.settings.idempotency_key_ttl_seconds
        task, replayed = await service.create_task_once(tx, key=idempotency_key, data=data, ttl_seconds=ttl)
    headers = {"Location": _task_location(task)} | ({"Idempotent-Replayed": "true"} if replayed else {})
    return _task_response(task, status_code=status.HTTP_201_CREATED, headers=headers)


@router.get(
    "/{task_id}",
    operation_id="getTask",
    summary="Get a task",
    response_model=TaskRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "`If-None-Match` names the current version: no body", "headers": ETAG_HEADER},
        **NOT_FOUND,
    },
)
async def get_task(tx: Transaction, task_id: TaskId, if_none_match: IfNoneMatch = None) -> Response:
    task = await service.get_task(tx, task_id=task_id)
    if if_none_match is not None and EntityTags.parse(if_none_match).matches_weakly(task["version"]):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(task["version"])})
    return _task_response(task)


@router.put(
    "/{task_id}",
    operation_id="updateTask",
    summary="Update a task",
    response_model=TaskRead,
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND, **JSON_BODY, **BAD_PRECONDITION},
)
async def update_task(tx: Transaction, task_id: TaskId, data: TaskUpdate, if_match: IfMatch = None) -> Response:
    task = await service.update_task(tx, task_id=task_id, data=data, if_match=if_match_tags(if_match))
    return _task_response(task)


@router.delete(
    "/{task_id}",
    operation_id="deleteTask",
    summary="Delete a task",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={204: {"description": "Deleted"}, **NOT_FOUND, **BAD_PRECONDITION},
)
async def delete_task(tx: Transaction, task_id: TaskId, if_match: IfMatch = None) -> Response:
    await service.delete_task(tx, task_id=task_id, if_match=if_match_tags(if_match))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch(
    "/{task_id}/complete",
    operation_id="completeTask",
    summary="Set or toggle completion",
    description='With a body `{"completed": bool}` sets it (idempotent); with none, toggles.',
    response_model=TaskRead,
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND, **JSON_BODY, **BAD_PRECONDITION},
)
async def complete_task(
    tx: Transaction,
    task_id: TaskId,
    body: Annotated[TaskCompletion | None, Body()] = None,
    if_match: IfMatch = None,
) -> Response:
    completed = body.completed if body is not None else None
    task = await service.set_completion(tx, task_id=task_id, completed=completed, if_match=if_match_tags(if_match))
    return _task_response(task)
