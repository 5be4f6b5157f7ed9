"""Fixtures: a throwaway PostgreSQL started by the suite itself, migrated once, cloned per test.

The server comes from the pgserver wheel (it copes with running as root), and
pytest-postgresql's fixtures manage the databases on top of it: `pg_template` runs the real
migrations once into a template database, and `postgresql` gives each test a fresh clone.
"""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import psycopg
import pytest
from fastapi.testclient import TestClient
from pytest_postgresql import factories
from pytest_postgresql.janitor import DatabaseJanitor

from api.config import Settings
from api.identity.tokens import mint_token
from api.main import create_app
from api.ops import migrations
from api.ops.embedded import start_server

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
LOGIN_ROLE = "taskapi_login"  # a non-superuser login role, as on Neon


def pytest_configure(config: pytest.Config) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="taskapi-tests-"))
    server = start_server(workdir / "pg", cleanup_mode="delete")
    config._taskapi_server = server  # type: ignore[attr-defined]
    config._taskapi_workdir = workdir  # type: ignore[attr-defined]
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        # A throwaway server needs no crash safety; cloning a database per test gets cheap.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"alter system set {setting} = off")
        conn.execute("select pg_reload_conf()")
    info = server.get_postmaster_info()
    config.option.postgresql_host = str(info.socket_dir)
    config.option.postgresql_port = str(info.port or 5432)
    config.option.postgresql_user = "postgres"


def pytest_unconfigure(config: pytest.Config) -> None:
    server = getattr(config, "_taskapi_server", None)
    if server is not None:
        server.cleanup()
        shutil.rmtree(config._taskapi_workdir, ignore_errors=True)  # type: ignore[attr-defined]


def url_for(*, host: str, port: int | str, user: str, dbname: str, password: str | None = None) -> str:
    credentials = user if not password else f"{user}:{quote(password, safe='')}"
    return f"postgresql://{credentials}@/{dbname}?host={quote(host)}&port={port}"


def _migrate(host: str, port: int, user: str, dbname: str, password: str | None, **_) -> None:
    migrations.upgrade(url_for(host=host, port=port, user=user, dbname=dbname, password=password))


@contextmanager
def cloned_database(pg_template, prefix: str) -> Iterator[dict[str, str]]:
    """A clone of the migrated template that lives as long as the block: {"admin_url", "app_url"}."""
    dbname = f"{prefix}_{uuid4().hex[:12]}"
    janitor = DatabaseJanitor(
        user=pg_template.user,
        host=pg_template.host,
        port=pg_template.port,
        dbname=dbname,
        template_dbname=pg_template.template_dbname,
        password=pg_template.password,
    )
    with janitor:
        where = {"host": pg_template.host, "port": pg_template.port, "dbname": dbname}
        yield {
            "app_url": url_for(user=LOGIN_ROLE, **where),
            "admin_url": url_for(user=pg_template.user, password=pg_template.password, **where),
        }


pg_template = factories.postgresql_noproc(dbname="taskapi", load=[_migrate])
postgresql = factories.postgresql("pg_template")


@pytest.fixture
def admin_url(postgresql: psycopg.Connection) -> str:
    """This test's fresh, migrated database, as the superuser that owns everything."""
    info = postgresql.info
    return url_for(host=info.host, port=info.port, user=info.user, dbname=info.dbname)


@pytest.fixture(scope="session")
def login_role(pg_template) -> str:
    """A login role that is neither superuser nor owner, only a member of app_user."""
    url = url_for(host=pg_template.host, port=pg_template.port, user="postgres", dbname="postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (LOGIN_ROLE,)).fetchone()
        if not exists:
            conn.execute(f"create role {LOGIN_ROLE} login nosuperuser nobypassrls")
            conn.execute(f"grant app_user to {LOGIN_ROLE}")
    return LOGIN_ROLE


@pytest.fixture
def app_url(postgresql: psycopg.Connection, login_role: str) -> str:
    """This test's database, as the least-privileged login role the API is deployed with."""
    info = postgresql.info
    return url_for(host=info.host, port=info.port, user=login_role, dbname=info.dbname)


@pytest.fixture
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit superuser connection: looks at the database past every policy."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        yield conn


def make_settings(database_url: str, **overrides) -> Settings:
    return Settings(database_url=database_url, jwt_secret=JWT_SECRET, **overrides)


@pytest.fixture
def client(app_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(app_url)), raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(user_id: str, **claims) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, user_id)}"}


def create_task(client: TestClient, owner: str, **fields) -> dict:
    """Create a task through the API and return its JSON."""
    body = {"title": "a task", **fields}
    response = client.post(f"/api/{owner}/tasks", json=body, headers=bearer(owner))
    assert response.status_code == 201, response.text
    return response.json()
