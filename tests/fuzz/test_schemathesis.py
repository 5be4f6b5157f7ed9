"""Schemathesis against the app's own /openapi.json, in-process over ASGI.

`test_operations` fuzzes every operation with schema-valid (positive) and schema-invalid
(negative) data, through Schemathesis's examples, coverage and fuzzing phases;
`test_stateful` then runs call sequences along the links Schemathesis infers (a created
task's id fed into get, update, complete and delete). Every check Schemathesis has runs on
every response: a 5xx, an undocumented status code, a body that does not match its schema
or content type, schema-invalid input accepted, schema-valid input rejected, a request
without credentials that is not a 401, a deleted task still there, a missing required header
accepted, a wrong answer to an unsupported method, and so on.

The token belongs to one user, and `user_id` is pinned to it by narrowing its schema to that
one value (`before_load_schema`): positive cases reach the database, and negative ones name
somebody else, which must be refused. Two statuses no generated request can provoke (413 and
415 come from the edge, 429 needs the rate limit that is off here) are provoked by hand and
put through the same checks, and so are the edge cases of the text rules.
"""

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi

from api.main import create_app
from api.tasks.models import BIGINT_MAX, TITLE_MAX, TaskSort
from api.tasks.pagination import Cursor
from tests.support.app import make_settings
from tests.support.tokens import bearer, token_for

USER = "fuzz_user"
TOKEN = token_for(USER, ttl_seconds=24 * 3600)
AUTH = bearer(TOKEN)
LIST = "GET /api/{user_id}/tasks"
TASK_OPERATIONS = {
    LIST,
    "POST /api/{user_id}/tasks",
    "GET /api/{user_id}/tasks/{task_id}",
    "PUT /api/{user_id}/tasks/{task_id}",
    "DELETE /api/{user_id}/tasks/{task_id}",
    "PATCH /api/{user_id}/tasks/{task_id}/complete",
}
# Sized so the module takes about a minute on two cores; derandomized, so a failure in CI
# is the same failure on a laptop.
FUZZ_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
STATEFUL_SETTINGS = settings(FUZZ_SETTINGS, max_examples=100, stateful_step_count=20)

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
    """Give a positive list request a cursor the server could have issued.

    A cursor is opaque: all a schema can say is "a string of at most 1024 characters", and
    almost no such string is a cursor, so the server rightly answers 422 and
    positive_data_acceptance would object. A positive case gets a well-formed cursor for its
    sort order instead, derived from the generated string so that it still varies. Negative
    cases keep what was generated.
    """
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if case.operation.label == LIST and "cursor" in (case.query or {}):
        case.query["cursor"] = _valid_cursor(str(case.query["cursor"]), case.query.get("sort"))
    if case.headers and "Idempotency-Key" in case.headers:
        # A key names one intended creation; generated keys repeat, and a repeated key with
        # another body is rightly a 422. Each positive case gets a key of its own.
        case.headers["Idempotency-Key"] = f"fuzz-{next(IDEMPOTENCY_KEYS)}"


def _valid_cursor(seed: str, sort: object) -> str:
    digest = int.from_bytes(hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    order = TaskSort(sort) if sort in TaskSort.__members__.values() else TaskSort.newest_first
    key: datetime | str
    if order.column == "title":
        key = seed.replace("\x00", "")[:TITLE_MAX] or "a title"
    else:
        key = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=digest % 10**15)
    return Cursor(sort=order, key=key, id=digest % BIGINT_MAX + 1).encode()


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: schemathesis.Response) -> None:
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    TRAFFIC[(case.operation.label, mode, response.status_code)] += 1


def _assert_reached_the_database(traffic: Traffic, *, every_operation_succeeded: bool) -> None:
    """A run that only ever met 401s and 403s, or generated nothing, would pass vacuously.

    Positive requests must have got past authentication to the database (a 2xx, or a 404 for
    an id that is not there), each operation must have succeeded at least once where the
    task ids came from earlier responses (the stateful run), and negative requests must have
    been sent and refused.
    """
    for label in TASK_OPERATIONS:
        positive = {status for (op, mode, status) in traffic if op == label and mode == "positive"}
        negative = {status for (op, mode, status) in traffic if op == label and mode == "negative"}
        reached = {status for status in positive if 200 <= status < 300 or status in (404, 412)}
        assert reached, (label, positive)
        if every_operation_succeeded or "{task_id}" not in label:
            assert any(200 <= status < 300 for status in positive), (label, positive)
        assert any(400 <= status < 500 for status in negative), (label, negative)


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
def fuzz_app(app_url: str) -> Iterator[FastAPI]:
    """The app on this test's fresh database; the rate limit would turn fuzzing into 429s."""
    app = create_app(make_settings(app_url, rate_limit_per_minute=0))
    yield app
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


def test_stateful(api_schema: schemathesis.BaseSchema, admin: psycopg.Connection, traffic: Traffic) -> None:
    """Sequences of calls along the inferred links, every response checked."""

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from an empty table with ids from 1, so that Hypothesis,
            # replaying a scenario to shrink it, meets the same responses again.
            admin.execute("truncate tasks restart identity")

    Workflow.run(settings=STATEFUL_SETTINGS)

    _assert_reached_the_database(traffic, every_operation_succeeded=True)
    assert traffic[("DELETE /api/{user_id}/tasks/{task_id}", "positive", 204)], "use_after_free never ran"


# --- what generated requests cannot reach ------------------------------------------------

CONFORMANCE = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _case(
    schema: schemathesis.BaseSchema, method: str, path: str, task_id: int = 1, **fields: Any
) -> schemathesis.Case:
    path_parameters = {"user_id": USER, "task_id": task_id} if "{task_id}" in path else {"user_id": USER}
    return schema[path][method].Case(path_parameters=path_parameters, **fields)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/{user_id}/tasks"),
        ("PUT", "/api/{user_id}/tasks/{task_id}"),
        ("PATCH", "/api/{user_id}/tasks/{task_id}/complete"),
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
    """429 on every task route once a user is over budget."""
    app = create_app(make_settings(app_url, rate_limit_per_minute=1))
    try:
        schema = _load(app)
        assert _case(schema, "GET", "/api/{user_id}/tasks").call(headers=AUTH).status_code == 200
        for label in sorted(TASK_OPERATIONS):
            method, path = label.split(" ")
            body = {"title": "x"} if method in ("POST", "PUT") else None
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
    "\ufeff",  # byte order mark: not whitespace to strip(), so a title
    "\x00",
    "a\x00b",
    "\U0001f600",
    "y" * TITLE_MAX,
    "y" * (TITLE_MAX + 1),
]


@pytest.mark.parametrize("text", TEXT_EDGES, ids=[repr(text)[:12] for text in TEXT_EDGES])
def test_text_the_schema_allows_is_exactly_the_text_accepted(api_schema, text):
    """Where fuzzing rarely looks: NUL characters, blank titles, every kind of whitespace.

    The published schema must accept a value exactly when the API does (positive and negative
    data checks, made deterministic for these edges).
    """
    raw = api_schema.raw_schema
    q_schema = next(p["schema"] for p in raw["paths"]["/api/{user_id}/tasks"]["get"]["parameters"] if p["name"] == "q")
    task = _case(api_schema, "POST", "/api/{user_id}/tasks", body={"title": "to update"}).call(headers=AUTH)
    assert task.status_code == 201, task.text
    inputs = [  # (method, path, what is sent, the schema it is sent under)
        ("POST", "/api/{user_id}/tasks", {"body": {"title": text}}, "TaskCreate"),
        ("PUT", "/api/{user_id}/tasks/{task_id}", {"body": {"title": text}}, "TaskUpdate"),
        ("POST", "/api/{user_id}/tasks", {"body": {"title": "t", "description": text}}, "TaskCreate"),
        ("GET", "/api/{user_id}/tasks", {"query": {"q": text}}, None),
    ]
    for method, path, fields, model in inputs:
        schema = {"$ref": f"#/components/schemas/{model}"} if model else q_schema
        instance = fields["body"] if model else text
        allowed = jsonschema_rs.validator_for({**schema, "components": raw["components"]}).is_valid(instance)
        case = _case(api_schema, method, path, task_id=task.json()["id"], **fields)
        response = case.call(headers=AUTH)

        expected = 422 if not allowed else 201 if method == "POST" else 200
        assert response.status_code == expected, (method, fields, allowed, response.text)
        case.validate_response(response, checks=CONFORMANCE)
