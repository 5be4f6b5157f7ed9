"""Opaque keyset cursors: the sort key and id of the last task on a page.

A cursor is binary, then base64url: a format byte, the sort, the id (8 bytes) and the sort key
(a timestamp as 8 bytes of microseconds, a title as UTF-8, a priority as one byte, and no bytes
for a task without a due date). Its length is therefore bounded by construction,
`MAX_CURSOR_LENGTH`, whatever the title holds: a cursor the server issues is always one it
accepts.
"""

import base64
import binascii
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from api.common.representation import PRIORITY_NAMES, TIMESTAMPS
from api.tasks.models import BIGINT_MAX, PRIORITIES, TITLE_MAX, TaskSort, is_storable

_FORMAT = 1
_HEADER = struct.Struct(">BBQ")  # format, sort, id
_MICROSECONDS = struct.Struct(">q")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SORTS = list(TaskSort)
_MAX_UTF8_BYTES_PER_CHARACTER = 4
MAX_CURSOR_BYTES = _HEADER.size + TITLE_MAX * _MAX_UTF8_BYTES_PER_CHARACTER
MAX_CURSOR_LENGTH = -(-MAX_CURSOR_BYTES * 4 // 3)  # base64 without padding, rounded up


SortKey = datetime | str | int | None  # None: a task without a due date


@dataclass(frozen=True)
class Cursor:
    sort: TaskSort
    key: SortKey
    id: int

    def encode(self) -> str:
        header = _HEADER.pack(_FORMAT, _SORTS.index(self.sort), self.id)
        return base64.urlsafe_b64encode(header + _key_bytes(self.key)).decode().rstrip("=")

    @classmethod
    def after(cls, task: Mapping[str, Any], sort: TaskSort) -> "Cursor":
        key = task[sort.column]
        if isinstance(key, str):  # a task as represented (api/common/representation.py)
            if sort.column in TIMESTAMPS:
                key = datetime.fromisoformat(key)
            elif sort.column == "priority":
                key = PRIORITY_NAMES.index(key)
        return cls(sort=sort, key=key, id=task["id"])

    @classmethod
    def decode(cls, token: str) -> "Cursor":
        """Parse a cursor from a client; any tampering is a ValueError, never a crash."""
        if len(token) > MAX_CURSOR_LENGTH:
            raise ValueError("cursor is too long")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("cursor is malformed") from None
        if raw.startswith(b"{"):
            return _decode_json(raw)  # issued before the binary format; still honoured
        if len(raw) < _HEADER.size:
            raise ValueError("cursor is malformed")
        version, sort_index, task_id = _HEADER.unpack_from(raw)
        if version != _FORMAT or sort_index >= len(_SORTS) or not 1 <= task_id <= BIGINT_MAX:
            raise ValueError("cursor is malformed")
        sort = _SORTS[sort_index]
        return cls(sort=sort, key=_parse_key(sort, raw[_HEADER.size :]), id=task_id)


def _key_bytes(key: SortKey) -> bytes:
    if key is None:
        return b""
    if isinstance(key, datetime):
        return _MICROSECONDS.pack((key - EPOCH) // timedelta(microseconds=1))
    if isinstance(key, int):
        return bytes([key])
    return key.encode()


def _parse_key(sort: TaskSort, key: bytes) -> SortKey:
    if sort.column == "title":
        try:
            title = key.decode()
        except UnicodeDecodeError:
            raise ValueError("cursor is malformed") from None
        return _checked_title(title)
    if sort.column == "priority":
        if len(key) != 1 or key[0] >= len(PRIORITIES):
            raise ValueError("cursor is malformed")
        return key[0]
    if sort.column == "due_at" and not key:
        return None
    if len(key) != _MICROSECONDS.size:
        raise ValueError("cursor is malformed")
    try:
        return EPOCH + timedelta(microseconds=_MICROSECONDS.unpack(key)[0])
    except OverflowError:
        raise ValueError("cursor is malformed") from None


def _checked_title(title: str) -> str:
    if not 1 <= len(title) <= TITLE_MAX or not is_storable(title):
        raise ValueError("cursor is malformed")
    return title


def _decode_json(raw: bytes) -> Cursor:
    """The earlier format: base64url of {"s": sort, "k": key, "i": id}."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or set(data) != {"s", "k", "i"}:
            raise ValueError("cursor is malformed")
        sort, task_id, key = TaskSort(data["s"]), data["i"], data["k"]
    except (ValueError, TypeError):
        raise ValueError("cursor is malformed") from None
    if type(task_id) is not int or not 1 <= task_id <= BIGINT_MAX or not isinstance(key, str):
        raise ValueError("cursor is malformed")
    if sort.column in ("due_at", "priority"):
        raise ValueError("cursor is malformed")  # sorts added after this format was retired
    if sort.column == "title":
        return Cursor(sort=sort, key=_checked_title(key), id=task_id)
    try:
        moment = datetime.fromisoformat(key)
    except ValueError:
        raise ValueError("cursor is malformed") from None
    if moment.tzinfo is None:
        raise ValueError("cursor is malformed")
    return Cursor(sort=sort, key=moment, id=task_id)
