"""The six task routes: what the owner gets, what anybody else gets, and what is stored."""

from datetime import datetime

import pytest

from tests.api.support import assert_invalid, assert_problem, assert_task_shape, db_row, insert_task, parse_time, table
from tests.support.app import create_task, task_url, tasks_url
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB


def assert_indistinguishable_not_found(missing, foreign, missing_id: int, foreign_id: int) -> None:
    """Someone else's task and a task that does not exist get the same 404, up to the id."""
    missing_body = assert_problem(missing, 404)
    foreign_body = assert_problem(foreign, 404)
    assert missing.headers["content-type"] == foreign.headers["content-type"]
    assert set(missing_body) == set(foreign_body)
    assert missing_body["detail"].replace(str(missing_id), "{id}") == foreign_body["detail"].replace(
        str(foreign_id), "{id}"
    )
    assert {k: v for k, v in missing_body.items() if k != "detail"} == {
        k: v for k, v in foreign_body.items() if k != "detail"
    }


@pytest.fixture
def alices_task(client) -> dict:
    return create_task(client, ALICE, title="alice's task", description="private")


class TestListTasks:
    def test_owner_without_tasks_gets_an_empty_array(self, client):
        response = client.get(tasks_url(ALICE), headers=bearer(token_for(ALICE)))

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == []
        assert "link" not in response.headers

    def test_owner_gets_their_tasks_as_full_task_objects(self, client):
        created = create_task(client, ALICE, title="one", description="first")

        response = client.get(tasks_url(ALICE), headers=bearer(token_for(ALICE)))

        assert response.status_code == 200
        assert response.json() == [created]
        assert_task_shape(response.json()[0])

    def test_owner_sees_only_their_own_tasks(self, client, admin):
        mine = [create_task(client, ALICE, title=f"mine {n}")["id"] for n in range(3)]
        insert_task(admin, BOB, "bob's")
        insert_task(admin, "alice2", "a lookalike owner")

        response = client.get(tasks_url(ALICE), headers=bearer(token_for(ALICE)))

        assert response.status_code == 200
        assert sorted(task["id"] for task in response.json()) == sorted(mine)
        assert {task["user_id"] for task in response.json()} == {ALICE}

    def test_owner_gets_newest_first_by_default(self, client, admin):
        old = insert_task(admin, ALICE, "old", created_at="2026-01-01Z")
        new = insert_task(admin, ALICE, "new", created_at="2026-03-01Z")
        middle = insert_task(admin, ALICE, "middle", created_at="2026-02-01Z")

        response = client.get(tasks_url(ALICE), headers=bearer(token_for(ALICE)))

        assert [task["id"] for task in response.json()] == [new, middle, old]

    def test_other_user_is_forbidden_from_listing_someone_elses_tasks(self, client):
        create_task(client, ALICE)

        response = client.get(tasks_url(ALICE), headers=bearer(token_for(BOB)))

        assert_problem(response, 403)
        assert "a task" not in response.text

    def test_anonymous_is_unauthorized(self, client):
        create_task(client, ALICE)

        response = client.get(tasks_url(ALICE))

        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


class TestCreateTask:
    def test_owner_creates_a_task_and_gets_201_with_the_task_and_its_location(self, client, admin):
        response = client.post(tasks_url(ALICE), json={"title": "Buy milk"}, headers=bearer(token_for(ALICE)))

        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        task = response.json()
        assert_task_shape(task)
        assert task["user_id"] == ALICE
        assert task["title"] == "Buy milk"
        assert task["description"] is None
        assert task["completed"] is False
        assert response.headers["location"] == f"/api/{ALICE}/tasks/{task['id']}"
        row = db_row(admin, task["id"])
        assert row is not None
        assert (row["user_id"], row["title"], row["description"], row["completed"]) == (
            ALICE,
            "Buy milk",
            None,
            False,
        )
        assert parse_time(task["created_at"]) == row["created_at"]
        assert parse_time(task["updated_at"]) == row["updated_at"]

    def test_owner_may_set_description_and_completed(self, client, admin):
        body = {"title": "Pay rent", "description": "by the 1st", "completed": True}

        response = client.post(tasks_url(ALICE), json=body, headers=bearer(token_for(ALICE)))

        assert response.status_code == 201
        task = response.json()
        assert (task["title"], task["description"], task["completed"]) == ("Pay rent", "by the 1st", True)
        row = db_row(admin, task["id"])
        assert (row["description"], row["completed"]) == ("by the 1st", True)

    def test_owner_can_follow_the_location_to_the_created_task(self, client):
        response = client.post(tasks_url(ALICE), json={"title": "follow me"}, headers=bearer(token_for(ALICE)))

        followed = client.get(response.headers["location"], headers=bearer(token_for(ALICE)))

        assert followed.status_code == 200
        assert followed.json() == response.json()

    def test_owner_with_an_id_that_needs_escaping_gets_a_followable_location(self, client):
        owner = "user with space"
        response = client.post(tasks_url(owner), json={"title": "x"}, headers=bearer(token_for(owner)))

        assert response.status_code == 201
        assert response.headers["location"] == f"/api/user%20with%20space/tasks/{response.json()['id']}"
        followed = client.get(response.headers["location"], headers=bearer(token_for(owner)))
        assert followed.status_code == 200
        assert followed.json()["user_id"] == owner

    def test_owner_gets_distinct_ids_for_each_task(self, client):
        ids = {create_task(client, ALICE, title="same")["id"] for _ in range(3)}

        assert len(ids) == 3

    def test_other_user_is_forbidden_and_nothing_is_created(self, client, admin):
        response = client.post(tasks_url(ALICE), json={"title": "planted"}, headers=bearer(token_for(BOB)))

        assert_problem(response, 403)
        assert table(admin) == []

    def test_anonymous_is_unauthorized_and_nothing_is_created(self, client, admin):
        response = client.post(tasks_url(ALICE), json={"title": "planted"})

        assert_problem(response, 401)
        assert table(admin) == []


class TestGetTask:
    def test_owner_gets_the_task(self, client, alices_task):
        response = client.get(task_url(ALICE, alices_task["id"]), headers=bearer(token_for(ALICE)))

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == alices_task

    def test_owner_gets_404_for_a_task_that_does_not_exist(self, client):
        response = client.get(task_url(ALICE, 999), headers=bearer(token_for(ALICE)))

        body = assert_problem(response, 404)
        assert "999" in body["detail"]

    def test_other_user_gets_404_for_someone_elses_task_indistinguishable_from_missing(self, client, alices_task):
        missing_id = alices_task["id"] + 1000
        foreign = client.get(task_url(BOB, alices_task["id"]), headers=bearer(token_for(BOB)))
        missing = client.get(task_url(BOB, missing_id), headers=bearer(token_for(BOB)))

        assert_indistinguishable_not_found(missing, foreign, missing_id, alices_task["id"])
        assert "private" not in foreign.text and "alice" not in foreign.text

    def test_other_user_is_forbidden_on_someone_elses_path(self, client, alices_task):
        response = client.get(task_url(ALICE, alices_task["id"]), headers=bearer(token_for(BOB)))

        assert_problem(response, 403)
        assert "private" not in response.text

    def test_anonymous_is_unauthorized(self, client, alices_task):
        response = client.get(task_url(ALICE, alices_task["id"]))

        assert_problem(response, 401)
        assert "private" not in response.text


class TestUpdateTask:
    def test_owner_replaces_the_fields_sent_and_gets_the_updated_task(self, client, admin, alices_task):
        body = {"title": "renamed", "description": "new words", "completed": True}

        response = client.put(task_url(ALICE, alices_task["id"]), json=body, headers=bearer(token_for(ALICE)))

        assert response.status_code == 200
        task = response.json()
        assert_task_shape(task)
        assert task["id"] == alices_task["id"]
        assert task["user_id"] == ALICE
        assert (task["title"], task["description"], task["completed"]) == ("renamed", "new words", True)
        row = db_row(admin, alices_task["id"])
        assert (row["title"], row["description"], row["completed"]) == ("renamed", "new words", True)
        assert parse_time(task["updated_at"]) == row["updated_at"]

    def test_owner_leaves_description_and_completed_unchanged_when_absent(self, client, admin):
        task = create_task(client, ALICE, title="t", description="keep me", completed=True)

        response = client.put(task_url(ALICE, task["id"]), json={"title": "only"}, headers=bearer(token_for(ALICE)))

        assert response.status_code == 200
        assert (response.json()["description"], response.json()["completed"]) == ("keep me", True)
        row = db_row(admin, task["id"])
        assert (row["title"], row["description"], row["completed"]) == ("only", "keep me", True)

    def test_owner_clears_the_description_with_an_explicit_null(self, client, admin, alices_task):
        response = client.put(
            task_url(ALICE, alices_task["id"]),
            json={"title": "t", "description": None},
            headers=bearer(token_for(ALICE)),
        )

        assert response.status_code == 200
        assert response.json()["description"] is None
        assert db_row(admin, alices_task["id"])["description"] is None

    def test_owner_can_mark_a_completed_task_pending_again(self, client, admin):
        task = create_task(client, ALICE, completed=True)

        response = client.put(
            task_url(ALICE, task["id"]), json={"title": "t", "completed": False}, headers=bearer(token_for(ALICE))
        )

        assert response.json()["completed"] is False
        assert db_row(admin, task["id"])["completed"] is False

    def test_owner_moves_updated_at_forward_on_every_update_and_never_created_at(self, client, admin, alices_task):
        seen_updated = [parse_time(alices_task["updated_at"])]
        for _ in range(3):  # the same body each time: still an update
            response = client.put(
                task_url(ALICE, alices_task["id"]), json={"title": "same"}, headers=bearer(token_for(ALICE))
            )
            assert response.status_code == 200
            assert response.json()["created_at"] == alices_task["created_at"]
            seen_updated.append(parse_time(response.json()["updated_at"]))

        assert seen_updated == sorted(set(seen_updated)), "updated_at must strictly increase"
        row = db_row(admin, alices_task["id"])
        assert row["created_at"] == parse_time(alices_task["created_at"])
        assert row["updated_at"] == seen_updated[-1]

    def test_owner_gets_404_for_a_task_that_does_not_exist_and_nothing_changes(self, client, admin):
        create_task(client, ALICE)
        before = table(admin)

        response = client.put(task_url(ALICE, 999), json={"title": "x"}, headers=bearer(token_for(ALICE)))

        assert_problem(response, 404)
        assert table(admin) == before

    def test_other_user_gets_404_for_someone_elses_task_and_it_is_unchanged(self, client, admin, alices_task):
        before = table(admin)
        missing_id = alices_task["id"] + 1000
        foreign = client.put(
            task_url(BOB, alices_task["id"]), json={"title": "hijacked"}, headers=bearer(token_for(BOB))
        )
        missing = client.put(task_url(BOB, missing_id), json={"title": "hijacked"}, headers=bearer(token_for(BOB)))

        assert_indistinguishable_not_found(missing, foreign, missing_id, alices_task["id"])
        assert table(admin) == before

    def test_other_user_is_forbidden_on_someone_elses_path_and_the_task_is_unchanged(self, client, admin, alices_task):
        before = table(admin)

        response = client.put(
            task_url(ALICE, alices_task["id"]), json={"title": "hijacked"}, headers=bearer(token_for(BOB))
        )

        assert_problem(response, 403)
        assert table(admin) == before

    def test_anonymous_is_unauthorized_and_the_task_is_unchanged(self, client, admin, alices_task):
        before = table(admin)

        response = client.put(task_url(ALICE, alices_task["id"]), json={"title": "hijacked"})

        assert_problem(response, 401)
        assert table(admin) == before

    def test_owner_without_a_title_gets_422_and_the_task_is_unchanged(self, client, admin, alices_task):
        before = table(admin)

        response = client.put(
            task_url(ALICE, alices_task["id"]), json={"completed": True}, headers=bearer(token_for(ALICE))
        )

        assert_invalid(response, "title")
        assert table(admin) == before


class TestDeleteTask:
    def test_owner_deletes_the_task_and_gets_204_with_an_empty_body(self, client, admin, alices_task):
        other = create_task(client, ALICE, title="stays")

        response = client.delete(task_url(ALICE, alices_task["id"]), headers=bearer(token_for(ALICE)))

        assert response.status_code == 204
        assert response.content == b""
        assert db_row(admin, alices_task["id"]) is None
        assert [row["id"] for row in table(admin)] == [other["id"]]

    def test_owner_gets_404_when_fetching_or_deleting_a_deleted_task(self, client, alices_task):
        client.delete(task_url(ALICE, alices_task["id"]), headers=bearer(token_for(ALICE)))

        assert_problem(client.get(task_url(ALICE, alices_task["id"]), headers=bearer(token_for(ALICE))), 404)
        assert_problem(client.delete(task_url(ALICE, alices_task["id"]), headers=bearer(token_for(ALICE))), 404)

    def test_other_user_gets_404_for_someone_elses_task_and_it_still_exists(self, client, admin, alices_task):
        before = table(admin)
        missing_id = alices_task["id"] + 1000
        foreign = client.delete(task_url(BOB, alices_task["id"]), headers=bearer(token_for(BOB)))
        missing = client.delete(task_url(BOB, missing_id), headers=bearer(token_for(BOB)))

        assert_indistinguishable_not_found(missing, foreign, missing_id, alices_task["id"])
        assert table(admin) == before

    def test_other_user_is_forbidden_on_someone_elses_path_and_the_task_still_exists(self, client, admin, alices_task):
        before = table(admin)

        response = client.delete(task_url(ALICE, alices_task["id"]), headers=bearer(token_for(BOB)))

        assert_problem(response, 403)
        assert table(admin) == before

    def test_anonymous_is_unauthorized_and_the_task_still_exists(self, client, admin, alices_task):
        before = table(admin)

        response = client.delete(task_url(ALICE, alices_task["id"]))

        assert_problem(response, 401)
        assert table(admin) == before


def complete_url(owner: str, task_id: int) -> str:
    return f"{task_url(owner, task_id)}/complete"


class TestCompleteTask:
    @pytest.mark.parametrize("value", [True, False])
    def test_owner_sets_completed_from_the_body(self, client, admin, value):
        task = create_task(client, ALICE, completed=not value)

        response = client.patch(
            complete_url(ALICE, task["id"]), json={"completed": value}, headers=bearer(token_for(ALICE))
        )

        assert response.status_code == 200
        assert_task_shape(response.json())
        assert response.json()["completed"] is value
        assert db_row(admin, task["id"])["completed"] is value

    @pytest.mark.parametrize("value", [True, False])
    def test_owner_setting_the_same_value_twice_is_idempotent(self, client, admin, value):
        task = create_task(client, ALICE, completed=not value)

        for _ in range(2):
            response = client.patch(
                complete_url(ALICE, task["id"]), json={"completed": value}, headers=bearer(token_for(ALICE))
            )
            assert response.status_code == 200
            assert response.json()["completed"] is value

        assert db_row(admin, task["id"])["completed"] is value

    def test_owner_toggles_with_no_body_and_toggling_twice_restores(self, client, admin, alices_task):
        url = complete_url(ALICE, alices_task["id"])

        first = client.patch(url, headers=bearer(token_for(ALICE)))
        assert first.status_code == 200
        assert first.json()["completed"] is True
        assert db_row(admin, alices_task["id"])["completed"] is True

        second = client.patch(url, headers=bearer(token_for(ALICE)))
        assert second.status_code == 200
        assert second.json()["completed"] is False
        assert db_row(admin, alices_task["id"])["completed"] is False

    def test_owner_changes_only_completed_and_updated_at(self, client, admin, alices_task):
        before = db_row(admin, alices_task["id"])

        response = client.patch(complete_url(ALICE, alices_task["id"]), headers=bearer(token_for(ALICE)))

        after = db_row(admin, alices_task["id"])
        assert response.json()["title"] == alices_task["title"]
        assert response.json()["description"] == alices_task["description"]
        assert after["version"] == before["version"] + 1
        assert after["completed_at"] == after["updated_at"] and before["completed_at"] is None
        changed = ("completed", "completed_at", "updated_at", "version")
        assert {k: v for k, v in after.items() if k not in changed} == {
            k: v for k, v in before.items() if k not in changed
        }

    def test_owner_moves_updated_at_forward_on_every_patch_and_never_created_at(self, client, admin, alices_task):
        url = complete_url(ALICE, alices_task["id"])
        stamps: list[datetime] = [parse_time(alices_task["updated_at"])]
        for body in ({"completed": True}, {"completed": True}, None):
            response = client.patch(url, json=body, headers=bearer(token_for(ALICE)))
            assert response.json()["created_at"] == alices_task["created_at"]
            stamps.append(parse_time(response.json()["updated_at"]))

        assert stamps == sorted(set(stamps)), "updated_at must strictly increase"
        assert db_row(admin, alices_task["id"])["created_at"] == parse_time(alices_task["created_at"])

    @pytest.mark.parametrize(
        "body",
        [{}, {"done": True}, {"completed": True, "title": "sneaky"}, {"completed": None}],
        ids=["empty-object", "no-completed", "extra-field", "null"],
    )
    def test_owner_with_a_bad_body_gets_422_and_nothing_changes(self, client, admin, alices_task, body):
        before = table(admin)

        response = client.patch(complete_url(ALICE, alices_task["id"]), json=body, headers=bearer(token_for(ALICE)))

        assert_invalid(response)
        assert table(admin) == before

    def test_owner_gets_404_for_a_task_that_does_not_exist(self, client):
        response = client.patch(complete_url(ALICE, 999), headers=bearer(token_for(ALICE)))

        assert_problem(response, 404)

    @pytest.mark.parametrize("body", [None, {"completed": True}], ids=["toggle", "set"])
    def test_other_user_gets_404_for_someone_elses_task_and_it_is_unchanged(self, client, admin, alices_task, body):
        before = table(admin)
        missing_id = alices_task["id"] + 1000
        foreign = client.patch(complete_url(BOB, alices_task["id"]), json=body, headers=bearer(token_for(BOB)))
        missing = client.patch(complete_url(BOB, missing_id), json=body, headers=bearer(token_for(BOB)))

        assert_indistinguishable_not_found(missing, foreign, missing_id, alices_task["id"])
        assert table(admin) == before

    def test_other_user_is_forbidden_on_someone_elses_path_and_the_task_is_unchanged(self, client, admin, alices_task):
        before = table(admin)

        response = client.patch(complete_url(ALICE, alices_task["id"]), headers=bearer(token_for(BOB)))

        assert_problem(response, 403)
        assert table(admin) == before

    def test_anonymous_is_unauthorized_and_the_task_is_unchanged(self, client, admin, alices_task):
        before = table(admin)

        response = client.patch(complete_url(ALICE, alices_task["id"]), json={"completed": True})

        assert_problem(response, 401)
        assert table(admin) == before
