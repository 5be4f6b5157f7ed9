"""Schemathesis against the app's own /openapi.json, in-process over ASGI.

`test_operations` fuzzes every operation (the five list routes, and every task field and
filter, included) with schema-valid (positive) and schema-invalid (negative) data, through
Schemathesis's examples, coverage and fuzzing phases; `test_stateful` then runs call sequences
along the links Schemathesis infers (a created task's or list's id fed into get, update,
complete and delete). Both assert that each of OPERATIONS was exercised, and
`test_every_operation_is_fuzzed` that OPERATIONS is every operation under /api/, so a route
left out fails. Every check Schemathesis has runs on every response: a 5xx, an undocumented
status code, a body that does not match its schema or content type, schema-invalid input
accepted, schema-valid input rejected, a request without credentials that is not a 401, a
deleted task or list still there, a missing required header accepted, a wrong answer to an
unsupported method, and so on.

The token belongs to one user, and `user_id` is pinned to it by narrowing its schema to that
one value (`before_load_schema`): positive cases reach the database, and negative ones name
somebody else, which must be refused. Two statuses no generated request can provoke (413 and
415 come from the edge, 429 needs the rate limit that is off here) are provoked by hand and
put through the same checks, and so are the edge cases of the text and date-time rules.

A few rules no JSON schema can state (an id must name one of the caller's lists, tags are
distinct ignoring case, a cursor must be one the server issued, a due date must lie within
the years 1 to 9999 in UTC) would turn schema-valid cases into rightful 422s; `before_call`
makes positive cases obey them, as a real client would.
"""

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pydantic import TypeAdapter
from schemathesis.python import asgi

from api.lists.models import NAME_MAX
from api.lists.router import encode_cursor
from api.main import create_app
from api.tasks.models import BIGINT_MAX, PRIORITIES, TAG_MAX, TITLE_MAX, DueAt, TaskSort
from api.tasks.pagination import Cursor
from tests.support.app import make_settings
from tests.support.tokens import bearer, token_for

USER = "fuzz_user"
TOKEN = token_for(USER, ttl_seconds=24 * 3600)
AUTH = bearer(TOKEN)
LIST_TASKS = "GET /api/{user_id}/tasks"
LIST_LISTS = "GET /api/{user_id}/lists"
TASK_OPERATIONS = {
    LIST_TASKS,
    "POST /api/{user_id}/tasks",
    "GET /api/{user_id}/tasks/{task_id}",
    "PUT /api/{user_id}/tasks/{task_id}",
    "DELETE /api/{user_id}/tasks/{task_id}",
    "PATCH /api/{user_id}/tasks/{task_id}/complete",
}
LIST_OPERATIONS = {
    LIST_LISTS,
    "POST /api/{user_id}/lists",
    "GET /api/{user_id}/lists/{list_id}",
    "PUT /api/{user_id}/lists/{list_id}",
    "DELETE /api/{user_id}/lists/{list_id}",
}
OPERATIONS = TASK_OPERATIONS | LIST_OPERATIONS
# A list of USER's that positive task bodies name; far above the ids fuzzing creates.
HOME_LIST = 10**9
# Sized so the module takes about a minute on two cores (eleven operations at 80 examples
# each cost about what the six task operations did at 200); derandomized, so a failure in CI
# is the same failure on a laptop.
FUZZ_SETTINGS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
STATEFUL_SETTINGS = settings(FUZZ_SETTINGS, max_examples=50, stateful_step_count=20)

Traffic = Counter[tuple[str, str, int]]
# (operation, generation mode, status) of every request sent, for the guards below.
TRAFFIC: Traffic = Counter()
IDEMPOTENCY_KEYS = itertools.count()
# A valid If-Match naming another version than the current one is rightly refused with 412.
ACCEPTED_POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    """Pin the path's `user_id` to the token's subject.

    Narrowing the parameter's schema to that one value, rather than overwriting generated
    values, keeps Schemathesis's bookkeeping right in every phase, the stateful one included:
    a positive case names the caller, and a negative one names anybody else.
    """
    if raw_schema.get("info", {}).get("title") != "Task API":
        return
    for path_item in raw_schema["paths"].values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "user_id":
                    parameter["schema"] = {**parameter["schema"], "enum": [USER]}


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """Make a positive case obey the rules its schema cannot state, as a real client would.

    A cursor is opaque: all a schema can say is "a string of at most 1024 characters", and
    almost no such string is a cursor, so the server rightly answers 422 and
    positive_data_acceptance would object. A positive case gets a well-formed cursor for its
    sort order instead, derived from the generated string so that it still varies. Likewise a
    task's `list_id` must name one of the caller's lists, its tags must be distinct ignoring
    case, and a due date must stay within the years 1 to 9999 once in UTC. Negative cases keep
    what was generated.
    """
    if case.meta is None:
        return
    if not case.meta.generation.mode.is_positive:
        return
    query = case.query or {}
    if case.operation.label == LIST_TASKS and "cursor" in query:
        query["cursor"] = _valid_cursor(str(query["cursor"]), query.get("sort"))
    if case.operation.label == LIST_LISTS and "cursor" in query:
        query["cursor"] = encode_cursor(_digest(str(query["cursor"])) % BIGINT_MAX + 1)
    for name in ("due_before", "due_after"):
        if name in query:
            query[name] = _representable(query[name])
    body = case.body if isinstance(case.body, dict) else {}
    if case.operation.label in TASK_OPERATIONS:
        if body.get("list_id") is not None:
            body["list_id"] = HOME.ensure()
        if isinstance(body.get("tags"), list):
            body["tags"] = _distinct(body["tags"])
        if "due_at" in body:
            body["due_at"] = _representable(body["due_at"])
    if case.headers and "Idempotency-Key" in case.headers:
        # A key names one intended creation; generated keys repeat, and a repeated key with
        # another body is rightly a 422. Each positive case gets a key of its own.
        case.headers["Idempotency-Key"] = f"fuzz-{next(IDEMPOTENCY_KEYS)}"


@dataclass
class HomeList:
    """HOME_LIST, put back whenever a positive case needs it (fuzzing may delete or truncate it).

    Its name has surrounding spaces, which the API trims from every name it is given, so no
    list created through the API can take it.
    """

    admin: psycopg.Connection | None = None  # set by the fuzz_app fixture

    def ensure(self) -> int:
        assert self.admin is not None
        self.admin.execute(
            "insert into lists (id, user_id, name) overriding system value values (%s, %s, ' home ')"
            " on conflict do nothing",
            (HOME_LIST, USER),
        )
        return HOME_LIST


HOME = HomeList()


def _digest(seed: str) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()[:8], "big")


def _valid_cursor(seed: str, sort: object) -> str:
    digest = _digest(seed)
    order = TaskSort(sort) if sort in TaskSort.__members__.values() else TaskSort.newest_first
    key: datetime | str | int | None
    if order.column == "title":
        key = seed.replace("\x00", "")[:TITLE_MAX] or "a title"
    elif order.column == "priority":
        key = digest % len(PRIORITIES)
    elif order.column == "due_at" and digest % 4 == 0:
        key = None  # a cursor among the tasks without a due date
    else:
        key = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=digest % 10**15)
    return Cursor(sort=order, key=key, id=digest % BIGINT_MAX + 1).encode()


def _distinct(tags: list[str]) -> list[str]:
    """The first of each group of tags equal once trimmed and case-folded, as the API compares them."""
    seen: dict[str, str] = {}
    for tag in tags:
        seen.setdefault(tag.strip().casefold(), tag)
    return list(seen.values())


def _representable(value: Any) -> Any:
    """A date-time near the year 1 or 9999 whose offset carries it past them in UTC, at UTC instead."""
    if not isinstance(value, str):
        return value
    try:
        datetime.fromisoformat(value).astimezone(UTC)
    except OverflowError:
        return value[:19] + "Z"
    except ValueError:
        pass
    return value


DUE_DATE = TypeAdapter(DueAt)


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: schemathesis.Response) -> None:
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    TRAFFIC[(case.operation.label, mode, response.status_code)] += 1


def _assert_reached_the_database(traffic: Traffic, *, every_operation_succeeded: bool) -> None:
    """A run that only ever met 401s and 403s, or generated nothing, would pass vacuously.

    Every operation must have been sent: `OPERATIONS` is every operation under /api/ (see
    test_every_operation_is_fuzzed). Positive requests must have got past authentication to
    the database (a 2xx, or a 404 for an id that is not there), each operation must have
    succeeded at least once where the ids came from earlier responses (the stateful run), and
    negative requests must have been sent and refused.
    """
    missing = OPERATIONS - {op for (op, _, _) in traffic}
    assert not missing, missing
    for label in OPERATIONS:
        positive = {status for (op, mode, status) in traffic if op == label and mode == "positive"}
        negative = {status for (op, mode, status) in traffic if op == label and mode == "negative"}
        reached = {status for status in positive if 200 <= status < 300 or status in (404, 412)}
        assert reached, (label, positive)
        if every_operation_succeeded or not _names_a_row(label):
            assert any(200 <= status < 300 for status in positive), (label, positive)
        assert any(400 <= status < 500 for status in negative), (label, negative)


def _names_a_row(label: str) -> bool:
    return "{task_id}" in label or "{list_id}" in label


def _load(app: FastAPI) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all", "deterministic": True},
            "auth": {"openapi": {"HTTPBearer": {"bearer": TOKEN}}},
            # Every check, positive_data_acceptance and negative_data_rejection included.
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": ACCEPTED_POSITIVE_STATUSES},
            },
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@pytest.fixture
def fuzz_app(app_url: str, admin: psycopg.Connection) -> Iterator[FastAPI]:
    """The app on this test's fresh database; the rate limit would turn fuzzing into 429s."""
    app = create_app(make_settings(app_url, rate_limit_per_minute=0))
    HOME.admin = admin
    yield app
    HOME.admin = None
    # Schemathesis starts an app's lifespan on first use and keeps it for the process.
    asgi.shutdown_lifespans()


@pytest.fixture
def api_schema(fuzz_app: FastAPI) -> schemathesis.BaseSchema:
    return _load(fuzz_app)


@pytest.fixture
def traffic() -> Iterator[Traffic]:
    TRAFFIC.clear()
    yield TRAFFIC
    TRAFFIC.clear()


@pytest.fixture
def guarded_traffic(traffic: Traffic) -> Iterator[Traffic]:
    """For the parametrized test: its operations run as subtests, so the guard runs after all of them."""
    yield traffic
    _assert_reached_the_database(traffic, every_operation_succeeded=False)


@pytest.fixture(autouse=True)
def _pytest_node_id_compat(request: pytest.FixtureRequest) -> None:
    # schemathesis.pytest.from_fixture reads `item._nodeid`, which pytest 9.2 no longer has;
    # it uses it only to label the subtests in the report.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


lazy_schema = schemathesis.pytest.from_fixture("api_schema")


@lazy_schema.parametrize()
@FUZZ_SETTINGS
def test_operations(case: schemathesis.Case, guarded_traffic: Traffic) -> None:
    case.call_and_validate()


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    """The guards check OPERATIONS; a route added without being named there fails here."""
    published = {
        f"{method.upper()} {path}"
        for path, operations in api_schema.raw_schema["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert published == OPERATIONS


def test_stateful(api_schema: schemathesis.BaseSchema, admin: psycopg.Connection, traffic: Traffic) -> None:
    """Sequences of calls along the inferred links, every response checked."""

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from empty tables (and those derived from them: cascade)
            # with ids from 1, so that Hypothesis, replaying a scenario to shrink it, meets
            # the same responses again.
            admin.execute("truncate tasks, lists restart identity cascade")

    Workflow.run(settings=STATEFUL_SETTINGS)

    _assert_reached_the_database(traffic, every_operation_succeeded=True)
    for label in ("DELETE /api/{user_id}/tasks/{task_id}", "DELETE /api/{user_id}/lists/{list_id}"):
        assert traffic[(label, "positive", 204)], (label, "use_after_free never ran")


# --- what generated requests cannot reach ------------------------------------------------

CONFORMANCE = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _case(schema: schemathesis.BaseSchema, method: str, path: str, row_id: int = 1, **fields: Any) -> schemathesis.Case:
    path_parameters: dict[str, Any] = {"user_id": USER}
    for name in ("task_id", "list_id"):
        if f"{{{name}}}" in path:
            path_parameters[name] = row_id
    return schema[path][method].Case(path_parameters=path_parameters, **fields)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/{user_id}/tasks"),
        ("PUT", "/api/{user_id}/tasks/{task_id}"),
        ("PATCH", "/api/{user_id}/tasks/{task_id}/complete"),
        ("POST", "/api/{user_id}/lists"),
        ("PUT", "/api/{user_id}/lists/{list_id}"),
    ],
)
def test_refusals_at_the_edge_are_documented(api_schema, method, path):
    """413 (body too large) and 415 (not JSON) come from the middleware, before any route."""
    too_large = _case(api_schema, method, path, body={"title": "x" * 100_000, "completed": True})
    not_json = _case(api_schema, method, path, body="title=x", media_type="text/plain")

    for case, status in ((too_large, 413), (not_json, 415)):
        response = case.call(headers=AUTH)
        assert response.status_code == status, response.text
        case.validate_response(response, checks=CONFORMANCE)


def test_the_rate_limit_is_documented(app_url):
    """429 on every task and list route once a user is over budget."""
    app = create_app(make_settings(app_url, rate_limit_per_minute=1))
    try:
        schema = _load(app)
        assert _case(schema, "GET", "/api/{user_id}/tasks").call(headers=AUTH).status_code == 200
        for label in sorted(OPERATIONS):
            method, path = label.split(" ")
            fields = {"name": "x"} if "/lists" in path else {"title": "x"}
            body = fields if method in ("POST", "PUT") else None
            case = _case(schema, method, path, **({"body": body} if body else {}))
            response = case.call(headers=AUTH)
            assert response.status_code == 429, (label, response.text)
            assert "retry-after" in response.headers
            case.validate_response(response, checks=CONFORMANCE)
    finally:
        asgi.shutdown_lifespans()


TEXT_EDGES = [
    "x",
    " x ",
    "",
    " ",
    "\t\r\n",
    "\u3000",  # ideographic space: blank
    "\x1c",  # file separator: Python's strip() removes it, so blank
    "\x85",  # next line: blank
    "\x7f",  # delete: a title, but a control character, which no tag may hold
    "\ufeff",  # byte order mark: not whitespace to strip(), so a title
    "\x00",
    "a\x00b",
    "\U0001f600",
    "y" * TAG_MAX,
    "y" * (TAG_MAX + 1),
    " " + "y" * TAG_MAX,  # 50 characters once trimmed, but 51 sent
    "y" * NAME_MAX,
    "y" * (NAME_MAX + 1),
    "y" * TITLE_MAX,
    "y" * (TITLE_MAX + 1),
]
TASKS = "/api/{user_id}/tasks"
TASK = "/api/{user_id}/tasks/{task_id}"
LISTS = "/api/{user_id}/lists"
ONE_LIST = "/api/{user_id}/lists/{list_id}"


def _created(schema: schemathesis.BaseSchema, path: str, body: dict[str, Any]) -> int:
    response = _case(schema, "POST", path, body=body).call(headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _published(raw: dict[str, Any], method: str, path: str, fields: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The schema the one value sent (a body, or a query parameter) is published under, and the value."""
    operation = raw["paths"][path][method.lower()]
    if "body" in fields:
        return operation["requestBody"]["content"]["application/json"]["schema"], fields["body"]
    [(name, value)] = fields["query"].items()
    return next(p["schema"] for p in operation["parameters"] if p["name"] == name), value


def _allows(raw: dict[str, Any], method: str, path: str, fields: dict[str, Any]) -> bool:
    schema, instance = _published(raw, method, path, fields)
    validator = jsonschema_rs.validator_for({**schema, "components": raw["components"]}, validate_formats=True)
    return validator.is_valid(instance)


def _send(schema: schemathesis.BaseSchema, method: str, path: str, rows: dict[str, int], fields: dict[str, Any]):
    case = _case(schema, method, path, row_id=rows[path.split("/")[3]], **fields)
    response = case.call(headers=AUTH)
    case.validate_response(response, checks=CONFORMANCE)
    return response


@pytest.mark.parametrize("text", TEXT_EDGES, ids=[repr(text)[:12] for text in TEXT_EDGES])
def test_text_the_schema_allows_is_exactly_the_text_accepted(api_schema, text):
    """Where fuzzing rarely looks: NUL and control characters, blank titles, names and tags,
    every kind of whitespace, each length limit.

    The published schema must accept a value exactly when the API does (positive and negative
    data checks, made deterministic for these edges).
    """
    rows = {
        "tasks": _created(api_schema, TASKS, {"title": "to update"}),
        "lists": _created(api_schema, LISTS, {"name": "to rename"}),
    }
    inputs = [  # (method, path, what is sent)
        ("POST", TASKS, {"body": {"title": text}}),
        ("PUT", TASK, {"body": {"title": text}}),
        ("POST", TASKS, {"body": {"title": "t", "description": text}}),
        ("POST", TASKS, {"body": {"title": "t", "tags": [text]}}),
        ("PUT", TASK, {"body": {"title": "t", "tags": ["a", text]}}),
        ("GET", TASKS, {"query": {"q": text}}),
        ("GET", TASKS, {"query": {"tag": [text]}}),
        ("POST", LISTS, {"body": {"name": text}}),
        ("PUT", ONE_LIST, {"body": {"name": text}}),  # the list just made, if made: its own name is no clash
    ]
    for method, path, fields in inputs:
        allowed = _allows(api_schema.raw_schema, method, path, fields)
        response = _send(api_schema, method, path, rows, fields)

        expected = 422 if not allowed else 201 if method == "POST" else 200
        assert response.status_code == expected, (method, path, fields, allowed, response.text)
        if path == LISTS and response.status_code == 201:
            rows["lists"] = response.json()["id"]


# RFC 3339 date-times the API rightly refuses, which no JSON schema can tell apart.
BEYOND_DATETIME = {
    "0001-01-01T00:00:00+00:01",  # before the year 1 in UTC
    "9999-12-31T23:59:59-00:01",  # after the year 9999 in UTC
    "2016-12-31T23:59:60Z",  # a leap second: Python's datetime has none
}
DUE_EDGES = [
    "2026-11-29T10:00:00Z",
    "2026-11-29t10:00:00z",
    "2026-11-29T10:00:00-00:00",
    "2026-11-29T10:00:00.5+05:30",
    "2026-11-29T10:00:00.123456789Z",  # finer than a microsecond: cut
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-11-29T10:00:00",  # no offset
    "2026-11-29",
    "2026-11-29T24:00:00Z",
    "2026-11-29T10:00:00+24:00",
    "tomorrow",
    "",
    *sorted(BEYOND_DATETIME),
]
# What pydantic alone would take but RFC 3339 does not: Unix seconds, a missing second, an
# offset without its colon, a space for the T (regression: these were accepted).
NOT_RFC_3339 = ["1700000000", "0.5", "2026-11-29T10:00Z", "2026-11-29T10:00:00+0100", "2026-11-29 10:00:00Z"]


def _assert_due_date_rules(api_schema: schemathesis.BaseSchema, value: str) -> None:
    """`due_at`, `due_before` and `due_after` take an RFC 3339 date-time with an offset, and only that."""
    rows = {"tasks": _created(api_schema, TASKS, {"title": "to update"})}
    inputs = [
        ("POST", TASKS, {"body": {"title": "t", "due_at": value}}),
        ("PUT", TASK, {"body": {"title": "t", "due_at": value}}),
        ("GET", TASKS, {"query": {"due_before": value}}),
        ("GET", TASKS, {"query": {"due_after": value}}),
    ]
    for method, path, fields in inputs:
        allowed = _allows(api_schema.raw_schema, method, path, fields) and value not in BEYOND_DATETIME
        response = _send(api_schema, method, path, rows, fields)

        expected = 422 if not allowed else 201 if method == "POST" else 200
        assert response.status_code == expected, (method, path, fields, allowed, response.text)
        if allowed and "body" in fields:  # answered in UTC, with a Z
            due_at = response.json()["due_at"]
            assert due_at.endswith("Z") and datetime.fromisoformat(due_at) == DUE_DATE.validate_python(value)


def test_due_dates_the_schema_allows_are_exactly_those_accepted(api_schema):
    for value in DUE_EDGES:
        _assert_due_date_rules(api_schema, value)


@pytest.mark.parametrize("value", NOT_RFC_3339)
def test_due_dates_that_are_not_rfc_3339_are_refused(api_schema, value):
    _assert_due_date_rules(api_schema, value)
