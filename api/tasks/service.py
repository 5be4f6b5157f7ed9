"""Task operations. No ownership checks here: the row-level-security policies decide which
rows exist for the caller, so a task of someone else's is simply not found. Each operation is
one SQL statement, run by the request's transaction (api/database/session.py) in one round trip."""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Delete,
    Select,
    Update,
    any_,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from api.database.session import RequestTransaction, Rows
from api.edge.errors import Conflict, NotFound, PreconditionFailed, ServiceUnavailable, Unprocessable
from api.tasks.etags import EntityTags
from api.tasks.models import TASKS, TaskCreate, TaskRead, TaskStatus, TaskUpdate
from api.tasks.pagination import Cursor
from api.tasks.queries import ListQuery

TASK_COLUMNS = tuple(TASKS.columns)
TASK_COLUMN_NAMES = ", ".join(column.name for column in TASK_COLUMNS)
LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class Page:
    tasks: list[TaskRead]
    next_cursor: Cursor | None


def _literal_substring(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with %, _ and the escape taken literally."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(statement: Select[Any], query: ListQuery) -> Select[Any]:
    if query.status is TaskStatus.pending:
        statement = statement.where(TASKS.c.completed.is_(False))
    elif query.status is TaskStatus.completed:
        statement = statement.where(TASKS.c.completed.is_(True))
    if query.q:
        pattern = _literal_substring(query.q)
        statement = statement.where(
            or_(
                TASKS.c.title.ilike(pattern, escape=LIKE_ESCAPE),
                TASKS.c.description.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    return statement


def _hint_owner(statement: Select[Any], user_id: str) -> Select[Any]:
    """Name the owner for the planner, not as a guard (the policy is the guard).

    The policy compares with a value the planner cannot see in advance, so it would plan for
    an average user; a user with many tasks would then get a bitmap scan and a sort of all of
    them instead of an index scan that stops after one page.
    """
    return statement.where(TASKS.c.user_id == user_id)


def _ordered_after_cursor(statement: Select[Any], query: ListQuery) -> Select[Any]:
    sort_key = TASKS.c[query.sort.column]
    task_id = TASKS.c.id
    if query.cursor is not None:
        position = tuple_(sort_key, task_id)
        last_seen = tuple_(literal(query.cursor.key, sort_key.type), literal(query.cursor.id, task_id.type))
        statement = statement.where(position < last_seen if query.sort.descending else position > last_seen)
    if query.sort.descending:
        return statement.order_by(sort_key.desc(), task_id.desc())
    return statement.order_by(sort_key.asc(), task_id.asc())


async def list_tasks(tx: RequestTransaction, *, query: ListQuery, search_timeout_ms: int = 0) -> Page:
    """One page of the caller's tasks, and the cursor of the next page if there is one.

    A substring search scans the caller's tasks, so it gets a tighter timeout of its own.
    """
    statement = _ordered_after_cursor(_filtered(select(*TASK_COLUMNS), query), query)
    statement = _hint_owner(statement, tx.user_id).limit(query.limit + 1)
    try:
        rows = await tx.run(statement, statement_timeout_ms=search_timeout_ms if query.q else None)
    except pg_errors.QueryCanceled:
        if not query.q:
            raise
        raise ServiceUnavailable(
            f"the search took longer than {search_timeout_ms} ms and was cancelled; narrow it", retry_after_seconds=1
        ) from None
    tasks = [TaskRead.model_validate(row) for row in rows[: query.limit]]
    has_more = len(rows) > query.limit
    return Page(tasks=tasks, next_cursor=Cursor.after(tasks[-1], query.sort) if has_more else None)


async def create_task(tx: RequestTransaction, *, data: TaskCreate) -> TaskRead:
    """Insert a task; its owner defaults, in SQL, to the caller."""
    statement = insert(TASKS).values(**data.model_dump()).returning(*TASK_COLUMNS)
    [row] = await tx.run(statement)
    return TaskRead.model_validate(row)


@dataclass(frozen=True)
class IdempotentCreate:
    """A POST carrying an Idempotency-Key: the key, what was asked, and how long to remember."""

    key: str
    data: TaskCreate
    ttl_seconds: int

    @property
    def request_hash(self) -> str:
        canonical = json.dumps(self.data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"createTask\n{canonical}".encode()).hexdigest()


# Claim the key: the caller's expired keys go first, so an expired key can be claimed anew.
# A concurrent claim of the same key waits here until the other transaction ends.
_PURGE_EXPIRED_KEYS = text("delete from idempotency_keys where expires_at < now()")
_CLAIM_KEY = text(
    "insert into idempotency_keys (key, request_hash, expires_at)"
    " values (:key, :request_hash, now() + :ttl) on conflict (user_id, key) do nothing"
)
# Create the task only if this transaction holds the claim (no answer stored yet), and store the answer.
_CREATE_IF_CLAIMED = text(
    "with created as ("
    "  insert into tasks (title, description, completed)"
    "  select cast(:title as text), cast(:description as text), cast(:completed as boolean)"
    "   where exists (select from idempotency_keys where key = :key and response_status is null)"
    f"  returning {TASK_COLUMN_NAMES}"
    "), recorded as ("
    "  update idempotency_keys k set response_status = 201, response_body = to_jsonb(created)"
    "    from created where k.key = :key"
    ") select * from created"
)
# A fresh snapshot: sees the answer of a concurrent request with this key that committed first.
_STORED_ANSWER = text("select request_hash, response_body from idempotency_keys where key = :key")


async def create_task_once(tx: RequestTransaction, *, request: IdempotentCreate) -> tuple[TaskRead, bool]:
    """Create the task, or replay the answer an earlier request with this key got.

    Returns the task and whether it is a replay. The whole exchange is one transaction,
    sent in one round trip.
    """
    key = {"key": request.key}
    statements = [
        _PURGE_EXPIRED_KEYS,
        _CLAIM_KEY.bindparams(**key, request_hash=request.request_hash, ttl=timedelta(seconds=request.ttl_seconds)),
        _CREATE_IF_CLAIMED.bindparams(**key, **request.data.model_dump()),
        _STORED_ANSWER.bindparams(**key),
    ]
    try:
        _, _, created, stored = await tx.run_all(statements)
    except pg_errors.LockNotAvailable:
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry shortly",
            headers={"Retry-After": "1"},
        ) from None
    if created:
        return TaskRead.model_validate(created[0]), False
    if not stored:
        # The key's earlier answer expired and was purged between our claim and this read;
        # a retry claims the key afresh.
        raise Conflict("this Idempotency-Key's earlier answer just expired; retry", headers={"Retry-After": "1"})
    [answer] = stored
    if answer["request_hash"] != request.request_hash:
        raise Unprocessable("this Idempotency-Key was already used with a different request")
    return TaskRead.model_validate(answer["response_body"]), True


async def get_task(tx: RequestTransaction, *, task_id: int) -> TaskRead:
    """The task, if the caller can see it."""
    statement = select(*TASK_COLUMNS).where(TASKS.c.id == task_id)
    return _the_task(await tx.run(statement), task_id)


async def update_task(
    tx: RequestTransaction, *, task_id: int, data: TaskUpdate, if_match: EntityTags | None = None
) -> TaskRead:
    """Replace the fields sent; absent optional fields keep their values."""
    changes = data.model_dump(exclude_unset=True)
    return await _update(tx, task_id=task_id, changes=changes, if_match=if_match)


async def set_completion(
    tx: RequestTransaction, *, task_id: int, completed: bool | None, if_match: EntityTags | None = None
) -> TaskRead:
    """Set `completed`, or toggle it when no value is given."""
    changes = {"completed": ~TASKS.c.completed if completed is None else completed}
    return await _update(tx, task_id=task_id, changes=changes, if_match=if_match)


async def delete_task(tx: RequestTransaction, *, task_id: int, if_match: EntityTags | None = None) -> None:
    """Delete the task, if the caller can see it (and, with If-Match, has seen its latest version)."""
    statement = delete(TASKS).where(TASKS.c.id == task_id)
    _the_task(await tx.run(_guarded(statement, task_id, if_match)), task_id)


async def _update(
    tx: RequestTransaction, *, task_id: int, changes: dict[str, Any], if_match: EntityTags | None
) -> TaskRead:
    columns = TASKS.c
    # Strictly later than before, even if the clock has not moved.
    touched = func.greatest(func.now(), columns.updated_at + literal_column("interval '1 microsecond'"))
    statement = (
        update(TASKS).where(columns.id == task_id).values(**changes, updated_at=touched, version=columns.version + 1)
    )
    return _the_task(await tx.run(_guarded(statement, task_id, if_match)), task_id)


def _guarded(
    statement: Update | Delete, task_id: int, if_match: EntityTags | None
) -> Update | Delete | CompoundSelect[Any]:
    """The statement, changing the task only if its version is one the client names.

    With a condition, the statement also returns the task as it stands when nothing was
    changed, flagged `applied = false`, so that 404 and 412 are told apart in the same
    round trip. Under concurrent edits the row lock serialises writers, and PostgreSQL
    re-checks the version on the latest row: only one of two editors of version N wins.
    """
    if if_match is None or if_match.any:  # `*`: any current version; a missing task is a 404
        return statement.returning(*TASK_COLUMNS, literal(True).label("applied"))
    versions = literal(sorted(if_match.strong_versions), ARRAY(BigInteger))
    changed = (
        statement.where(TASKS.c.version == any_(versions))
        .returning(*TASK_COLUMNS, literal(True).label("applied"))
        .cte("changed")
    )
    unchanged = select(*TASK_COLUMNS, literal(False).label("applied")).where(
        TASKS.c.id == task_id, ~exists(select(changed.c.id))
    )
    return select(changed).union_all(unchanged)


def _the_task(rows: Rows, task_id: int) -> TaskRead:
    if not rows:
        raise NotFound(f"task {task_id} not found")
    if not rows[0].get("applied", True):
        raise PreconditionFailed(
            f"task {task_id} has changed since the version named in If-Match; GET it for the current version"
        )
    return TaskRead.model_validate(rows[0])
