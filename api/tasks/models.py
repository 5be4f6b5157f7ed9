"""The task model family: the table, what a client may send, and what it gets back."""

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
)
from pydantic import Field as PydanticField
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

TITLE_MAX = 200
DESCRIPTION_MAX = 1000
TAGS_MAX = 20
TAG_MAX = 50
BIGINT_MAX = 2**63 - 1

SQLModel.metadata.naming_convention = {
    "ix": "%(table_name)s_%(column_0_N_name)s_idx",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


def is_storable(value: str) -> bool:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not is_storable(value):
        raise ValueError("must be valid Unicode (no lone surrogates)")
    return value


def trimmed(value: str) -> str:
    """A title or a name: storable, without surrounding whitespace, not blank."""
    value = _storable(value).strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def _description(value: str | None) -> str | None:
    return None if value is None else _storable(value)


# The same rules as published regular expressions, so a client (or a fuzzer) reading the
# OpenAPI document knows them. The whitespace class is exactly what `str.strip()` removes,
# spelled out because `\s` means something different in each regex dialect.
_SPACE = r"\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL_PATTERN = r"^[^\x00]*$"
NOT_BLANK_PATTERN = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"

# Tags: no control characters at all (C0, DEL, C1), and not blank.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_VISIBLE_SPACE = r" \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TAG_PATTERN = rf"^[^{_CONTROL}]*[^{_CONTROL}{_VISIBLE_SPACE}][^{_CONTROL}]*$"

Title = Annotated[str, StringConstraints(pattern=NOT_BLANK_PATTERN), AfterValidator(trimmed)]
Description = Annotated[Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)] | None, AfterValidator(_description)]
StorableText = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN), AfterValidator(_storable)]


def _in_utc(value: datetime) -> datetime:
    return value if value.utcoffset() == _NO_OFFSET else value.astimezone(UTC)


_NO_OFFSET = timedelta(0)
# Serialised as RFC 3339 with a `Z`, whatever the database session's time zone.
UtcTimestamp = Annotated[datetime, AfterValidator(_in_utc)]


def _trimmed_tag(value: str) -> str:
    value = _storable(value).strip()
    if not 1 <= len(value) <= TAG_MAX:
        raise ValueError(f"must be 1 to {TAG_MAX} characters once trimmed")
    return value


def _distinct_ignoring_case(tags: list[str]) -> list[str]:
    seen: set[str] = set()
    for tag in tags:
        folded = tag.lower()  # as PostgreSQL's lower(), which the tag filter and index use
        if folded in seen:
            raise ValueError(f"tag {tag!r} is given twice (tags are compared ignoring case)")
        seen.add(folded)
    return tags


def _in_utc_or_unrepresentable(value: datetime) -> datetime:
    try:
        return _in_utc(value)
    except OverflowError:
        raise ValueError("must lie between the years 1 and 9999 in UTC") from None


Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=TAG_MAX, pattern=TAG_PATTERN), AfterValidator(_trimmed_tag)
]
Tags = Annotated[list[Tag], PydanticField(max_length=TAGS_MAX), AfterValidator(_distinct_ignoring_case)]


# An RFC 3339 date-time with an offset (a naive one is refused), kept in UTC.
# RFC 3339's date-time: what the published schema says (format: date-time), and only that.
# Pydantic alone would also take Unix seconds ("1700000000"), a missing second, an offset
# without its colon or a space for the T.
RFC_3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc_3339_only(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and RFC_3339.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T09:30:00+01:00")


DueAt = Annotated[AwareDatetime, BeforeValidator(_rfc_3339_only), AfterValidator(_in_utc_or_unrepresentable)]
ListId = Annotated[int, PydanticField(ge=1, le=BIGINT_MAX)]


class _PublishedEnum(StrEnum):
    """A StrEnum whose published JSON schema names its first member as the example."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        handler.resolve_ref_schema(schema)["examples"] = [next(iter(cls)).value]
        return schema


class Priority(_PublishedEnum):
    """How important a task is; sorting by it sorts none < low < medium < high."""

    none = "none"
    low = "low"
    medium = "medium"
    high = "high"

    @property
    def stored(self) -> int:
        return PRIORITIES.index(self)


PRIORITIES = list(Priority)


class Task(SQLModel, table=True):
    """A row of `tasks`. Who may see it is decided by the policies in db/policies/."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"char_length(title) between 1 and {TITLE_MAX}", name="title_length"),
        CheckConstraint(
            f"description is null or char_length(description) <= {DESCRIPTION_MAX}",
            name="description_length",
        ),
        CheckConstraint("char_length(user_id) between 1 and 255", name="user_id_length"),
        # One index per sort order; each starts with user_id, which the policy pins.
        Index("tasks_user_id_created_at_id_idx", "user_id", "created_at", "id"),
        Index("tasks_user_id_updated_at_id_idx", "user_id", "updated_at", "id"),
        Index("tasks_user_id_title_id_idx", "user_id", "title", "id"),
        Index("tasks_user_id_due_at_id_idx", "user_id", "due_at", "id"),
        Index("tasks_user_id_priority_id_idx", "user_id", "priority", "id"),
        Index("tasks_user_id_list_id_idx", "user_id", "list_id"),
        # What task_tags references: a task together with its owner.
        UniqueConstraint("id", "user_id", name="tasks_id_user_id_key"),
        CheckConstraint("priority between 0 and 3", name="priority"),
        CheckConstraint(f"cardinality(tags) <= {TAGS_MAX}", name="tags_count"),
        CheckConstraint("completed = (completed_at is not null)", name="completed_at"),
        # The list must be the task's owner's: a foreign key is checked without row-level
        # security, so the owner is part of it. Deleting a list nulls only list_id.
        ForeignKeyConstraint(
            ["list_id", "user_id"],
            ["lists.id", "lists.user_id"],
            name="tasks_list_id_fkey",
            ondelete="SET NULL (list_id)",
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), primary_key=True),
    )
    user_id: str = Field(sa_column=Column(Text, nullable=False, server_default=text("app.current_user_id()")))
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    completed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )
    # Bumped by every change; the ETag, so concurrent editors cannot overwrite each other.
    version: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=False, server_default=text("1")))
    list_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    due_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # 0 none, 1 low, 2 medium, 3 high: sorting by the number sorts by importance.
    priority: int = Field(default=0, sa_column=Column(SmallInteger, nullable=False, server_default=text("0")))
    tags: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    )
    # Set exactly while the task is completed (a check constraint holds the two together).
    completed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


# The table itself, for SQL Core statements.
TASKS: Table = Task.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass


class TaskTag(SQLModel, table=True):
    """A row of `task_tags`: the tag index of tasks, one row per task and distinct lower-cased
    tag, written only by triggers on `tasks` (db/functions/app.sync_task_tags.sql). A table
    rather than a GIN index: under row-level security an index scan may only use leakproof
    operators, and text equality is one where array containment is not."""

    __tablename__ = "task_tags"
    __table_args__ = (
        ForeignKeyConstraint(
            ["task_id", "user_id"],
            ["tasks.id", "tasks.user_id"],
            name="task_tags_task_id_fkey",
            ondelete="CASCADE",
        ),
        # One task's entries, for the cascade of its delete and for the trigger (a tag change).
        Index("task_tags_task_id_idx", "task_id"),
    )

    user_id: str = Field(sa_column=Column(Text, primary_key=True, server_default=text("app.current_user_id()")))
    tag_key: str = Field(sa_column=Column(Text, primary_key=True))
    task_id: int = Field(sa_column=Column(BigInteger, primary_key=True))


TASK_TAGS: Table = TaskTag.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass


class IdempotencyKey(SQLModel, table=True):
    """A POST's Idempotency-Key and the answer it got, kept until `expires_at` (RLS like tasks)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint("char_length(key) between 1 and 255", name="key_length"),
        Index("idempotency_keys_user_id_expires_at_idx", "user_id", "expires_at"),
    )

    user_id: str = Field(sa_column=Column(Text, primary_key=True, server_default=text("app.current_user_id()")))
    key: str = Field(sa_column=Column(Text, primary_key=True))
    request_hash: str = Field(sa_column=Column(Text, nullable=False))
    # Both null only inside the transaction that claimed the key.
    response_status: int | None = Field(default=None, sa_column=Column(SmallInteger, nullable=True))
    response_body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class _ClientInput(BaseModel):
    # The owner and the bookkeeping fields come from the server, never from the body.
    model_config = ConfigDict(extra="forbid")


LIST_ID = "One of the caller's lists, or null for none."
DUE_AT = "When the task is due: an RFC 3339 date-time with an offset, or null; answered in UTC."
TAGS = "Up to 20 tags, each 1-50 characters once trimmed, no control characters, distinct ignoring case; in order."


class TaskCreate(_ClientInput):
    title: Title = PydanticField(min_length=1, max_length=TITLE_MAX, examples=["Buy milk"])
    description: Description = PydanticField(default=None, max_length=DESCRIPTION_MAX, examples=["2 litres, oat"])
    completed: StrictBool = False
    list_id: ListId | None = PydanticField(default=None, description=LIST_ID)
    due_at: DueAt | None = PydanticField(default=None, description=DUE_AT)
    priority: Priority = Priority.none
    tags: Tags = PydanticField(default_factory=list, description=TAGS)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "Buy milk", "description": "2 litres, oat"}]},
    )


class TaskUpdate(_ClientInput):
    """PUT body: `title` is required; absent optional fields are left unchanged."""

    title: Title = PydanticField(min_length=1, max_length=TITLE_MAX)
    description: Description = PydanticField(default=None, max_length=DESCRIPTION_MAX)
    # Absent: unchanged. An explicit null is not a boolean, so it is rejected (422), not stored.
    completed: StrictBool = PydanticField(default=None)  # type: ignore[assignment]  # absent, never null
    list_id: ListId | None = PydanticField(default=None, description=LIST_ID)  # null: no list
    due_at: DueAt | None = PydanticField(default=None, description=DUE_AT)  # null: no due date
    priority: Priority = PydanticField(default=None)  # type: ignore[assignment]  # absent, never null
    tags: Tags = PydanticField(default=None, description=TAGS)  # type: ignore[arg-type]  # absent, never null

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "Buy oat milk", "completed": True}]},
    )


class TaskCompletion(_ClientInput):
    """PATCH .../complete body: set `completed`; send no body to toggle it."""

    completed: StrictBool

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"completed": True}]})


class TaskRead(BaseModel):
    """A task as the API returns it. A plain pydantic model, not SQLModel: every row of every
    response is validated through it, and pydantic's own validation is about three times faster."""

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    version: int = PydanticField(description='Bumped by every change; the `ETag` is this number quoted, e.g. `"3"`.')
    list_id: int | None = PydanticField(description="The list the task is in, or null.")
    due_at: UtcTimestamp | None
    priority: Priority
    tags: list[str]
    completed_at: UtcTimestamp | None = PydanticField(description="When the task was completed; null while it is not.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "user_id": "user_2x7mQ",
                    "title": "Buy milk",
                    "description": "2 litres, oat",
                    "completed": True,
                    "created_at": "2026-11-23T09:30:00.123456Z",
                    "updated_at": "2026-11-24T08:00:00Z",
                    "version": 2,
                    "list_id": 7,
                    "due_at": "2026-11-25T17:00:00Z",
                    "priority": "high",
                    "tags": ["errands", "Shop"],
                    # Not null: FastAPI leaves nulls out of published examples.
                    "completed_at": "2026-11-24T08:00:00Z",
                }
            ]
        }
    )


class TaskStatus(_PublishedEnum):
    """Which tasks a list includes: all, only those not completed, or only completed ones."""

    all = "all"
    pending = "pending"
    completed = "completed"


class TaskSort(_PublishedEnum):
    """A list's order: by creation, last update, title, due date or priority; `-` means descending."""

    created = "created"
    newest_first = "-created"
    updated = "updated"
    recently_updated_first = "-updated"
    by_title = "title"  # not `title`: that would hide str.title
    title_descending = "-title"
    # Appended, never reordered: a cursor names its sort by position.
    due = "due"  # tasks without a due date come last, in both directions
    due_descending = "-due"
    by_priority = "priority"  # none < low < medium < high
    priority_descending = "-priority"

    @property
    def column(self) -> str:
        return _SORT_COLUMNS[self.value.lstrip("-")]

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")


_SORT_COLUMNS = {
    "created": "created_at",
    "updated": "updated_at",
    "title": "title",
    "due": "due_at",
    "priority": "priority",
}
