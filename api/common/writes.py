"""Writes every resource shares: a create keyed by an Idempotency-Key, an update or delete
guarded by the versions If-Match names, and the answers (404, 412) those give.

Each builds statements for one round trip; none checks ownership, which the policies decide.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from psycopg import errors as pg_errors
from psycopg.rows import AsyncRowFactory, DictRow, dict_row
from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Delete,
    Table,
    Update,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from api.common.etags import EntityTags
from api.database.session import Prepared, RequestTransaction, Rows, Statement, prepare
from api.edge.errors import Conflict, NotFound, PreconditionFailed, Unprocessable


@dataclass(frozen=True)
class IdempotentCreate:
    """A POST carrying an Idempotency-Key: the key, what was asked, and how long to remember."""

    key: str
    operation: str  # the operationId: a key used for one kind of creation never replays another
    body: dict[str, Any]  # the request's fields, as JSON would carry them
    ttl_seconds: int

    @property
    def request_hash(self) -> str:
        canonical = json.dumps(self.body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{self.operation}\n{canonical}".encode()).hexdigest()


# Claim the key: the caller's expired keys go first, so an expired key can be claimed anew.
# A concurrent claim of the same key waits here until the other transaction ends.
_PURGE_EXPIRED_KEYS = prepare(text("delete from idempotency_keys where expires_at < now()"))
_CLAIM_KEY = prepare(
    text(
        "insert into idempotency_keys (key, request_hash, expires_at)"
        " values (:key, :request_hash, now() + :ttl) on conflict (user_id, key) do nothing"
    )
)
# A fresh snapshot: sees the answer of a concurrent request with this key that committed first.
_STORED_ANSWER = prepare(text("select request_hash, response_body from idempotency_keys where key = :key"))


def create_if_claimed(
    table: str, values: dict[str, str], returning: str, *, rows: AsyncRowFactory[DictRow] = dict_row
) -> Prepared:
    """Insert the row only if this transaction holds the key's claim (no answer stored yet),
    and store the row as the key's answer. `values`: column -> SQL expression."""
    return prepare(
        text(
            "with created as ("
            f"  insert into {table} ({', '.join(values)})"
            f"  select {', '.join(values.values())}"
            "   where exists (select from idempotency_keys where key = :key and response_status is null)"
            f"  returning {returning}"
            "), recorded as ("
            "  update idempotency_keys k set response_status = 201, response_body = to_jsonb(created)"
            "    from created where k.key = :key"
            ") select * from created"
        ),
        rows=rows,
    )


async def create_once(
    tx: RequestTransaction, *, request: IdempotentCreate, insert_if_claimed: Statement
) -> tuple[dict[str, Any], bool]:
    """Create the row, or replay the answer an earlier request with this key got.

    Returns the row (a replay's as stored JSON) and whether it is a replay. The whole exchange
    is one transaction, sent in one round trip.
    """
    key = {"key": request.key}
    statements = [
        _PURGE_EXPIRED_KEYS.bind(),
        _CLAIM_KEY.bind(**key, request_hash=request.request_hash, ttl=timedelta(seconds=request.ttl_seconds)),
        Statement(insert_if_claimed.sql, {**insert_if_claimed.params, **key}, insert_if_claimed.rows),
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
    return answer["response_body"], True


def version_params(row_id: int, if_match: EntityTags | None) -> dict[str, Any]:
    """The parameters of a guarded change: the row, and the versions If-Match names."""
    if not names_versions(if_match):
        return {"row_id": row_id}
    assert if_match is not None
    return {"row_id": row_id, "versions": sorted(if_match.strong_versions)}


def names_versions(if_match: EntityTags | None) -> bool:
    """If-Match names versions (`*`, or no If-Match, changes any current version)."""
    return if_match is not None and not if_match.any


def guarded_update(
    table: Table, values: dict[str, Any], *, guarded: bool, rows: AsyncRowFactory[DictRow] = dict_row
) -> Prepared:
    """Update the row `row_id` with `values`, a new version and a later `updated_at`."""
    c = table.c
    # Strictly later than before, even if the clock has not moved.
    values = values | {
        "updated_at": func.greatest(func.now(), c.updated_at + literal_column("interval '1 microsecond'")),
        "version": c.version + 1,
    }
    return prepare(_guarded(table, update(table).where(c.id == _ROW_ID).values(values), guarded), rows=rows)


@lru_cache(maxsize=4)
def guarded_delete(table: Table, *, guarded: bool) -> Prepared:
    return prepare(_guarded(table, delete(table).where(table.c.id == _ROW_ID), guarded))


_ROW_ID = bindparam("row_id", type_=BigInteger)


def _guarded(table: Table, statement: Update | Delete, guarded: bool) -> Update | Delete | CompoundSelect[Any]:
    """The statement, changing the row only if its version is one the client names.

    With a condition, the statement also returns the row as it stands when nothing was
    changed, flagged `applied = false`, so that 404 and 412 are told apart in the same
    round trip. Under concurrent edits the row lock serialises writers, and PostgreSQL
    re-checks the version on the latest row: only one of two editors of version N wins.
    """
    columns = tuple(table.columns)
    if not guarded:  # no If-Match, or `*`: any current version; a missing row is a 404
        return statement.returning(*columns, literal(True).label("applied"))
    versions = bindparam("versions", type_=ARRAY(BigInteger))
    changed = (
        statement.where(table.c.version == any_(versions))
        .returning(*columns, literal(True).label("applied"))
        .cte("changed")
    )
    unchanged = select(*columns, literal(False).label("applied")).where(
        table.c.id == _ROW_ID, ~exists(select(changed.c.id))
    )
    return select(changed).union_all(unchanged)


def the_row(rows: Rows, name: str) -> dict[str, Any]:
    """The changed row; or 404 when there is none, 412 when it was not at a version named."""
    if not rows:
        raise NotFound(f"{name} not found")
    if not rows[0].get("applied", True):
        raise PreconditionFailed(
            f"{name} has changed since the version named in If-Match; GET it for the current version"
        )
    return rows[0]
