"""Task operations. No ownership checks here: the row-level-security policies decide which
rows exist for the caller, so a task of someone else's is simply not found. Each operation is
one SQL statement, run by the request's transaction (api/database/session.py) in one round trip."""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import (
    BigInteger,
    Boolean,
    CompoundSelect,
    Delete,
    Select,
    Text,
    Update,
    any_,
    bindparam,
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

from api.database.session import Prepared, RequestTransaction, Rows, Statement, prepare
from api.edge.errors import Conflict, NotFound, PreconditionFailed, ServiceUnavailable, Unprocessable
from api.tasks.etags import EntityTags
from api.tasks.models import TASKS, TaskCreate, TaskSort, TaskStatus, TaskUpdate
from api.tasks.pagination import EPOCH, Cursor
from api.tasks.queries import ListQuery
from api.tasks.representation import Task, from_stored

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


def _filtered(statement: Select[Any], query: ListQuery) -> Select[Any]:
    if query.status is TaskStatus.pending:
        statement = statement.where(TASKS.c.completed.is_(False))
    elif query.status is TaskStatus.completed:
        statement = statement.where(TASKS.c.completed.is_(True))
    if query.q:
        pattern = bindparam("pattern", type_=Text)
        statement = statement.where(
            or_(
                TASKS.c.title.ilike(pattern, escape=LIKE_ESCAPE), TASKS.c.description.ilike(pattern, escape=LIKE_ESCAPE)
            )
        )
    return statement


def _hint_owner(statement: Select[Any]) -> Select[Any]:
    """Name the owner for the planner, not as a guard (the policy is the guard).

    The policy compares with a value the planner cannot see in advance, so it would plan for
    an average user; a user with many tasks would then get a bitmap scan and a sort of all of
    them instead of an index scan that stops after one page.
    """
    return statement.where(TASKS.c.user_id == bindparam("owner", type_=Text))


def _ordered_after_cursor(statement: Select[Any], query: ListQuery) -> Select[Any]:
    sort_key = TASKS.c[query.sort.column]
    task_id = TASKS.c.id
    if query.cursor is not None:
        position = tuple_(sort_key, task_id)
        last_seen = tuple_(bindparam("after_key", type_=sort_key.type), bindparam("after_id", type_=task_id.type))
        statement = statement.where(position < last_seen if query.sort.descending else position > last_seen)
    if query.sort.descending:
        return statement.order_by(sort_key.desc(), task_id.desc())
    return statement.order_by(sort_key.asc(), task_id.asc())


@lru_cache(maxsize=128)
def _list_statement(status: TaskStatus, sort: TaskSort, searching: bool, after_cursor: bool) -> Prepared:
    """The list statement of one shape (filters, order, a cursor or not), compiled once."""
    shape = ListQuery(
        status=status,
        sort=sort,
        limit=1,
        q="x" if searching else None,
        cursor=Cursor(sort=sort, key="x" if sort.column == "title" else EPOCH, id=1) if after_cursor else None,
    )
    statement = _ordered_after_cursor(_filtered(select(*TASK_COLUMNS), shape), shape)
    return prepare(_hint_owner(statement).limit(bindparam("page_rows")))


def list_statement(query: ListQuery, owner: str) -> Statement:
    """The statement of one page (one row more than the page: is there a next one?)."""
    prepared = _list_statement(query.status, query.sort, bool(query.q), query.cursor is not None)
    params: dict[str, Any] = {"owner": owner, "page_rows": query.limit + 1}
    if query.q:
        params["pattern"] = _literal_substring(query.q)
    if query.cursor is not None:
        params |= {"after_key": query.cursor.key, "after_id": query.cursor.id}
    return prepared.bind(**params)


async def list_tasks(tx: RequestTransaction, *, query: ListQuery, search_timeout_ms: int = 0) -> Page:
    """One page of the caller's tasks, and the cursor of the next page if there is one.

    A substring search scans the caller's tasks, so it gets a tighter timeout of its own.
    """
    try:
        rows = await tx.run(
            list_statement(query, tx.user_id), statement_timeout_ms=search_timeout_ms if query.q else None
        )
    except pg_errors.QueryCanceled:
        if not query.q:
            raise
        raise ServiceUnavailable(
            f"the search took longer than {search_timeout_ms} ms and was cancelled; narrow it",
            cause="statement_timeout",
            retry_after_seconds=1,
        ) from None
    tasks = rows[: query.limit]
    has_more = len(rows) > query.limit
    return Page(tasks=tasks, next_cursor=Cursor.after(tasks[-1], query.sort) if has_more else None)


_CREATE = prepare(
    insert(TASKS)
    .values(
        title=bindparam("title", type_=Text),
        description=bindparam("description", type_=Text),
        completed=bindparam("completed", type_=Boolean),
    )
    .returning(*TASK_COLUMNS)
)


async def create_task(tx: RequestTransaction, *, data: TaskCreate) -> Task:
    """Insert a task; its owner defaults, in SQL, to the caller."""
    [row] = await tx.run(_CREATE.bind(**data.model_dump()))
    return row


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
_PURGE_EXPIRED_KEYS = prepare(text("delete from idempotency_keys where expires_at < now()"))
_CLAIM_KEY = prepare(
    text(
        "insert into idempotency_keys (key, request_hash, expires_at)"
        " values (:key, :request_hash, now() + :ttl) on conflict (user_id, key) do nothing"
    )
)
# Create the task only if this transaction holds the claim (no answer stored yet), and store the answer.
_CREATE_IF_CLAIMED = prepare(
    text(
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
)
# A fresh snapshot: sees the answer of a concurrent request with this key that committed first.
_STORED_ANSWER = prepare(text("select request_hash, response_body from idempotency_keys where key = :key"))


async def create_task_once(tx: RequestTransaction, *, request: IdempotentCreate) -> tuple[Task, bool]:
    """Create the task, or replay the answer an earlier request with this key got.

    Returns the task and whether it is a replay. The whole exchange is one transaction,
    sent in one round trip.
    """
    key = {"key": request.key}
    statements = [
        _PURGE_EXPIRED_KEYS.bind(),
        _CLAIM_KEY.bind(**key, request_hash=request.request_hash, ttl=timedelta(seconds=request.ttl_seconds)),
        _CREATE_IF_CLAIMED.bind(**key, **request.data.model_dump()),
        _STORED_ANSWER.bind(**key),
    ]
    try:
        _, _, created, stored = await tx.run_all(statements)
    except pg_errors.LockNotAvailable:
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry shortly",
            headers={"Retry-After": "1"},
        ) from None
    if created:
        return created[0], False
    if not stored:
        # The key's earlier answer expired and was purged between our claim and this read;
        # a retry claims the key afresh.
        raise Conflict("this Idempotency-Key's earlier answer just expired; retry", headers={"Retry-After": "1"})
    [answer] = stored
    if answer["request_hash"] != request.request_hash:
        raise Unprocessable("this Idempotency-Key was already used with a different request")
    return from_stored(answer["response_body"]), True


_GET = prepare(select(*TASK_COLUMNS).where(TASKS.c.id == bindparam("task_id", type_=BigInteger)))


async def get_task(tx: RequestTransaction, *, task_id: int) -> Task:
    """The task, if the caller can see it."""
    return _the_task(await tx.run(_GET.bind(task_id=task_id)), task_id)


async def update_task(
    tx: RequestTransaction, *, task_id: int, data: TaskUpdate, if_match: EntityTags | None = None
) -> Task:
    """Replace the fields sent; absent optional fields keep their values."""
    changes = data.model_dump(exclude_unset=True)
    statement = _update_statement(frozenset(changes), toggle=False, guarded=_names_versions(if_match))
    return await _change(tx, statement, task_id=task_id, values=changes, if_match=if_match)


async def set_completion(
    tx: RequestTransaction, *, task_id: int, completed: bool | None, if_match: EntityTags | None = None
) -> Task:
    """Set `completed`, or toggle it when no value is given."""
    toggle = completed is None
    columns = frozenset() if toggle else frozenset({"completed"})
    statement = _update_statement(columns, toggle=toggle, guarded=_names_versions(if_match))
    values = {} if toggle else {"completed": completed}
    return await _change(tx, statement, task_id=task_id, values=values, if_match=if_match)


async def delete_task(tx: RequestTransaction, *, task_id: int, if_match: EntityTags | None = None) -> None:
    """Delete the task, if the caller can see it (and, with If-Match, has seen its latest version)."""
    statement = _delete_statement(guarded=_names_versions(if_match))
    await _change(tx, statement, task_id=task_id, values={}, if_match=if_match)


async def _change(
    tx: RequestTransaction, statement: Prepared, *, task_id: int, values: dict[str, Any], if_match: EntityTags | None
) -> Task:
    params: dict[str, Any] = {"task_id": task_id, **values}
    if _names_versions(if_match):
        assert if_match is not None
        params["versions"] = sorted(if_match.strong_versions)
    return _the_task(await tx.run(statement.bind(**params)), task_id)


def _names_versions(if_match: EntityTags | None) -> bool:
    """If-Match names versions (`*`, or no If-Match, changes any current version)."""
    return if_match is not None and not if_match.any


@lru_cache(maxsize=32)
def _update_statement(columns: frozenset[str], *, toggle: bool, guarded: bool) -> Prepared:
    """The update of these columns (or the toggle of `completed`), compiled once per shape."""
    c = TASKS.c
    values: dict[str, Any] = {name: bindparam(name, type_=c[name].type) for name in sorted(columns)}
    if toggle:
        values["completed"] = ~c.completed
    # Strictly later than before, even if the clock has not moved.
    values["updated_at"] = func.greatest(func.now(), c.updated_at + literal_column("interval '1 microsecond'"))
    values["version"] = c.version + 1
    return prepare(
        _guarded(update(TASKS).where(c.id == bindparam("task_id", type_=BigInteger)).values(values), guarded)
    )


@lru_cache(maxsize=2)
def _delete_statement(*, guarded: bool) -> Prepared:
    return prepare(_guarded(delete(TASKS).where(TASKS.c.id == bindparam("task_id", type_=BigInteger)), guarded))


def _guarded(statement: Update | Delete, guarded: bool) -> Update | Delete | CompoundSelect[Any]:
    """The statement, changing the task only if its version is one the client names.

    With a condition, the statement also returns the task as it stands when nothing was
    changed, flagged `applied = false`, so that 404 and 412 are told apart in the same
    round trip. Under concurrent edits the row lock serialises writers, and PostgreSQL
    re-checks the version on the latest row: only one of two editors of version N wins.
    """
    if not guarded:  # no If-Match, or `*`: any current version; a missing task is a 404
        return statement.returning(*TASK_COLUMNS, literal(True).label("applied"))
    versions = bindparam("versions", type_=ARRAY(BigInteger))
    changed = (
        statement.where(TASKS.c.version == any_(versions))
        .returning(*TASK_COLUMNS, literal(True).label("applied"))
        .cte("changed")
    )
    unchanged = select(*TASK_COLUMNS, literal(False).label("applied")).where(
        TASKS.c.id == bindparam("task_id", type_=BigInteger), ~exists(select(changed.c.id))
    )
    return select(changed).union_all(unchanged)


def _the_task(rows: Rows, task_id: int) -> Task:
    if not rows:
        raise NotFound(f"task {task_id} not found")
    if not rows[0].get("applied", True):
        raise PreconditionFailed(
            f"task {task_id} has changed since the version named in If-Match; GET it for the current version"
        )
    return rows[0]
