"""The suite's databases: their URLs, the role the API logs in as, clones of the migrated template,
and transactions opened the way a request opens them."""

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote
from uuid import uuid4

import psycopg
from pytest_postgresql.executors.noop import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from api.config import Settings
from api.database.session import IDENTITY_SQL, identity
from api.ops import migrations

LOGIN_ROLE = "taskapi_login"  # a non-superuser login role, as on Neon
# A database that does not exist: whatever needs it fails fast (a 503 from the API).
UNREACHABLE_DATABASE = "postgresql://nobody@/nowhere?host=/nonexistent-socket-dir&connect_timeout=1"


def url_for(*, host: str, port: int | str, user: str, dbname: str, password: str | None = None) -> str:
    credentials = user if not password else f"{user}:{quote(password, safe='')}"
    return f"postgresql://{credentials}@/{dbname}?host={quote(host)}&port={port}"


def migrate(host: str, port: int, user: str, dbname: str, password: str | None, **_: object) -> None:
    """Run the real migrations: how pytest-postgresql loads the template database."""
    migrations.upgrade(url_for(host=host, port=port, user=user, dbname=dbname, password=password))


@contextmanager
def cloned_database(pg_template: NoopExecutor, prefix: str) -> Iterator[dict[str, str]]:
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
    host, port, admin, password = pg_template.host, pg_template.port, pg_template.user, pg_template.password
    with janitor:
        yield {
            "app_url": url_for(host=host, port=port, user=LOGIN_ROLE, dbname=dbname),
            "admin_url": url_for(host=host, port=port, user=admin, dbname=dbname, password=password),
        }


def begin_as(conn: psycopg.Connection, user_id: str | None) -> psycopg.Cursor:
    """Open a transaction on `conn` exactly as a request does: the API's identity statement
    (api.database.session.IDENTITY_SQL) for `user_id`, with the default timeouts. None (or "")
    is nobody. The transaction is left open; returns the cursor that ran the statement."""
    defaults = Settings.model_fields
    cursor = conn.cursor()
    cursor.execute(
        IDENTITY_SQL,
        identity(
            user_id or "",
            statement_timeout_ms=defaults["db_statement_timeout_ms"].default,
            lock_timeout_ms=defaults["db_lock_timeout_ms"].default,
        ),
    )
    return cursor
