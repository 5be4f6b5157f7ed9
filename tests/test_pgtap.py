"""The DBA's SQL tests (db/tests/*.sql), run with pg_prove as a DBA would, wired into the suite.

They run on a second server, Debian's PostgreSQL 15, not on the suite's pgserver instance: there
pgTAP is installed the normal way (the postgresql-15-pgtap package), so nothing has to be copied
into the pgserver wheel in site-packages, and the migrations get checked on PostgreSQL 15, the
oldest version the project supports.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from api.ops.migrations import PROJECT_ROOT, upgrade
from tests.support.postgres_server import Postgres, running_postgres

SQL_TESTS = sorted(str(path) for path in (PROJECT_ROOT / "db" / "tests").glob("*.sql"))
ISOLATION_TEST = str(PROJECT_ROOT / "db" / "tests" / "02_isolation.sql")
POSTGRES_15 = Path("/usr/lib/postgresql/15/bin")
PGTAP_15 = Path("/usr/share/postgresql/15/extension/pgtap.control")
TEMPLATE = "taskapi_template"


def _missing(what: str) -> None:
    message = f"{what} is not installed (make test installs it with apt-get when run as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def pg_prove() -> str:
    """pg_prove, which runs the SQL files through psql and reads their TAP output."""
    binary = shutil.which("pg_prove")
    if binary is None:
        _missing("pg_prove (libtap-parser-sourcehandler-pgtap-perl)")
    return binary


@pytest.fixture(scope="module")
def postgres15() -> Iterator[Postgres]:
    """Debian's PostgreSQL 15 with pgTAP, and a template database migrated with the real migrations."""
    if not all((POSTGRES_15 / name).is_file() for name in ("initdb", "postgres")):
        _missing(f"Debian's PostgreSQL 15 (postgresql-15, {POSTGRES_15})")
    if not PGTAP_15.is_file():
        _missing(f"pgTAP for PostgreSQL 15 (postgresql-15-pgtap, {PGTAP_15})")
    with running_postgres(POSTGRES_15) as server:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(f"create database {TEMPLATE}")
        upgrade(server.url(TEMPLATE))
        yield server


@pytest.fixture
def admin(postgres15: Postgres) -> Iterator[psycopg.Connection]:
    """Replaces the suite's `admin` here: an autocommit superuser connection to a fresh clone, on PostgreSQL 15."""
    dbname = f"pgtap_{uuid4().hex[:12]}"
    with psycopg.connect(postgres15.url("postgres"), autocommit=True) as maintenance:
        maintenance.execute(f"create database {dbname} template {TEMPLATE}")
        try:
            with psycopg.connect(postgres15.url(dbname), autocommit=True) as conn:
                yield conn
        finally:
            maintenance.execute(f"drop database {dbname} with (force)")


def prove(pg_prove: str, connection: psycopg.Connection, *files: str) -> subprocess.CompletedProcess:
    info = connection.info
    env = {**os.environ, "PGHOST": info.host, "PGPORT": str(info.port), "PGUSER": info.user, "PGDATABASE": info.dbname}
    return subprocess.run([pg_prove, "--verbose", *files], env=env, capture_output=True, text=True, timeout=120)


def test_the_sql_tests_pass_on_the_migrated_schema(pg_prove, admin):
    result = prove(pg_prove, admin, *SQL_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All tests successful" in result.stdout


def test_the_sql_tests_leave_nothing_behind(pg_prove, admin):
    prove(pg_prove, admin, *SQL_TESTS)
    assert admin.execute("select count(*) from tasks").fetchone() == (0,)
    assert admin.execute("select count(*) from idempotency_keys").fetchone() == (0,)
    assert admin.execute("select count(*) from pg_extension where extname = 'pgtap'").fetchone() == (0,)


@pytest.mark.parametrize("policy", ["tasks_select_own", "tasks_insert_own", "tasks_update_own", "tasks_delete_own"])
def test_each_behavioural_test_fails_when_its_policy_is_removed(pg_prove, admin, policy):
    admin.execute(f"drop policy {policy} on tasks")
    result = prove(pg_prove, admin, ISOLATION_TEST)
    assert result.returncode != 0, f"the isolation tests still pass without {policy}:\n{result.stdout}"


def test_a_permissive_policy_fails_the_isolation_tests(pg_prove, admin):
    admin.execute("alter policy tasks_select_own on tasks using (true)")
    result = prove(pg_prove, admin, ISOLATION_TEST)
    assert result.returncode != 0
    assert "not ok 1 - alice sees only her rows" in result.stdout


@pytest.mark.parametrize(
    "policy",
    [
        "idempotency_keys_select_own",
        "idempotency_keys_insert_own",
        "idempotency_keys_update_own",
        "idempotency_keys_delete_own",
    ],
)
def test_each_idempotency_key_policy_is_needed_by_the_sql_tests(pg_prove, admin, policy):
    admin.execute(f"drop policy {policy} on idempotency_keys")
    result = prove(pg_prove, admin, ISOLATION_TEST)
    assert result.returncode != 0, f"the isolation tests still pass without {policy}:\n{result.stdout}"
    structure = prove(pg_prove, admin, str(PROJECT_ROOT / "db" / "tests" / "01_structure.sql"))
    assert structure.returncode != 0
    assert "not ok 10 - idempotency_keys has exactly the four owner policies" in structure.stdout


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        (
            "alter policy idempotency_keys_select_own on idempotency_keys using (true)",
            "alice sees only her idempotency",
        ),
        ("alter policy idempotency_keys_insert_own on idempotency_keys with check (true)", "record an idempotency key"),
    ],
    ids=["select", "insert"],
)
def test_a_permissive_idempotency_key_policy_fails_the_isolation_tests(pg_prove, admin, change, failing):
    admin.execute(change)
    result = prove(pg_prove, admin, ISOLATION_TEST)
    assert result.returncode != 0
    assert any(line.startswith("not ok") and failing in line for line in result.stdout.splitlines()), result.stdout
