"""Checks run before serving: refuse to start on a database where isolation would not hold."""

from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from api.database.engine import Database
from api.database.session import APP_ROLE, IDENTITY_SQL, identity

_NOBODY = identity("", statement_timeout_ms=10_000, lock_timeout_ms=10_000)
_SCHEMA_VERSION = "select version_num from alembic_version"
# Every table app_user reads or writes; each must be protected by forced RLS.
PROTECTED_TABLES = ("tasks", "lists", "task_tags", "idempotency_keys")
_ISOLATION_FACTS = """
    select t.name as table_name,
           r.rolsuper as superuser,
           r.rolbypassrls as bypassrls,
           pg_has_role(current_user, c.relowner, 'USAGE') as owns_table,
           c.relrowsecurity as rls_enabled,
           c.relforcerowsecurity as rls_forced
      from unnest(%(tables)s::text[]) as t(name)
      join pg_roles r on r.rolname = current_user
      left join pg_class c on c.oid = to_regclass('public.' || quote_ident(t.name))
"""


class PreflightError(RuntimeError):
    """The database is not safe or not ready to serve; the message says what to fix."""


async def check_database(database: Database, *, expected_revision: str | None) -> None:
    async with database.pool.connection() as driver, driver.transaction(force_rollback=True):
        try:
            # Set up exactly as a request is: the effective role below is the one requests use.
            await driver.execute(IDENTITY_SQL, _NOBODY)
        except psycopg.Error:
            raise PreflightError(
                f"the login role cannot switch to {APP_ROLE} (or it does not exist); "
                f"run `taskapi migrate`, then as an administrator: GRANT {APP_ROLE} TO <login role>;"
            ) from None
        current = await _schema_version(driver)
        cursor = driver.cursor(row_factory=dict_row)
        facts = await (await cursor.execute(_ISOLATION_FACTS, {"tables": list(PROTECTED_TABLES)})).fetchall()
    if current != expected_revision:
        raise PreflightError(
            f"the database schema is at revision {current or 'none'}, expected {expected_revision}; "
            "run `taskapi migrate`"
        )
    missing = [row["table_name"] for row in facts if row["rls_enabled"] is None]
    if missing:
        raise PreflightError(f"table(s) {', '.join(missing)} missing; run `taskapi migrate`")
    problems = _role_problems(facts[0]) + [problem for row in facts for problem in _table_problems(row)]
    if problems:
        raise PreflightError("row-level security would not hold: " + "; ".join(problems))


async def _schema_version(driver: psycopg.AsyncConnection[Any]) -> str | None:
    try:
        async with driver.transaction():  # a savepoint: a missing table must not end the check
            row = await (await driver.execute(_SCHEMA_VERSION)).fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def _role_problems(facts: DictRow) -> list[str]:
    """What is wrong with the effective role itself (the same on every row of facts)."""
    problems = []
    if facts["superuser"]:
        problems.append(f"{APP_ROLE} is a superuser (ALTER ROLE {APP_ROLE} NOSUPERUSER)")
    if facts["bypassrls"]:
        problems.append(f"{APP_ROLE} has BYPASSRLS (ALTER ROLE {APP_ROLE} NOBYPASSRLS)")
    return problems


def _table_problems(facts: DictRow) -> list[str]:
    problems = []
    table = facts["table_name"]
    if facts["owns_table"]:
        problems.append(f"{APP_ROLE} owns {table} (ALTER TABLE {table} OWNER TO <owner role>)")
    if not facts["rls_enabled"]:
        problems.append(f"RLS is disabled on {table} (ALTER TABLE {table} ENABLE ROW LEVEL SECURITY)")
    if not facts["rls_forced"]:
        problems.append(f"RLS is not forced on {table} (ALTER TABLE {table} FORCE ROW LEVEL SECURITY)")
    return problems
