"""Task operations. No ownership checks here: the row-level-security policies decide which
rows exist for the caller, so a task of someone else's is simply not found. Each operation is
one SQL statement, run by the request's transaction (api/db.py) in one round trip."""

from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)

from api.db import RequestTransaction
from api.errors import NotFound
from api.tasks.models import Task, TaskCreate, TaskRead, TaskSort, TaskStatus, TaskUpdate
from api.tasks.pagination import Cursor

TASK_COLUMNS = tuple(Task.__table__.columns)  # type: ignore[attr-defined]
LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class ListQuery:
    status: TaskStatus = TaskStatus.all
    sort: TaskSort = TaskSort.newest_first
    q: str | None = None
    limit: int = 50
    cursor: Cursor | None = None


@dataclass(frozen=True)
class Page:
    tasks: list[TaskRead]
    next_cursor: Cursor | None


def _literal_substring(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with %, _ and the escape taken literally."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(statement: Select, query: ListQuery) -> Select:
    if query.status is TaskStatus.pending:
        statement = statement.where(Task.completed == False)  # noqa: E712 (SQL, not Python)
    elif query.status is TaskStatus.completed:
        statement = statement.where(Task.completed == True)  # noqa: E712
    if query.q:
        pattern = _literal_substring(query.q)
        statement = statement.where(
            or_(
                Task.title.ilike(pattern, escape=LIKE_ESCAPE),  # type: ignore[attr-defined]
                Task.description.ilike(pattern, escape=LIKE_ESCAPE),  # type: ignore[union-attr]
            )
        )
    return statement


def _hint_owner(statement: Select, user_id: str) -> Select:
    """Name the owner for the planner, not as a guard (the policy is the guard).

    The policy compares with a value the planner cannot see in advance, so it would plan for
    an average user; a user with many tasks would then get a bitmap scan and a sort of all of
    them instead of an index scan that stops after one page.
    """
    return statement.where(Task.user_id == user_id)


def _ordered_after_cursor(statement: Select, query: ListQuery) -> Select:
    sort_key: ColumnElement = getattr(Task.__table__.c, query.sort.column)  # type: ignore[attr-defined]
    task_id: ColumnElement = Task.__table__.c.id  # type: ignore[attr-defined]
    if query.cursor is not None:
        position = tuple_(sort_key, task_id)
        last_seen = tuple_(literal(query.cursor.key, sort_key.type), literal(query.cursor.id, task_id.type))
        statement = statement.where(position < last_seen if query.sort.descending else position > last_seen)
    if query.sort.descending:
        return statement.order_by(sort_key.desc(), task_id.desc())
    return statement.order_by(sort_key.asc(), task_id.asc())


async def list_tasks(tx: RequestTransaction, *, query: ListQuery) -> Page:
    """One page of the caller's tasks, and the cursor of the next page if there is one."""
    statement = _ordered_after_cursor(_filtered(select(*TASK_COLUMNS), query), query)
    rows = await tx.run(_hint_owner(statement, tx.user_id).limit(query.limit + 1))
    tasks = [TaskRead.model_validate(row) for row in rows[: query.limit]]
    has_more = len(rows) > query.limit
    return Page(tasks=tasks, next_cursor=Cursor.after(tasks[-1], query.sort) if has_more else None)


async def create_task(tx: RequestTransaction, *, data: TaskCreate) -> TaskRead:
    """Insert a task; its owner defaults, in SQL, to the caller."""
    statement = insert(Task).values(**data.model_dump()).returning(*TASK_COLUMNS)
    [row] = await tx.run(statement)
    return TaskRead.model_validate(row)


async def get_task(tx: RequestTransaction, *, task_id: int) -> TaskRead:
    """The task, if the caller can see it."""
    statement = select(*TASK_COLUMNS).where(Task.id == task_id)
    return _the_task(await tx.run(statement), task_id)


async def update_task(tx: RequestTransaction, *, task_id: int, data: TaskUpdate) -> TaskRead:
    """Replace the fields sent; absent optional fields keep their values."""
    changes = data.model_dump(exclude_unset=True)
    return await _update(tx, task_id=task_id, changes=changes)


async def set_completion(tx: RequestTransaction, *, task_id: int, completed: bool | None) -> TaskRead:
    """Set `completed`, or toggle it when no value is given."""
    value = Task.__table__.c.completed  # type: ignore[attr-defined]
    return await _update(tx, task_id=task_id, changes={"completed": ~value if completed is None else completed})


async def delete_task(tx: RequestTransaction, *, task_id: int) -> None:
    """Delete the task, if the caller can see it."""
    statement = delete(Task).where(Task.id == task_id).returning(Task.id)
    if not await tx.run(statement):
        raise NotFound(f"task {task_id} not found")


async def _update(tx: RequestTransaction, *, task_id: int, changes: dict) -> TaskRead:
    columns = Task.__table__.c  # type: ignore[attr-defined]
    # Strictly later than before, even if the clock has not moved.
    touched = func.greatest(func.now(), columns.updated_at + literal_column("interval '1 microsecond'"))
    statement = update(Task).where(Task.id == task_id).values(**changes, updated_at=touched).returning(*TASK_COLUMNS)
    return _the_task(await tx.run(statement), task_id)


def _the_task(rows: list[dict], task_id: int) -> TaskRead:
    if not rows:
        raise NotFound(f"task {task_id} not found")
    return TaskRead.model_validate(rows[0])
