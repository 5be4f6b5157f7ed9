"""Opaque keyset cursors: the sort key and id of the last task on a page."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from api.tasks.models import BIGINT_MAX, TITLE_MAX, TaskRead, TaskSort

MAX_CURSOR_LENGTH = 1024


@dataclass(frozen=True)
class Cursor:
    sort: TaskSort
    key: datetime | str
    id: int

    def encode(self) -> str:
        key = self.key.isoformat() if isinstance(self.key, datetime) else self.key
        raw = json.dumps({"s": self.sort.value, "k": key, "i": self.id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def after(cls, task: TaskRead, sort: TaskSort) -> "Cursor":
        return cls(sort=sort, key=getattr(task, sort.column), id=task.id)

    @classmethod
    def decode(cls, token: str) -> "Cursor":
        """Parse a cursor from a client; any tampering is a ValueError, never a crash."""
        if len(token) > MAX_CURSOR_LENGTH:
            raise ValueError("cursor is too long")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ValueError("cursor is malformed") from None
        if not isinstance(data, dict) or set(data) != {"s", "k", "i"}:
            raise ValueError("cursor is malformed")
        try:
            sort = TaskSort(data["s"])
        except ValueError:
            raise ValueError("cursor is malformed") from None
        task_id, key = data["i"], data["k"]
        if type(task_id) is not int or not 1 <= task_id <= BIGINT_MAX or not isinstance(key, str):
            raise ValueError("cursor is malformed")
        return cls(sort=sort, key=_parse_key(sort, key), id=task_id)


def _parse_key(sort: TaskSort, key: str) -> datetime | str:
    if sort.column == "title":
        if not 1 <= len(key) <= TITLE_MAX or "\x00" in key:
            raise ValueError("cursor is malformed")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("cursor is malformed") from None
        return key
    try:
        moment = datetime.fromisoformat(key)
    except ValueError:
        raise ValueError("cursor is malformed") from None
    if moment.tzinfo is None:
        raise ValueError("cursor is malformed")
    return moment
