"""Task operations. No ownership checks here: the row-level-security policies decide which
rows exist for the caller, so a task of someone else's is simply not found. Each operation is
one SQL statement, run by the request's transaction (api/database/session.py) in one round trip."""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    SmallInteger,
    Text,
    any_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

from api.common.etags import EntityTags
from api.common.representation import Task, task_from_stored, task_rows
from api.common.writes import (
    IdempotentCreate,
    create_if_claimed,
    create_once,
    guarded_delete,
    guarded_update,
    names_versions,
    the_row,
    version_params,
)
from api.database.session import DIALECT, Prepared, RequestTransaction, Rows, Statement, prepare
from api.edge.errors import ServiceUnavailable, Unprocessable
from api.tasks.models import TASK_TAGS, TASKS, TaskCreate, TaskSort, TaskStatus, TaskUpdate
from api.tasks.pagination import Cursor
from api.tasks.queries import NO_LIST, ListQuery

TASK_COLUMNS = tuple(TASKS.columns)
TASK_COLUMN_NAMES = ", ".join(column.name for column in TASK_COLUMNS)
LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class Page:
    tasks: Rows
    next_cursor: Cursor | None


def _literal_substring(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with %, _ and the escape taken literally."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Shape:
    """What a list statement's SQL depends on (its values aside): one compiled statement each."""

    status: TaskStatus
    sort: TaskSort
    searching: bool
    in_list: bool  # list_id=<id>
    in_no_list: bool  # list_id=none
    priorities: bool
    tag_count: int
    due_before: bool
    due_after: bool
    overdue: bool | None
    after_cursor: bool
    after_undated: bool  # the cursor is at a task without a due date (due sorts)

    @classmethod
    def of(cls, query: ListQuery) -> "Shape":
        return cls(
            status=query.status,
            sort=query.sort,
            searching=bool(query.q),
            in_list=isinstance(query.list_id, int),
            in_no_list=query.list_id == NO_LIST,
            priorities=bool(query.priority),
            tag_count=len(query.tag),
            due_before=query.due_before is not None,
            due_after=query.due_after is not None,
            overdue=query.overdue,
            after_cursor=query.cursor is not None,
            after_undated=query.cursor is not None and query.cursor.key is None,
        )


def _filtered(statement: Select[Any], shape: Shape) -> Select[Any]:
    c = TASKS.c
    if shape.status is TaskStatus.pending:
        statement = statement.where(c.completed.is_(False))
    elif shape.status is TaskStatus.completed:
        statement = statement.where(c.completed.is_(True))
    if shape.searching:
        pattern = bindparam("pattern", type_=Text)
        statement = statement.where(
            or_(c.title.ilike(pattern, escape=LIKE_ESCAPE), c.description.ilike(pattern, escape=LIKE_ESCAPE))
        )
    if shape.in_list:
        statement = statement.where(c.list_id == bindparam("list_id", type_=BigInteger))
    if shape.in_no_list:
        statement = statement.where(c.list_id.is_(None))
    if shape.priorities:
        statement = statement.where(c.priority == any_(bindparam("priorities", type_=ARRAY(SmallInteger))))
    for number in range(shape.tag_count):
        statement = statement.where(_carries_tag(number))
    if shape.due_before:
        statement = statement.where(c.due_at < bindparam("due_before", type_=DateTime(timezone=True)))
    if shape.due_after:
        statement = statement.where(c.due_at >= bindparam("due_after", type_=DateTime(timezone=True)))
    if shape.overdue is not None:
        overdue = (c.due_at < func.now()) & c.completed.is_(False)
        not_overdue = or_(c.due_at.is_(None), c.due_at >= func.now(), c.completed.is_(True))
        statement = statement.where(overdue if shape.overdue else not_overdue)
    return statement


def _carries_tag(number: int) -> ColumnElement[bool]:
    """The task carries the `number`th tag asked for, ignoring case: a range of task_tags'
    primary key (user_id, tag_key, task_id). Equality on text is leakproof, so row-level
    security lets the index scan use it (a GIN index on tasks.tags it would not)."""
    tagged = select(TASK_TAGS.c.task_id).where(
        TASK_TAGS.c.user_id == bindparam("owner", type_=Text),
        TASK_TAGS.c.tag_key == func.lower(bindparam(f"tag_{number}", type_=Text)),
    )
    return TASKS.c.id.in_(tagged)


def _hint_owner(statement: Select[Any]) -> Select[Any]:
    """Name the owner for the planner, not as a guard (the policy is the guard).

    The policy compares with a value the planner cannot see in advance, so it would plan for
    an average user; a user with many tasks would then get a bitmap scan and a sort of all of
    them instead of an index scan that stops after one page.
    """
    return statement.where(TASKS.c.user_id == bindparam("owner", type_=Text))


def _ordered_after_cursor(statement: Select[Any], shape: Shape) -> Select[Any]:
    sort_key = TASKS.c[shape.sort.column]
    task_id = TASKS.c.id
    if shape.after_cursor:
        position = tuple_(sort_key, task_id)
        last_seen = tuple_(bindparam("after_key", type_=sort_key.type), bindparam("after_id", type_=task_id.type))
        statement = statement.where(position < last_seen if shape.sort.descending else position > last_seen)
    if shape.sort.descending:
        return statement.order_by(sort_key.desc(), task_id.desc())
    return statement.order_by(sort_key.asc(), task_id.asc())


def _by_due_date(statement: Select[Any], shape: Shape) -> Select[Any]:
    """Tasks with a due date in order, then those without, by id; in both directions.

    A row comparison never matches a null, so the two kinds are read separately, each by an
    index range scan that stops after one page, and the page is the first rows of the two.
    """
    due, task_id = TASKS.c.due_at, TASKS.c.id
    page_rows = bindparam("page_rows", type_=Integer)
    descending = shape.sort.descending
    after_id = bindparam("after_id", type_=BigInteger)
    undated = statement.where(due.is_(None))
    # Ordered by (due_at, id), which for null due dates is the order by id: so the
    # (user_id, due_at, id) index reads this user's undated tasks alone, with `due_at is null`
    # as its condition, instead of the primary key walking past every other user's rows.
    by_position = (due.desc(), task_id.desc()) if descending else (due.asc(), task_id.asc())
    if shape.after_undated:  # past every dated task already: only the undated after the cursor remain
        undated = undated.where(task_id < after_id if descending else task_id > after_id)
        return undated.order_by(*by_position).limit(page_rows)
    undated = undated.order_by(*by_position).limit(page_rows)
    dated = _ordered_after_cursor(statement.where(due.is_not(None)), shape).limit(page_rows)
    both = union_all(dated, undated).subquery("page")
    order = (both.c.due_at.desc(), both.c.id.desc()) if descending else (both.c.due_at.asc(), both.c.id.asc())
    return select(*both.c).order_by(order[0].nulls_last(), order[1]).limit(page_rows)


@lru_cache(maxsize=1024)
def _list_statement(shape: Shape) -> Prepared:
    """The list statement of one shape (filters, order, a cursor or not), compiled once."""
    statement = _hint_owner(_filtered(select(*TASK_COLUMNS), shape))
    if shape.sort.column == "due_at":
        return prepare(_by_due_date(statement, shape), rows=task_rows)
    return prepare(_ordered_after_cursor(statement, shape).limit(bindparam("page_rows")), rows=task_rows)


def list_statement(query: ListQuery, owner: str) -> Statement:
    """The statement of one page (one row more than the page: is there a next one?)."""
    params: dict[str, Any] = {"owner": owner, "page_rows": query.limit + 1}
    if query.q:
        params["pattern"] = _literal_substring(query.q)
    if isinstance(query.list_id, int):
        params["list_id"] = query.list_id
    if query.priority:
        params["priorities"] = sorted({priority.stored for priority in query.priority})
    params |= {f"tag_{number}": tag for number, tag in enumerate(query.tag)}
    if query.due_before is not None:
        params["due_before"] = query.due_before
    if query.due_after is not None:
        params["due_after"] = query.due_after
    if query.cursor is not None:
        params |= {"after_key": query.cursor.key, "after_id": query.cursor.id}
    return _list_statement(Shape.of(query)).bind(**params)


async def list_tasks(tx: RequestTransaction, *, query: ListQuery, search_timeout_ms: int = 0) -> Page:
    """One page of the caller's tasks, and the cursor of the next page if there is one.

    A substring search scans the caller's tasks, and a filter by several tags joins as many of
    the caller's tag entries as they choose, so both get a tighter timeout of their own.
    """
    budgeted = bool(query.q or query.tag)
    try:
        rows = await tx.run(
            list_statement(query, tx.user_id), statement_timeout_ms=search_timeout_ms if budgeted else None
        )
    except pg_errors.QueryCanceled:
        if not budgeted:
            raise
        raise ServiceUnavailable(
            f"the search (q or tag) took longer than {search_timeout_ms} ms and was cancelled; narrow it",
            cause="statement_timeout",
            retry_after_seconds=1,
        ) from None
    tasks = rows[: query.limit]
    has_more = len(rows) > query.limit
    return Page(tasks=tasks, next_cursor=Cursor.after(tasks[-1], query.sort) if has_more else None)


# When `completed` is set, `completed_at` follows: kept if it was already set, cleared on false.
def _completed_at(completed: ColumnElement[bool], current: ColumnElement[Any] | None = None) -> ColumnElement[Any]:
    now = func.now() if current is None else func.coalesce(current, func.now())
    return case((completed, now), else_=None)


WRITABLE = ("title", "description", "completed", "list_id", "due_at", "priority", "tags")
_WRITE_TYPES: dict[str, TypeEngine[Any]] = {
    "title": Text(),
    "description": Text(),
    "completed": Boolean(),
    "list_id": BigInteger(),
    "due_at": DateTime(timezone=True),
    "priority": SmallInteger(),
    "tags": ARRAY(Text),
}


def _stored_values(data: TaskCreate | TaskUpdate, *, only_sent: bool = False) -> dict[str, Any]:
    """The body's fields as the table stores them (a priority as its number)."""
    values = data.model_dump(exclude_unset=only_sent)
    if values.get("priority") is not None:
        values["priority"] = data.priority.stored
    return values


_CREATE = prepare(
    insert(TASKS)
    .values(
        {name: bindparam(name, type_=_WRITE_TYPES[name]) for name in WRITABLE}
        | {"completed_at": _completed_at(bindparam("completed", type_=Boolean))}
    )
    .returning(*TASK_COLUMNS),
    rows=task_rows,
)


def _unknown_list(data: TaskCreate | TaskUpdate) -> Unprocessable:
    """Another user's list and a list that does not exist get the same answer."""
    return Unprocessable(f"list {data.list_id} not found", field=["body", "list_id"], code="not_found")


async def create_task(tx: RequestTransaction, *, data: TaskCreate) -> Task:
    """Insert a task; its owner defaults, in SQL, to the caller."""
    try:
        [row] = await tx.run(_CREATE.bind(**_stored_values(data)))
    except pg_errors.ForeignKeyViolation:
        raise _unknown_list(data) from None
    return row


# The task fields a request's hash covered before migration 0004; the later ones count only
# when not at their defaults, so a key first used before the upgrade still matches its retry.
_FIRST_FIELDS = ("title", "description", "completed")


_DEFAULTS = TaskCreate(title="-").model_dump(mode="json")


def _task_body(data: TaskCreate) -> dict[str, Any]:
    return {
        name: value
        for name, value in data.model_dump(mode="json").items()
        if name in _FIRST_FIELDS or value != _DEFAULTS[name]
    }


_CREATE_TASK_IF_CLAIMED = create_if_claimed(
    "tasks",
    {name: f"cast(:{name} as {_WRITE_TYPES[name].compile(dialect=DIALECT)})" for name in WRITABLE}
    | {"completed_at": "case when cast(:completed as boolean) then now() end"},
    TASK_COLUMN_NAMES,
    rows=task_rows,
)


def task_create_request(key: str, data: TaskCreate, ttl_seconds: int) -> IdempotentCreate:
    return IdempotentCreate(key=key, operation="createTask", body=_task_body(data), ttl_seconds=ttl_seconds)


async def create_task_once(
    tx: RequestTransaction, *, key: str, data: TaskCreate, ttl_seconds: int
) -> tuple[Task, bool]:
    """Create the task, or replay the answer an earlier request with this key got."""
    request = task_create_request(key, data, ttl_seconds)
    try:
        row, replayed = await create_once(
            tx, request=request, insert_if_claimed=_CREATE_TASK_IF_CLAIMED.bind(**_stored_values(data))
        )
    except pg_errors.ForeignKeyViolation:
        raise _unknown_list(data) from None
    return (task_from_stored(row), True) if replayed else (row, False)


# A function, not a select: PL/pgSQL keeps the plan (db/functions/app.task_by_id.sql).
_GET = prepare(text(f"select {TASK_COLUMN_NAMES} from app.task_by_id(cast(:row_id as bigint))"), rows=task_rows)


async def get_task(tx: RequestTransaction, *, task_id: int) -> Task:
    """The task, if the caller can see it."""
    return the_row(await tx.run(_GET.bind(row_id=task_id)), f"task {task_id}")


async def update_task(
    tx: RequestTransaction, *, task_id: int, data: TaskUpdate, if_match: EntityTags | None = None
) -> Task:
    """Replace the fields sent; absent optional fields keep their values."""
    changes = _stored_values(data, only_sent=True)
    statement = _update_statement(frozenset(changes), toggle=False, guarded=names_versions(if_match))
    try:
        return await _change(tx, statement, task_id=task_id, values=changes, if_match=if_match)
    except pg_errors.ForeignKeyViolation:
        raise _unknown_list(data) from None


async def set_completion(
    tx: RequestTransaction, *, task_id: int, completed: bool | None, if_match: EntityTags | None = None
) -> Task:
    """Set `completed`, or toggle it when no value is given."""
    toggle = completed is None
    columns = frozenset() if toggle else frozenset({"completed"})
    statement = _update_statement(columns, toggle=toggle, guarded=names_versions(if_match))
    values = {} if toggle else {"completed": completed}
    return await _change(tx, statement, task_id=task_id, values=values, if_match=if_match)


async def delete_task(tx: RequestTransaction, *, task_id: int, if_match: EntityTags | None = None) -> None:
    """Delete the task, if the caller can see it (and, with If-Match, has seen its latest version)."""
    statement = guarded_delete(TASKS, guarded=names_versions(if_match))
    await _change(tx, statement, task_id=task_id, values={}, if_match=if_match)


async def _change(
    tx: RequestTransaction, statement: Prepared, *, task_id: int, values: dict[str, Any], if_match: EntityTags | None
) -> Task:
    return the_row(await tx.run(statement.bind(**values, **version_params(task_id, if_match))), f"task {task_id}")


@lru_cache(maxsize=256)
def _update_statement(columns: frozenset[str], *, toggle: bool, guarded: bool) -> Prepared:
    """The update of these columns (or the toggle of `completed`), compiled once per shape."""
    c = TASKS.c
    values: dict[str, Any] = {name: bindparam(name, type_=_WRITE_TYPES[name]) for name in sorted(columns)}
    if toggle:
        values["completed"] = ~c.completed
        values["completed_at"] = _completed_at(~c.completed)
    elif "completed" in columns:
        values["completed_at"] = _completed_at(bindparam("completed", type_=Boolean), c.completed_at)
    return guarded_update(TASKS, values, guarded=guarded, rows=task_rows)
