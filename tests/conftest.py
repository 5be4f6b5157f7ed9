"""Fixtures: a throwaway PostgreSQL started by the suite itself, migrated once, cloned per test.

The server comes from the pgserver wheel (it copes with running as root), and
pytest-postgresql's fixtures manage the databases on top of it: `pg_template` runs the real
migrations once into a template database, and `postgresql` gives each test a fresh clone.
`idp` is a real Better Auth identity provider. Fixtures and hooks only: the helpers they use
live in tests/support.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from pytest_postgresql import factories

from api.main import create_app
from api.ops.embedded import start_server
from tests.support.app import make_settings
from tests.support.better_auth import BetterAuth, better_auth
from tests.support.database import LOGIN_ROLE, migrate, url_for


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


pg_template = factories.postgresql_noproc(dbname="taskapi", load=[migrate])
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
def app_conn(app_url: str) -> Iterator[psycopg.Connection]:
    """A connection as the least-privileged login role, not in a transaction yet."""
    with psycopg.connect(app_url) as conn:
        yield conn


@pytest.fixture
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit superuser connection: looks at the database past every policy."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def client(app_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(app_url)), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def idp() -> Iterator[BetterAuth]:
    """Better Auth with its JWT plugin and default keys (EdDSA over Ed25519), for a module."""
    with better_auth() as provider:
        yield provider
