"""The six task routes: parse, call the service, shape the HTTP response."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from pydantic import BeforeValidator

from api.common.etags import EntityTags, etag
from api.common.http import (
    BAD_PRECONDITION,
    COMMON_ERRORS,
    JSON,
    JSON_BODY,
    IdempotencyKey,
    IfMatch,
    IfNoneMatch,
    created_answer,
    created_headers,
    if_match_tags,
    page_answer,
    page_headers,
    plain_digits,
)
from api.common.representation import Task, task_json, tasks_json
from api.deps import Transaction
from api.edge.errors import documented_header, documented_problem
from api.tasks import service
from api.tasks.models import BIGINT_MAX, TaskCompletion, TaskCreate, TaskRead, TaskUpdate
from api.tasks.queries import ListQuery

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented_problem("No such task, or it belongs to someone else")}
ETAG_HEADER = {"ETag": documented_header('The task\'s version, quoted (`"3"`): send it back in `If-Match`')}

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=COMMON_ERRORS)


TaskId = Annotated[
    int,
    Path(ge=1, le=BIGINT_MAX, description="The task's id.", examples=[42]),
    BeforeValidator(plain_digits),
]


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
    responses={200: page_answer("tasks")},
)
async def list_tasks(tx: Transaction, request: Request, query: Annotated[ListQuery, Query()]) -> Response:
    page = await service.list_tasks(tx, query=query, search_timeout_ms=tx.settings.db_search_timeout_ms)
    cursor = page.next_cursor.encode() if page.next_cursor is not None else None
    return Response(tasks_json(page.tasks), headers=page_headers(request, cursor), media_type=JSON)


@router.post(
    "",
    operation_id="createTask",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskRead,
    responses={
        201: created_answer("task", ETAG_HEADER),
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
    headers = created_headers(_task_location(task), replayed=replayed)
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
