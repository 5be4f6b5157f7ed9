"""The six task routes: parse, call the service, shape the HTTP response."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.db import Transaction
from api.errors import PROBLEM_JSON, Problem
from api.tasks import service
from api.tasks.models import (
    BIGINT_MAX,
    StorableText,
    TaskCompletion,
    TaskCreate,
    TaskRead,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)
from api.tasks.pagination import Cursor


def _problem(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Problem"}  # `model` below registers it
    return {"description": description, "model": Problem, "content": {PROBLEM_JSON: {"schema": schema}}}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed JSON body"),
    401: _problem("Missing, malformed, expired or badly signed token"),
    403: _problem("The token belongs to another user than the one in the path"),
    413: _problem("The request body is larger than the server accepts"),
    422: _problem("Invalid fields; `errors` names each one"),
    429: _problem("Too many requests from this user; retry after `Retry-After` seconds"),
    503: _problem("The database is unavailable; retry after `Retry-After` seconds"),
}
NOT_FOUND = {404: _problem("No such task, or it belongs to someone else")}
JSON_BODY = {415: _problem("A body was sent that is not `application/json`")}

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=COMMON_ERRORS)

TaskId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The task's id.", examples=[42])]


class ListParams(BaseModel):
    """Query parameters of the list route."""

    model_config = ConfigDict(extra="ignore")

    status: TaskStatus = Field(TaskStatus.all, description="Which tasks to include.")
    sort: TaskSort = Field(TaskSort.newest_first, description="Sort key; a leading `-` means descending.")
    q: StorableText | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Case-insensitive substring of the title or description, taken literally.",
    )
    limit: int = Field(50, ge=1, le=100, description="Page size.")
    cursor: str | None = Field(None, max_length=1024, description='Opaque cursor from a `Link: rel="next"` header.')

    @field_validator("cursor")
    @classmethod
    def _cursor_fits_sort(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and Cursor.decode(value).sort is not info.data.get("sort"):
            raise ValueError("cursor was issued for another sort order")
        return value

    def to_query(self) -> service.ListQuery:
        cursor = Cursor.decode(self.cursor) if self.cursor is not None else None
        return service.ListQuery(status=self.status, sort=self.sort, q=self.q, limit=self.limit, cursor=cursor)


def _task_location(task: TaskRead) -> str:
    return f"/api/{quote(task.user_id, safe='')}/tasks/{task.id}"


@router.get(
    "",
    operation_id="listTasks",
    summary="List the caller's tasks",
    response_model=list[TaskRead],
    responses={
        200: {
            "description": 'A page of tasks; `Link: <...>; rel="next"` when more exist.',
            "headers": {"Link": {"description": "RFC 8288 link to the next page"}},
        }
    },
)
async def list_tasks(
    tx: Transaction,
    request: Request,
    response: Response,
    params: Annotated[ListParams, Query()],
) -> list[TaskRead]:
    page = await service.list_tasks(tx, query=params.to_query())
    if page.next_cursor is not None:
        next_url = request.url.include_query_params(cursor=page.next_cursor.encode())
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return page.tasks


@router.post(
    "",
    operation_id="createTask",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskRead,
    responses={201: {"headers": {"Location": {"description": "The new task's URL"}}}, **JSON_BODY},
)
async def create_task(tx: Transaction, response: Response, data: TaskCreate) -> TaskRead:
    task = await service.create_task(tx, data=data)
    response.headers["Location"] = _task_location(task)
    return task


@router.get(
    "/{task_id}",
    operation_id="getTask",
    summary="Get a task",
    response_model=TaskRead,
    responses=NOT_FOUND,
)
async def get_task(tx: Transaction, task_id: TaskId) -> TaskRead:
    return await service.get_task(tx, task_id=task_id)


@router.put(
    "/{task_id}",
    operation_id="updateTask",
    summary="Update a task",
    response_model=TaskRead,
    responses={**NOT_FOUND, **JSON_BODY},
)
async def update_task(tx: Transaction, task_id: TaskId, data: TaskUpdate) -> TaskRead:
    return await service.update_task(tx, task_id=task_id, data=data)


@router.delete(
    "/{task_id}",
    operation_id="deleteTask",
    summary="Delete a task",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_task(tx: Transaction, task_id: TaskId) -> Response:
    await service.delete_task(tx, task_id=task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch(
    "/{task_id}/complete",
    operation_id="completeTask",
    summary="Set or toggle completion",
    description='With a body `{"completed": bool}` sets it (idempotent); with none, toggles.',
    response_model=TaskRead,
    responses={**NOT_FOUND, **JSON_BODY},
)
async def complete_task(
    tx: Transaction,
    task_id: TaskId,
    body: Annotated[TaskCompletion | None, Body()] = None,
) -> TaskRead:
    completed = body.completed if body is not None else None
    return await service.set_completion(tx, task_id=task_id, completed=completed)
