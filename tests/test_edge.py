"""The edge of the API: body limits, media types, methods, rate limits and response headers."""

import asyncio
import json
from collections.abc import Iterator
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.support.app import create_task, make_settings
from tests.support.tokens import bearer, token_for

LIMIT = 32 * 1024


def chunks(total: int, size: int = 4096) -> Iterator[bytes]:
    """A JSON body streamed without Content-Length (Transfer-Encoding: chunked)."""
    yield b'{"title": "t", "description": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


class TestBodyLimit:
    def test_a_body_over_the_limit_is_413_and_creates_nothing(self, client, admin):
        body = json.dumps({"title": "t", "description": "x" * LIMIT})
        response = client.post("/api/alice/tasks", content=body, headers=bearer(token_for("alice")) | _json())
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert admin.execute("select count(*) from tasks").fetchone() == (0,)

    def test_a_streamed_body_is_counted_as_it_arrives(self, client, admin):
        response = client.post(
            "/api/alice/tasks", content=chunks(4 * LIMIT), headers=bearer(token_for("alice")) | _json()
        )
        assert response.status_code == 413
        assert admin.execute("select count(*) from tasks").fetchone() == (0,)

    def test_a_small_streamed_body_is_fine(self, client):
        response = client.post("/api/alice/tasks", content=chunks(0), headers=bearer(token_for("alice")) | _json())
        assert response.status_code == 201

    def test_a_lying_content_length_does_not_help(self, app_url):
        app = create_app(make_settings(app_url))
        sent: list[dict] = []
        body = b'{"title": "' + b"x" * (2 * LIMIT) + b'"}'
        messages = [
            {"type": "http.request", "body": body[i : i + 1024], "more_body": True} for i in range(0, len(body), 1024)
        ]
        messages[-1]["more_body"] = False

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = _scope("POST", "/api/alice/tasks", [(b"content-length", b"20"), (b"content-type", b"application/json")])
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 413
        assert messages, "the rest of the body was never read"


class TestMediaTypesAndMethods:
    @pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
    def test_a_body_that_is_not_json_is_415(self, client, admin, content_type):
        headers = bearer(token_for("alice")) | {"Content-Type": content_type}
        response = client.post("/api/alice/tasks", content=b'{"title": "t"}', headers=headers)
        assert response.status_code == 415
        assert response.headers["content-type"] == "application/problem+json"
        assert admin.execute("select count(*) from tasks").fetchone() == (0,)

    def test_json_with_a_charset_is_fine(self, client):
        headers = bearer(token_for("alice")) | {"Content-Type": "application/json; charset=utf-8"}
        assert client.post("/api/alice/tasks", content=b'{"title": "t"}', headers=headers).status_code == 201

    def test_put_without_a_content_type_is_415(self, client):
        task = create_task(client, "alice")
        response = client.put(
            f"/api/alice/tasks/{task['id']}", content=b'{"title": "t"}', headers=bearer(token_for("alice"))
        )
        assert response.status_code == 415

    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("DELETE", "/api/alice/tasks", {"GET", "POST"}),
            ("POST", "/api/alice/tasks/1", {"GET", "PUT", "DELETE"}),
        ],
    )
    def test_an_unsupported_method_is_405_with_allow(self, client, method, path, allowed):
        response = client.request(method, path, headers=bearer(token_for("alice")))
        assert response.status_code == 405
        assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
        assert response.headers["content-type"] == "application/problem+json"


class TestRateLimit:
    @pytest.fixture
    def limited(self, app_url) -> Iterator[TestClient]:
        with TestClient(create_app(make_settings(app_url, rate_limit_per_minute=3))) as test_client:
            yield test_client

    def test_a_user_over_the_limit_gets_429_with_retry_after(self, limited):
        responses = [limited.get("/api/alice/tasks", headers=bearer(token_for("alice"))) for _ in range(4)]
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert [r.headers["ratelimit-remaining"] for r in responses[:3]] == ["2", "1", "0"]
        refused = responses[3]
        assert refused.headers["ratelimit-limit"] == "3"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["content-type"] == "application/problem+json"

    def test_users_are_limited_separately(self, limited):
        for _ in range(4):
            limited.get("/api/alice/tasks", headers=bearer(token_for("alice")))
        assert limited.get("/api/bob/tasks", headers=bearer(token_for("bob"))).status_code == 200

    def test_writes_refused_by_the_limit_change_nothing(self, limited, admin):
        statuses = [
            limited.post("/api/alice/tasks", json={"title": f"t{n}"}, headers=bearer(token_for("alice"))).status_code
            for n in range(5)
        ]
        assert statuses == [201, 201, 201, 429, 429]
        assert admin.execute("select count(*) from tasks").fetchone() == (3,)

    def test_the_limit_can_be_turned_off(self, app_url):
        with TestClient(create_app(make_settings(app_url, rate_limit_per_minute=0))) as unlimited:
            responses = [unlimited.get("/api/alice/tasks", headers=bearer(token_for("alice"))) for _ in range(10)]
        assert {r.status_code for r in responses} == {200}
        assert "ratelimit-limit" not in responses[0].headers


class TestResponseHeaders:
    def test_authenticated_answers_are_never_cached(self, client):
        task = create_task(client, "alice")
        for response in (
            client.get("/api/alice/tasks", headers=bearer(token_for("alice"))),
            client.get(f"/api/alice/tasks/{task['id']}", headers=bearer(token_for("alice"))),
            client.get("/api/alice/tasks"),  # the 401 too
        ):
            assert response.headers["cache-control"] == "no-store"

    @pytest.mark.parametrize("path", ["/api/alice/tasks", "/healthz", "/openapi.json", "/nowhere"])
    def test_security_headers_on_every_answer(self, client, path):
        headers = client.get(path, headers=bearer(token_for("alice"))).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [*headers, (b"authorization", bearer(token_for("alice"))["Authorization"].encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip


class TestUntrustedHost:
    """`Host` is whatever the client says: no answer may send a client on to the host it names."""

    EVIL: ClassVar = {"Host": "evil.example"}

    def test_a_trailing_slash_is_not_redirected_anywhere(self, client):
        for path in ("/api/alice/tasks/", "/api/alice/tasks/1/", "/healthz/"):
            response = client.get(path, headers=bearer(token_for("alice")) | self.EVIL, follow_redirects=False)

            assert response.status_code == 404, path
            assert "location" not in response.headers, path
            assert "evil" not in str(response.headers) + response.text, path

    def test_a_created_tasks_location_is_a_path(self, client):
        response = client.post("/api/alice/tasks", json={"title": "t"}, headers=bearer(token_for("alice")) | self.EVIL)

        assert response.status_code == 201
        assert response.headers["location"] == f"/api/alice/tasks/{response.json()['id']}"
