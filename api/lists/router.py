"""The list routes: parse, call the service, shape the HTTP response."""

import base64
import binascii
import struct
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema

from api.common.etags import etag
from api.common.http import (
    BAD_PRECONDITION,
    COMMON_ERRORS,
    JSON,
    JSON_BODY,
    IdempotencyKey,
    IfMatch,
    created_answer,
    created_headers,
    if_match_tags,
    page_answer,
    page_headers,
    plain_digits,
)
from api.common.representation import TaskList, list_json, lists_json
from api.deps import Transaction
from api.edge.errors import documented_header, documented_problem
from api.lists import service
from api.lists.models import ListRead, ListWrite
from api.tasks.models import BIGINT_MAX

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented_problem("No such list, or it belongs to someone else")}
NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: documented_problem("Another of the caller's lists has this name (compared ignoring case)")
}
NAME_TAKEN_OR_IN_PROGRESS: dict[int | str, dict[str, Any]] = {
    409: documented_problem(
        "Another of the caller's lists has this name (compared ignoring case), or a request with this"
        " `Idempotency-Key` is still in progress (then with `Retry-After`; retry shortly)"
    )
}
ETAG_HEADER = {"ETag": documented_header('The list\'s version, quoted (`"3"`): send it back in `If-Match`')}

router = APIRouter(prefix="/api/{user_id}/lists", tags=["lists"], responses=COMMON_ERRORS)

ListIdPath = Annotated[
    int,
    Path(ge=1, le=BIGINT_MAX, description="The list's id.", examples=[7]),
    BeforeValidator(plain_digits),
]

_AFTER = struct.Struct(">Q")
CURSOR_LENGTH = 11  # base64url of 8 bytes, unpadded


def encode_cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(_AFTER.pack(after_id)).decode().rstrip("=")


def _decoded_cursor(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != CURSOR_LENGTH:
        raise ValueError("cursor is malformed")
    try:
        [after_id] = _AFTER.unpack(base64.urlsafe_b64decode(value + "="))
    except (binascii.Error, ValueError, struct.error):
        raise ValueError("cursor is malformed") from None
    if not 1 <= after_id <= BIGINT_MAX:
        raise ValueError("cursor is malformed")
    return int(after_id)


CURSOR = 'Opaque cursor from a `Link: rel="next"` header.'


class ListsQuery(BaseModel):
    """Query parameters of the lists route."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: int = Field(100, ge=1, le=100, description="Page size.")
    cursor: Annotated[
        int | None,
        PlainValidator(_decoded_cursor),
        WithJsonSchema(
            {"anyOf": [{"type": "string", "minLength": 11, "maxLength": 11}, {"type": "null"}], "description": CURSOR}
        ),
    ] = Field(None, description=CURSOR)


def _list_response(task_list: TaskList, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    headers = {"ETag": etag(task_list["version"]), **(headers or {})}
    return Response(list_json(task_list), status_code=status_code, headers=headers, media_type=JSON)


@router.get(
    "",
    operation_id="listLists",
    summary="List the caller's lists",
    description="Oldest first, each with how many tasks it holds and how many of them are open.",
    response_model=list[ListRead],
    responses={200: page_answer("lists")},
)
async def list_lists(tx: Transaction, request: Request, query: Annotated[ListsQuery, Query()]) -> Response:
    page = await service.list_lists(tx, limit=query.limit, after_id=query.cursor)
    cursor = encode_cursor(page.next_after) if page.next_after is not None else None
    return Response(lists_json(page.lists), headers=page_headers(request, cursor), media_type=JSON)


@router.post(
    "",
    operation_id="createList",
    summary="Create a list",
    status_code=status.HTTP_201_CREATED,
    response_model=ListRead,
    responses={
        201: created_answer("list", ETAG_HEADER),
        **NAME_TAKEN_OR_IN_PROGRESS,
        **JSON_BODY,
    },
)
async def create_list(tx: Transaction, data: ListWrite, idempotency_key: IdempotencyKey = None) -> Response:
    replayed = False
    if idempotency_key is None:
        task_list = await service.create_list(tx, data=data)
    else:
        ttl = tx.settings.idempotency_key_ttl_seconds
        task_list, replayed = await service.create_list_once(tx, key=idempotency_key, data=data, ttl_seconds=ttl)
    location = f"/api/{quote(task_list['user_id'], safe='')}/lists/{task_list['id']}"
    headers = created_headers(location, replayed=replayed)
    return _list_response(task_list, status_code=status.HTTP_201_CREATED, headers=headers)


@router.get(
    "/{list_id}",
    operation_id="getList",
    summary="Get a list",
    description=(
        "Its counts change whenever its tasks do, without a new version, so there is no "
        "`If-None-Match`: a 304 would hand back stale counts."
    ),
    response_model=ListRead,
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND},
)
async def get_list(tx: Transaction, list_id: ListIdPath) -> Response:
    return _list_response(await service.get_list(tx, list_id=list_id))


@router.put(
    "/{list_id}",
    operation_id="updateList",
    summary="Rename a list",
    response_model=ListRead,
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND, **NAME_TAKEN, **JSON_BODY, **BAD_PRECONDITION},
)
async def update_list(tx: Transaction, list_id: ListIdPath, data: ListWrite, if_match: IfMatch = None) -> Response:
    task_list = await service.rename_list(tx, list_id=list_id, data=data, if_match=if_match_tags(if_match))
    return _list_response(task_list)


@router.delete(
    "/{list_id}",
    operation_id="deleteList",
    summary="Delete a list",
    description="Its tasks stay, in no list; each of them gets a new version.",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={204: {"description": "Deleted"}, **NOT_FOUND, **BAD_PRECONDITION},
)
async def delete_list(tx: Transaction, list_id: ListIdPath, if_match: IfMatch = None) -> Response:
    await service.delete_list(tx, list_id=list_id, if_match=if_match_tags(if_match))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
