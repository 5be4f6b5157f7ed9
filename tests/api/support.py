"""Shared helpers for the HTTP contract tests: reading the database, problem details, links."""

import re
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import psycopg
from fastapi.testclient import TestClient
from httpx import Response
from psycopg.rows import dict_row

from tests.support.app import PROBLEM_JSON, tasks_url
from tests.support.tokens import JWT_SECRET, bearer, token_for
from tests.support.users import ALICE

BIGINT_MAX = 2**63 - 1
TASK_FIELDS = {
    *("id", "user_id", "title", "description", "completed", "created_at", "updated_at", "version"),
    *("list_id", "due_at", "priority", "tags", "completed_at"),
}
PRIORITIES = ("none", "low", "medium", "high")
ROUTES = [  # (method, path under /api/{user}/tasks, operationId, item route?)
    ("GET", "", "listTasks", False),
    ("POST", "", "createTask", False),
    ("GET", "/{id}", "getTask", True),
    ("PUT", "/{id}", "updateTask", True),
    ("DELETE", "/{id}", "deleteTask", True),
    ("PATCH", "/{id}/complete", "completeTask", True),
]
LIST_ROUTES = [  # (method, path under /api/{user}/lists, operationId, item route?)
    ("GET", "", "listLists", False),
    ("POST", "", "createList", False),
    ("GET", "/{id}", "getList", True),
    ("PUT", "/{id}", "updateList", True),
    ("DELETE", "/{id}", "deleteList", True),
]
VALID_BODIES = {"POST": {"title": "x"}, "PUT": {"title": "x"}, "PATCH": {"completed": True}}


def call(client: TestClient, method: str, owner: str, suffix: str, task_id: int, **kwargs) -> Response:
    """Call one of the six routes, with a valid body for the writes unless one is given."""
    url = tasks_url(owner) + suffix.format(id=task_id)
    if "json" not in kwargs and "content" not in kwargs and method in VALID_BODIES:
        kwargs["json"] = VALID_BODIES[method]
    return client.request(method, url, **kwargs)


# --- the database, seen past row-level security -------------------------------------------


def table(admin: psycopg.Connection) -> list[dict[str, Any]]:
    """Every row of `tasks`, every column, in id order."""
    with admin.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from tasks order by id").fetchall()


def db_row(admin: psycopg.Connection, task_id: int) -> dict[str, Any] | None:
    with admin.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from tasks where id = %s", (task_id,)).fetchone()


def insert_task(admin: psycopg.Connection, user_id: str, title: str = "a task", **columns: Any) -> int:
    """Insert one row directly (any column may be given), returning its id."""
    values = {"user_id": user_id, "title": title, **columns}
    if values.get("completed") and "completed_at" not in values:
        values["completed_at"] = datetime.now(UTC)  # the schema requires it of a completed task
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = admin.execute(f"insert into tasks ({names}) values ({marks}) returning id", list(values.values())).fetchone()
    assert row is not None
    return row[0]


def insert_tasks(admin: psycopg.Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert many rows in one transaction (each a dict of columns), returning their ids."""
    with admin.transaction():
        return [insert_task(admin, **row) for row in rows]


# --- responses ----------------------------------------------------------------------------


def parse_time(value: str) -> datetime:
    """An ISO 8601 timestamp that must carry a timezone."""
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, f"{value!r} has no timezone"
    return moment


def assert_task_shape(task: dict[str, Any]) -> None:
    assert set(task) == TASK_FIELDS
    assert type(task["id"]) is int
    assert isinstance(task["user_id"], str)
    assert isinstance(task["title"], str)
    assert task["description"] is None or isinstance(task["description"], str)
    assert type(task["completed"]) is bool
    assert type(task["version"]) is int and task["version"] >= 1
    parse_time(task["created_at"])
    parse_time(task["updated_at"])
    assert task["list_id"] is None or type(task["list_id"]) is int
    assert task["priority"] in PRIORITIES
    assert isinstance(task["tags"], list) and all(isinstance(tag, str) for tag in task["tags"])
    for moment in ("due_at", "completed_at"):
        assert task[moment] is None or task[moment].endswith("Z"), task[moment]
    assert (task["completed_at"] is not None) == task["completed"]


def assert_problem(response: Response, status: int, case: object = None) -> dict[str, Any]:
    """An RFC 9457 problem with this status; returns the body. `case` labels a failure."""
    assert response.status_code == status, (case, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON, case
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def bad_fields(body: dict[str, Any]) -> list[str]:
    """The field each validation error names: `loc[1]`, after `body`, `query` or `path` (deeper
    elements, an item's index or a union member, belong to that field)."""
    return [str(error["loc"][1] if len(error["loc"]) > 1 else error["loc"][0]) for error in body["errors"]]


def assert_invalid(response: Response, *fields: str, case: object = None) -> dict[str, Any]:
    """A 422 problem whose `errors` name at least these fields, each as {loc, msg, type}."""
    body = assert_problem(response, 422, case)
    assert isinstance(body.get("errors"), list) and body["errors"], (case, body)
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}, error
        assert isinstance(error["loc"], list) and error["loc"]
        assert isinstance(error["msg"], str) and error["msg"]
        assert isinstance(error["type"], str) and error["type"]
    for field in fields:
        assert field in bad_fields(body), (case, field, body["errors"])
    return body


LINK_NEXT = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def next_link(response: Response) -> str | None:
    """The URL of the next page from the `Link` header, or None on the last page."""
    header = response.headers.get("link")
    if header is None:
        return None
    match = LINK_NEXT.match(header)
    assert match, f"unexpected Link header {header!r}"
    return match["url"]


def walk(client: TestClient, owner: str, max_pages: int = 200, **params: Any) -> list[list[dict]]:
    """Follow `rel="next"` from the first page to the last; returns the pages."""
    response = client.get(tasks_url(owner), params=params, headers=bearer(token_for(owner)))
    pages = []
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = next_link(response)
        if url is None:
            return pages
        assert len(pages) < max_pages, "the next links never end"
        response = client.get(url, headers=bearer(token_for(owner)))


# --- the OpenAPI document -----------------------------------------------------------------


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema, or the component schema its `$ref` names."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def api_operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The operations under /api, by operationId."""
    return {
        operation["operationId"]: operation
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for operation in item.values()
    }


# --- tokens -------------------------------------------------------------------------------


def crafted_token(
    claims: dict[str, Any] | None = None,
    *,
    key: str | None = JWT_SECRET,
    algorithm: str = "HS256",
    sub: Any = ALICE,
    exp_in: int | None = 3600,
) -> str:
    """A JWT built claim by claim, with any key and algorithm: for tokens the API must refuse.

    The usual claims unless overridden; `sub`/`exp_in` of None leave them out. A token the API
    accepts comes from `tests.support.tokens.token_for`.
    """
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now}
    if sub is not None:
        payload["sub"] = sub
    if exp_in is not None:
        payload["exp"] = now + exp_in
    payload.update(claims or {})
    return jwt.encode(payload, key, algorithm=algorithm)
