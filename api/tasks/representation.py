"""What a client gets back: tasks as JSON, rendered straight from their rows.

The shape is `TaskRead`'s, which the OpenAPI document publishes: its fields in its order,
timestamps in UTC as RFC 3339 with a `Z`. Rows are rendered by orjson rather than validated
and re-serialised through pydantic, which would cost more than the rest of a short request.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from api.tasks.models import TaskRead

TASK_FIELDS = tuple(TaskRead.model_fields)
TIMESTAMPS = ("created_at", "updated_at")

Task = Mapping[str, Any]  # a task's row: every column of TASK_FIELDS


def task_json(task: Task) -> bytes:
    return orjson.dumps(_fields(task), option=orjson.OPT_UTC_Z)


def tasks_json(tasks: Sequence[Task]) -> bytes:
    return orjson.dumps([_fields(task) for task in tasks], option=orjson.OPT_UTC_Z)


def _fields(task: Task) -> dict[str, Any]:
    fields = {name: task[name] for name in TASK_FIELDS}
    for name in TIMESTAMPS:
        fields[name] = fields[name].astimezone(UTC)  # whatever the database session's time zone
    return fields


def from_stored(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A task stored as JSON (an idempotent request's answer) as a row again."""
    task = {name: answer[name] for name in TASK_FIELDS}
    for name in TIMESTAMPS:
        value = task[name]
        task[name] = datetime.fromisoformat(value) if isinstance(value, str) else value
    return task
