"""Lists: the five routes, their counts, versions and keys, and isolation between users."""

from typing import Any

import pytest
from psycopg.rows import dict_row

from tests.api.support import assert_invalid, assert_problem, insert_task, next_link, table
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB

LIST_FIELDS = {"id", "user_id", "name", "task_count", "open_count", "created_at", "updated_at", "version"}


def lists_url(owner: str) -> str:
    return f"/api/{owner}/lists"


def list_url(owner: str, list_id: int | str) -> str:
    return f"/api/{owner}/lists/{list_id}"


def create_list(client, owner: str, name: str, **headers: str) -> Any:
    return client.post(lists_url(owner), json={"name": name}, headers=bearer(token_for(owner)) | headers)


def lists_table(admin) -> list[dict[str, Any]]:
    with admin.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from lists order by id").fetchall()


@pytest.fixture
def groceries(client) -> dict[str, Any]:
    response = create_list(client, ALICE, "Groceries")
    assert response.status_code == 201, response.text
    return response.json()


class TestCreate:
    def test_a_list_is_created_with_location_etag_and_zero_counts(self, client, admin):
        response = create_list(client, ALICE, "  Groceries \t")

        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == LIST_FIELDS
        assert body["name"] == "Groceries"  # trimmed
        assert (body["user_id"], body["task_count"], body["open_count"], body["version"]) == (ALICE, 0, 0, 1)
        assert response.headers["location"] == list_url(ALICE, body["id"])
        assert response.headers["etag"] == '"1"'
        [row] = lists_table(admin)
        assert (row["id"], row["user_id"], row["name"]) == (body["id"], ALICE, "Groceries")

    @pytest.mark.parametrize("name", ["groceries", "GROCERIES", " Groceries "])
    def test_a_name_the_user_already_has_ignoring_case_is_409(self, client, admin, groceries, name):
        before = lists_table(admin)

        assert_problem(create_list(client, ALICE, name), 409)
        assert lists_table(admin) == before

    def test_another_user_may_use_the_same_name(self, client, groceries):
        response = create_list(client, BOB, "Groceries")

        assert response.status_code == 201, response.text
        assert response.json()["user_id"] == BOB

    @pytest.mark.parametrize(
        "body",
        [{"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": None}, {"name": 5}, {}, {"name": "a\x00b"}],
        ids=["empty", "blank", "101", "null", "number", "absent", "nul"],
    )
    def test_a_bad_name_is_422_naming_name_and_creates_nothing(self, client, admin, body):
        response = client.post(lists_url(ALICE), json=body, headers=bearer(token_for(ALICE)))

        assert_invalid(response, "name")
        assert lists_table(admin) == []

    def test_a_name_of_100_characters_is_accepted(self, client):
        assert create_list(client, ALICE, "é" * 100).status_code == 201

    def test_unknown_and_read_only_fields_are_422(self, client, admin):
        for field in ("id", "user_id", "task_count", "version"):
            response = client.post(lists_url(ALICE), json={"name": "n", field: 1}, headers=bearer(token_for(ALICE)))
            assert_invalid(response, field, case=field)
        assert lists_table(admin) == []

    def test_an_idempotency_key_replays_the_first_answer_and_creates_one_list(self, client, admin):
        first = create_list(client, ALICE, "Errands", **{"Idempotency-Key": "k1"})
        again = create_list(client, ALICE, "Errands", **{"Idempotency-Key": "k1"})

        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers.get("idempotent-replayed") == "true"
        assert len(lists_table(admin)) == 1

    def test_the_same_key_with_another_name_is_422_and_creates_nothing(self, client, admin):
        create_list(client, ALICE, "Errands", **{"Idempotency-Key": "k1"})

        assert_problem(create_list(client, ALICE, "Other", **{"Idempotency-Key": "k1"}), 422)
        assert [row["name"] for row in lists_table(admin)] == ["Errands"]

    def test_a_task_key_never_replays_a_list(self, client, admin):
        task = client.post(
            f"/api/{ALICE}/tasks", json={"title": "x"}, headers=bearer(token_for(ALICE)) | {"Idempotency-Key": "k"}
        )
        assert task.status_code == 201

        response = create_list(client, ALICE, "x", **{"Idempotency-Key": "k"})

        assert response.status_code == 422
        assert lists_table(admin) == []


class TestCounts:
    def test_counts_are_the_callers_tasks_in_the_list_and_those_not_completed(self, client, admin, groceries):
        list_id = groceries["id"]
        insert_task(admin, ALICE, "milk", list_id=list_id)
        insert_task(admin, ALICE, "eggs", list_id=list_id, completed=True)
        insert_task(admin, ALICE, "elsewhere")
        bobs = create_list(client, BOB, "Bob's").json()["id"]
        insert_task(admin, BOB, "bob's", list_id=bobs)

        listed = client.get(lists_url(ALICE), headers=bearer(token_for(ALICE))).json()
        fetched = client.get(list_url(ALICE, list_id), headers=bearer(token_for(ALICE))).json()

        assert [(entry["id"], entry["task_count"], entry["open_count"]) for entry in listed] == [(list_id, 2, 1)]
        assert (fetched["task_count"], fetched["open_count"]) == (2, 1)

    def test_the_counts_follow_the_task_routes(self, client, admin, groceries):
        headers = bearer(token_for(ALICE))
        task = client.post(
            f"/api/{ALICE}/tasks", json={"title": "milk", "list_id": groceries["id"]}, headers=headers
        ).json()
        client.patch(f"/api/{ALICE}/tasks/{task['id']}/complete", headers=headers)
        after_complete = client.get(list_url(ALICE, groceries["id"]), headers=headers).json()
        client.put(f"/api/{ALICE}/tasks/{task['id']}", json={"title": "milk", "list_id": None}, headers=headers)
        after_move = client.get(list_url(ALICE, groceries["id"]), headers=headers).json()

        assert (after_complete["task_count"], after_complete["open_count"]) == (1, 0)
        assert (after_move["task_count"], after_move["open_count"]) == (0, 0)


class TestListing:
    def test_lists_come_in_creation_order_and_pages_follow_the_link(self, client):
        ids = [create_list(client, ALICE, f"list {n}").json()["id"] for n in range(5)]
        create_list(client, BOB, "bob's")
        headers = bearer(token_for(ALICE))

        response = client.get(lists_url(ALICE), params={"limit": 2}, headers=headers)
        seen = []
        while True:
            assert response.status_code == 200, response.text
            seen += [entry["id"] for entry in response.json()]
            link = next_link(response)
            if link is None:
                break
            assert link.startswith(lists_url(ALICE) + "?")
            response = client.get(link, headers=headers)

        assert seen == ids

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"cursor": "nope!"}, {"cursor": "A" * 12}])
    def test_a_bad_limit_or_cursor_is_422(self, client, params):
        response = client.get(lists_url(ALICE), params=params, headers=bearer(token_for(ALICE)))

        assert_invalid(response, next(iter(params)))


class TestRenameAndDelete:
    def test_a_rename_bumps_the_version_and_keeps_the_tasks(self, client, admin, groceries):
        insert_task(admin, ALICE, "milk", list_id=groceries["id"])

        response = client.put(
            list_url(ALICE, groceries["id"]),
            json={"name": "Food"},
            headers=bearer(token_for(ALICE)) | {"If-Match": '"1"'},
        )

        assert response.status_code == 200, response.text
        assert (response.json()["name"], response.json()["version"], response.json()["task_count"]) == ("Food", 2, 1)
        assert response.headers["etag"] == '"2"'

    def test_a_stale_if_match_is_412_and_changes_nothing(self, client, admin, groceries):
        before = lists_table(admin)
        headers = bearer(token_for(ALICE)) | {"If-Match": '"7"'}

        assert_problem(client.put(list_url(ALICE, groceries["id"]), json={"name": "Food"}, headers=headers), 412)
        assert_problem(client.delete(list_url(ALICE, groceries["id"]), headers=headers), 412)
        assert lists_table(admin) == before

    def test_renaming_to_another_of_ones_own_names_is_409(self, client, admin, groceries):
        create_list(client, ALICE, "Work")
        before = lists_table(admin)

        response = client.put(list_url(ALICE, groceries["id"]), json={"name": "WORK"}, headers=bearer(token_for(ALICE)))

        assert_problem(response, 409)
        assert lists_table(admin) == before

    def test_renaming_to_its_own_name_in_another_case_is_allowed(self, client, groceries):
        response = client.put(
            list_url(ALICE, groceries["id"]), json={"name": "GROCERIES"}, headers=bearer(token_for(ALICE))
        )

        assert response.status_code == 200 and response.json()["name"] == "GROCERIES"

    def test_deleting_a_list_moves_its_tasks_to_no_list_and_loses_nothing(self, client, admin, groceries):
        in_list = insert_task(admin, ALICE, "milk", list_id=groceries["id"])
        outside = insert_task(admin, ALICE, "other")
        before = {row["id"]: row for row in table(admin)}

        response = client.delete(
            list_url(ALICE, groceries["id"]), headers=bearer(token_for(ALICE)) | {"If-Match": '"1"'}
        )

        assert response.status_code == 204
        assert lists_table(admin) == []
        after = {row["id"]: row for row in table(admin)}
        assert set(after) == {in_list, outside}
        assert after[in_list]["list_id"] is None and after[in_list]["user_id"] == ALICE
        assert after[in_list]["version"] == before[in_list]["version"] + 1  # a cached copy is now stale
        assert after[in_list]["title"] == "milk"
        assert after[outside] == before[outside]
        moved = client.get(f"/api/{ALICE}/tasks/{in_list}", headers=bearer(token_for(ALICE))).json()
        assert moved["list_id"] is None

    def test_a_deleted_list_is_404_afterwards(self, client, groceries):
        headers = bearer(token_for(ALICE))
        client.delete(list_url(ALICE, groceries["id"]), headers=headers)

        assert_problem(client.get(list_url(ALICE, groceries["id"]), headers=headers), 404)
        assert_problem(client.delete(list_url(ALICE, groceries["id"]), headers=headers), 404)


class TestAnotherUsersList:
    @pytest.fixture
    def bobs_list(self, client, admin) -> int:
        list_id = create_list(client, BOB, "Bob's").json()["id"]
        insert_task(admin, BOB, "bob's task", list_id=list_id)
        return list_id

    @pytest.mark.parametrize(
        ("method", "body"),
        [("GET", None), ("PUT", {"name": "mine now"}), ("DELETE", None)],
        ids=["get", "put", "delete"],
    )
    def test_every_route_answers_as_for_a_list_that_does_not_exist(self, client, admin, bobs_list, method, body):
        before = (lists_table(admin), table(admin))
        headers = bearer(token_for(ALICE))
        kwargs = {"json": body} if body else {}

        theirs = client.request(method, list_url(ALICE, bobs_list), headers=headers, **kwargs)
        missing = client.request(method, list_url(ALICE, bobs_list + 1000), headers=headers, **kwargs)

        assert_problem(theirs, 404)
        assert theirs.json() | {"detail": None} == missing.json() | {"detail": None}
        assert theirs.json()["detail"] == missing.json()["detail"].replace(str(bobs_list + 1000), str(bobs_list))
        assert (lists_table(admin), table(admin)) == before

    def test_alice_cannot_reach_bobs_list_through_his_path(self, client, bobs_list):
        response = client.get(list_url(BOB, bobs_list), headers=bearer(token_for(ALICE)))

        assert_problem(response, 403)

    def test_alice_cannot_see_bobs_list_in_hers(self, client, bobs_list):
        assert client.get(lists_url(ALICE), headers=bearer(token_for(ALICE))).json() == []

    @pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", str(2**63)])
    def test_a_list_id_that_is_not_an_id_is_422(self, client, value):
        response = client.get(list_url(ALICE, value), headers=bearer(token_for(ALICE)))

        assert_invalid(response, "list_id")
