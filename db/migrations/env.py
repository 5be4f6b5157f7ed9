"""Alembic environment: the SQLModel tables plus the policies, functions and triggers in db/.

The .sql files under db/policies/, db/functions/ and db/triggers/ are the source of truth for
row-level security and for what keeps derived tables in step. alembic_utils compares them with
the database, so `alembic check` fails when a file changed without a migration, and
`alembic revision --autogenerate` writes that migration.
"""

from pathlib import Path

import psycopg
from alembic import context
from alembic_utils.pg_function import PGFunction
from alembic_utils.pg_policy import PGPolicy
from alembic_utils.pg_trigger import PGTrigger
from alembic_utils.replaceable_entity import register_entities
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import api.lists.models
import api.tasks.models  # noqa: F401
from api.config import get_settings
from api.ops.embedded import embedded_database_url

DB_DIR = Path(__file__).resolve().parent.parent


def _sql_files(folder: str) -> list[str]:
    return [path.read_text().strip().rstrip(";") for path in sorted((DB_DIR / folder).glob("*.sql"))]


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


register_entities(
    [PGFunction.from_sql(_strip_comments(sql)) for sql in _sql_files("functions")]
    + [PGPolicy.from_sql(_strip_comments(sql)) for sql in _sql_files("policies")]
    + [PGTrigger.from_sql(_strip_comments(sql)) for sql in _sql_files("triggers")],
    entity_types=[PGFunction, PGPolicy, PGTrigger],
)


def _database_url() -> str:
    url = context.config.attributes.get("database_url")
    if url:
        return url
    settings = get_settings()
    return settings.direct_database_url or embedded_database_url(settings.data_dir)


def run_migrations_online() -> None:
    url = _database_url()
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: migrations need a live database")
run_migrations_online()
