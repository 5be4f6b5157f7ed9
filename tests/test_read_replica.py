"""DATABASE_READ_URL: GET requests read from a replica, under the same row-level security."""

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.support.app import make_settings
from tests.support.database import LOGIN_ROLE, url_for
from tests.support.tokens import bearer, token_for


@pytest.fixture
def replica(pg_template, login_role) -> Iterator[dict[str, str]]:
    """A second, migrated database standing in for a read replica, with rows of its own."""
    maintenance = url_for(host=pg_template.host, port=pg_template.port, user="postgres", dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute("drop database if exists taskapi_replica")
        conn.execute(f"create database taskapi_replica template {pg_template.template_dbname}")
    admin_url = maintenance.replace("/postgres?", "/taskapi_replica?")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("insert into tasks (user_id, title) values ('alice', 'on the replica'), ('bob', 'bob replica')")
    yield {"app_url": admin_url.replace("postgres@", f"{LOGIN_ROLE}@"), "admin_url": admin_url}
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute("drop database taskapi_replica with (force)")


@pytest.fixture
def api(app_url, replica) -> Iterator[TestClient]:
    settings = make_settings(app_url, database_read_url=replica["app_url"])
    with TestClient(create_app(settings)) as client:
        yield client


def test_reads_come_from_the_replica_and_only_the_callers_rows(api):
    titles = [task["title"] for task in api.get("/api/alice/tasks", headers=bearer(token_for("alice"))).json()]
    assert titles == ["on the replica"]


def test_another_users_row_on_the_replica_is_not_found(api, replica):
    with psycopg.connect(replica["admin_url"]) as conn:
        bobs_id = conn.execute("select id from tasks where user_id = 'bob'").fetchone()[0]
    assert api.get(f"/api/alice/tasks/{bobs_id}", headers=bearer(token_for("alice"))).status_code == 404


def test_writes_go_to_the_primary(api, admin, replica):
    response = api.post("/api/alice/tasks", json={"title": "written"}, headers=bearer(token_for("alice")))
    assert response.status_code == 201
    assert admin.execute("select title from tasks").fetchall() == [("written",)]
    with psycopg.connect(replica["admin_url"]) as conn:
        assert conn.execute("select count(*) from tasks where title = 'written'").fetchone() == (0,)
