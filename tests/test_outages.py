"""Outages, cold starts and slow queries, on a PostgreSQL server of this module's own.

The server is stopped, restarted and has its backends terminated while the API runs, so it
is not the one the rest of the suite shares.
"""

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.ops import migrations
from api.ops.embedded import start_server
from tests.support.app import create_task, make_settings
from tests.support.database import LOGIN_ROLE, url_for
from tests.support.tokens import bearer, token_for

BUDGET = 2.0  # seconds the API may spend connecting before it answers 503


class OwnServer:
    def __init__(self, workdir: Path) -> None:
        self.server = start_server(workdir / "pg", cleanup_mode="delete")
        info = self.server.get_postmaster_info()
        self.host, self.port = str(info.socket_dir), info.port or 5432
        self.admin_url = url_for(host=self.host, port=self.port, user="postgres", dbname="postgres")
        self.app_url = url_for(host=self.host, port=self.port, user=LOGIN_ROLE, dbname="postgres")

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnServer]:
    workdir = Path(tempfile.mkdtemp(prefix="taskapi-outage-"))
    own = OwnServer(workdir)
    with psycopg.connect(own.admin_url, autocommit=True) as conn:
        conn.execute("alter system set fsync = off")
        conn.execute("select pg_reload_conf()")
    migrations.upgrade(own.admin_url)
    with psycopg.connect(own.admin_url, autocommit=True) as conn:
        conn.execute(f"create role {LOGIN_ROLE} login")
        conn.execute(f"grant app_user to {LOGIN_ROLE}")
    yield own
    own.server.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def own_admin(own_server: OwnServer) -> Iterator[psycopg.Connection]:
    with psycopg.connect(own_server.admin_url, autocommit=True) as conn:
        conn.execute("truncate tasks cascade")  # and task_tags
        yield conn


@pytest.fixture
def api(own_server: OwnServer, own_admin) -> Iterator[TestClient]:
    settings = make_settings(
        own_server.app_url,
        db_connect_timeout_seconds=BUDGET,
        db_statement_timeout_ms=500,
        db_lock_timeout_ms=300,
        rate_limit_per_minute=0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def terminate_api_backends(admin: psycopg.Connection) -> int:
    rows = admin.execute(
        "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'taskapi'"
    ).fetchall()
    return len(rows)


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


class TestServerDownAndBack:
    def test_a_stopped_server_is_503_fast_and_the_api_recovers_by_itself(self, api, own_server):
        task = create_task(api, "alice", title="survives the restart")
        own_server.stop()
        try:
            response, elapsed = timed(lambda: api.get("/api/alice/tasks", headers=bearer(token_for("alice"))))
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"].isdigit()
            assert response.headers["content-type"] == "application/problem+json"
            assert elapsed < BUDGET + 2, "must fail within the connect budget, not hang"
            assert api.get("/readyz").status_code == 503
            assert api.get("/healthz").status_code == 200
        finally:
            own_server.start()
        response = api.get(f"/api/alice/tasks/{task['id']}", headers=bearer(token_for("alice")))
        assert response.status_code == 200, "recovers without a restart"
        assert api.get("/readyz").status_code == 200

    def test_a_cold_start_is_waited_for_within_the_budget(self, api, own_server):
        create_task(api, "alice")
        own_server.stop()
        restarter = threading.Timer(0.5, own_server.start)
        restarter.start()
        try:
            response, elapsed = timed(lambda: api.get("/api/alice/tasks", headers=bearer(token_for("alice"))))
        finally:
            restarter.join()
        assert response.status_code == 200, response.text
        assert elapsed < BUDGET + 2


class TestKilledConnections:
    def test_idle_pooled_connections_killed_are_replaced_transparently(self, api, own_admin):
        task = create_task(api, "alice")
        assert terminate_api_backends(own_admin) >= 1
        response = api.get(f"/api/alice/tasks/{task['id']}", headers=bearer(token_for("alice")))
        assert response.status_code == 200, response.text
        write = api.put(f"/api/alice/tasks/{task['id']}", json={"title": "after"}, headers=bearer(token_for("alice")))
        assert write.status_code == 200

    def test_a_request_in_flight_whose_backend_is_killed_is_503_and_changes_nothing(self, api, own_admin):
        task = create_task(api, "alice", title="before")
        holder = psycopg.connect(own_admin.info.dsn)
        holder.execute("select * from tasks where id = %s for update", (task["id"],))  # blocks writers
        result = {}

        def blocked_update():
            result["response"] = api.put(
                f"/api/alice/tasks/{task['id']}", json={"title": "lost"}, headers=bearer(token_for("alice"))
            )

        # Let the lock wait longer than the default so the kill, not the timeout, ends it.
        own_admin.execute("alter role app_user set lock_timeout = 0")
        worker = threading.Thread(target=blocked_update)
        try:
            worker.start()
            deadline = time.monotonic() + 5
            while not own_admin.execute(
                "select 1 from pg_stat_activity where application_name = 'taskapi' and wait_event_type = 'Lock'"
            ).fetchone():
                assert time.monotonic() < deadline, "the update never started waiting"
                time.sleep(0.02)
            terminate_api_backends(own_admin)
            worker.join(timeout=10)
        finally:
            own_admin.execute("alter role app_user reset lock_timeout")
            holder.rollback()
            holder.close()
        assert result["response"].status_code == 503, result["response"].text
        assert own_admin.execute("select title from tasks").fetchall() == [("before",)]
        assert api.get(f"/api/alice/tasks/{task['id']}", headers=bearer(token_for("alice"))).status_code == 200


class TestTimeouts:
    def test_a_lock_wait_beyond_lock_timeout_is_503_and_the_connection_stays_healthy(self, api, own_admin):
        task = create_task(api, "alice", title="before")
        with psycopg.connect(own_admin.info.dsn) as holder:
            holder.execute("select * from tasks where id = %s for update", (task["id"],))
            response, elapsed = timed(
                lambda: api.put(
                    f"/api/alice/tasks/{task['id']}", json={"title": "x"}, headers=bearer(token_for("alice"))
                )
            )
            holder.rollback()
        assert response.status_code == 503, response.text
        assert "retry-after" in response.headers
        assert elapsed < 2
        assert own_admin.execute("select title from tasks").fetchall() == [("before",)]
        assert api.get(f"/api/alice/tasks/{task['id']}", headers=bearer(token_for("alice"))).status_code == 200

    def test_a_slow_statement_is_cancelled_at_statement_timeout(self, api, own_admin):
        # A policy-visible slowdown: a trigger that sleeps longer than the statement timeout.
        own_admin.execute(
            "create function slow() returns trigger language plpgsql as "
            "$$ begin perform pg_sleep(2); return new; end $$"
        )
        own_admin.execute("create trigger slow before insert on tasks for each row execute function slow()")
        try:
            response, elapsed = timed(
                lambda: api.post("/api/alice/tasks", json={"title": "slow"}, headers=bearer(token_for("alice")))
            )
        finally:
            own_admin.execute("drop trigger slow on tasks")
            own_admin.execute("drop function slow()")
        assert response.status_code == 503, response.text
        assert elapsed < 1.5, "cancelled at 500 ms, not after the 2 s sleep"
        assert own_admin.execute("select count(*) from tasks").fetchone() == (0,)
        assert (
            api.post("/api/alice/tasks", json={"title": "fast"}, headers=bearer(token_for("alice"))).status_code == 201
        )


class TestSerializationFailures:
    @pytest.fixture
    def failing_inserts(self, own_admin):
        """Makes the next N inserts abort with a serialization failure (40001).

        Attempts are counted with a sequence: nextval() survives the rollback of the attempt.
        """
        own_admin.execute("create table failure_limit (n int)")
        own_admin.execute("create sequence attempts")
        own_admin.execute("grant select on failure_limit to app_user")
        own_admin.execute("grant usage on sequence attempts to app_user")
        own_admin.execute(
            "create function fail_first() returns trigger language plpgsql as $$ begin "
            "if nextval('attempts') <= (select n from failure_limit) then "
            "raise exception 'simulated' using errcode = '40001'; end if; "
            "return new; end $$"
        )
        own_admin.execute("create trigger fail_first before insert on tasks for each row execute function fail_first()")

        def arm(count: int) -> None:
            own_admin.execute("insert into failure_limit values (%s)", (count,))

        yield arm
        own_admin.execute("drop trigger fail_first on tasks")
        own_admin.execute("drop function fail_first()")
        own_admin.execute("drop table failure_limit")
        own_admin.execute("drop sequence attempts")

    def test_are_retried_inside_the_server(self, api, own_admin, failing_inserts):
        failing_inserts(2)  # fewer than the 3 attempts
        response = api.post("/api/alice/tasks", json={"title": "once"}, headers=bearer(token_for("alice")))
        assert response.status_code == 201, response.text
        assert own_admin.execute("select title from tasks").fetchall() == [("once",)]

    def test_persistent_failures_are_503_and_change_nothing(self, api, own_admin, failing_inserts):
        failing_inserts(100)
        response = api.post("/api/alice/tasks", json={"title": "never"}, headers=bearer(token_for("alice")))
        assert response.status_code == 503
        assert own_admin.execute("select count(*) from tasks").fetchone() == (0,)


class TestPoolExhaustion:
    def test_no_free_connection_within_the_pool_timeout_is_503(self, own_server, own_admin):
        settings = make_settings(
            own_server.app_url,
            db_pool_size=1,
            db_max_overflow=0,
            db_pool_timeout_seconds=0.5,
            db_lock_timeout_ms=0,
            rate_limit_per_minute=0,
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as api:
            task = create_task(api, "alice")
            holder = psycopg.connect(own_admin.info.dsn)
            holder.execute("select * from tasks where id = %s for update", (task["id"],))
            blocked = threading.Thread(
                target=lambda: api.put(
                    f"/api/alice/tasks/{task['id']}", json={"title": "x"}, headers=bearer(token_for("alice"))
                )
            )
            blocked.start()  # holds the only connection while it waits for the row lock
            try:
                time.sleep(0.3)
                # Another user: alice's own next request would wait for her share of the pool (429).
                response, elapsed = timed(lambda: api.get("/api/bob/tasks", headers=bearer(token_for("bob"))))
            finally:
                holder.rollback()
                holder.close()
                blocked.join(timeout=10)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert elapsed < 2
            assert api.get("/api/alice/tasks", headers=bearer(token_for("alice"))).status_code == 200
