"""The list route's query: its filters, its order and where the page starts, checked once.

The same model is the route's query parameters and the service's input; the cursor arrives as
an opaque string and is decoded here, once, into the position it names.
"""

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from api.tasks.models import TAGS_MAX, DueAt, ListId, Priority, StorableText, Tag, TaskSort, TaskStatus
from api.tasks.pagination import MAX_CURSOR_LENGTH, Cursor


def _decoded(value: Any) -> Cursor | None:
    if value is None or isinstance(value, Cursor):
        return value
    if not isinstance(value, str) or len(value) > MAX_CURSOR_LENGTH:
        raise ValueError(f"a cursor is a string of at most {MAX_CURSOR_LENGTH} characters")
    return Cursor.decode(value)


def _encoded(cursor: Cursor | None) -> str | None:
    return cursor.encode() if cursor is not None else None


CURSOR = 'Opaque cursor from a `Link: rel="next"` header.'
# Decoded once, on the way in; published (and serialised) as the opaque string it arrives as.
CursorParameter = Annotated[
    Cursor | None,
    PlainValidator(_decoded),
    PlainSerializer(_encoded, return_type=str | None),
    WithJsonSchema(
        {"anyOf": [{"maxLength": MAX_CURSOR_LENGTH, "type": "string"}, {"type": "null"}], "description": CURSOR}
    ),
]


NO_LIST = "none"


class ListQuery(BaseModel):
    """Query parameters of the list route."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: TaskStatus = Field(TaskStatus.all, description="Which tasks to include.")
    sort: TaskSort = Field(TaskSort.newest_first, description="Sort key; a leading `-` means descending.")
    q: StorableText | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Case-insensitive substring of the title or description, taken literally.",
    )
    limit: int = Field(50, ge=1, le=100, description="Page size.")
    cursor: CursorParameter = Field(None, description=CURSOR)
    list_id: ListId | Literal["none"] | None = Field(
        None, description="Only the tasks of this list, or `none` for the tasks in no list."
    )
    priority: list[Priority] = Field(
        default_factory=list, max_length=len(Priority), description="Only these priorities (repeatable: any of them)."
    )
    tag: list[Tag] = Field(
        default_factory=list,
        max_length=TAGS_MAX,
        description="Only tasks carrying this tag, compared ignoring case (repeatable: all of them).",
    )
    due_before: DueAt | None = Field(None, description="Only tasks due before this moment (RFC 3339).")
    due_after: DueAt | None = Field(None, description="Only tasks due at or after this moment (RFC 3339).")
    overdue: bool | None = Field(
        None, description="`true`: only tasks due in the past and not completed; `false`: all other tasks."
    )

    @field_validator("cursor")
    @classmethod
    def _cursor_fits_sort(cls, value: Cursor | None, info: ValidationInfo) -> Cursor | None:
        if value is not None and value.sort is not info.data.get("sort"):
            raise ValueError("cursor was issued for another sort order")
        return value
