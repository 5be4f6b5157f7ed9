"""The list model family: the table, what a client may send, and what it gets back."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic import Field as PydanticField
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from api.tasks.models import NOT_BLANK_PATTERN, UtcTimestamp, trimmed

NAME_MAX = 100


class TaskList(SQLModel, table=True):
    """A row of `lists`. Who may see it is decided by the policies in db/policies/."""

    __tablename__ = "lists"
    __table_args__ = (
        CheckConstraint(f"char_length(name) between 1 and {NAME_MAX}", name="name_length"),
        CheckConstraint("char_length(user_id) between 1 and 255", name="user_id_length"),
        # What a task's composite foreign key references: a list together with its owner.
        UniqueConstraint("id", "user_id", name="lists_id_user_id_key"),
        # Names are unique per user, ignoring case.
        Index("lists_user_id_lower_name_key", "user_id", text("lower(name)"), unique=True),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))
    user_id: str = Field(sa_column=Column(Text, nullable=False, server_default=text("app.current_user_id()")))
    name: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    updated_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    version: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=False, server_default=text("1")))


LISTS: Table = TaskList.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass

Name = Annotated[str, StringConstraints(pattern=NOT_BLANK_PATTERN), AfterValidator(trimmed)]


class ListWrite(BaseModel):
    """POST and PUT body: the list's name (trimmed; unique per user, ignoring case)."""

    name: Name = PydanticField(min_length=1, max_length=NAME_MAX, examples=["Groceries"])

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Groceries"}]})


class ListRead(BaseModel):
    """A list as the API returns it, with how many of the caller's tasks it holds."""

    id: int
    user_id: str
    name: str
    task_count: int = PydanticField(description="Tasks in the list.")
    open_count: int = PydanticField(description="Tasks in the list not completed yet.")
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    version: int = PydanticField(description='Bumped by every rename; the `ETag` is this number quoted, e.g. `"3"`.')

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "user_id": "user_2x7mQ",
                    "name": "Groceries",
                    "task_count": 4,
                    "open_count": 3,
                    "created_at": "2026-11-23T09:30:00.123456Z",
                    "updated_at": "2026-11-23T09:30:00.123456Z",
                    "version": 1,
                }
            ]
        }
    )
