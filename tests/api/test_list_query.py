"""Listing: which tasks `status` and `q` select, and the order `sort` puts them in."""

from typing import ClassVar

import pytest

from tests.api.support import assert_invalid, insert_task, insert_tasks
from tests.support.app import tasks_url
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB


def listed(client, **params) -> list[int]:
    response = client.get(tasks_url(ALICE), params=params, headers=bearer(token_for(ALICE)))
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()]


class TestStatus:
    @pytest.fixture
    def tasks(self, admin) -> dict[str, list[int]]:
        pending = insert_tasks(admin, [{"user_id": ALICE, "completed": False} for _ in range(2)])
        done = insert_tasks(admin, [{"user_id": ALICE, "completed": True} for _ in range(3)])
        insert_task(admin, BOB, completed=False)
        insert_task(admin, BOB, completed=True)
        return {"pending": pending, "completed": done, "all": pending + done}

    def test_status_selects_by_completion(self, client, tasks):
        for status in ("pending", "completed", "all"):
            assert sorted(listed(client, status=status)) == sorted(tasks[status]), status

    def test_status_defaults_to_all(self, client, tasks):
        assert sorted(listed(client)) == sorted(tasks["all"])

    def test_an_unknown_status_is_422_naming_status(self, client, tasks):
        for value in ("done", "ALL", "", "true", "pending,completed"):
            assert_invalid(
                client.get(tasks_url(ALICE), params={"status": value}, headers=bearer(token_for(ALICE))), "status"
            )


class TestSort:
    # Each sort orders these four rows differently, and none of them in id order.
    ROWS: ClassVar = [
        {"title": "banana", "created_at": "2026-01-02Z", "updated_at": "2026-02-04Z"},
        {"title": "cherry", "created_at": "2026-01-04Z", "updated_at": "2026-02-01Z"},
        {"title": "date", "created_at": "2026-01-01Z", "updated_at": "2026-02-03Z"},
        {"title": "apple", "created_at": "2026-01-03Z", "updated_at": "2026-02-02Z"},
    ]
    EXPECTED: ClassVar = {  # positions in ROWS
        "created": [2, 0, 3, 1],
        "-created": [1, 3, 0, 2],
        "updated": [1, 3, 2, 0],
        "-updated": [0, 2, 3, 1],
        "title": [3, 0, 1, 2],
        "-title": [2, 1, 0, 3],
    }

    @pytest.mark.parametrize("sort", EXPECTED)
    def test_each_sort_orders_by_its_key(self, client, admin, sort):
        ids = insert_tasks(admin, [{"user_id": ALICE, **row} for row in self.ROWS])
        insert_task(admin, BOB, "aardvark", created_at="2026-01-05Z", updated_at="2026-02-05Z")

        assert listed(client, sort=sort) == [ids[i] for i in self.EXPECTED[sort]]

    def test_the_default_is_newest_first(self, client, admin):
        ids = insert_tasks(admin, [{"user_id": ALICE, **row} for row in self.ROWS])

        assert listed(client) == [ids[i] for i in self.EXPECTED["-created"]]

    def test_an_unknown_sort_is_422_naming_sort(self, client):
        for value in ("due_at", "-priorities", "high", "created_at", "+created", "Title", "--title", ""):
            assert_invalid(
                client.get(tasks_url(ALICE), params={"sort": value}, headers=bearer(token_for(ALICE))), "sort"
            )


class TestSearch:
    def test_q_matches_a_case_insensitive_substring_of_the_title(self, client, admin):
        match = insert_task(admin, ALICE, "Buy MILK today")
        insert_task(admin, ALICE, "Buy bread")
        insert_task(admin, BOB, "milk for bob")

        assert listed(client, q="milk") == [match]
        assert listed(client, q="bUy mIlK") == [match]

    def test_q_matches_the_description_as_well(self, client, admin):
        in_title = insert_task(admin, ALICE, "oat milk", description=None)
        in_description = insert_task(admin, ALICE, "groceries", description="Two litres of Milk")
        insert_task(admin, ALICE, "groceries", description="bread")

        assert sorted(listed(client, q="MILK")) == sorted([in_title, in_description])

    def test_q_without_a_match_gives_an_empty_array(self, client, admin):
        insert_task(admin, ALICE, "something")

        assert listed(client, q="nothing like it") == []

    @pytest.mark.parametrize(
        ("q", "matching", "lookalike"),
        [
            ("%", "100% done", "100 done"),
            ("_", "a_b", "axb"),
            ("\\", "C:\\temp", "C:temp"),
            ("0%", "100% done", "1000 done"),
            ("a_b", "a_b", "axb"),
            ("\\%", "odd \\% mix", "odd % mix"),
        ],
        ids=[
            "percent",
            "underscore",
            "backslash",
            "percent-in-text",
            "underscore-in-text",
            "backslash-percent",
        ],
    )
    def test_q_takes_like_wildcards_and_backslash_literally(self, client, admin, q, matching, lookalike):
        match = insert_task(admin, ALICE, matching)
        insert_task(admin, ALICE, lookalike)
        in_description = insert_task(admin, ALICE, "plain", description=f"see {matching}")
        insert_task(admin, ALICE, "plain", description=f"see {lookalike}")

        assert sorted(listed(client, q=q)) == sorted([match, in_description])

    def test_q_combines_with_status(self, client, admin):
        pending = insert_task(admin, ALICE, "milk", completed=False)
        insert_task(admin, ALICE, "milk", completed=True)
        insert_task(admin, ALICE, "bread", completed=False)

        assert listed(client, q="milk", status="pending") == [pending]

    def test_q_longer_than_200_characters_is_422_naming_q(self, client):
        response = client.get(tasks_url(ALICE), params={"q": "x" * 201}, headers=bearer(token_for(ALICE)))

        assert_invalid(response, "q")
