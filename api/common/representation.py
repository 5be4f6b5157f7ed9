"""What a client gets back: tasks and lists as JSON, rendered straight from their rows.

The shapes are `TaskRead`'s and `ListRead`'s, which the OpenAPI document publishes: their
fields in their order, timestamps in UTC as RFC 3339 with a `Z` (read from PostgreSQL as text,
rewritten by api/database/timestamps.py), a priority by its name. Rows are rendered by orjson
rather than validated and re-serialised through pydantic, which would cost more than the rest
of a short request.

A task's row is read straight into its representation (`task_rows`, a psycopg row factory):
one step per row as it leaves the driver, rather than a dict by column name and then a second
dict for the JSON (a sixth of reading and rendering a page of tasks).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from psycopg.rows import RowMaker, dict_row

from api.database.timestamps import rfc3339
from api.lists.models import ListRead
from api.tasks.models import PRIORITIES, TaskRead

TASK_FIELDS = tuple(TaskRead.model_fields)
LIST_FIELDS = tuple(ListRead.model_fields)
TIMESTAMPS = ("created_at", "updated_at", "due_at", "completed_at")
PRIORITY_NAMES = tuple(priority.value for priority in PRIORITIES)  # by the stored number

Task = Mapping[str, Any]  # a task's row: every column of TASK_FIELDS
TaskList = Mapping[str, Any]  # a list's row with its counts: every field of LIST_FIELDS


def task_rows(cursor: Any) -> RowMaker[dict[str, Any]]:
    """Read rows of task columns as tasks are represented (other columns, such as a write's
    `applied`, are read as they are); any other result, as a dict by column name."""
    result = cursor.pgresult
    names = [result.fname(index).decode() for index in range(result.nfields)] if result else []
    if "priority" not in names:
        return dict_row(cursor)
    return _task_row_maker(names)


def _task_row_maker(names: Sequence[str]) -> RowMaker[dict[str, Any]]:
    """A task from the values of the columns `names`, as the API represents it."""
    timestamps = [(index, name) for index, name in enumerate(names) if name in TIMESTAMPS]
    priority = names.index("priority")

    def task_row(values: Sequence[Any]) -> dict[str, Any]:
        task = dict(zip(names, values, strict=True))
        for index, name in timestamps:
            if (value := values[index]) is not None:
                task[name] = rfc3339(value)
        task["priority"] = PRIORITY_NAMES[values[priority]]
        return task

    return task_row


def task_json(task: Task) -> bytes:
    return orjson.dumps({name: task[name] for name in TASK_FIELDS})


def tasks_json(tasks: Sequence[Task]) -> bytes:
    """A page of tasks read by `task_rows` from rows of exactly the task's columns."""
    return orjson.dumps(tasks)


def list_json(task_list: TaskList) -> bytes:
    return orjson.dumps(_list_fields(task_list))


def lists_json(task_lists: Sequence[TaskList]) -> bytes:
    return orjson.dumps([_list_fields(task_list) for task_list in task_lists])


def _list_fields(task_list: TaskList) -> dict[str, Any]:
    return _in_rfc3339({name: task_list[name] for name in LIST_FIELDS})


def _in_rfc3339(fields: dict[str, Any]) -> dict[str, Any]:
    for name in TIMESTAMPS:
        if (value := fields.get(name)) is not None:
            fields[name] = rfc3339(value)
    return fields


# What a task's answer stored before migration 0004 lacks, as the migration filled it in.
TASK_FIELDS_ADDED_LATER: dict[str, Any] = {
    "list_id": None,
    "due_at": None,
    "priority": 0,
    "tags": [],
    "completed_at": None,
}


_stored_task = _task_row_maker(TASK_FIELDS)


def task_from_stored(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A task's answer stored as JSON (an idempotent request's), as `task_rows` reads a task."""
    return _stored_task(tuple(from_stored(answer).values()))


def from_stored(
    answer: Mapping[str, Any], fields: Sequence[str] = TASK_FIELDS, missing: Mapping[str, Any] = TASK_FIELDS_ADDED_LATER
) -> dict[str, Any]:
    """A row stored as JSON (an idempotent request's answer) as a row again; `missing`: the
    values of fields the stored answer lacks. A timestamp stays text, as the pool reads it."""
    return {name: answer[name] if name in answer else missing[name] for name in fields}
