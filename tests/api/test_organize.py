"""A task's due date, priority, tags and list: writing them, filtering and sorting by them."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.support import assert_invalid, assert_problem, db_row, insert_task, insert_tasks, parse_time, table, walk
from tests.support.app import task_url, tasks_url
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB

PRIORITY_ORDER = {"none": 0, "low": 1, "medium": 2, "high": 3}
NOW = datetime.now(UTC).replace(microsecond=0)


def new_list(admin, owner: str, name: str) -> int:
    return admin.execute("insert into lists (user_id, name) values (%s, %s) returning id", (owner, name)).fetchone()[0]


def post(client, body: dict[str, Any], owner: str = ALICE):
    return client.post(tasks_url(owner), json=body, headers=bearer(token_for(owner)))


def put(client, task_id: int, body: dict[str, Any], owner: str = ALICE):
    return client.put(task_url(owner, task_id), json=body, headers=bearer(token_for(owner)))


def listed(client, owner: str = ALICE, **params: Any) -> list[int]:
    response = client.get(tasks_url(owner), params=params, headers=bearer(token_for(owner)))
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()]


class TestWriting:
    def test_post_stores_every_field_and_answers_them_normalised(self, client, admin):
        list_id = new_list(admin, ALICE, "Home")

        response = post(
            client,
            {
                "title": "Pay rent",
                "due_at": "2026-12-01T09:30:00+02:00",
                "priority": "high",
                "tags": ["  Bills ", "home", "Ünïcode"],
                "list_id": list_id,
            },
        )

        assert response.status_code == 201, response.text
        task = response.json()
        assert task["due_at"] == "2026-12-01T07:30:00Z"
        assert (task["priority"], task["tags"], task["list_id"]) == ("high", ["Bills", "home", "Ünïcode"], list_id)
        assert task["completed_at"] is None
        row = db_row(admin, task["id"])
        assert row["due_at"] == datetime(2026, 12, 1, 7, 30, tzinfo=UTC)
        assert (row["priority"], row["tags"], row["list_id"]) == (3, ["Bills", "home", "Ünïcode"], list_id)
        assert client.get(task_url(ALICE, task["id"]), headers=bearer(token_for(ALICE))).json() == task

    def test_a_task_with_only_a_title_gets_the_defaults(self, client):
        task = post(client, {"title": "plain"}).json()

        assert (task["due_at"], task["priority"], task["tags"], task["list_id"]) == (None, "none", [], None)

    def test_put_keeps_absent_fields_and_clears_those_sent_as_null(self, client, admin):
        list_id = new_list(admin, ALICE, "Home")
        body = {"title": "t", "due_at": "2026-12-01T00:00:00Z", "priority": "low", "tags": ["a"], "list_id": list_id}
        task = post(client, body).json()

        kept = put(client, task["id"], {"title": "renamed"}).json()
        cleared = put(client, task["id"], {"title": "renamed", "due_at": None, "list_id": None, "tags": []}).json()

        assert {k: kept[k] for k in ("due_at", "priority", "tags", "list_id")} == {
            "due_at": "2026-12-01T00:00:00Z",
            "priority": "low",
            "tags": ["a"],
            "list_id": list_id,
        }
        assert {k: cleared[k] for k in ("due_at", "priority", "tags", "list_id")} == {
            "due_at": None,
            "priority": "low",
            "tags": [],
            "list_id": None,
        }

    def test_completed_at_is_set_and_cleared_with_completed(self, client, admin):
        task = post(client, {"title": "t"}).json()
        headers = bearer(token_for(ALICE))
        complete = f"{task_url(ALICE, task['id'])}/complete"

        done = client.patch(complete, headers=headers).json()
        untouched = put(client, task["id"], {"title": "still done"}).json()
        undone = client.patch(complete, headers=headers).json()
        done_by_put = put(client, task["id"], {"title": "t", "completed": True}).json()
        created_done = post(client, {"title": "born done", "completed": True}).json()

        assert done["completed"] and done["completed_at"] == done["updated_at"]
        assert untouched["completed_at"] == done["completed_at"]
        assert not undone["completed"] and undone["completed_at"] is None
        assert done_by_put["completed_at"] == done_by_put["updated_at"]
        assert created_done["completed_at"] == created_done["created_at"]
        assert db_row(admin, task["id"])["completed_at"] == parse_time(done_by_put["completed_at"])


def other_users_list(admin) -> int:
    return new_list(admin, BOB, "Bob's")


BAD_FIELDS = [  # (field, value)
    ("due_at", "tomorrow"),
    ("due_at", "2026-13-01T00:00:00Z"),
    ("due_at", "2026-12-01T10:00:00"),  # no offset: which day it is depends on where you are
    ("due_at", "2026-12-01"),
    ("due_at", 1764547200),
    ("due_at", "1764547200"),  # pydantic alone reads these as Unix seconds, or leniently
    ("due_at", "2026-12-01T10:00Z"),
    ("due_at", "2026-12-01T10:00:00+0100"),
    ("due_at", "2026-12-01 10:00:00Z"),
    ("due_at", "9999-12-31T23:59:59-23:59"),  # past the end of what PostgreSQL stores
    ("priority", "urgent"),
    ("priority", "HIGH"),
    ("priority", 3),
    ("priority", None),
    ("tags", [f"t{n}" for n in range(21)]),
    ("tags", ["x" * 51]),
    ("tags", [""]),
    ("tags", ["   "]),
    ("tags", ["a\x07b"]),
    ("tags", ["Home", "home"]),
    ("tags", ["ok", " OK "]),
    ("tags", "home"),
    ("tags", [1]),
    ("tags", None),
    ("list_id", "abc"),
    ("list_id", 0),
    ("list_id", -1),
    ("list_id", 2**63),
    ("list_id", True),
]


class TestBadInput:
    @pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_FIELDS])
    def test_a_bad_value_is_422_naming_the_field_and_changes_nothing(self, client, admin, field, value):
        task = post(client, {"title": "t", "priority": "low", "tags": ["keep"]}).json()
        before = table(admin)

        assert_invalid(post(client, {"title": "new", field: value}), field)
        assert_invalid(put(client, task["id"], {"title": "new", field: value}), field)
        assert table(admin) == before

    def test_twenty_tags_of_fifty_characters_are_accepted(self, client):
        tags = [f"{n:02d}" + "x" * 48 for n in range(20)]

        assert post(client, {"title": "t", "tags": tags}).json()["tags"] == tags

    def test_another_users_list_and_a_missing_list_are_the_same_422_on_list_id(self, client, admin):
        bobs = other_users_list(admin)
        missing = bobs + 1000
        task = post(client, {"title": "t"}).json()
        before = table(admin)

        answers = [
            assert_invalid(write, "list_id")
            for write in (
                post(client, {"title": "t", "list_id": bobs}),
                post(client, {"title": "t", "list_id": missing}),
                put(client, task["id"], {"title": "t", "list_id": bobs}),
                put(client, task["id"], {"title": "t", "list_id": missing}),
            )
        ]

        # The same answer but for the id named in it.
        shapes = [re.sub(r"\d+", "N", json.dumps(answer, sort_keys=True)) for answer in answers]
        assert shapes[0] == shapes[1], shapes
        assert shapes[2] == shapes[3]
        assert table(admin) == before

    def test_bad_filters_are_422_naming_the_parameter(self, client):
        cases = [
            ("list_id", "abc"),
            ("list_id", "None"),
            ("list_id", "0"),
            ("priority", "urgent"),
            ("tag", "x" * 51),
            ("tag", ""),
            ("due_before", "tomorrow"),
            ("due_after", "2026-12-01T10:00:00"),
            ("overdue", "maybe"),
            ("sort", "due_at"),
        ]
        for name, value in cases:
            response = client.get(tasks_url(ALICE), params={name: value}, headers=bearer(token_for(ALICE)))
            assert_invalid(response, name, case=(name, value))


class TestFilters:
    @pytest.fixture
    def tasks(self, admin) -> dict[str, Any]:
        home, work = new_list(admin, ALICE, "Home"), new_list(admin, ALICE, "Work")
        rows = {
            "rent": {"list_id": home, "priority": 3, "tags": ["Bills", "home"], "due_at": NOW - timedelta(days=1)},
            "paid": {
                "list_id": home,
                "priority": 3,
                "tags": ["bills"],
                "due_at": NOW - timedelta(days=2),
                "completed": True,
            },
            "report": {"list_id": work, "priority": 2, "tags": ["work"], "due_at": NOW + timedelta(days=3)},
            "idea": {"priority": 0, "tags": ["Home", "someday"]},
            "call": {"priority": 1, "tags": [], "due_at": NOW + timedelta(hours=1)},
        }
        inserted = insert_tasks(admin, [{"user_id": ALICE, "title": t, **r} for t, r in rows.items()])
        ids = dict(zip(rows, inserted, strict=True))
        bobs_list = new_list(admin, BOB, "Home")
        insert_task(admin, BOB, "bob", list_id=bobs_list, priority=3, tags=["bills", "home"], due_at=NOW - timedelta(1))
        return {"ids": ids, "home": home, "work": work}

    def names(self, client, tasks, **params: Any) -> set[str]:
        by_id = {task_id: name for name, task_id in tasks["ids"].items()}
        return {by_id[task_id] for task_id in listed(client, **params)}

    def test_list_id_and_none(self, client, tasks):
        assert self.names(client, tasks, list_id=tasks["home"]) == {"rent", "paid"}
        assert self.names(client, tasks, list_id="none") == {"idea", "call"}

    def test_a_list_id_of_another_user_or_none_at_all_lists_nothing(self, client, admin, tasks):
        bobs = admin.execute("select id from lists where user_id = %s", (BOB,)).fetchone()[0]

        assert listed(client, list_id=bobs) == []
        assert listed(client, list_id=bobs + 1000) == []

    def test_priority_is_any_of(self, client, tasks):
        assert self.names(client, tasks, priority=["high"]) == {"rent", "paid"}
        assert self.names(client, tasks, priority=["low", "none"]) == {"call", "idea"}

    def test_tag_is_all_of_ignoring_case(self, client, tasks):
        assert self.names(client, tasks, tag=["BILLS"]) == {"rent", "paid"}
        assert self.names(client, tasks, tag=["bills", "Home"]) == {"rent"}
        assert self.names(client, tasks, tag=["home"]) == {"rent", "idea"}
        assert self.names(client, tasks, tag=["nobody"]) == set()

    def test_due_before_and_due_after(self, client, tasks):
        assert self.names(client, tasks, due_before=NOW.isoformat()) == {"rent", "paid"}
        assert self.names(client, tasks, due_after=NOW.isoformat()) == {"report", "call"}
        window = {
            "due_after": (NOW - timedelta(days=1)).isoformat(),
            "due_before": (NOW + timedelta(days=1)).isoformat(),
        }
        assert self.names(client, tasks, **window) == {"rent", "call"}

    def test_overdue_is_due_in_the_past_and_not_completed(self, client, tasks):
        assert self.names(client, tasks, overdue="true") == {"rent"}
        assert self.names(client, tasks, overdue="false") == {"paid", "report", "idea", "call"}

    def test_filters_combine_with_status_and_q(self, client, tasks):
        assert self.names(client, tasks, list_id=tasks["home"], status="pending") == {"rent"}
        assert self.names(client, tasks, tag="home", q="ide", priority="none") == {"idea"}


SORTS = ["due", "-due", "priority", "-priority"]


def assert_in_order(tasks: list[dict], sort: str) -> None:
    """Due: dated tasks in order, then the undated, by id. Priority: by priority, then id."""
    descending = sort.startswith("-")
    if sort.lstrip("-") == "due":
        dated = [t for t in tasks if t["due_at"] is not None]
        undated = [t for t in tasks if t["due_at"] is None]
        assert tasks == dated + undated, "undated tasks come last in both directions"
        keys = [(parse_time(t["due_at"]), t["id"]) for t in dated]
        assert keys == sorted(keys, reverse=descending)
        assert [t["id"] for t in undated] == sorted((t["id"] for t in undated), reverse=descending)
    else:
        keys = [(PRIORITY_ORDER[t["priority"]], t["id"]) for t in tasks]
        assert keys == sorted(keys, reverse=descending)


class TestSortsAndPages:
    @pytest.fixture
    def ids(self, admin) -> list[int]:
        # Ties in due dates and in priorities, undated tasks, all across page boundaries.
        rows = [
            {
                "user_id": ALICE,
                "title": f"t{n}",
                "due_at": None if n % 3 == 0 else NOW + timedelta(days=n % 4),
                "priority": [0, 3, 1, 3, 2][n % 5],
            }
            for n in range(17)
        ]
        insert_tasks(admin, [{**row, "user_id": BOB} for row in rows[:6]])
        return insert_tasks(admin, rows)

    @pytest.mark.parametrize("sort", SORTS)
    def test_every_task_is_visited_once_in_order(self, client, ids, sort):
        pages = walk(client, ALICE, sort=sort, limit=3)

        tasks = [task for page in pages for task in page]
        assert sorted(task["id"] for task in tasks) == sorted(ids)
        assert len(pages) == 6
        assert_in_order(tasks, sort)

    @pytest.mark.parametrize("sort", SORTS)
    def test_every_task_that_stays_put_is_visited_once_while_others_change(self, client, admin, ids, sort):
        headers = bearer(token_for(ALICE))
        response = client.get(tasks_url(ALICE), params={"sort": sort, "limit": 4}, headers=headers)
        seen: list[dict] = []
        changed: set[int] = set()
        step = 0
        while True:
            seen += response.json()
            link = response.links.get("next", {}).get("url")
            if link is None:
                break
            # Between pages: a new dated and a new undated task, a task not yet seen deleted,
            # others completed and retitled; none of which moves a task that stays put.
            step += 1
            added = insert_tasks(
                admin,
                [
                    {
                        "user_id": ALICE,
                        "title": f"new {step}",
                        "due_at": NOW + timedelta(days=step),
                        "priority": step % 4,
                    },
                    {"user_id": ALICE, "title": f"new undated {step}"},
                ],
            )
            changed |= set(added)
            unseen = sorted(set(ids) - {t["id"] for t in seen} - changed)
            if unseen:
                admin.execute("delete from tasks where id = %s", (unseen[-1],))
                changed.add(unseen[-1])
            admin.execute(
                "update tasks set completed = not completed, title = title || '!', version = version + 1,"
                " completed_at = case when completed then null else now() end where user_id = %s and id %% 2 = 0",
                (ALICE,),
            )
            response = client.get(link, headers=headers)
            assert response.status_code == 200, response.text

        seen_ids = [task["id"] for task in seen]
        assert len(seen_ids) == len(set(seen_ids)), "a task was listed twice"
        assert set(ids) - changed <= set(seen_ids), "a task that stayed put was skipped"
        assert_in_order(seen, sort)

    def test_an_undated_walk_continues_past_the_last_dated_task(self, client, admin):
        ids = insert_tasks(admin, [{"user_id": ALICE, "title": f"u{n}"} for n in range(5)])
        dated = insert_task(admin, ALICE, "dated", due_at=NOW)

        for sort in ("due", "-due"):
            pages = walk(client, ALICE, sort=sort, limit=1)
            order = [page[0]["id"] for page in pages if page]
            assert order == [dated, *sorted(ids, reverse=sort == "-due")], sort

    def test_a_cursor_from_another_sort_is_422_naming_cursor(self, client, ids):
        headers = bearer(token_for(ALICE))
        for issued, used in (("due", "priority"), ("priority", "-priority"), ("-due", "created")):
            link = client.get(tasks_url(ALICE), params={"sort": issued, "limit": 2}, headers=headers).links["next"]
            cursor = link["url"].split("cursor=")[1].split("&")[0]
            response = client.get(tasks_url(ALICE), params={"sort": used, "cursor": cursor}, headers=headers)
            assert_invalid(response, "cursor", case=(issued, used))


class TestKeyedCreates:
    def test_a_replay_carries_every_field_and_another_priority_is_another_request(self, client, admin):
        list_id = new_list(admin, ALICE, "Home")
        body = {
            "title": "t",
            "list_id": list_id,
            "due_at": "2026-12-01T10:00:00+01:00",
            "priority": "low",
            "tags": ["A"],
        }
        headers = bearer(token_for(ALICE)) | {"Idempotency-Key": "k"}

        first = client.post(tasks_url(ALICE), json=body, headers=headers)
        again = client.post(tasks_url(ALICE), json=body, headers=headers)
        other = client.post(tasks_url(ALICE), json=body | {"priority": "high"}, headers=headers)

        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        assert_problem(other, 422)
        assert [row["priority"] for row in table(admin)] == [1]

    def test_a_key_for_another_users_list_is_not_used_up(self, client, admin):
        bobs = other_users_list(admin)
        headers = bearer(token_for(ALICE)) | {"Idempotency-Key": "k"}

        refused = client.post(tasks_url(ALICE), json={"title": "t", "list_id": bobs}, headers=headers)
        created = client.post(tasks_url(ALICE), json={"title": "t"}, headers=headers)

        assert_invalid(refused, "list_id")
        assert created.status_code == 201
        assert admin.execute("select count(*) from idempotency_keys").fetchone() == (1,)
