"""What a client gets back: tasks and lists as JSON, rendered straight from their rows.

The shapes are `TaskRead`'s and `ListRead`'s, which the OpenAPI document publishes: their
fields in their order, timestamps in UTC as RFC 3339 with a `Z` (read from PostgreSQL as text,
rewritten by api/database/timestamps.py), a priority by its name. Rows are rendered by orjson
rather than validated and re-serialised through pydantic, which would cost more than the rest
of a short request.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from api.database.timestamps import rfc3339
from api.lists.models import ListRead
from api.tasks.models import PRIORITIES, TaskRead

TASK_FIELDS = tuple(TaskRead.model_fields)
LIST_FIELDS = tuple(ListRead.model_fields)
TIMESTAMPS = ("created_at", "updated_at", "due_at", "completed_at")
PRIORITY_NAMES = tuple(priority.value for priority in PRIORITIES)  # by the stored number

Task = Mapping[str, Any]  # a task's row: every column of TASK_FIELDS
TaskList = Mapping[str, Any]  # a list's row with its counts: every field of LIST_FIELDS


def task_json(task: Task) -> bytes:
    return orjson.dumps(_task_fields(task))


def tasks_json(tasks: Sequence[Task]) -> bytes:
    return orjson.dumps([_task_fields(task) for task in tasks])


def list_json(task_list: TaskList) -> bytes:
    return orjson.dumps(_list_fields(task_list))


def lists_json(task_lists: Sequence[TaskList]) -> bytes:
    return orjson.dumps([_list_fields(task_list) for task_list in task_lists])


def _task_fields(task: Task) -> dict[str, Any]:
    fields = _in_rfc3339({name: task[name] for name in TASK_FIELDS})
    fields["priority"] = PRIORITY_NAMES[fields["priority"]]
    return fields


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


def from_stored(
    answer: Mapping[str, Any], fields: Sequence[str] = TASK_FIELDS, missing: Mapping[str, Any] = TASK_FIELDS_ADDED_LATER
) -> dict[str, Any]:
    """A row stored as JSON (an idempotent request's answer) as a row again; `missing`: the
    values of fields the stored answer lacks. A timestamp stays text, as the pool reads it."""
    return {name: answer[name] if name in answer else missing[name] for name in fields}
