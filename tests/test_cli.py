"""The `taskapi` command, run as a newcomer and an operator would: real processes, real HTTP."""

import json
import os
import re
import signal
import threading
import time

import httpx
import jwt
import psycopg
import pytest

from api.config import Settings
from api.ops import cli
from tests.support.database import UNREACHABLE_DATABASE, url_for
from tests.support.servers import run_taskapi, serving
from tests.support.tokens import JWT_SECRET, bearer


def test_serves_a_given_database_url(app_url, admin, tmp_path):
    env = {"DATABASE_URL": app_url, "JWT_SECRET": JWT_SECRET}
    token = run_taskapi("token", "carol", env=env, cwd=tmp_path).stdout.strip()
    with serving(env, tmp_path) as (base, output):
        response = httpx.post(
            f"{base}/api/carol/tasks",
            json={"title": "over real HTTP"},
            headers=bearer(token),
        )
        assert response.status_code == 201, response.text
        assert "export TOKEN" not in "".join(output), "examples are only printed in embedded mode"
    assert admin.execute("select user_id, title from tasks").fetchall() == [("carol", "over real HTTP")]


def test_token_command_signs_a_token_for_the_user(tmp_path):
    result = run_taskapi("token", "alice", "--ttl", "120", env={"JWT_SECRET": JWT_SECRET}, cwd=tmp_path)
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert 110 <= claims["exp"] - time.time() <= 121


def test_weak_secret_is_refused_with_advice(tmp_path, app_url):
    result = run_taskapi("serve", env={"DATABASE_URL": app_url, "JWT_SECRET": "short"}, cwd=tmp_path)
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr and "32 bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_neither_a_secret_nor_a_jwks_with_a_database_url_is_refused(tmp_path, app_url):
    result = run_taskapi("serve", env={"DATABASE_URL": app_url}, cwd=tmp_path)
    assert result.returncode != 0
    assert "set JWT_SECRET (at least 32 bytes), JWT_JWKS_URL, or both" in result.stderr


def test_migrate_command_migrates_the_database_url(tmp_path, pg_template):
    maintenance = url_for(host=pg_template.host, port=pg_template.port, user="postgres", dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute("drop database if exists taskapi_cli")
        conn.execute("create database taskapi_cli")
    url = maintenance.replace("/postgres?", "/taskapi_cli?").replace("postgresql://", "postgres://")
    try:
        result = run_taskapi("migrate", env={"DATABASE_URL": url}, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("select version_num from alembic_version").fetchone() is not None
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute("drop database taskapi_cli with (force)")


def test_several_worker_processes_serve_the_same_database(app_url, admin, tmp_path):
    env = {"DATABASE_URL": app_url, "JWT_SECRET": JWT_SECRET, "LOG_FORMAT": "json"}
    token = run_taskapi("token", "dora", env=env, cwd=tmp_path).stdout.strip()
    with serving(env, tmp_path, "--workers", "2") as (base, output):
        headers = bearer(token)
        statuses = [
            httpx.post(f"{base}/api/dora/tasks", json={"title": f"t{n}"}, headers=headers).status_code
            for n in range(10)
        ]
        assert statuses == [201] * 10
        deadline = time.monotonic() + 10
        while "".join(output).count("Application startup complete") < 2:
            assert time.monotonic() < deadline, "".join(output)
            time.sleep(0.1)
    assert admin.execute("select count(*) from tasks where user_id = 'dora'").fetchone() == (10,)
    request_lines = [json.loads(line) for line in output if '"api.requests"' in line]
    assert {line["route"] for line in request_lines} >= {"/api/{user_id}/tasks"}


def test_sigterm_lets_a_request_in_flight_finish(app_url, admin, tmp_path):
    env = {"DATABASE_URL": app_url, "JWT_SECRET": JWT_SECRET, "DB_LOCK_TIMEOUT_MS": "0", "DB_STATEMENT_TIMEOUT_MS": "0"}
    token = run_taskapi("token", "erin", env=env, cwd=tmp_path).stdout.strip()
    headers = bearer(token)
    with serving(env, tmp_path, "--graceful-timeout", "10") as (base, output):
        task = httpx.post(f"{base}/api/erin/tasks", json={"title": "before"}, headers=headers).json()
        holder = psycopg.connect(admin.info.dsn)
        holder.execute("select * from tasks where id = %s for update", (task["id"],))
        result = {}
        request = threading.Thread(
            target=lambda: result.update(
                response=httpx.put(f"{base}/api/erin/tasks/{task['id']}", json={"title": "after"}, headers=headers)
            )
        )
        request.start()
        time.sleep(0.5)  # the update is now waiting for the row lock
        server_pid = int(re.search(r"Started server process \[(\d+)\]", "".join(output)).group(1))
        os.kill(server_pid, signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/healthz", timeout=1)  # no longer accepting
        holder.commit()  # release the lock: the request in flight completes
        holder.close()
        request.join(timeout=10)
    assert result["response"].status_code == 200
    assert admin.execute("select title from tasks").fetchall() == [("after",)]


def launch_for(**given: str | None) -> tuple[Settings, str]:
    """What `taskapi serve` would hand its server processes for these settings, as the settings
    those processes read, and the banner it prints. Nothing is started."""
    environment = {"database_url": None, "jwt_secret": None, "demo_page": None, **given}
    settings = Settings(_env_file=None, **environment)
    database_url = settings.database_url or UNREACHABLE_DATABASE  # the embedded server, in real life
    launch = cli.plan_launch(settings, database_url=database_url, jwt_secret=JWT_SECRET, base_url=BASE_URL)
    # The server processes inherit the environment, with what the launch adds.
    environment |= {name.lower(): value for name, value in launch.environment.items()}
    return Settings(_env_file=None, **environment), launch.banner


BASE_URL = "http://127.0.0.1:8000"


class TestTaskapiServe:
    def test_embedded_mode_turns_the_demo_page_on(self):
        served, banner = launch_for()
        assert served.serves_demo_page is True
        assert "demo page: http://127.0.0.1:8000/demo/" in banner

    def test_embedded_mode_respects_demo_page_false(self):
        served, banner = launch_for(demo_page="false")

        assert served.serves_demo_page is False
        assert "demo page" not in banner

    def test_a_database_url_leaves_it_off(self):
        served, banner = launch_for(database_url=UNREACHABLE_DATABASE, jwt_secret=JWT_SECRET)

        assert served.serves_demo_page is False
        assert "demo page" not in banner
