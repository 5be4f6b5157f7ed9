"""CORS for browser frontends on other origins, and the demo page mount.

CORS_ORIGINS names exact origins; those get `Access-Control-Allow-Origin` on every answer,
errors included, so a browser can read why a request failed. Any other origin gets no CORS
header at all, and with no CORS_ORIGINS nobody does. The demo page (web/) is served under
/demo/ only when switched on, with a CSP of its own.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.config import Settings
from api.edge.middleware import DEMO_PAGE_CSP, JSON_ONLY_CSP
from api.main import create_app
from api.tasks import service
from tests.api.support import assert_problem
from tests.support.app import close_offline, create_task, make_settings, offline_test_client, task_url, tasks_url
from tests.support.database import UNREACHABLE_DATABASE
from tests.support.servers import run_taskapi
from tests.support.tokens import JWT_SECRET, bearer, token_for

ORIGIN = "http://localhost:5173"
OTHER_ALLOWED_ORIGIN = "https://app.example.com"
ALLOWED = f"{ORIGIN}, {OTHER_ALLOWED_ORIGIN}"
FROM_ORIGIN = {"Origin": ORIGIN}
PREFLIGHT_HEADERS = "authorization, content-type, if-match, idempotency-key"
API_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
REQUEST_HEADERS = {"authorization", "content-type", "if-match", "if-none-match", "idempotency-key", "x-request-id"}
EXPOSED_HEADERS = {
    "location",
    "link",
    "etag",
    "retry-after",
    "x-request-id",
    "idempotent-replayed",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
}
WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def header_set(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


def cors_headers(response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


def assert_readable_by(response, origin: str = ORIGIN) -> None:
    """A browser on `origin` may read this answer and the headers the API exposes."""
    assert response.headers.get("access-control-allow-origin") == origin, (response.status_code, response.headers)
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in header_set(response.headers.get("vary"))
    assert header_set(response.headers.get("access-control-expose-headers")) >= EXPOSED_HEADERS


def preflight(client: TestClient, path: str, method: str, origin: str = ORIGIN, headers: str = PREFLIGHT_HEADERS):
    return client.options(
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )


@pytest.fixture
def cors_client(app_url: str) -> Iterator[TestClient]:
    settings = make_settings(app_url, cors_origins=ALLOWED, max_body_bytes=1024)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def offline(**overrides) -> TestClient:
    """The app on a database that does not exist, its start-up check skipped: whatever needs
    the database answers 503; everything else answers as usual."""
    return offline_test_client(db_connect_timeout_seconds=0.1, **overrides)


@pytest.fixture
def offline_cors_client() -> Iterator[TestClient]:
    client = offline(cors_origins=ALLOWED, rate_limit_per_minute=1)
    yield client
    close_offline(client)


# --- an allowed origin ------------------------------------------------------------------------


class TestAllowedOrigin:
    def test_successful_answers_are_readable_with_their_headers(self, cors_client):
        created = cors_client.post(
            tasks_url("alice"),
            json={"title": "t"},
            headers={**FROM_ORIGIN, **bearer(token_for("alice")), "Idempotency-Key": "k"},
        )
        replayed = cors_client.post(
            tasks_url("alice"),
            json={"title": "t"},
            headers={**FROM_ORIGIN, **bearer(token_for("alice")), "Idempotency-Key": "k"},
        )
        create_task(cors_client, "alice")
        listed = cors_client.get(
            tasks_url("alice"), params={"limit": 1}, headers={**FROM_ORIGIN, **bearer(token_for("alice"))}
        )
        fetched = cors_client.get(
            task_url("alice", created.json()["id"]), headers={**FROM_ORIGIN, **bearer(token_for("alice"))}
        )

        for response, status, header in [
            (created, 201, "location"),
            (replayed, 201, "idempotent-replayed"),
            (listed, 200, "link"),
            (fetched, 200, "etag"),
        ]:
            assert response.status_code == status, response.text
            assert header in response.headers  # sent, and named in Access-Control-Expose-Headers
            assert_readable_by(response)
            assert "x-request-id" in response.headers
            assert "ratelimit-limit" in response.headers

    def test_every_allowed_origin_gets_itself_back(self, cors_client):
        for origin in (ORIGIN, OTHER_ALLOWED_ORIGIN):
            response = cors_client.get(tasks_url("alice"), headers={"Origin": origin, **bearer(token_for("alice"))})

            assert response.status_code == 200
            assert_readable_by(response, origin)

    @pytest.mark.parametrize("method", sorted(API_METHODS))
    def test_a_preflight_allows_the_apis_methods_and_headers(self, offline_cors_client, method):
        response = preflight(offline_cors_client, "/api/alice/tasks/1", method)

        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-credentials" not in response.headers
        assert header_set(response.headers["access-control-allow-methods"]) >= {m.lower() for m in API_METHODS}
        assert header_set(response.headers["access-control-allow-headers"]) >= REQUEST_HEADERS
        assert response.headers["access-control-max-age"] == "600"

    def test_a_preflight_needs_no_token_and_reaches_no_route(self, cors_client, admin):
        response = preflight(cors_client, tasks_url("alice"), "POST")

        assert response.status_code == 200
        assert admin.execute("select count(*) from tasks").fetchone() == (0,)
        assert admin.execute("select count(*) from idempotency_keys").fetchone() == (0,)

    def test_the_preflight_max_age_comes_from_the_settings(self):
        client = offline(cors_origins=ORIGIN, cors_max_age_seconds=120)

        assert preflight(client, "/api/alice/tasks", "PUT").headers["access-control-max-age"] == "120"

    @pytest.mark.parametrize(
        ("method", "headers"),
        [("PUT", "authorization, x-evil"), ("PUT", "cookie"), ("TRACE", "authorization"), ("CONNECT", "")],
    )
    def test_a_preflight_asking_for_anything_else_is_refused(self, offline_cors_client, method, headers):
        response = preflight(offline_cors_client, "/api/alice/tasks", method, headers=headers)

        assert response.status_code == 400  # a browser refuses a preflight that is not 2xx
        assert response.text.startswith("Disallowed CORS")

    def test_error_answers_without_the_database_are_readable(self, offline_cors_client):
        item = "/api/alice/tasks/1"
        as_alice = {**FROM_ORIGIN, **bearer(token_for("alice"))}
        cases = [
            (offline_cors_client.get(tasks_url("alice"), headers=FROM_ORIGIN), 401),
            (
                offline_cors_client.get(tasks_url("alice"), headers={**FROM_ORIGIN, **bearer("x.y.z")}),
                401,
            ),
            (offline_cors_client.get(tasks_url("alice"), headers={**FROM_ORIGIN, **bearer(token_for("bob"))}), 403),
            (offline_cors_client.get("/nowhere", headers=FROM_ORIGIN), 404),
            (offline_cors_client.delete(tasks_url("alice"), headers=as_alice), 405),
            (offline_cors_client.post(tasks_url("alice"), content=b"x" * 40_000, headers=as_alice), 413),
            (offline_cors_client.post(tasks_url("alice"), content=b"<x/>", headers=as_alice), 415),
            # The rate limit is 1: this request spends it (its database is gone: 503) ...
            (offline_cors_client.get(item, headers=as_alice), 503),
            # ... and the next one is over it.
            (offline_cors_client.get(item, headers=as_alice), 429),
        ]
        for response, status in cases:
            assert_problem(response, status)
            assert_readable_by(response)
        assert cases[0][0].headers["www-authenticate"].startswith("Bearer")
        assert {"retry-after", "www-authenticate"} <= header_set(cases[-1][0].headers["access-control-expose-headers"])
        assert int(cases[-1][0].headers["retry-after"]) >= 1
        assert int(cases[-2][0].headers["retry-after"]) >= 1

    def test_error_answers_from_the_database_are_readable(self, cors_client, admin):
        task = create_task(cors_client, "alice")
        as_alice = {**FROM_ORIGIN, **bearer(token_for("alice"))}
        cases = [
            (cors_client.get(task_url("alice", task["id"] + 99), headers=as_alice), 404),
            (cors_client.get(task_url("bob", task["id"]), headers={**FROM_ORIGIN, **bearer(token_for("bob"))}), 404),
            (cors_client.put(task_url("alice", task["id"]), json={"title": ""}, headers=as_alice), 422),
            (
                cors_client.post(
                    tasks_url("alice"), content=b"{", headers={**as_alice, "Content-Type": "application/json"}
                ),
                400,
            ),
            (
                cors_client.put(
                    task_url("alice", task["id"]), json={"title": "x"}, headers={**as_alice, "If-Match": '"7"'}
                ),
                412,
            ),
        ]
        for response, status in cases:
            assert_problem(response, status)
            assert_readable_by(response)
        assert admin.execute("select title, version from tasks").fetchall() == [("a task", 1)]

    def test_a_304_is_readable_with_its_etag(self, cors_client):
        task = create_task(cors_client, "alice")

        response = cors_client.get(
            task_url("alice", task["id"]), headers={**FROM_ORIGIN, **bearer(token_for("alice")), "If-None-Match": '"1"'}
        )

        assert response.status_code == 304
        assert response.headers["etag"] == '"1"'
        assert_readable_by(response)

    def test_an_unexpected_500_is_readable_too(self, app_url, monkeypatch):
        async def broken(*args, **kwargs):
            raise RuntimeError("an unexpected bug")

        monkeypatch.setattr(service, "list_tasks", broken)
        settings = make_settings(app_url, cors_origins=ALLOWED)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            response = client.get(tasks_url("alice"), headers={**FROM_ORIGIN, **bearer(token_for("alice"))})

        assert_problem(response, 500)
        assert "x-request-id" in response.headers
        assert_readable_by(response)

    def test_every_ratelimit_header_the_api_sends_is_exposed(self, cors_client):
        response = cors_client.get(tasks_url("alice"), headers={**FROM_ORIGIN, **bearer(token_for("alice"))})

        sent = {name.lower() for name in response.headers if name.lower().startswith("ratelimit-")}
        assert sent >= {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"}
        assert sent <= header_set(response.headers["access-control-expose-headers"])


# --- any other origin -------------------------------------------------------------------------


class TestOtherOrigins:
    @pytest.mark.parametrize(
        "origin",
        [
            "http://localhost:5174",
            "https://localhost:5173",
            "http://localhost:5173.evil.example",
            "http://evil.example",
            "https://app.example.com.evil.example",
            "null",
        ],
    )
    def test_an_origin_not_listed_gets_no_cors_headers(self, offline_cors_client, origin):
        answered = offline_cors_client.get(tasks_url("alice"), headers={"Origin": origin})
        preflighted = preflight(offline_cors_client, tasks_url("alice"), "POST", origin=origin)

        assert_problem(answered, 401)  # answered as usual: CORS is no access control
        assert "access-control-allow-origin" not in answered.headers
        assert preflighted.status_code == 400
        assert preflighted.text == "Disallowed CORS origin"
        assert "access-control-allow-origin" not in preflighted.headers

    def test_without_cors_origins_nobody_gets_cors_headers(self, client):
        answered = client.get(tasks_url("alice"), headers={**FROM_ORIGIN, **bearer(token_for("alice"))})
        refused = client.get(tasks_url("alice"), headers=FROM_ORIGIN)
        preflighted = preflight(client, tasks_url("alice"), "POST")

        assert answered.status_code == 200
        assert_problem(refused, 401)
        for response in (answered, refused, preflighted):
            assert cors_headers(response) == {}, response.headers
        assert preflighted.status_code == 405  # no CORS middleware: OPTIONS is just another method

    def test_no_cors_origins_is_the_default(self):
        assert make_settings(UNREACHABLE_DATABASE).allowed_origins == []
        assert make_settings(UNREACHABLE_DATABASE, cors_origins="").allowed_origins == []


# --- the setting -------------------------------------------------------------------------------


class TestCorsSetting:
    @pytest.mark.parametrize(
        "value",
        [
            "*",
            f"{ORIGIN}, *",
            "http://*.example.com",
            f"{ORIGIN}/",
            "https://app.example.com/app",
            "localhost:5173",
            "app.example.com",
            "ftp://app.example.com",
            f"{ORIGIN},",
            f"{ORIGIN} {OTHER_ALLOWED_ORIGIN}",
            "null",
        ],
    )
    def test_anything_but_exact_origins_is_refused_at_start_up(self, value):
        with pytest.raises(ValidationError, match="CORS_ORIGINS"):
            make_settings(UNREACHABLE_DATABASE, cors_origins=value)

    def test_exact_origins_are_accepted_and_trimmed(self):
        settings = make_settings(UNREACHABLE_DATABASE, cors_origins=f" {ORIGIN} ,{OTHER_ALLOWED_ORIGIN}")

        assert settings.allowed_origins == [ORIGIN, OTHER_ALLOWED_ORIGIN]
        assert make_settings(UNREACHABLE_DATABASE, cors_origins="http://127.0.0.1:8000").allowed_origins == [
            "http://127.0.0.1:8000"
        ]

    def test_the_environment_is_validated_too(self, monkeypatch):
        monkeypatch.setenv("CORS_ORIGINS", "*")
        with pytest.raises(ValidationError, match="CORS_ORIGINS"):
            Settings()
        monkeypatch.setenv("CORS_ORIGINS", ORIGIN)
        monkeypatch.setenv("CORS_MAX_AGE_SECONDS", "86401")
        with pytest.raises(ValidationError, match="cors_max_age_seconds"):
            Settings()
        monkeypatch.setenv("CORS_MAX_AGE_SECONDS", "60")
        assert (Settings().allowed_origins, Settings().cors_max_age_seconds) == ([ORIGIN], 60)

    def test_taskapi_serve_refuses_to_start_with_a_wildcard(self, tmp_path):
        env = {"CORS_ORIGINS": "*", "DATABASE_URL": UNREACHABLE_DATABASE, "JWT_SECRET": JWT_SECRET}

        result = run_taskapi("serve", "--port", "9", env=env, cwd=tmp_path)

        assert result.returncode != 0
        assert "CORS_ORIGINS" in result.stderr
        assert not (tmp_path / ".data").exists()  # nothing was started


# --- the demo page ----------------------------------------------------------------------------


class TestDemoPage:
    def test_when_on_the_page_is_served_under_demo_with_its_own_csp(self):
        client = offline(demo_page=True)

        page = client.get("/demo/")
        script = client.get("/demo/app.js")
        style = client.get("/demo/style.css")
        api = client.get("/healthz")

        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.content == (WEB_DIR / "index.html").read_bytes()
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert script.content == (WEB_DIR / "app.js").read_bytes()
        assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
        for response in (page, script, style):
            csp = response.headers["content-security-policy"]
            assert csp == DEMO_PAGE_CSP
            assert "default-src 'self'" in csp and "connect-src 'self' http: https:" in csp
            assert "frame-ancestors 'none'" in csp
            assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
            assert response.headers["x-content-type-options"] == "nosniff"
        assert api.headers["content-security-policy"] == JSON_ONLY_CSP  # the API keeps its own

    def test_the_mount_serves_nothing_outside_web(self):
        client = offline(demo_page=True)

        for path in ("/demo/../README.md", "/demo/..%2fREADME.md", "/demo/%2e%2e/api/config.py", "/demo/missing.js"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert b"JWT_SECRET" not in response.content and b"# Task API" not in response.content

    def test_it_is_off_by_default_with_a_database_url(self, client):
        for response in (client.get("/demo/"), client.get("/demo/app.js"), offline(demo_page=False).get("/demo/")):
            assert_problem(response, 404)
        assert make_settings(UNREACHABLE_DATABASE).serves_demo_page is False

    def test_it_defaults_on_only_for_the_embedded_database(self):
        assert Settings(database_url=None, jwt_secret=JWT_SECRET).serves_demo_page is True
        assert Settings(database_url=None, jwt_secret=JWT_SECRET, demo_page=False).serves_demo_page is False
        assert make_settings(UNREACHABLE_DATABASE, demo_page=True).serves_demo_page is True
