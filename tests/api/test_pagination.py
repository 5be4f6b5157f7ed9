"""Keyset pagination: `limit`, the opaque `cursor`, and `Link: <...>; rel="next"`."""

import base64
import json
import struct
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from api.tasks.models import TaskSort
from api.tasks.pagination import Cursor
from tests.api.support import assert_invalid, insert_tasks, next_link, parse_time, walk
from tests.support.app import tasks_url
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB

SORTS = ["created", "-created", "updated", "-updated", "title", "-title"]
KEY = {"created": "created_at", "updated": "updated_at", "title": "title"}
BASE = datetime.fromisoformat("2026-01-01T00:00:00+00:00")


def get(client, **params):
    return client.get(tasks_url(ALICE), params=params, headers=bearer(token_for(ALICE)))


def encode_cursor(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def seed(admin, count: int, owner: str = ALICE, **columns) -> list[int]:
    return insert_tasks(admin, [{"user_id": owner, "title": f"t{n:03d}", **columns} for n in range(count)])


def sort_key(task: dict, sort: str):
    value = task[KEY[sort.lstrip("-")]]
    return value if sort.endswith("title") else parse_time(value)


def assert_walk_visits_each_once_in_order(pages, sort: str, limit: int, expected_ids) -> None:
    tasks = [task for page in pages for task in page]
    ids = [task["id"] for task in tasks]
    assert len(ids) == len(set(ids)), "a task was listed twice"
    assert sorted(ids) == sorted(expected_ids), "a task was skipped (or a stranger's one listed)"
    assert all(len(page) == limit for page in pages[:-1]), "only the last page may be short"
    assert pages[-1] or len(pages) == 1, "no empty trailing page"
    keys = [sort_key(task, sort) for task in tasks]
    assert keys == sorted(keys, reverse=sort.startswith("-")), f"not in {sort} order"


class TestLimit:
    def test_the_default_page_is_50_tasks(self, client, admin):
        seed(admin, 51)

        first = get(client)

        assert len(first.json()) == 50
        second = client.get(next_link(first), headers=bearer(token_for(ALICE)))
        assert len(second.json()) == 1
        assert next_link(second) is None

    def test_limit_sets_the_page_size_from_1_to_100(self, client, admin):
        seed(admin, 101)

        for limit in (1, 7, 100):
            response = get(client, limit=limit)
            assert response.status_code == 200, limit
            assert len(response.json()) == limit
            assert next_link(response) is not None

    def test_a_limit_outside_1_to_100_is_422_naming_limit(self, client):
        for limit in ("0", "101", "-1", "abc", "1.5", "", "1e1", "99999999999999999999"):
            assert_invalid(get(client, limit=limit), "limit", case=limit)


class TestLinkHeader:
    def test_a_page_with_more_after_it_links_to_the_next_by_a_relative_url(self, client, admin):
        seed(admin, 3)

        response = get(client, limit=2, sort="title", status="pending", q="t0")

        url = next_link(response)
        assert url is not None
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("", "", "/api/alice/tasks")
        query = parse_qs(parts.query)
        assert query["limit"] == ["2"]
        assert query["sort"] == ["title"]
        assert query["status"] == ["pending"]
        assert query["q"] == ["t0"]
        assert len(query["cursor"]) == 1 and query["cursor"][0]

    def test_the_link_never_names_the_host_the_request_claimed(self, client, admin):
        seed(admin, 3)

        response = client.get(
            tasks_url(ALICE), params={"limit": 1}, headers={**bearer(token_for(ALICE)), "Host": "evil.example"}
        )

        assert response.status_code == 200
        assert "evil" not in response.headers["link"]
        assert next_link(response).startswith("/api/alice/tasks?")

    def test_a_user_id_that_needs_escaping_is_escaped_in_the_link(self, client, admin):
        owner = "ann 100% <x>"
        insert_tasks(admin, [{"user_id": owner, "title": f"t{n}"} for n in range(2)])

        response = client.get(f"/api/{quote(owner)}/tasks", params={"limit": 1}, headers=bearer(token_for(owner)))

        assert response.status_code == 200, response.text
        assert next_link(response).startswith("/api/ann%20100%25%20%3Cx%3E/tasks?")
        assert len(client.get(next_link(response), headers=bearer(token_for(owner))).json()) == 1

    def test_the_last_page_has_no_link(self, client, admin):
        seed(admin, 4)

        assert next_link(get(client, limit=5)) is None
        assert "link" not in get(client, limit=5).headers

    def test_a_page_that_exactly_exhausts_the_tasks_has_no_link(self, client, admin):
        seed(admin, 4)

        response = get(client, limit=4)

        assert len(response.json()) == 4
        assert "link" not in response.headers

    def test_an_empty_list_has_no_link(self, client):
        response = get(client, limit=1)

        assert response.json() == []
        assert "link" not in response.headers


class TestWalkingTheLinks:
    @pytest.mark.parametrize("sort", SORTS)
    def test_every_task_is_visited_exactly_once_with_distinct_keys(self, client, admin, sort):
        rows = [
            {
                "user_id": ALICE,
                "title": f"title {(n * 7) % 11:02d}",
                "created_at": BASE + timedelta(minutes=(n * 5) % 11),
                "updated_at": BASE + timedelta(hours=(n * 3) % 11),
            }
            for n in range(11)
        ]
        ids = insert_tasks(admin, rows)
        insert_tasks(admin, [{**row, "user_id": BOB} for row in rows])

        pages = walk(client, ALICE, sort=sort, limit=3)

        assert len(pages) == 4
        assert_walk_visits_each_once_in_order(pages, sort, 3, ids)

    @pytest.mark.parametrize("sort", SORTS)
    def test_every_task_is_visited_exactly_once_when_groups_share_a_key(self, client, admin, sort):
        # Groups of four equal titles and of four equal timestamps, not aligned with each
        # other nor with the pages of three, so page boundaries fall inside groups of ties.
        rows = [
            {
                "user_id": ALICE,
                "title": ["pear", "apple", "fig"][n % 3],
                "created_at": BASE + timedelta(minutes=n // 4),
                "updated_at": BASE + timedelta(hours=[2, 0, 1][(n // 4 + n) % 3]),
            }
            for n in range(14)
        ]
        ids = insert_tasks(admin, rows)
        insert_tasks(admin, [{**row, "user_id": BOB} for row in rows[:5]])

        pages = walk(client, ALICE, sort=sort, limit=3)

        assert_walk_visits_each_once_in_order(pages, sort, 3, ids)

    @pytest.mark.parametrize("sort", SORTS)
    def test_every_task_is_visited_exactly_once_when_all_keys_are_equal(self, client, admin, sort):
        ids = seed(admin, 25)
        admin.execute("update tasks set title = 'same', created_at = '2026-01-01Z', updated_at = '2026-01-01Z'")

        pages = walk(client, ALICE, sort=sort, limit=4)

        assert len(pages) == 7
        assert_walk_visits_each_once_in_order(pages, sort, 4, ids)

    def test_one_task_per_page_still_visits_every_tied_task(self, client, admin):
        ids = seed(admin, 6)
        admin.execute("update tasks set created_at = '2026-01-01Z', updated_at = '2026-01-01Z'")

        pages = walk(client, ALICE, limit=1)

        assert_walk_visits_each_once_in_order(pages, "-created", 1, ids)
        assert len(pages) == 6

    def test_status_and_q_are_kept_across_pages_for_every_sort(self, client, admin):
        rows = [
            {
                "user_id": ALICE,
                "title": ["milk run", "bread", "milkshake", "tea"][n % 4],
                "description": "with Milk" if n % 5 == 0 else None,
                "completed": n % 3 == 0,
                "created_at": BASE + timedelta(minutes=n % 4),
                "updated_at": BASE + timedelta(minutes=n % 2),
            }
            for n in range(30)
        ]
        ids = insert_tasks(admin, rows)
        insert_tasks(admin, [{**row, "user_id": BOB} for row in rows])
        expected = [
            task_id
            for task_id, row in zip(ids, rows, strict=True)
            if not row["completed"] and ("milk" in row["title"].lower() or row["description"])
        ]
        assert len(expected) > 6

        for sort in SORTS:
            pages = walk(client, ALICE, sort=sort, limit=2, status="pending", q="MiLk")

            assert_walk_visits_each_once_in_order(pages, sort, 2, expected)
            assert all(not task["completed"] for page in pages for task in page)


class TestCursor:
    @pytest.mark.parametrize("sort", ["created", "-updated", "due"])
    def test_a_cursor_after_a_timestamp_read_as_text_or_as_a_datetime_is_the_same(self, sort):
        """The API reads timestamps as PostgreSQL's text; bench.scale reads them as datetimes."""
        column = TaskSort(sort).column
        as_text = Cursor.after({column: "2026-11-29 07:59:09.8314+01", "id": 7}, TaskSort(sort))
        moment = datetime(2026, 11, 29, 6, 59, 9, 831400, tzinfo=UTC)
        assert as_text == Cursor.after({column: moment, "id": 7}, TaskSort(sort))
        assert Cursor.decode(as_text.encode()) == as_text

    def test_a_cursor_from_a_link_works_when_sent_by_itself(self, client, admin):
        seed(admin, 3)
        first = get(client, limit=2, sort="title")
        cursor = parse_qs(urlsplit(next_link(first)).query)["cursor"][0]

        second = get(client, limit=2, sort="title", cursor=cursor)

        assert second.status_code == 200
        assert [t["title"] for t in first.json() + second.json()] == ["t000", "t001", "t002"]

    @pytest.mark.parametrize(
        ("issued_for", "used_with"),
        [("title", "-created"), ("created", "-created"), ("-updated", "updated"), ("-title", "title")],
    )
    def test_a_cursor_issued_for_another_sort_is_422_naming_cursor(self, client, admin, issued_for, used_with):
        seed(admin, 3)
        cursor = parse_qs(urlsplit(next_link(get(client, limit=1, sort=issued_for))).query)["cursor"][0]

        assert_invalid(get(client, sort=used_with, cursor=cursor), "cursor")

    TAMPERED: ClassVar = {
        "garbage": "not a cursor!",
        "bad-base64-length": "a",
        "base64-of-non-json": encode_cursor(b"hello, world"),
        "base64-of-non-utf8": encode_cursor(b"\xff\xfe\xfd"),
        "json-list": encode_cursor([1, 2, 3]),
        "json-wrong-keys": encode_cursor({"after": 5, "sort": "-created"}),
        "json-missing-key": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00"}),
        "json-extra-key": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": 1, "x": 0}),
        "id-beyond-bigint": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": 2**63}),
        "id-zero": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": 0}),
        "id-negative": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": -1}),
        "id-as-string": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": "1"}),
        "id-as-float": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": 1.5}),
        "id-as-bool": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": True}),
        "key-not-a-time": encode_cursor({"s": "-created", "k": "yesterday", "i": 1}),
        "key-without-timezone": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00", "i": 1}),
        "key-a-number": encode_cursor({"s": "-created", "k": 1767225600, "i": 1}),
        "unknown-sort-inside": encode_cursor({"s": "priority", "k": "x", "i": 1}),
        "overlong": encode_cursor({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": 1, "p": "x" * 2000}),
    }

    def test_a_tampered_cursor_is_422_naming_cursor(self, client, admin):
        seed(admin, 2)

        for kind, cursor in self.TAMPERED.items():
            assert_invalid(get(client, cursor=cursor), "cursor", case=kind)

    BINARY: ClassVar = {  # the current format: format byte, sort, id (8 bytes), key
        "unknown-format": struct.pack(">BBQq", 9, 1, 1, 0),
        "unknown-sort": struct.pack(">BBQq", 1, 99, 1, 0),
        "short-header": b"\x01\x01\x00",
        "id-zero": struct.pack(">BBQq", 1, 1, 0, 0),
        "id-beyond-bigint": struct.pack(">BBQq", 1, 1, 2**63, 0),
        "time-key-too-short": struct.pack(">BBQ", 1, 1, 1) + b"\x00\x01",
        "time-key-out-of-range": struct.pack(">BBQq", 1, 1, 1, 2**62),
        "title-not-utf8": struct.pack(">BBQ", 1, 4, 1) + b"\xff\xfe",
        "title-empty": struct.pack(">BBQ", 1, 4, 1),
        "title-with-nul": struct.pack(">BBQ", 1, 4, 1) + b"a\x00b",
        "title-too-long": struct.pack(">BBQ", 1, 4, 1) + b"x" * 201,
    }

    def test_a_tampered_binary_cursor_is_422_naming_cursor(self, client):
        for kind, raw in self.BINARY.items():
            sort = "title" if kind.startswith("title") else "-created"
            assert_invalid(get(client, sort=sort, cursor=encode_cursor(raw)), "cursor", case=kind)

    @pytest.mark.parametrize(
        "title",
        ["日" * 190, "😀" * 200, "\x01" * 200, '"\\' * 100],
        ids=["cjk", "four-byte-emoji", "control-characters", "quotes-and-backslashes"],
    )
    @pytest.mark.parametrize("sort", ["title", "-title"])
    def test_the_servers_own_cursor_is_accepted_whatever_the_titles_hold(self, client, admin, title, sort):
        seed(admin, 3, title=title)

        pages = walk(client, ALICE, sort=sort, limit=1)

        assert [len(page) for page in pages] == [1, 1, 1]

    def test_tampered_title_cursors_are_422_naming_cursor(self, client):
        for key in ("", "x" * 201, "a\x00b", "\ud800", 5, None):
            cursor = encode_cursor(json.dumps({"s": "title", "k": key, "i": 1}).encode("utf-8", "surrogatepass"))
            assert_invalid(get(client, sort="title", cursor=cursor), "cursor")
