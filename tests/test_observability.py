"""Request logs and request ids."""

import io
import json
import logging

import pytest

from api.edge import logs
from api.edge.logs import JsonFormatter, hash_user_id
from api.tasks import service
from tests.support.tokens import bearer, token_for


def request_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "api.requests"]


def test_one_line_per_request_with_route_template_status_duration_and_hashed_user(client, caplog):
    token = token_for("alice")
    with caplog.at_level(logging.INFO, logger="api.requests"):
        response = client.post("/api/alice/tasks?secret=1", json={"title": "private words"}, headers=bearer(token))
    [record] = request_records(caplog)
    assert (record.method, record.route, record.status) == ("POST", "/api/{user_id}/tasks", 201)
    assert record.duration_ms > 0
    assert record.request_id == response.headers["x-request-id"]
    assert record.user == hash_user_id("alice") != "alice"
    line = JsonFormatter().format(record)
    assert json.loads(line)["route"] == "/api/{user_id}/tasks"
    for leak in (token, "private words", "secret=1", "alice"):
        assert leak not in line


def test_a_rejected_request_is_logged_without_a_user(client, caplog):
    with caplog.at_level(logging.INFO, logger="api.requests"):
        client.get("/api/alice/tasks")
    [record] = request_records(caplog)
    assert (record.status, record.user) == (401, None)


def test_unmatched_paths_are_logged_as_such(client, caplog):
    with caplog.at_level(logging.INFO, logger="api.requests"):
        client.get("/api/alice/elsewhere/with/a/user/id")
    [record] = request_records(caplog)
    assert (record.status, record.route) == (404, None)


def test_a_sane_incoming_request_id_is_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "frontend-1234.abc"})
    assert response.headers["x-request-id"] == "frontend-1234.abc"


@pytest.mark.parametrize("unsafe", ["has spaces", "x" * 200, 'quote"d', ""])
def test_an_unsafe_incoming_request_id_is_replaced(client, unsafe):
    response = client.get("/api/alice/tasks", headers={"X-Request-ID": unsafe} | bearer(token_for("alice")))
    assert response.headers["x-request-id"] != unsafe
    assert len(response.headers["x-request-id"]) == 32


def test_errors_carry_the_request_id_too(client):
    response = client.get("/api/alice/tasks/1", headers=bearer(token_for("alice")))
    assert response.status_code == 404 and response.headers["x-request-id"]


def test_every_line_written_during_a_request_carries_its_request_id(client, caplog, monkeypatch):
    """An error logged deep inside a request leads back to it: same id as the answer's header."""

    async def explode(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "get_task", explode)
    with caplog.at_level(logging.INFO):
        response = client.get("/api/alice/tasks/1", headers={**bearer(token_for("alice")), "X-Request-ID": "trace-1"})

    assert response.status_code == 500
    [error] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert error.request_id == "trace-1" == response.headers["x-request-id"]
    assert "trace-1" in JsonFormatter().format(error)
    [access] = request_records(caplog)
    assert access.request_id == "trace-1"
    outside = logging.getLogger("api.test").makeRecord("api.test", logging.INFO, __file__, 1, "after", (), None)
    assert not hasattr(outside, "request_id")


def test_a_request_line_written_straight_is_the_line_its_record_would_give(client, monkeypatch):
    """With our JSON handler as the only listener, request lines skip logging's records
    (api/edge/logs.py); what is written must not change."""
    stream = io.StringIO()
    ours = logs._TaskapiHandler(stream)
    ours.setFormatter(JsonFormatter())
    monkeypatch.setattr(logging.root, "handlers", [ours])
    request = {"headers": bearer(token_for("alice")) | {"X-Request-ID": "one-request"}}

    def no_record(*args, **kwargs):
        raise AssertionError("a record was made")

    with monkeypatch.context() as straight:
        straight.setattr(logs.request_logger, "info", no_record)
        client.get("/api/alice/tasks?limit=1", **request)
    monkeypatch.setattr(logging.root, "handlers", [ours, logging.NullHandler()])  # now records are needed
    client.get("/api/alice/tasks?limit=1", **request)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    written, recorded = [line for line in lines if line["logger"] == "api.requests"]
    for line in (written, recorded):
        assert line.pop("duration_ms") >= 0
        assert line.pop("time")
    assert list(written.items()) == list(recorded.items())
    assert written["route"] == "/api/{user_id}/tasks" and written["request_id"] == "one-request"
