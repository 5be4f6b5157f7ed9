"""The DBA's SQL tests (db/tests/*.sql), run with pg_prove as a DBA would, wired into the suite."""

import glob
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from api.ops.migrations import PROJECT_ROOT

SQL_TESTS = sorted(str(path) for path in (PROJECT_ROOT / "db" / "tests").glob("*.sql"))
ISOLATION_TEST = str(PROJECT_ROOT / "db" / "tests" / "02_isolation.sql")


def _missing(what: str) -> None:
    message = f"{what} is not installed (make test installs it with apt-get when run as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_prove() -> str:
    """pg_prove, with pgTAP made available to the test server (it is plain SQL)."""
    binary = shutil.which("pg_prove")
    if binary is None:
        _missing("pg_prove")
    controls = glob.glob("/usr/share/postgresql/*/extension/pgtap.control")
    if not controls:
        _missing("pgTAP")
    import pgserver

    extension_dir = Path(pgserver.__file__).parent / "pginstall" / "share" / "postgresql" / "extension"
    source = Path(controls[0]).parent
    for path in [source / "pgtap.control", *source.glob("pgtap--*.sql")]:
        if not (extension_dir / path.name).exists():
            shutil.copy(path, extension_dir / path.name)
    return binary


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
