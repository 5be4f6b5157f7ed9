"""Through PgBouncer in transaction mode, as on Neon's pooled URL.

A real pgbouncer (Debian's, installed by `make test`) sits between a real `taskapi serve`
and the throwaway PostgreSQL, with fewer server connections than concurrent clients, so
server connections are shared between users from one transaction to the next.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from tests.support.pgbouncer import running_pgbouncer
from tests.support.servers import run_taskapi, serving
from tests.support.tokens import JWT_SECRET, bearer, token_for
from tests.support.workload import session_problems

USERS = [f"user{n}" for n in range(8)]
ROUNDS = 12  # each query runs far past psycopg's prepare threshold (5) on every connection


@pytest.fixture
def pgbouncer(postgresql: psycopg.Connection, login_role: str) -> Iterator[dict]:
    info = postgresql.info
    with running_pgbouncer(host=info.host, port=info.port, dbname=info.dbname, login_role=login_role) as bouncer:
        yield bouncer


def test_concurrent_users_through_a_transaction_pooler_on_any_port(pgbouncer, admin, tmp_path):
    """Every query runs far past psycopg's prepare threshold on every connection, through a
    pooler on a port nobody would guess: no statement may be prepared, whatever the URL says."""
    env = {"DATABASE_URL": pgbouncer["url"], "JWT_SECRET": JWT_SECRET, "DB_POOL_SIZE": "10"}
    with serving(env, tmp_path) as (base, _), ThreadPoolExecutor(len(USERS)) as pool:
        problems = [
            problem
            for found in pool.map(lambda user: session_problems(base, user, bearer(token_for(user)), ROUNDS), USERS)
            for problem in found
        ]
    assert problems == []
    counts = dict(admin.execute("select user_id, count(*) from tasks group by user_id").fetchall())
    assert counts == {user: ROUNDS for user in USERS}


def test_a_pooled_server_connection_carries_no_identity_after_a_request(pgbouncer, tmp_path):
    env = {"DATABASE_URL": pgbouncer["single_url"], "JWT_SECRET": JWT_SECRET}
    with serving(env, tmp_path) as (base, _):
        response = httpx.post(f"{base}/api/alice/tasks", json={"title": "t"}, headers=bearer(token_for("alice")))
        assert response.status_code == 201
        # The alias has one server connection: this query runs on the one the request used.
        with psycopg.connect(pgbouncer["single_url"], prepare_threshold=None, autocommit=True) as conn:
            user_setting, role, session_role = conn.execute(
                "select current_setting('app.user_id', true), current_user, session_user"
            ).fetchone()
            tasks_visible = conn.execute("select count(*) from tasks").fetchone()[0]
    assert user_setting in (None, "")
    assert role == session_role, "the role switch must not outlive its transaction"
    assert tasks_visible == 0, "with no user set, nobody's rows are visible"


def test_migrations_use_the_direct_url_while_the_api_uses_the_pooler(pgbouncer, admin_url, tmp_path):
    env = {"DATABASE_URL": pgbouncer["url"], "MIGRATIONS_DATABASE_URL": admin_url}
    result = run_taskapi("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "migrated to" in result.stdout


def test_a_kept_plan_on_a_shared_server_connection_still_answers_only_its_caller(pgbouncer, tmp_path):
    """The get's plan is kept by the server connection (app.task_by_id, PL/pgSQL). With one
    server connection for everyone, alice and bob take turns on it, past the point where
    PostgreSQL may switch to a generic plan: each still gets only their own task."""
    env = {"DATABASE_URL": pgbouncer["single_url"], "JWT_SECRET": JWT_SECRET}
    with serving(env, tmp_path) as (base, _), httpx.Client(base_url=base) as client:
        ids = {}
        for user in ("alice", "bob"):
            created = client.post(f"/api/{user}/tasks", json={"title": f"{user}'s"}, headers=bearer(token_for(user)))
            assert created.status_code == 201
            ids[user] = created.json()["id"]
        answers = {
            (asker, owner): {
                client.get(f"/api/{asker}/tasks/{ids[owner]}", headers=bearer(token_for(asker))).status_code
                for _ in range(8)
            }
            for asker, owner in (("alice", "alice"), ("bob", "alice"), ("bob", "bob"), ("alice", "bob"))
        }
    own, others = {200}, {404}
    assert answers == {("alice", "alice"): own, ("bob", "alice"): others, ("bob", "bob"): own, ("alice", "bob"): others}
