"""Every error is an RFC 9457 problem document, and none gives away SQL, tracebacks or tokens."""

from http import HTTPStatus

import psycopg
import pytest

from api.tasks import hot_reads, service
from tests.api.support import assert_invalid, assert_problem, bad_fields, crafted_token
from tests.support.app import PROBLEM_JSON, close_offline, create_task, offline_test_client, task_url, tasks_url
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB

LEAKS = ("select", "insert", "update tasks", "traceback", "psycopg", "sqlalchemy", 'file "', "tasks.")

# Errors produced before any database work, so the app without a database can produce them.
OFFLINE_ERRORS = {
    "malformed-json-400": lambda: ("POST", tasks_url(ALICE), {"content": "{", **_json(bearer(token_for(ALICE)))}, 400),
    "no-token-401": lambda: ("GET", tasks_url(ALICE), {}, 401),
    "bad-token-401": lambda: ("GET", tasks_url(ALICE), {"headers": bearer(crafted_token(exp_in=-60))}, 401),
    "other-user-403": lambda: ("GET", tasks_url(BOB), {"headers": bearer(token_for(ALICE))}, 403),
    "no-such-route-404": lambda: ("GET", "/api/alice/nothing-here", {"headers": bearer(token_for(ALICE))}, 404),
    "method-not-allowed-405": lambda: ("DELETE", tasks_url(ALICE), {"headers": bearer(token_for(ALICE))}, 405),
}


def _json(headers: dict[str, str]) -> dict[str, dict[str, str]]:
    return {"headers": {**headers, "content-type": "application/json"}}


def assert_reveals_nothing(response, *secrets: str) -> None:
    text = response.text.lower()
    for leak in LEAKS:
        assert leak not in text, (leak, response.text)
    for secret in secrets:
        assert secret.lower() not in text
        assert all(secret not in value for value in response.headers.values())


class TestShape:
    @pytest.mark.parametrize("case", OFFLINE_ERRORS)
    def test_every_error_is_a_problem_document(self, offline_client, case):
        method, url, kwargs, status = OFFLINE_ERRORS[case]()

        response = offline_client.request(method, url, **kwargs)

        body = assert_problem(response, status)
        assert response.headers["content-type"] == PROBLEM_JSON
        if body["type"] == "about:blank":
            assert body["title"] == HTTPStatus(status).phrase
        assert_reveals_nothing(response)

    def test_a_missing_task_is_a_problem_document(self, client):
        response = client.get(task_url(ALICE, 12345), headers=bearer(token_for(ALICE)))

        body = assert_problem(response, 404)
        assert "12345" in body["detail"]

    def test_a_validation_error_is_a_422_problem_with_one_entry_per_bad_field(self, client, admin):
        body = {"title": "t" * 201, "completed": "yes", "colour": "red"}

        response = client.post(tasks_url(ALICE), json=body, headers=bearer(token_for(ALICE)))

        problem = assert_invalid(response, "title", "completed", "colour")
        assert sorted(bad_fields(problem)) == ["colour", "completed", "title"]
        assert all(error["loc"][0] == "body" for error in problem["errors"])
        assert problem["title"] == "Unprocessable Entity"

    def test_a_validation_error_locates_query_and_path_fields(self, client):
        response = client.get(tasks_url(ALICE), params={"limit": "0", "sort": "x"}, headers=bearer(token_for(ALICE)))
        problem = assert_invalid(response, "limit", "sort")
        assert {tuple(error["loc"]) for error in problem["errors"]} == {("query", "limit"), ("query", "sort")}

        response = client.get(task_url(ALICE, 0), headers=bearer(token_for(ALICE)))
        problem = assert_invalid(response, "task_id")
        assert [error["loc"] for error in problem["errors"]] == [["path", "task_id"]]

    def test_malformed_json_is_a_400_problem(self, client, admin):
        response = client.post(
            tasks_url(ALICE),
            content='{"title": ',
            headers={**bearer(token_for(ALICE)), "content-type": "application/json"},
        )

        assert_problem(response, 400)
        assert admin.execute("select count(*) from tasks").fetchone() == (0,)


class TestNothingLeaks:
    def test_a_validation_error_does_not_echo_the_rejected_input(self, client):
        marker = "SECRET-MARKER-42"

        response = client.post(
            tasks_url(ALICE),
            json={"title": marker * 20, "completed": marker, "colour": marker},
            headers=bearer(token_for(ALICE)),
        )

        assert_invalid(response, "title", "completed", "colour")
        assert marker not in response.text

    def test_a_rejected_token_is_not_echoed(self, offline_client):
        bad = crafted_token(key="some-other-secret-that-is-long-enough-000000")

        response = offline_client.get(tasks_url(ALICE), headers=bearer(bad))

        assert_problem(response, 401)
        assert_reveals_nothing(response, bad, bad.split(".")[2])

    def test_an_unexpected_failure_is_a_500_problem_that_reveals_nothing(self, client, monkeypatch):
        task = create_task(client, ALICE)
        valid = token_for(ALICE)

        async def explode(*args, **kwargs):
            raise RuntimeError(f"select * from tasks where token = '{valid}'")

        monkeypatch.setattr(service, "get_task", explode)
        response = client.get(task_url(ALICE, task["id"]), headers=bearer(token_for(ALICE)))

        assert_problem(response, 500)
        assert_reveals_nothing(response, valid)

    def test_a_failure_deciding_the_fast_lane_is_a_500_problem_too(self, monkeypatch):
        def explode(self, scope):
            raise ValueError("while reading the request")

        monkeypatch.setattr(hot_reads.HotReads, "answer_for", explode)  # before the app takes it
        client = offline_test_client()
        try:
            response = client.get(tasks_url(ALICE), headers=bearer(token_for(ALICE)))
        finally:
            close_offline(client)

        assert_problem(response, 500)
        assert_reveals_nothing(response, "while reading")

    def test_a_database_error_is_a_500_problem_without_sql(self, client, monkeypatch):
        task = create_task(client, ALICE)

        async def fail(*args, **kwargs):
            raise psycopg.errors.UndefinedColumn(f'column "titel" does not exist: SELECT titel FROM tasks {task["id"]}')

        monkeypatch.setattr(service, "get_task", fail)
        response = client.get(task_url(ALICE, task["id"]), headers=bearer(token_for(ALICE)))

        assert_problem(response, 500)
        assert_reveals_nothing(response, "titel")

    def test_a_value_the_database_refuses_is_a_422_problem_without_sql(self, client, admin, monkeypatch):
        async def refuse(*args, **kwargs):
            raise psycopg.errors.CheckViolation('new row violates check constraint "tasks_title_length_check"')

        monkeypatch.setattr(service, "create_task", refuse)
        response = client.post(tasks_url(ALICE), json={"title": "x"}, headers=bearer(token_for(ALICE)))

        assert_problem(response, 422)
        assert_reveals_nothing(response, "tasks_title_length_check")
        assert admin.execute("select count(*) from tasks").fetchone() == (0,)

    def test_an_unreachable_database_is_a_503_problem_with_retry_after(self, offline_client):
        response = offline_client.get(tasks_url(ALICE), headers=bearer(token_for(ALICE)))

        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0
        assert_reveals_nothing(response, "nonexistent-socket-dir")
