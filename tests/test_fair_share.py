"""No user can starve the others: a per-user share of the database, and searches with a budget.

A user's transactions beyond DB_CONNECTIONS_PER_USER wait in line and then get 429, for that
user alone; a substring search is cancelled after DB_SEARCH_TIMEOUT_MS. The attack these stop
(a few thousand long tasks and a dozen parallel worst-case searches) runs against a real server
in tests/deployed/; here each rule is checked on its own.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.database.shares import DatabaseShares, ShareExceeded
from api.main import create_app
from tests.support.app import create_task, make_settings
from tests.support.tokens import bearer, token_for

WORST_QUERY = "a" * 199 + "b"  # ILIKE '%aaa…ab%' against 'aab' + 'a' * 997: quadratic per row
WORST_DESCRIPTION = "aab" + "a" * 997


def seed_long_tasks(admin: psycopg.Connection, owner: str, count: int) -> None:
    admin.execute(
        "insert into tasks (user_id, title, description)"
        " select %s, repeat('a', 198) || 'c', %s from generate_series(1, %s)",
        (owner, WORST_DESCRIPTION, count),
    )


def holding(shares: DatabaseShares, user: str, release: asyncio.Event) -> asyncio.Task[None]:
    """A task that takes one of `user`'s shares (waiting in line for it if need be) and keeps it
    until `release` is set."""

    async def hold() -> None:
        async with shares.hold(user):
            await release.wait()

    return asyncio.create_task(hold())


class TestDatabaseShares:
    """The rule itself, on the event loop: at most `per_user` at once, the rest in line."""

    def test_a_user_over_the_share_waits_in_line_and_others_do_not(self):
        async def scenario() -> list[str]:
            shares = DatabaseShares(per_user=2, wait_seconds=5)
            order: list[str] = []
            release = asyncio.Event()

            async def work(user: str, name: str) -> None:
                async with shares.hold(user):
                    order.append(f"{name} started")
                    if name in ("a1", "a2"):
                        await release.wait()

            tasks = [asyncio.create_task(work("alice", f"a{n}")) for n in (1, 2, 3, 4)]
            await asyncio.sleep(0)
            await work("bob", "b1")  # bob is not held up by alice's line
            assert shares.running("alice") == 2
            release.set()
            await asyncio.gather(*tasks)
            assert shares.running("alice") == 0
            return order

        order = asyncio.run(scenario())
        assert order[:3] == ["a1 started", "a2 started", "b1 started"]
        assert order[3:] == ["a3 started", "a4 started"], "waiters are served in arrival order"

    def test_a_waiter_gives_up_after_the_wait_and_leaves_the_line_intact(self):
        async def scenario() -> tuple[float, int]:
            shares = DatabaseShares(per_user=1, wait_seconds=0.1)
            release = asyncio.Event()
            holder = holding(shares, "alice", release)
            await asyncio.sleep(0)
            started = time.monotonic()
            with pytest.raises(ShareExceeded):
                async with shares.hold("alice"):
                    pass
            waited = time.monotonic() - started
            release.set()
            await holder
            async with shares.hold("alice"):  # the slot came back
                running = shares.running("alice")
            return waited, running

        waited, running = asyncio.run(scenario())
        assert waited >= 0.1
        assert running == 1

    def test_a_cancelled_waiter_does_not_keep_a_slot(self):
        async def scenario() -> int:
            shares = DatabaseShares(per_user=1, wait_seconds=5)
            release = asyncio.Event()
            holder = holding(shares, "alice", release)
            await asyncio.sleep(0)
            waiter = holding(shares, "alice", release)  # a client that goes away while in line
            await asyncio.sleep(0)
            waiter.cancel()
            release.set()
            await holder
            with pytest.raises(asyncio.CancelledError):
                await waiter
            return shares.running("alice")

        assert asyncio.run(scenario()) == 0


class TestOverHttp:
    def test_a_users_requests_beyond_the_share_get_429_while_another_user_is_served(self, app_url, admin, admin_url):
        settings = make_settings(
            app_url,
            db_connections_per_user=1,
            db_pool_timeout_seconds=0.5,
            db_lock_timeout_ms=0,
            rate_limit_per_minute=0,
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            task = create_task(client, "alice", title="locked")
            with psycopg.connect(admin_url) as holder, ThreadPoolExecutor(1) as pool:
                holder.execute("select from tasks where id = %s for update", (task["id"],))
                # alice's one share is now stuck behind the row lock...
                stuck = pool.submit(
                    client.put,
                    f"/api/alice/tasks/{task['id']}",
                    json={"title": "x"},
                    headers=bearer(token_for("alice")),
                )
                wait_for_lock_waiter(admin)
                # ...so her next request waits its turn, then gets 429; bob is served at once.
                refused = client.get("/api/alice/tasks", headers=bearer(token_for("alice")))
                served = client.get("/api/bob/tasks", headers=bearer(token_for("bob")))
                holder.rollback()
                assert stuck.result(timeout=10).status_code == 200

        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        assert "your requests" in refused.json()["detail"]
        assert served.status_code == 200

    def test_a_search_over_its_budget_is_cancelled_with_503_and_a_reason(self, app_url, admin):
        seed_long_tasks(admin, "mallory", 3000)
        settings = make_settings(app_url, db_search_timeout_ms=50, rate_limit_per_minute=0)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            started = time.monotonic()
            searched = client.get("/api/mallory/tasks", params={"q": WORST_QUERY}, headers=bearer(token_for("mallory")))
            elapsed = time.monotonic() - started
            listed = client.get("/api/mallory/tasks", params={"limit": 5}, headers=bearer(token_for("mallory")))

        assert searched.status_code == 503, searched.text
        assert "took longer than 50 ms" in searched.json()["detail"]
        assert searched.headers["retry-after"] == "1"
        assert elapsed < 4, "cancelled by its own budget, not by the statement timeout (5 s)"
        assert listed.status_code == 200 and len(listed.json()) == 5, "only searches have the tighter budget"

    def test_a_tag_filter_over_the_search_budget_is_cancelled_too(self, app_url, admin):
        # Every task carries 19 of 20 tags and none all 20: asking for all 20 joins them all.
        admin.execute(
            "insert into tasks (user_id, title, tags) select 'mallory', 't',"
            " array(select 'tag' || k from generate_series(1, 20) k where k <> 1 + g % 20)"
            " from generate_series(1, 2000) g"
        )
        admin.execute("analyze task_tags")
        every_tag = {"tag": [f"tag{k}" for k in range(1, 21)]}
        settings = make_settings(app_url, db_search_timeout_ms=1, rate_limit_per_minute=0)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            searched = client.get("/api/mallory/tasks", params=every_tag, headers=bearer(token_for("mallory")))
            listed = client.get("/api/mallory/tasks", params={"limit": 5}, headers=bearer(token_for("mallory")))

        assert searched.status_code == 503, searched.text
        assert "took longer than 1 ms" in searched.json()["detail"]
        assert listed.status_code == 200 and len(listed.json()) == 5


def wait_for_lock_waiter(admin: psycopg.Connection, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not admin.execute(
        "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()"
    ).fetchone()[0]:
        assert time.monotonic() < deadline, "no request ever waited for the lock"
        time.sleep(0.02)
