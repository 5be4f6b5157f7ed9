"""Through PgBouncer in transaction mode, as on Neon's pooled URL.

A real pgbouncer (Debian's, installed by `make test`) sits between a real `taskapi serve`
and the throwaway PostgreSQL, with fewer server connections than concurrent clients, so
server connections are shared between users from one transaction to the next.
"""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from api.db import prepared_statements_enabled
from tests.conftest import JWT_SECRET, bearer
from tests.servers import free_port, serving

USERS = [f"user{n}" for n in range(8)]
ROUNDS = 12  # each query runs far past psycopg's prepare threshold (5) on every connection


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        message = "pgbouncer is not installed (make test installs it with apt-get when run as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def port_6432_if_free() -> int:
    """Neon's pooler port: on it, DATABASE_PREPARED_STATEMENTS=auto must turn them off by itself."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 6432))
        except OSError:
            return free_port()
    return 6432


@pytest.fixture
def pgbouncer(postgresql: psycopg.Connection, login_role: str) -> Iterator[dict]:
    # Its own directory, readable by the unprivileged user pgbouncer runs as.
    tmp_path = Path(tempfile.mkdtemp(prefix="taskapi-pgbouncer-"))
    run_as = ["-u", "pgserver"] if os.geteuid() == 0 else []  # it refuses to run as root
    if run_as:
        shutil.chown(tmp_path, "pgserver")
    info = postgresql.info
    port = port_6432_if_free()
    config = tmp_path / "pgbouncer.ini"
    (tmp_path / "users.txt").write_text(f'"{login_role}" ""\n"postgres" ""\n')
    config.write_text(
        f"""
[databases]
{info.dbname} = host={info.host} port={info.port} dbname={info.dbname} pool_size=2
single = host={info.host} port={info.port} dbname={info.dbname} pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {tmp_path}/users.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = 2
ignore_startup_parameters = extra_float_digits
logfile = {tmp_path}/pgbouncer.log
pidfile = {tmp_path}/pgbouncer.pid
"""
    )
    process = subprocess.Popen([pgbouncer_binary(), *run_as, str(config)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "pgbouncer.log").read_text()
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
        yield {
            "url": f"postgresql://{login_role}@127.0.0.1:{port}/{info.dbname}",
            "single_url": f"postgresql://{login_role}@127.0.0.1:{port}/single",
            "port": port,
        }
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(tmp_path, ignore_errors=True)


def workload(base: str, user: str) -> list[str]:
    """One user's session: create (and retry), edit with If-Match, list, read, complete;
    returns every problem seen. Keyed creates and conditional edits send several statements
    per transaction: they too must work through the pooler."""
    problems = []
    # Each user's own order of queries, so that connections prepare them in different orders.
    shuffle = random.Random(user).shuffle
    with httpx.Client(base_url=base, headers=bearer(user), timeout=30) as client:
        for round_number in range(ROUNDS):
            body, key = {"title": f"{user} task {round_number}"}, {"Idempotency-Key": f"{user}-{round_number}"}
            created = client.post(f"/api/{user}/tasks", json=body, headers=key)
            if created.status_code != 201:
                problems.append(f"create {created.status_code} {created.text}")
                continue
            task_id = created.json()["id"]
            retried = client.post(f"/api/{user}/tasks", json=body, headers=key)
            if (retried.status_code, retried.json().get("id")) != (201, task_id):
                problems.append(f"retried create {retried.status_code} {retried.text}")
            first_match = {"If-Match": created.headers["etag"]}
            edited = client.put(f"/api/{user}/tasks/{task_id}", json=body, headers=first_match)
            stale = client.put(f"/api/{user}/tasks/{task_id}", json=body, headers=first_match)
            if (edited.status_code, stale.status_code) != (200, 412):
                problems.append(f"If-Match edits {edited.status_code} then {stale.status_code}")
            calls = [
                lambda: client.get(f"/api/{user}/tasks", params={"limit": 100}),
                lambda: client.get(f"/api/{user}/tasks/{task_id}"),  # noqa: B023 (called right away)
                lambda: client.patch(f"/api/{user}/tasks/{task_id}/complete"),  # noqa: B023
            ]
            shuffle(calls)
            for response in (call() for call in calls):
                if response.status_code != 200:
                    problems.append(f"{response.request.method} {response.status_code} {response.text}")
                    continue
                body = response.json()
                for task in body if isinstance(body, list) else [body]:
                    if task["user_id"] != user:
                        problems.append(f"{user} saw a task of {task['user_id']}")
    return problems


def test_concurrent_users_through_a_transaction_pooler(pgbouncer, admin, tmp_path):
    env = {"DATABASE_URL": pgbouncer["url"], "JWT_SECRET": JWT_SECRET, "DB_POOL_SIZE": "10"}
    if pgbouncer["port"] != 6432:
        env["DATABASE_PREPARED_STATEMENTS"] = "off"  # auto only recognises the pooler port
    with serving(env, tmp_path) as (base, _), ThreadPoolExecutor(len(USERS)) as pool:
        problems = [problem for found in pool.map(lambda user: workload(base, user), USERS) for problem in found]
    assert problems == []
    counts = dict(admin.execute("select user_id, count(*) from tasks group by user_id").fetchall())
    assert counts == {user: ROUNDS for user in USERS}


def test_a_pooled_server_connection_carries_no_identity_after_a_request(pgbouncer, tmp_path):
    env = {
        "DATABASE_URL": pgbouncer["single_url"],
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_PREPARED_STATEMENTS": "off",
    }
    with serving(env, tmp_path) as (base, _):
        response = httpx.post(f"{base}/api/alice/tasks", json={"title": "t"}, headers=bearer("alice"))
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
    from tests.servers import run_taskapi

    env = {"DATABASE_URL": pgbouncer["url"], "MIGRATIONS_DATABASE_URL": admin_url}
    result = run_taskapi("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "migrated to" in result.stdout


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        ("postgresql://u:p@ep-cool-rain-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require", "auto", False),
        ("postgresql://u:p@ep-cool-rain-123456.us-east-2.aws.neon.tech/neondb?sslmode=require", "auto", True),
        ("postgres://u@127.0.0.1:6432/db", "auto", False),
        ("postgresql://u@/db?host=/var/run/postgresql", "auto", True),
        ("postgresql://u@ep-x-pooler.neon.tech/db", "on", True),
        ("postgresql://u@ep-x.neon.tech/db", "off", False),
    ],
)
def test_prepared_statements_setting(url, setting, expected):
    assert prepared_statements_enabled(url, setting) is expected
