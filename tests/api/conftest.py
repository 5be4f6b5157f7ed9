"""Fixtures for the HTTP contract tests, on top of tests/conftest.py."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.api.live import LiveServer, live_server, warm_up
from tests.support.app import close_offline, offline_test_client


@pytest.fixture(scope="module")
def offline_client() -> Iterator[TestClient]:
    """The app wired to a database that does not exist, its start-up check skipped.

    Whatever it answers, it answered without the database: a request that reached the
    database would fail (503), so a 401 or 403 from it shows the database was never touched.
    (test_problem_details checks that it does answer 503 once a request needs the database.)
    It is also cheap, as it needs no database of its own.
    """
    client = offline_test_client()
    yield client
    close_offline(client)


@pytest.fixture(scope="module")
def spec(offline_client: TestClient) -> dict[str, Any]:
    """The OpenAPI document, as a client fetches it."""
    response = offline_client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def server(pg_template, login_role, tmp_path_factory) -> Iterator[LiveServer]:
    """One real server per module, for races; each race works on tasks of its own."""
    with live_server(pg_template, login_role, tmp_path_factory.mktemp("serve"), DB_POOL_SIZE="20") as running:
        warm_up(running, "warm-up", 20)
        yield running


@pytest.fixture
def server_admin(server: LiveServer) -> Iterator[psycopg.Connection]:
    with server.admin() as conn:
        yield conn
