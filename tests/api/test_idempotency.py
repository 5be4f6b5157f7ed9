"""Idempotency-Key on POST /api/{user}/tasks: one task per key and body, per user.

The first request with a key creates the task; a retry with the same key and body gets the
first answer again (`Idempotent-Replayed: true`), whatever happened to the task since; the
same key with another body is a 422. Keys live in `idempotency_keys` under forced RLS and
expire. Every claim is checked in the database, past every policy, and the races run
against a real server process.
"""

import string
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import errors
from psycopg.rows import dict_row
from pydantic import ValidationError

from api.config import Settings
from api.main import create_app
from api.tasks.models import TaskCreate
from api.tasks.service import task_create_request
from tests.api.live import Call, at_once
from tests.api.support import assert_invalid, assert_problem, assert_task_shape, db_row, parse_time, table
from tests.support.app import make_settings, task_url, tasks_url
from tests.support.database import begin_as
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB

KEY = "5f0c8f1e-3b7a-4d2c-9a51-2f8e6c1d0b47"
BODY = {"title": "Buy milk", "description": "2 litres", "completed": False}
DEFAULT_TTL = timedelta(hours=24)


def post(client, owner: str, body: dict[str, Any] | None = None, key: str | bytes | None = KEY, **kwargs: Any):
    headers = {**bearer(token_for(owner)), **({"Idempotency-Key": key} if key is not None else {})}
    if "content" not in kwargs:
        kwargs["json"] = BODY if body is None else body
    return client.post(tasks_url(owner), headers=headers, **kwargs)


def keys(admin: psycopg.Connection) -> list[dict[str, Any]]:
    """Every row of idempotency_keys, past RLS."""
    with admin.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from idempotency_keys order by user_id, key").fetchall()


def assert_created(response, *, replayed: bool) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    task = response.json()
    assert_task_shape(task)
    assert response.headers["location"] == task_url(task["user_id"], task["id"])
    assert response.headers["etag"] == f'"{task["version"]}"'
    if replayed:
        assert response.headers["idempotent-replayed"] == "true"
    else:
        assert "idempotent-replayed" not in response.headers
    return task


def expire(admin: psycopg.Connection, user_id: str, key: str) -> None:
    updated = admin.execute(
        "update idempotency_keys set expires_at = now() - interval '1 second' where user_id = %s and key = %s",
        (user_id, key),
    )
    assert updated.rowcount == 1


def insert_key(admin: psycopg.Connection, user_id: str, key: str, *, expired: bool) -> None:
    admin.execute(
        "insert into idempotency_keys (user_id, key, request_hash, response_status, response_body, expires_at)"
        " values (%s, %s, 'h', 201, '{}', now() + %s)",
        (user_id, key, timedelta(hours=-1) if expired else timedelta(hours=1)),
    )


# --- the first request and its retries ------------------------------------------------------


class TestReplay:
    def test_the_first_request_creates_the_task_and_remembers_its_answer(self, client, admin):
        response = post(client, ALICE)

        task = assert_created(response, replayed=False)
        assert (task["user_id"], task["title"], task["description"], task["version"]) == (
            ALICE,
            "Buy milk",
            "2 litres",
            1,
        )
        assert [row["id"] for row in table(admin)] == [task["id"]]
        [stored] = keys(admin)
        assert (stored["user_id"], stored["key"], stored["response_status"]) == (ALICE, KEY, 201)
        assert stored["response_body"]["id"] == task["id"]
        assert stored["response_body"]["title"] == "Buy milk"
        assert parse_time(stored["response_body"]["created_at"]) == parse_time(task["created_at"])
        assert len(stored["request_hash"]) == 64 and set(stored["request_hash"]) <= set(string.hexdigits)
        assert stored["expires_at"] - stored["created_at"] == DEFAULT_TTL

    def test_a_retry_replays_the_first_answer_and_creates_nothing(self, client, admin):
        first = post(client, ALICE)
        stored = keys(admin)

        retries = [post(client, ALICE) for _ in range(3)]

        original = assert_created(first, replayed=False)
        for retry in retries:
            assert assert_created(retry, replayed=True) == original
            assert retry.headers["location"] == first.headers["location"]
            assert retry.headers["etag"] == first.headers["etag"] == '"1"'
        assert [row["id"] for row in table(admin)] == [original["id"]]
        assert keys(admin) == stored

    def test_the_replay_is_the_original_answer_even_after_the_task_changed_or_was_deleted(self, client, admin):
        original = assert_created(post(client, ALICE), replayed=False)
        url = task_url(ALICE, original["id"])
        assert client.put(url, json={"title": "renamed"}, headers=bearer(token_for(ALICE))).status_code == 200
        assert client.patch(f"{url}/complete", headers=bearer(token_for(ALICE))).status_code == 200
        assert db_row(admin, original["id"])["version"] == 3

        after_edits = post(client, ALICE)

        assert assert_created(after_edits, replayed=True) == original  # title, version 1, created_at, all
        assert after_edits.headers["etag"] == '"1"'

        assert client.delete(url, headers=bearer(token_for(ALICE))).status_code == 204
        after_delete = post(client, ALICE)

        assert assert_created(after_delete, replayed=True) == original
        assert table(admin) == []  # nothing was resurrected or created again

    def test_the_same_json_written_differently_is_the_same_request(self, client, admin):
        original = assert_created(post(client, ALICE), replayed=False)
        reordered = b'{ "completed" : false,\n "description": "2 litres", "title": "Buy milk" }'

        response = client.post(
            tasks_url(ALICE),
            content=reordered,
            headers={**bearer(token_for(ALICE)), "Idempotency-Key": KEY, "Content-Type": "application/json"},
        )

        assert assert_created(response, replayed=True) == original
        assert len(table(admin)) == 1

    def test_the_replay_is_byte_for_byte_the_same_in_any_database_time_zone(self, app_url, admin):
        # The first answer comes from the row, the replay from its stored JSON copy: timestamps
        # must not come back in another zone, precision or format.
        admin.execute(f"alter database {admin.info.dbname} set timezone = 'Asia/Kolkata'")
        with TestClient(create_app(make_settings(app_url))) as fresh:
            first = post(fresh, ALICE)
            replay = post(fresh, ALICE)

        assert assert_created(replay, replayed=True) == assert_created(first, replayed=False)
        assert replay.content == first.content
        assert first.json()["created_at"].endswith("Z")

    @pytest.mark.parametrize(
        "other_body",
        [
            {**BODY, "title": "Buy oat milk"},
            {**BODY, "description": "3 litres"},
            {**BODY, "description": None},
            {**BODY, "completed": True},
        ],
        ids=["title", "description", "no-description", "completed"],
    )
    def test_the_same_key_with_another_body_is_422_and_changes_nothing(self, client, admin, other_body):
        original = assert_created(post(client, ALICE), replayed=False)
        stored = keys(admin)

        response = post(client, ALICE, other_body)

        body = assert_problem(response, 422)
        assert "Idempotency-Key" in body["detail"]
        assert "idempotent-replayed" not in response.headers
        assert [row["id"] for row in table(admin)] == [original["id"]]
        assert keys(admin) == stored
        assert assert_created(post(client, ALICE), replayed=True) == original  # the key still replays

    def test_without_a_key_every_post_creates_a_task_and_no_key_is_stored(self, client, admin):
        first = assert_created(post(client, ALICE, key=None), replayed=False)
        second = assert_created(post(client, ALICE, key=None), replayed=False)

        assert first["id"] != second["id"]
        assert len(table(admin)) == 2
        assert keys(admin) == []

    def test_different_keys_create_different_tasks_and_keys_are_case_sensitive(self, client, admin):
        ids = {assert_created(post(client, ALICE, key=key), replayed=False)["id"] for key in ("k", "K", "k2")}

        assert len(ids) == 3
        assert len(table(admin)) == 3
        assert [row["key"] for row in keys(admin)] == ["K", "k", "k2"]


# --- keys are per user -----------------------------------------------------------------------


class TestPerUser:
    def test_another_user_with_the_same_key_creates_their_own_task(self, client, admin):
        alices = assert_created(post(client, ALICE), replayed=False)

        bobs = assert_created(post(client, BOB), replayed=False)

        assert bobs["id"] != alices["id"]
        assert bobs["user_id"] == BOB
        assert {(row["user_id"], row["title"]) for row in table(admin)} == {(ALICE, "Buy milk"), (BOB, "Buy milk")}
        assert [(row["user_id"], row["key"]) for row in keys(admin)] == [(ALICE, KEY), (BOB, KEY)]
        # Each replays their own answer.
        assert assert_created(post(client, ALICE), replayed=True) == alices
        assert assert_created(post(client, BOB), replayed=True) == bobs

    def test_another_users_key_with_another_body_is_not_a_conflict(self, client, admin):
        assert_created(post(client, ALICE), replayed=False)

        bobs = assert_created(post(client, BOB, {"title": "bob's own"}), replayed=False)

        assert bobs["title"] == "bob's own"
        assert len(table(admin)) == 2

    def test_a_request_refused_before_the_database_stores_no_key(self, client, admin):
        forbidden = client.post(
            tasks_url(ALICE), json=BODY, headers={**bearer(token_for(BOB)), "Idempotency-Key": KEY}
        )  # bob on alice's path
        anonymous = client.post(tasks_url(ALICE), json=BODY, headers={"Idempotency-Key": KEY})

        assert_problem(forbidden, 403)
        assert_problem(anonymous, 401)
        assert table(admin) == []
        assert keys(admin) == []


# --- what a key may be -----------------------------------------------------------------------


class TestKeyFormat:
    def test_invalid_keys_are_422_and_nothing_is_stored(self, client, admin):
        invalid: list[str | bytes] = ["", "a b", "x" * 256, "tab\there", "é".encode("latin-1"), "ключ".encode()]
        for key in invalid:
            response = post(client, ALICE, key=key)

            assert_invalid(response, "Idempotency-Key", case=key)
        assert table(admin) == []
        assert keys(admin) == []

    def test_one_to_255_visible_ascii_characters_are_valid_keys(self, client, admin):
        visible = "".join(chr(code) for code in range(0x21, 0x7F))
        valid = ["x", "x" * 255, visible, visible[::-1]]
        for key in valid:
            assert_created(post(client, ALICE, key=key), replayed=False)
            assert_created(post(client, ALICE, key=key), replayed=True)

        assert len(table(admin)) == len(valid)
        assert sorted(row["key"] for row in keys(admin)) == sorted(valid)

    def test_an_invalid_body_does_not_use_up_the_key(self, client, admin):
        assert_invalid(post(client, ALICE, {"title": ""}), "title")
        assert_invalid(post(client, ALICE, {"title": "x", "user_id": BOB}), "user_id")
        assert keys(admin) == []

        assert_created(post(client, ALICE), replayed=False)
        assert len(table(admin)) == 1


# --- expiry ----------------------------------------------------------------------------------


class TestExpiry:
    def test_the_ttl_comes_from_the_settings(self, app_url, admin):
        with TestClient(create_app(make_settings(app_url, idempotency_key_ttl_seconds=120))) as short_lived:
            assert_created(post(short_lived, ALICE), replayed=False)

        [stored] = keys(admin)
        assert stored["expires_at"] - stored["created_at"] == timedelta(seconds=120)

    def test_the_ttl_setting_has_a_floor_and_is_read_from_the_environment(self, monkeypatch):
        with pytest.raises(ValidationError, match="idempotency_key_ttl_seconds"):
            make_settings("postgresql://x@/y", idempotency_key_ttl_seconds=59)
        assert make_settings("postgresql://x@/y", idempotency_key_ttl_seconds=60).idempotency_key_ttl_seconds == 60
        assert make_settings("postgresql://x@/y").idempotency_key_ttl_seconds == 24 * 3600

        monkeypatch.setenv("IDEMPOTENCY_KEY_TTL_SECONDS", "3600")
        assert Settings().idempotency_key_ttl_seconds == 3600
        monkeypatch.setenv("IDEMPOTENCY_KEY_TTL_SECONDS", "10")
        with pytest.raises(ValidationError):
            Settings()

    def test_after_expiry_the_same_key_creates_a_new_task(self, client, admin):
        first = assert_created(post(client, ALICE), replayed=False)
        expire(admin, ALICE, KEY)

        second = assert_created(post(client, ALICE), replayed=False)

        assert second["id"] != first["id"]
        assert [row["id"] for row in table(admin)] == [first["id"], second["id"]]
        [stored] = keys(admin)
        assert stored["response_body"]["id"] == second["id"]
        assert stored["expires_at"] - stored["created_at"] == DEFAULT_TTL
        assert stored["expires_at"] > admin.execute("select now()").fetchone()[0]
        # ... and the key now replays the new task.
        assert assert_created(post(client, ALICE), replayed=True) == second

    def test_after_expiry_the_same_key_may_carry_another_body(self, client, admin):
        assert_created(post(client, ALICE), replayed=False)
        expire(admin, ALICE, KEY)

        other = assert_created(post(client, ALICE, {"title": "something else"}), replayed=False)

        assert other["title"] == "something else"
        assert len(table(admin)) == 2

    def test_a_keyed_post_purges_the_callers_expired_keys_and_nobody_elses(self, client, admin):
        insert_key(admin, ALICE, "old-1", expired=True)
        insert_key(admin, ALICE, "old-2", expired=True)
        insert_key(admin, ALICE, "still-valid", expired=False)
        insert_key(admin, BOB, "bobs-old", expired=True)

        assert_created(post(client, ALICE, key="new"), replayed=False)

        assert [(row["user_id"], row["key"]) for row in keys(admin)] == [
            (ALICE, "new"),
            (ALICE, "still-valid"),
            (BOB, "bobs-old"),
        ]


# --- a duplicate of a request still in flight ------------------------------------------------


@pytest.fixture
def holder(app_url: str) -> Iterator[psycopg.Connection]:
    """A transaction as the API opens one for alice, left open: it holds whatever it writes."""
    with psycopg.connect(app_url) as conn:
        begin_as(conn, ALICE)
        yield conn


def claim_in_flight(holder: psycopg.Connection, body: dict[str, Any] = BODY, key: str = KEY) -> int:
    """Do in `holder` what the first request with this key does, without committing: claim
    the key, create the task and record the answer. Returns the task's id."""
    request_hash = task_create_request(key, TaskCreate(**body), 60).request_hash
    [task_id] = holder.execute(
        "insert into tasks (title, description, completed) values (%(title)s, %(description)s, %(completed)s)"
        " returning id",
        body,
    ).fetchone()
    holder.execute(
        "insert into idempotency_keys (key, request_hash, response_status, response_body, expires_at)"
        " select %s, %s, 201, to_jsonb(t), now() + interval '1 minute' from tasks t where id = %s",
        (key, request_hash, task_id),
    )
    return task_id


class TestInFlight:
    def test_a_duplicate_waits_for_the_first_request_and_replays_its_answer(self, client, admin, holder):
        task_id = claim_in_flight(holder)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post, client, ALICE)
            time.sleep(0.5)
            assert not pending.done(), pending.result().text  # it waits on the key
            holder.commit()
            response = pending.result(timeout=10)

        task = assert_created(response, replayed=True)
        assert task["id"] == task_id
        assert [row["id"] for row in table(admin)] == [task_id]

    def test_a_duplicate_of_a_first_request_that_failed_does_the_work_itself(self, client, admin, holder):
        claim_in_flight(holder)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post, client, ALICE)
            time.sleep(0.5)
            assert not pending.done(), pending.result().text
            holder.rollback()
            response = pending.result(timeout=10)

        task = assert_created(response, replayed=False)
        assert [row["id"] for row in table(admin)] == [task["id"]]
        assert [row["response_body"]["id"] for row in keys(admin)] == [task["id"]]

    def test_a_duplicate_waiting_past_the_lock_timeout_gets_409_and_creates_nothing(self, app_url, admin, holder):
        claim_in_flight(holder)
        settings = make_settings(app_url, db_lock_timeout_ms=200)
        with TestClient(create_app(settings), raise_server_exceptions=False) as impatient:
            started = time.monotonic()
            response = post(impatient, ALICE)
            waited = time.monotonic() - started
            holder.rollback()  # the first request failed after all

            body = assert_problem(response, 409)
            assert "Idempotency-Key" in body["detail"]
            assert int(response.headers["retry-after"]) >= 1
            assert "idempotent-replayed" not in response.headers
            assert 0.2 <= waited < 3, waited
            assert table(admin) == []
            assert keys(admin) == []

            # The retry the 409 asks for now goes through, once.
            task = assert_created(post(impatient, ALICE), replayed=False)
            assert [row["id"] for row in table(admin)] == [task["id"]]

    def test_another_users_in_flight_key_does_not_make_anyone_wait(self, app_url, admin, holder):
        claim_in_flight(holder)  # alice's, uncommitted
        settings = make_settings(app_url, db_lock_timeout_ms=200)
        with TestClient(create_app(settings), raise_server_exceptions=False) as impatient:
            response = post(impatient, BOB)

        assert_created(response, replayed=False)
        assert [row["user_id"] for row in table(admin)] == [BOB]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


PAUSE_LOCK = 727  # the advisory lock the pausing trigger waits on


class TestVanishedKey:
    def test_a_key_purged_between_claim_and_read_is_a_409_to_retry_not_a_500(self, client, admin, admin_url):
        """The replay finds the key taken (its claim does nothing), then, before it reads the stored
        answer, another request of the user purges the key as expired. The read finds nothing."""
        first = assert_created(post(client, ALICE), replayed=False)
        # Pause the replay between its claim and its read: a statement-level trigger on tasks
        # fires for the conditional insert (which inserts nothing on a replay) and waits.
        admin.execute(
            "create function pause() returns trigger language plpgsql as $$ begin"
            f" perform pg_advisory_lock({PAUSE_LOCK}); perform pg_advisory_unlock({PAUSE_LOCK}); return null;"
            " end $$"
        )
        admin.execute("create trigger pause after insert on tasks for each statement execute function pause()")
        with psycopg.connect(admin_url, autocommit=True) as gate, ThreadPoolExecutor(1) as pool:
            gate.execute("select pg_advisory_lock(%s)", (PAUSE_LOCK,))
            pending = pool.submit(post, client, ALICE)
            wait_until(
                lambda: (
                    admin.execute(
                        "select count(*) from pg_locks where locktype = 'advisory' and objid = %s and not granted",
                        (PAUSE_LOCK,),
                    ).fetchone()[0]
                    == 1
                )
            )
            admin.execute("delete from idempotency_keys")  # purged by someone else, committed
            gate.execute("select pg_advisory_unlock(%s)", (PAUSE_LOCK,))
            response = pending.result(timeout=10)

        body = assert_problem(response, 409)
        assert "Idempotency-Key" in body["detail"] and response.headers["retry-after"] == "1"
        assert [row["id"] for row in table(admin)] == [first["id"]], "nothing was created"
        admin.execute("drop trigger pause on tasks")
        retried = assert_created(post(client, ALICE), replayed=False)  # the key is claimed afresh
        assert [row["response_body"]["id"] for row in keys(admin)] == [retried["id"]]


# --- isolation in SQL, as the API's role -----------------------------------------------------


@pytest.fixture
def two_users_keys(admin: psycopg.Connection) -> None:
    for user_id in (ALICE, BOB):
        for key in (f"{user_id}-key", "shared-key"):
            insert_key(admin, user_id, key, expired=False)


@pytest.mark.usefixtures("two_users_keys")
class TestIsolationInSql:
    def test_a_user_sees_only_their_own_keys(self, app_conn):
        rows = begin_as(app_conn, ALICE).execute("select user_id, key from idempotency_keys order by key").fetchall()

        assert rows == [(ALICE, "alice-key"), (ALICE, "shared-key")]

    def test_nobody_sees_any_key(self, app_conn):
        assert begin_as(app_conn, "").execute("select count(*) from idempotency_keys").fetchone() == (0,)

    def test_a_user_cannot_change_or_delete_another_users_keys(self, app_conn, admin):
        before = keys(admin)
        cursor = begin_as(app_conn, ALICE)

        cursor.execute("update idempotency_keys set response_body = '{\"id\": 1}' where user_id = %s", (BOB,))
        assert cursor.rowcount == 0
        cursor.execute("delete from idempotency_keys where user_id = %s", (BOB,))
        assert cursor.rowcount == 0
        cursor.execute("delete from idempotency_keys where key = 'shared-key'")
        assert cursor.rowcount == 1  # her own only
        app_conn.commit()

        assert keys(admin) == [row for row in before if (row["user_id"], row["key"]) != (ALICE, "shared-key")]

    def test_a_user_cannot_write_a_key_for_another_user(self, app_conn, admin):
        before = keys(admin)
        statements = [
            "insert into idempotency_keys (user_id, key, request_hash, expires_at)"
            " values ('bob', 'planted', 'h', now())",
            "update idempotency_keys set user_id = 'bob', key = 'moved' where key = 'alice-key'",
        ]
        for statement in statements:
            with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
                begin_as(app_conn, ALICE).execute(statement)
            app_conn.rollback()

        assert keys(admin) == before

    def test_a_users_new_key_is_recorded_under_their_own_name(self, app_conn, admin):
        begin_as(app_conn, BOB).execute(
            "insert into idempotency_keys (key, request_hash, expires_at) values ('fresh', 'h', now())"
        )
        app_conn.commit()

        assert ("bob", "fresh") in {(row["user_id"], row["key"]) for row in keys(admin)}

    def test_the_api_role_cannot_switch_isolation_off(self, app_conn):
        for statement in (
            "alter table idempotency_keys disable row level security",
            "alter table idempotency_keys no force row level security",
            "drop policy idempotency_keys_select_own on idempotency_keys",
            "truncate idempotency_keys",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                begin_as(app_conn, ALICE).execute(statement)
            app_conn.rollback()


# --- races, against a real server process -----------------------------------------------------


def keyed_post(user: str, key: str, body: dict[str, Any]) -> Call:
    return Call("POST", tasks_url(user), body, {"Idempotency-Key": key})


def test_concurrent_duplicates_create_exactly_one_task(server, server_admin):
    user, requests, rounds = "racer", 12, 20
    for round_number in range(rounds):
        key = f"round-{round_number}"
        body = {"title": f"once, round {round_number}"}

        responses = at_once(server, user, [keyed_post(user, key, body)] * requests)

        statuses = [response.status_code for response in responses]
        assert set(statuses) <= {201, 409}, [(r.status_code, r.text) for r in responses]
        created = [response for response in responses if response.status_code == 201]
        assert len({response.json()["id"] for response in created}) == 1
        originals = [response for response in created if "idempotent-replayed" not in response.headers]
        replays = [response for response in created if response.headers.get("idempotent-replayed") == "true"]
        assert len(originals) == 1, statuses
        assert len(replays) >= 1
        assert len(originals) + len(replays) == len(created)
        assert all(response.json() == originals[0].json() for response in created)
        assert all("retry-after" in response.headers for response in responses if response.status_code == 409)
        rows = server_admin.execute("select id from tasks where user_id = %s and title = %s", (user, body["title"]))
        assert [row[0] for row in rows] == [originals[0].json()["id"]]
    assert server_admin.execute("select count(*) from tasks where user_id = %s", (user,)).fetchone() == (rounds,)
    stored = server_admin.execute("select count(*) from idempotency_keys where user_id = %s", (user,)).fetchone()
    assert stored == (rounds,)


def test_concurrent_posts_with_distinct_keys_all_create_and_purge_expired_keys(server, server_admin):
    user, requests = "purger", 12
    for number in range(30):
        insert_key(server_admin, user, f"expired-{number}", expired=True)
    insert_key(server_admin, "bystander", "expired", expired=True)

    responses = at_once(server, user, [keyed_post(user, f"key-{n}", {"title": f"task {n}"}) for n in range(requests)])

    assert [response.status_code for response in responses] == [201] * requests, [r.text for r in responses]
    assert all("idempotent-replayed" not in response.headers for response in responses)
    assert server_admin.execute("select count(*) from tasks where user_id = %s", (user,)).fetchone() == (requests,)
    stored = server_admin.execute("select key from idempotency_keys where user_id = %s order by key", (user,))
    assert [row[0] for row in stored] == sorted(f"key-{n}" for n in range(requests))
    assert server_admin.execute("select count(*) from idempotency_keys where user_id = 'bystander'").fetchone() == (1,)
