"""List operations. As for tasks, no ownership checks: the policies on `lists` and `tasks`
decide which rows exist for the caller. Each request is one round trip."""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import BigInteger, ColumnElement, Select, Text, bindparam, func, insert, select, text, true

from api.common.etags import EntityTags
from api.common.representation import LIST_FIELDS, TaskList, from_stored
from api.common.writes import (
    IdempotentCreate,
    create_if_claimed,
    create_once,
    guarded_update,
    names_versions,
    the_row,
    version_params,
)
from api.database.session import Prepared, RequestTransaction, Rows, prepare
from api.edge.errors import Conflict
from api.lists.models import LISTS, ListWrite
from api.tasks.models import TASKS

LIST_COLUMNS = tuple(LISTS.columns)
LIST_COLUMN_NAMES = ", ".join(column.name for column in LIST_COLUMNS)
EMPTY = {"task_count": 0, "open_count": 0}


@dataclass(frozen=True)
class Page:
    lists: Rows
    next_after: int | None  # the id the next page starts after


def _counts(in_list: ColumnElement[bool]) -> Select[int, int]:
    """A list's task counts, both from one pass over its tasks; under the policies on `tasks`,
    so only the caller's tasks are ever counted."""
    return select(
        func.count().label("task_count"),
        func.count().filter(TASKS.c.completed.is_(False)).label("open_count"),
    ).where(in_list)


def _with_counts() -> Select[Any]:
    """Each list with its counts, through the (user_id, list_id) index."""
    in_list = (TASKS.c.user_id == LISTS.c.user_id) & (TASKS.c.list_id == LISTS.c.id)
    counts = _counts(in_list).lateral("counts")
    return select(*LIST_COLUMNS, counts.c.task_count, counts.c.open_count).select_from(LISTS.join(counts, true()))


_ROW_ID = bindparam("row_id", type_=BigInteger)
_OWNER = bindparam("owner", type_=Text)


@lru_cache(maxsize=2)
def _page_statement(after: bool) -> Prepared:
    statement = _with_counts().where(LISTS.c.user_id == _OWNER)  # the owner: a hint for the planner
    if after:
        statement = statement.where(LISTS.c.id > bindparam("after_id", type_=BigInteger))
    return prepare(statement.order_by(LISTS.c.id).limit(bindparam("page_rows")))


async def list_lists(tx: RequestTransaction, *, limit: int, after_id: int | None) -> Page:
    """One page of the caller's lists, oldest first, each with its counts."""
    params: dict[str, Any] = {"owner": tx.user_id, "page_rows": limit + 1}
    if after_id is not None:
        params["after_id"] = after_id
    rows = await tx.run(_page_statement(after_id is not None).bind(**params))
    lists = rows[:limit]
    return Page(lists=lists, next_after=lists[-1]["id"] if len(rows) > limit else None)


_GET = prepare(_with_counts().where(LISTS.c.id == _ROW_ID))


async def get_list(tx: RequestTransaction, *, list_id: int) -> TaskList:
    return the_row(await tx.run(_GET.bind(row_id=list_id)), f"list {list_id}")


_CREATE = prepare(insert(LISTS).values(name=bindparam("name", type_=Text)).returning(*LIST_COLUMNS))
_CREATE_IF_CLAIMED = create_if_claimed("lists", {"name": "cast(:name as text)"}, LIST_COLUMN_NAMES)


def _name_taken(data: ListWrite) -> Conflict:
    return Conflict(f"a list named {data.name!r} already exists (names are compared ignoring case)")


async def create_list(tx: RequestTransaction, *, data: ListWrite) -> TaskList:
    try:
        [row] = await tx.run(_CREATE.bind(name=data.name))
    except pg_errors.UniqueViolation:
        raise _name_taken(data) from None
    return {**row, **EMPTY}


async def create_list_once(
    tx: RequestTransaction, *, key: str, data: ListWrite, ttl_seconds: int
) -> tuple[TaskList, bool]:
    """Create the list, or replay the answer an earlier request with this key got."""
    request = IdempotentCreate(key=key, operation="createList", body=data.model_dump(), ttl_seconds=ttl_seconds)
    try:
        row, replayed = await create_once(
            tx, request=request, insert_if_claimed=_CREATE_IF_CLAIMED.bind(name=data.name)
        )
    except pg_errors.UniqueViolation:
        raise _name_taken(data) from None
    return (from_stored(row, LIST_FIELDS, EMPTY), True) if replayed else ({**row, **EMPTY}, False)


@lru_cache(maxsize=2)
def _rename_statement(guarded: bool) -> Prepared:
    return guarded_update(LISTS, {"name": bindparam("name", type_=Text)}, guarded=guarded)


_COUNTS = prepare(_counts(TASKS.c.list_id == _ROW_ID))


async def rename_list(
    tx: RequestTransaction, *, list_id: int, data: ListWrite, if_match: EntityTags | None = None
) -> TaskList:
    """Rename the list; its counts come from the same transaction."""
    params = version_params(list_id, if_match)
    renamed = _rename_statement(names_versions(if_match)).bind(name=data.name, **params)
    try:
        changed, counts = await tx.run_all([renamed, _COUNTS.bind(row_id=list_id)])
    except pg_errors.UniqueViolation:
        raise _name_taken(data) from None
    return {**the_row(changed, f"list {list_id}"), **counts[0]}


def _delete_sql(guarded: bool) -> str:
    """Delete the list and take its tasks out of it, in one statement: each task moved gets a
    new version (its representation changed), which the foreign key's own `set null` would not
    give it. The foreign key includes the owner, so only the list owner's tasks can move."""
    guard = " and version = any(cast(:versions as bigint[]))" if guarded else ""
    unchanged = (
        f" union all select {LIST_COLUMN_NAMES}, false as applied from lists"
        " where id = :row_id and not exists (select from gone)"
        if guarded
        else ""
    )
    return (
        f"with gone as (delete from lists where id = :row_id{guard} returning {LIST_COLUMN_NAMES}),"
        " moved as ("
        "  update tasks set list_id = null, version = tasks.version + 1,"
        "    updated_at = greatest(now(), tasks.updated_at + interval '1 microsecond')"
        "  from gone where tasks.list_id = gone.id and tasks.user_id = gone.user_id"
        f") select {LIST_COLUMN_NAMES}, true as applied from gone{unchanged}"
    )


_DELETE = {guarded: prepare(text(_delete_sql(guarded))) for guarded in (False, True)}


async def delete_list(tx: RequestTransaction, *, list_id: int, if_match: EntityTags | None = None) -> None:
    """Delete the list; its tasks stay, in no list."""
    params = version_params(list_id, if_match)
    the_row(await tx.run(_DELETE[names_versions(if_match)].bind(**params)), f"list {list_id}")
