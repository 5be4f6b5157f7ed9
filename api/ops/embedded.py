"""The embedded default: a PostgreSQL server from the pgserver wheel, kept under the data dir.

pgserver copes with running as root (it runs postgres as a dedicated system user), so this
works in CI containers too.
"""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

DATABASE_NAME = "taskapi"
_servers: dict[Path, PostgresServer] = {}  # handles kept alive for the life of the process


def start_server(pgdata: Path, *, cleanup_mode: str | None = "stop") -> PostgresServer:
    """Start (or reuse) a pgserver PostgreSQL in `pgdata`; it stops when this process exits."""
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir it does not need; CI has none.
        warnings.simplefilter("ignore")
        # Imported lazily: production deployments never start it.
        from pgserver.postgres_server import get_server

    pgdata = pgdata.resolve()
    if pgdata not in _servers:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _servers[pgdata] = get_server(pgdata, cleanup_mode=cleanup_mode)
    return _servers[pgdata]


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server and return a URL to the project's database."""
    server = start_server(data_dir / "pg")
    _ensure_database(server.get_uri())
    return server.get_uri(DATABASE_NAME)


def _ensure_database(maintenance_url: str) -> None:
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'create database "{DATABASE_NAME}"')


def embedded_jwt_secret(data_dir: Path) -> str:
    """A signing secret generated once and kept, private, under the data dir."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()
