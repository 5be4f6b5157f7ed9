"""A task's row is read straight into its representation (`task_rows`), statement by statement:
in a transaction that also reads other rows, each result is read the way its statement asks."""

import asyncio
from typing import Any

import orjson
from sqlalchemy import text

from api.common.representation import TASK_FIELDS, task_json, task_rows, tasks_json
from api.database.engine import Database
from api.database.session import RequestTransaction, identity, prepare
from api.database.timestamps import rfc3339
from api.tasks.service import TASK_COLUMN_NAMES
from tests.support.app import make_settings

TASKS = prepare(text(f"select {TASK_COLUMN_NAMES} from tasks order by id"), rows=task_rows)
TASKS_AS_STORED = prepare(text(f"select {TASK_COLUMN_NAMES} from tasks order by id"))
A_COUNT = prepare(text("select count(*) as tasks, now() as at from tasks"))


def _seed(admin: Any) -> None:
    admin.execute(
        "insert into tasks (user_id, title, priority, due_at, completed, completed_at, tags) values"
        " ('alice', 'first', 3, '2026-12-01 07:30:00+02', true, '2026-11-29 06:59:09.1+00', '{home}'),"
        " ('alice', 'second', 0, null, false, null, '{}'),"
        " ('bob', 'not alice''s', 1, null, false, null, '{}')"
    )
    admin.commit()


async def _read(app_url: str, statements: list[Any]) -> list[list[dict[str, Any]]]:
    database = Database(app_url, make_settings(app_url))
    try:
        tx = RequestTransaction(
            database,
            settings=make_settings(app_url),
            identity=identity("alice", statement_timeout_ms=5000, lock_timeout_ms=1000),
            attempts=1,
            read_only=True,
        )
        return await tx.run_all([statement.bind() for statement in statements])
    finally:
        await database.stop()


def test_task_rows_are_read_as_the_api_represents_them(app_url, admin):
    _seed(admin)
    [tasks] = asyncio.run(_read(app_url, [TASKS]))
    assert [task["title"] for task in tasks] == ["first", "second"]  # the policy: alice's only
    first, second = tasks
    assert list(first) == list(TASK_FIELDS)
    assert first["priority"] == "high" and second["priority"] == "none"
    assert first["due_at"] == "2026-12-01T05:30:00Z"
    assert first["completed_at"] == "2026-11-29T06:59:09.100000Z"
    assert first["created_at"].endswith("Z") and second["due_at"] is None and first["tags"] == ["home"]
    assert tasks_json(tasks) == orjson.dumps([orjson.loads(task_json(task)) for task in tasks])


def test_each_result_of_a_transaction_is_read_as_its_statement_asks(app_url, admin):
    _seed(admin)
    counted, tasks, stored, counted_again = asyncio.run(_read(app_url, [A_COUNT, TASKS, TASKS_AS_STORED, A_COUNT]))
    assert counted == counted_again and counted[0]["tasks"] == 2 and isinstance(counted[0]["at"], str)
    assert [task["priority"] for task in tasks] == ["high", "none"]
    assert [task["priority"] for task in stored] == [3, 0]  # the stored number: read by column name
    assert rfc3339(stored[0]["due_at"]) == tasks[0]["due_at"] == "2026-12-01T05:30:00Z"
