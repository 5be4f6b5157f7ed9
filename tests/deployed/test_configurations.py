"""Every configuration the README offers, started the way the README starts it, called over HTTP.

Each test runs `taskapi serve` as its own process with only environment variables, as a user
deploys it: on the embedded PostgreSQL, with DATABASE_URL and a shared secret, with an identity
provider's JWKS alone, with both, with two workers, behind PgBouncer in transaction mode on a
port nobody would guess, and always (but embedded) as a login role that is only a member of
app_user, as on Neon. The identity provider is a real Better Auth server; its tokens come from
sign-up and `GET /api/auth/token`, as a frontend gets them. Every write is checked in the
database, past row-level security.
"""

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import psycopg

from tests.support.better_auth import PASSWORD, BetterAuth, better_auth, unique_email
from tests.support.pgbouncer import running_pgbouncer
from tests.support.servers import postgres_running, printed_token, run_taskapi, serving
from tests.support.tokens import JWT_SECRET, bearer, token_for
from tests.support.workload import session_problems


def jwks_settings(idp: BetterAuth) -> dict[str, str]:
    """The README's Better Auth settings: its JWKS, and its origin as issuer and audience."""
    return {"JWT_JWKS_URL": idp.jwks_url, "JWT_ISSUER": idp.issuer, "JWT_AUDIENCE": idp.audience}


def rows(admin_url: str) -> list[tuple[str, str]]:
    """(user_id, title) of every task, seen past row-level security."""
    with psycopg.connect(admin_url) as conn:
        return conn.execute("select user_id, title from tasks order by id").fetchall()


def request_lines(output: list[str]) -> list[dict]:
    return [json.loads(line) for line in output if '"api.requests"' in line]


def test_embedded_make_run_serves_persists_and_prints_a_working_example(tmp_path: Path):
    env = {"TASKAPI_DATA_DIR": str(tmp_path / ".data")}
    with serving(env, tmp_path) as (base, output):
        headers = bearer(printed_token(output))
        created = httpx.post(f"{base}/api/demo/tasks", json={"title": "from the README"}, headers=headers)
        assert created.status_code == 201
        assert created.headers["location"] == f"/api/demo/tasks/{created.json()['id']}"
    assert not postgres_running(tmp_path / ".data" / "pg"), "the embedded server must stop with the API"
    secret_file = tmp_path / ".data" / "jwt_secret"
    assert secret_file.stat().st_mode & 0o077 == 0, "the generated secret must be private"

    with serving(env, tmp_path) as (base, output):  # a second run keeps data and secret
        listed = httpx.get(f"{base}/api/demo/tasks", headers=bearer(printed_token(output)))
        assert [task["title"] for task in listed.json()] == ["from the README"]


def test_a_database_url_and_a_shared_secret(database, tmp_path: Path):
    env = {"DATABASE_URL": database["app_url"], "JWT_SECRET": JWT_SECRET, "LOG_FORMAT": "json"}
    alice = run_taskapi("token", "alice", env=env, cwd=tmp_path).stdout.strip()
    bob = run_taskapi("token", "bob", env=env, cwd=tmp_path).stdout.strip()
    with serving(env, tmp_path) as (base, output):
        created = httpx.post(f"{base}/api/alice/tasks", json={"title": "alice's"}, headers=bearer(alice))
        task_url = f"{base}{created.headers['location']}"
        bobs_view = httpx.get(f"{base}/api/bob/tasks", headers=bearer(bob))
        bobs_try = httpx.get(task_url.replace("/alice/", "/bob/"), headers=bearer(bob))
        bob_as_alice = httpx.get(task_url, headers=bearer(bob))
        # A client cannot make the server name another host, nor claim another address.
        spoofed = {"Host": "evil.example", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        httpx.post(f"{base}/api/alice/tasks", json={"title": "second"}, headers=bearer(alice))
        paged = httpx.get(f"{base}/api/alice/tasks", params={"limit": 1}, headers=bearer(alice) | spoofed)
        slash = httpx.get(f"{base}/api/alice/tasks/", headers=bearer(alice) | spoofed)

    assert created.status_code == 201
    assert (bobs_view.status_code, bobs_view.json()) == (200, [])
    assert bobs_try.status_code == 404 and bob_as_alice.status_code == 403
    assert paged.headers["link"].startswith("</api/alice/tasks?") and "evil" not in paged.headers["link"]
    assert slash.status_code == 404 and "location" not in slash.headers
    assert {line["client"] for line in request_lines(output)} == {"127.0.0.1"}, "X-Forwarded-For is not believed"
    assert rows(database["admin_url"]) == [("alice", "alice's"), ("alice", "second")]


def test_forwarded_headers_are_believed_only_from_the_proxies_named(database, tmp_path: Path):
    env = {"DATABASE_URL": database["app_url"], "JWT_SECRET": JWT_SECRET, "LOG_FORMAT": "json"}
    with serving({**env, "FORWARDED_ALLOW_IPS": "127.0.0.1"}, tmp_path) as (base, output):
        httpx.get(f"{base}/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
    assert [line["client"] for line in request_lines(output) if line["route"] == "/healthz"] == ["203.0.113.9"]


def test_a_database_url_and_an_identity_providers_jwks_alone(idp: BetterAuth, database, tmp_path: Path):
    """The README's Better Auth / Neon Auth setup: no JWT_SECRET at all."""
    ann = idp.sign_up(unique_email(), PASSWORD, "Ann")
    ben = idp.sign_up(unique_email(), PASSWORD, "Ben")
    env = {"DATABASE_URL": database["app_url"], **jwks_settings(idp)}
    with serving(env, tmp_path) as (base, _):
        anns_token = idp.token(ann)
        created = httpx.post(f"{base}/api/{ann.user_id}/tasks", json={"title": "ann's"}, headers=bearer(anns_token))
        listed = httpx.get(f"{base}/api/{ann.user_id}/tasks", headers=bearer(anns_token))
        bens_view = httpx.get(f"{base}/api/{ben.user_id}/tasks", headers=bearer(idp.token(ben)))
        # With no secret configured, HS256 is not an algorithm this server accepts, whatever the key.
        forged = token_for(ann.user_id, secret="x" * 48, ttl_seconds=600)
        hs256 = httpx.get(f"{base}/api/{ann.user_id}/tasks", headers=bearer(forged))
    minting = run_taskapi("token", ann.user_id, env=env, cwd=tmp_path)

    assert created.status_code == 201, created.text
    assert [task["title"] for task in listed.json()] == ["ann's"]
    assert (bens_view.status_code, bens_view.json()) == (200, [])
    assert hs256.status_code == 401 and hs256.json()["detail"] == "algorithm not allowed"
    assert minting.returncode != 0 and "JWT_SECRET" in minting.stderr
    assert rows(database["admin_url"]) == [(ann.user_id, "ann's")]


def test_both_a_shared_secret_and_a_jwks(idp: BetterAuth, database, tmp_path: Path):
    ann = idp.sign_up(unique_email(), PASSWORD, "Ann")
    env = {"DATABASE_URL": database["app_url"], "JWT_SECRET": JWT_SECRET, **jwks_settings(idp)}
    own_token = run_taskapi("token", "service-user", env=env, cwd=tmp_path).stdout.strip()
    with serving(env, tmp_path) as (base, _):
        from_provider = httpx.post(
            f"{base}/api/{ann.user_id}/tasks", json={"title": "via Better Auth"}, headers=bearer(idp.token(ann))
        )
        from_secret = httpx.post(
            f"{base}/api/service-user/tasks", json={"title": "via the secret"}, headers=bearer(own_token)
        )

    assert (from_provider.status_code, from_secret.status_code) == (201, 201)
    assert rows(database["admin_url"]) == [(ann.user_id, "via Better Auth"), ("service-user", "via the secret")]


def test_the_readmes_neon_setup_pooler_login_role_jwks_and_two_workers(idp: BetterAuth, database, tmp_path: Path):
    """Deploying on Neon, step 3: the pooled URL as a login role that owns nothing, the provider's
    JWKS with issuer and audience, JSON logs, two workers. Here the pooler is PgBouncer in
    transaction mode with 2 server connections, on a port that says nothing about pooling."""
    users = [idp.sign_up(unique_email(), PASSWORD, f"User {n}") for n in range(6)]
    app_url = database["app_url"]
    where = psycopg.conninfo.conninfo_to_dict(app_url)
    with running_pgbouncer(
        host=where["host"], port=where["port"], dbname=where["dbname"], login_role=where["user"]
    ) as bouncer:
        assert bouncer["port"] != 6432
        env = {"DATABASE_URL": bouncer["url"], "LOG_FORMAT": "json", **jwks_settings(idp)}
        with serving(env, tmp_path, "--workers", "2") as (base, output), ThreadPoolExecutor(len(users)) as pool:
            found = pool.map(lambda user: session_problems(base, user.user_id, bearer(idp.token(user)), 8), users)
            problems = [problem for problems in found for problem in problems]
            wait_for_lines(output, "Application startup complete", 2)

    assert problems == []
    with psycopg.connect(database["admin_url"]) as conn:
        counts = dict(conn.execute("select user_id, count(*) from tasks group by user_id").fetchall())
    assert counts == {user.user_id: 8 for user in users}
    with psycopg.connect(database["admin_url"]) as conn:  # each list deleted; its tasks kept, in no list
        kept = conn.execute("select count(*) from tasks where list_id is null and tags[1] = 'Shop'").fetchone()
        assert (conn.execute("select count(*) from lists").fetchone(), kept) == ((0,), (8 * len(users),))
    lines = request_lines(output)
    assert lines and {line["status"] for line in lines} <= {200, 201, 204, 412}


def test_a_key_rotation_at_the_provider_is_picked_up_without_a_401(database, tmp_path: Path):
    """Better Auth rotates its key every 3 s here; a frontend keeps fetching fresh tokens with
    `authClient.token()` and calling the API. Every call must succeed, across the rotations."""
    with better_auth(rotation_interval_seconds=3, grace_period_seconds=600) as idp:
        ann = idp.sign_up(unique_email(), PASSWORD, "Ann")
        env = {"DATABASE_URL": database["app_url"], **jwks_settings(idp)}
        with serving(env, tmp_path) as (base, _):
            kids, statuses = set(), []
            deadline = time.monotonic() + 30
            while len(kids) < 3 and time.monotonic() < deadline:
                token = idp.token(ann)
                kids.add(jwt.get_unverified_header(token)["kid"])
                response = httpx.get(f"{base}/api/{ann.user_id}/tasks", headers=bearer(token), timeout=30)
                statuses.append(response.status_code)
                time.sleep(0.25)  # a frontend's pace; the rotation interval is the condition awaited

    assert len(kids) == 3, "the provider rotated its key twice"
    assert set(statuses) == {200}, statuses


def test_one_user_cannot_starve_the_others(database, tmp_path: Path):
    """Mallory has 3,000 long tasks and sends 12 worst-case searches at a time, again and again;
    bob, meanwhile, keeps working. Mallory holds at most DB_CONNECTIONS_PER_USER connections,
    each search is cancelled after DB_SEARCH_TIMEOUT_MS, and bob's requests keep answering."""
    with psycopg.connect(database["admin_url"], autocommit=True) as admin:
        admin.execute(
            "insert into tasks (user_id, title, description)"
            " select 'mallory', repeat('a', 198) || 'c', 'aab' || repeat('a', 997) from generate_series(1, 3000)"
        )
    env = {"DATABASE_URL": database["app_url"], "JWT_SECRET": JWT_SECRET, "RATE_LIMIT_PER_MINUTE": "0"}
    mallory = run_taskapi("token", "mallory", env=env, cwd=tmp_path).stdout.strip()
    bob = run_taskapi("token", "bob", env=env, cwd=tmp_path).stdout.strip()
    worst = {"q": "a" * 199 + "b"}
    with serving(env, tmp_path) as (base, _), httpx.Client(base_url=base, timeout=30) as bobs_client:
        attacking = True
        attack_statuses: list[int] = []

        def attack() -> None:
            with httpx.Client(base_url=base, headers=bearer(mallory), timeout=30) as client:
                while attacking:
                    attack_statuses.append(client.get("/api/mallory/tasks", params=worst).status_code)

        searching: list[int] = []  # how many of mallory's searches PostgreSQL runs, sampled

        def sample() -> None:
            with psycopg.connect(database["admin_url"], autocommit=True) as admin:
                while attacking:
                    searching.append(admin.execute(MALLORYS_SEARCHES).fetchone()[0])
                    time.sleep(0.01)

        with ThreadPoolExecutor(13) as attackers:
            running = [attackers.submit(attack) for _ in range(12)] + [attackers.submit(sample)]
            wait_until(lambda: len(attack_statuses) >= 12)  # every attacker is in full swing
            latencies, bobs_statuses = [], []
            for n in range(60):
                started = time.monotonic()
                if n % 3 == 0:
                    response = bobs_client.post("/api/bob/tasks", json={"title": f"t{n}"}, headers=bearer(bob))
                else:
                    response = bobs_client.get("/api/bob/tasks", headers=bearer(bob))
                latencies.append(time.monotonic() - started)
                bobs_statuses.append(response.status_code)
            attacking = False
            for attacker in running:
                attacker.result(timeout=60)

    assert set(bobs_statuses) <= {200, 201}, bobs_statuses
    p95 = statistics.quantiles(latencies, n=20)[-1]
    assert p95 < 1.0, f"bob's p95 was {p95:.3f} s"
    assert set(attack_statuses) <= {429, 503}, "mallory's searches are cancelled (or refused), never served whole"
    assert max(searching) == 3, "mallory never had more than DB_CONNECTIONS_PER_USER (3) statements running"


MALLORYS_SEARCHES = (
    "select count(*) from pg_stat_activity"
    " where application_name = 'taskapi' and state = 'active' and query ilike '%ilike%'"
)


def wait_for_lines(output: list[str], text: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while "".join(output).count(text) < count:
        assert time.monotonic() < deadline, "".join(output)
        time.sleep(0.05)


def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)
