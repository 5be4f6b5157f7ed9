"""The app as the tests build it: its settings, a client that never reaches a database, the task
routes' URLs, and a task made through the API."""

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api.state import Services
from tests.support.database import UNREACHABLE_DATABASE
from tests.support.tokens import JWT_SECRET, bearer, token_for

PROBLEM_JSON = "application/problem+json"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, jwt_secret=JWT_SECRET, **overrides)


def offline_test_client(**overrides: Any) -> TestClient:
    """The app on a database that does not exist, its start-up check skipped.

    Not entered as a context manager: the lifespan (and its database check) never runs. Whatever
    needs the database answers 503; everything else answers as usual. Close it with
    `close_offline`.
    """
    return TestClient(create_app(make_settings(UNREACHABLE_DATABASE, **overrides)), raise_server_exceptions=False)


def close_offline(client: TestClient) -> None:
    """Close what an offline client's app opened (its pool holds no connection, but may hold waiters)."""
    services: Services = client.app.state.services
    asyncio.run(services.primary.stop())


def tasks_url(owner: str) -> str:
    return f"/api/{owner}/tasks"


def task_url(owner: str, task_id: int | str) -> str:
    return f"/api/{owner}/tasks/{task_id}"


def create_task(client: TestClient, owner: str, **fields: Any) -> dict:
    """Create a task through the API and return its JSON."""
    body = {"title": "a task", **fields}
    response = client.post(tasks_url(owner), json=body, headers=bearer(token_for(owner)))
    assert response.status_code == 201, response.text
    return response.json()
