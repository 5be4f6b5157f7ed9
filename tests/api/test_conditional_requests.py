"""Versions, ETags and conditional requests: If-Match on writes, If-None-Match on reads.

Every task carries `version` (1 on create, +1 on each change) and single-task answers carry
`ETag: "<version>"`. A write guarded by If-Match changes the task only while it is still at a
version the client names; otherwise 412 and the row, read past RLS, is exactly as before.
The races are run against a real `taskapi serve` process, through real sockets.
"""

import time
from typing import Any

import pytest

from tests.api.live import Call, at_once
from tests.api.support import assert_invalid, assert_problem, assert_task_shape, db_row, parse_time, table
from tests.support.app import create_task, task_url
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB

WRITES = ["PUT", "PATCH", "DELETE"]
# If-Match values judged against a task at version 3.
MATCHING_CURRENT = ['"3"', '"1", "3"', '"3","9"', ' "7" , W/"3" , "3" ', '"3", "99999999999999999999"', "*", " * "]
NOT_MATCHING_CURRENT = [
    '"2"',  # stale
    '"4"',  # from the future
    '"1", "2"',
    'W/"3"',  # weak tags never match a strong comparison
    'W/"3", W/"2"',
    "3",  # unquoted
    '"3',  # unterminated
    "'3'",
    '"three"',
    '""',
    '"-3"',
    '"3.0"',
    '" 3"',
    '"99999999999999999999"',  # beyond any bigint version
    "",
    "**",
    '*, "1"',  # `*` only stands alone
]


def write(client, method: str, owner: str, task_id: int, *, if_match: str | None = None, **kwargs: Any):
    """PUT (a new title), PATCH .../complete (a toggle) or DELETE one task, maybe with If-Match."""
    headers = {**bearer(token_for(owner)), **({"If-Match": if_match} if if_match is not None else {})}
    if method == "PUT":
        kwargs.setdefault("json", {"title": "changed"})
        return client.put(task_url(owner, task_id), headers=headers, **kwargs)
    if method == "PATCH":
        return client.patch(f"{task_url(owner, task_id)}/complete", headers=headers, **kwargs)
    return client.delete(task_url(owner, task_id), headers=headers, **kwargs)


def assert_applied(response, method: str, before: dict, after: dict | None) -> None:
    """The write went through: 200 with the next version as body and ETag, or 204 and gone."""
    if method == "DELETE":
        assert response.status_code == 204, response.text
        assert response.content == b""
        assert after is None
        return
    assert response.status_code == 200, response.text
    assert after is not None
    assert after["version"] == before["version"] + 1
    assert response.json()["version"] == after["version"]
    assert response.headers["etag"] == f'"{after["version"]}"'
    if method == "PUT":
        assert after["title"] == "changed"
    else:
        assert after["completed"] is (not before["completed"])


def get(client, owner: str, task_id: int, if_none_match: str | None = None):
    headers = {**bearer(token_for(owner)), **({"If-None-Match": if_none_match} if if_none_match is not None else {})}
    return client.get(task_url(owner, task_id), headers=headers)


def at_version(client, admin, version: int) -> dict:
    """Alice's task, edited through the API until it is at `version`; returns its DB row."""
    task = create_task(client, ALICE, title="original", description="kept")
    for _ in range(version - 1):
        assert (
            client.patch(f"{task_url(ALICE, task['id'])}/complete", headers=bearer(token_for(ALICE))).status_code == 200
        )
    row = db_row(admin, task["id"])
    assert row is not None and row["version"] == version
    return row


# --- versions and ETags -------------------------------------------------------------------


class TestVersionsAndETags:
    def test_every_single_task_answer_carries_the_version_as_a_strong_etag(self, client, admin):
        created = client.post("/api/alice/tasks", json={"title": "v"}, headers=bearer(token_for(ALICE)))
        assert created.status_code == 201
        assert created.json()["version"] == 1
        assert created.headers["etag"] == '"1"'
        task_id = created.json()["id"]

        fetched = get(client, ALICE, task_id)
        assert fetched.headers["etag"] == '"1"' and fetched.json()["version"] == 1

        updated = write(client, "PUT", ALICE, task_id)
        assert updated.headers["etag"] == '"2"' and updated.json()["version"] == 2
        assert_task_shape(updated.json())

        toggled = write(client, "PATCH", ALICE, task_id)
        assert toggled.headers["etag"] == '"3"' and toggled.json()["version"] == 3

        set_explicitly = client.patch(
            f"{task_url(ALICE, task_id)}/complete", json={"completed": False}, headers=bearer(token_for(ALICE))
        )
        assert set_explicitly.headers["etag"] == '"4"' and set_explicitly.json()["version"] == 4

        assert get(client, ALICE, task_id).headers["etag"] == '"4"'
        assert db_row(admin, task_id)["version"] == 4

    def test_the_list_carries_versions_but_no_etag(self, client):
        task = create_task(client, ALICE)
        write(client, "PUT", ALICE, task["id"])

        listed = client.get("/api/alice/tasks", headers=bearer(token_for(ALICE)))

        assert [t["version"] for t in listed.json()] == [2]
        assert "etag" not in listed.headers

    def test_failed_and_refused_writes_do_not_bump_the_version(self, client, admin):
        task = create_task(client, ALICE)

        assert_invalid(write(client, "PUT", ALICE, task["id"], json={"title": ""}), "title")
        assert_problem(write(client, "PUT", BOB, task["id"]), 404)
        assert_problem(write(client, "PATCH", BOB, task["id"]), 404)

        assert db_row(admin, task["id"])["version"] == 1

    def test_the_client_cannot_set_the_version(self, client, admin):
        task = create_task(client, ALICE)

        assert_invalid(
            client.post("/api/alice/tasks", json={"title": "x", "version": 9}, headers=bearer(token_for(ALICE)))
        )
        assert_invalid(write(client, "PUT", ALICE, task["id"], json={"title": "x", "version": 9}))

        assert [row["version"] for row in table(admin)] == [1]


# --- If-Match -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", WRITES)
class TestIfMatch:
    def test_without_if_match_every_write_applies_as_before(self, client, admin, method):
        before = at_version(client, admin, 3)

        response = write(client, method, ALICE, before["id"])

        assert_applied(response, method, before, db_row(admin, before["id"]))

    def test_a_tag_naming_the_current_version_applies(self, client, admin, method):
        for if_match in MATCHING_CURRENT:
            before = at_version(client, admin, 3)

            response = write(client, method, ALICE, before["id"], if_match=if_match)

            assert_applied(response, method, before, db_row(admin, before["id"]))

    def test_a_tag_not_naming_the_current_version_is_412_and_changes_nothing(self, client, admin, method):
        before = at_version(client, admin, 3)
        for if_match in NOT_MATCHING_CURRENT:
            response = write(client, method, ALICE, before["id"], if_match=if_match)

            body = assert_problem(response, 412, if_match)
            assert str(before["id"]) in body["detail"]
            assert "etag" not in response.headers
            assert db_row(admin, before["id"]) == before, if_match  # version, title, updated_at, all of it
        assert len(table(admin)) == 1

    def test_each_answers_etag_guards_the_next_write_and_older_ones_are_412(self, client, admin, method):
        task = create_task(client, ALICE)
        etags = [get(client, ALICE, task["id"]).headers["etag"]]
        for title in ("one", "two", "three"):
            response = write(client, "PUT", ALICE, task["id"], if_match=etags[-1], json={"title": title})
            assert response.status_code == 200, response.text
            etags.append(response.headers["etag"])
        before = db_row(admin, task["id"])
        assert (before["title"], before["version"], etags) == ("three", 4, ['"1"', '"2"', '"3"', '"4"'])

        for stale in etags[:-1]:
            assert_problem(write(client, method, ALICE, task["id"], if_match=stale), 412, stale)
            assert db_row(admin, task["id"]) == before

        response = write(client, method, ALICE, task["id"], if_match=etags[-1])

        assert_applied(response, method, before, db_row(admin, task["id"]))

    def test_a_missing_or_deleted_task_is_404_whatever_if_match_says(self, client, admin, method):
        task = create_task(client, ALICE)
        deleted = create_task(client, ALICE)
        assert write(client, "DELETE", ALICE, deleted["id"], if_match='"1"').status_code == 204
        for task_id in (task["id"] + 1000, deleted["id"]):
            for if_match in ['"1"', '"2"', "*", 'W/"1"', "garbage"]:
                response = write(client, method, ALICE, task_id, if_match=if_match)

                assert_problem(response, 404, (task_id, if_match))
        assert [(row["id"], row["version"]) for row in table(admin)] == [(task["id"], 1)]

    def test_someone_elses_task_is_404_not_412_and_untouched(self, client, admin, method):
        task = create_task(client, ALICE)
        before = db_row(admin, task["id"])
        missing_id = task["id"] + 1000
        for if_match in ['"1"', '"2"', "*", 'W/"1"']:  # the current version, a stale one, any, weak
            foreign = write(client, method, BOB, task["id"], if_match=if_match)
            missing = write(client, method, BOB, missing_id, if_match=if_match)

            foreign_body = assert_problem(foreign, 404, if_match)
            missing_body = assert_problem(missing, 404, if_match)
            assert foreign_body["detail"].replace(str(task["id"]), "{id}") == missing_body["detail"].replace(
                str(missing_id), "{id}"
            )
        assert db_row(admin, task["id"]) == before

    def test_requests_refused_before_if_match_is_judged_change_nothing(self, client, admin, method):
        before = at_version(client, admin, 1)
        url = task_url(ALICE, before["id"]) + ("/complete" if method == "PATCH" else "")
        body = {"title": "x"} if method == "PUT" else None

        overlong = client.request(
            method, url, headers={**bearer(token_for(ALICE)), "If-Match": '"1", ' + '"2", ' * 300}, json=body
        )
        anonymous = client.request(method, url, headers={"If-Match": "*"}, json=body)
        wrong_user = client.request(method, url, headers={**bearer(token_for(BOB)), "If-Match": "*"}, json=body)

        assert_invalid(overlong, "If-Match")
        assert_problem(anonymous, 401)
        assert_problem(wrong_user, 403)
        assert db_row(admin, before["id"]) == before


# Fields that are not RFC 9110 entity-tag lists, or whose tags differ from the ETag octet for
# octet, but that carry the current version's digits in quotes somewhere.
EMBEDDING_THE_CURRENT_VERSION = [
    '"01"',  # another opaque-tag: strong comparison is octet equality
    '"001"',
    'w/"1"',  # the weak indicator is case-sensitive: this is no entity-tag at all
    'X/"1"',
    'junk"1"',
    '"1"junk',
    '"9" "1"',  # a list needs commas
    '"1""9"',
]


class TestMalformedFieldsFailClosed:
    def test_if_match_that_only_embeds_the_current_version_is_412(self, client, admin):
        applied = []
        for if_match in EMBEDDING_THE_CURRENT_VERSION:
            task = create_task(client, ALICE)
            response = write(client, "PUT", ALICE, task["id"], if_match=if_match)
            if response.status_code != 412 or db_row(admin, task["id"])["version"] != 1:
                applied.append(if_match)

        assert applied == []

    def test_if_none_match_that_only_embeds_the_current_version_gets_the_task(self, client):
        task = create_task(client, ALICE)

        not_modified = [
            value for value in EMBEDDING_THE_CURRENT_VERSION if get(client, ALICE, task["id"], value).status_code == 304
        ]

        assert not_modified == []

    @pytest.mark.parametrize(
        "hostile",
        [", " * 500 + "x", ",\t" * 500 + '"', '"1" ' * 250 + "x", 'W/"' + "a" * 1000, " " * 1000 + "x"],
        ids=["empty-elements", "tabs", "no-commas", "unterminated", "spaces"],
    )
    def test_a_hostile_field_is_parsed_in_linear_time(self, client, admin, hostile):
        """A backtracking parser would spend minutes on these 1 KiB fields (a ReDoS)."""
        task = create_task(client, ALICE)

        started = time.perf_counter()
        response = write(client, "PUT", ALICE, task["id"], if_match=hostile)
        elapsed = time.perf_counter() - started

        assert response.status_code == 412
        assert db_row(admin, task["id"])["version"] == 1
        assert elapsed < 2.0  # generous: a linear parse takes well under a millisecond


class TestIfMatchKeepsTheRestOfTheRequest:
    def test_put_with_if_match_keeps_unsent_fields_and_sets_sent_ones(self, client, admin):
        task = create_task(client, ALICE, title="t", description="kept")

        response = write(client, "PUT", ALICE, task["id"], if_match='"1"', json={"title": "new", "completed": True})

        assert response.status_code == 200
        row = db_row(admin, task["id"])
        assert (row["title"], row["description"], row["completed"], row["version"]) == ("new", "kept", True, 2)
        assert row["updated_at"] > parse_time(task["updated_at"])
        assert parse_time(response.json()["updated_at"]) == row["updated_at"]

    def test_patch_with_if_match_and_a_body_sets_the_value(self, client, admin):
        task = create_task(client, ALICE)

        response = client.patch(
            f"{task_url(ALICE, task['id'])}/complete",
            json={"completed": True},
            headers={**bearer(token_for(ALICE)), "If-Match": '"1"'},
        )

        assert response.status_code == 200 and response.headers["etag"] == '"2"'
        assert (db_row(admin, task["id"])["completed"], db_row(admin, task["id"])["version"]) == (True, 2)

    def test_an_invalid_body_is_422_even_when_if_match_is_stale(self, client, admin):
        task = create_task(client, ALICE)

        put = write(client, "PUT", ALICE, task["id"], if_match='"9"', json={"title": " "})
        patch = write(client, "PATCH", ALICE, task["id"], if_match='"9"', json={"completed": "yes"})

        assert_invalid(put, "title")
        assert_invalid(patch, "completed")
        assert db_row(admin, task["id"])["version"] == 1


# --- If-None-Match ------------------------------------------------------------------------


class TestIfNoneMatch:
    def test_the_current_version_is_304_with_its_etag_and_no_body(self, client, admin):
        task = at_version(client, admin, 2)
        for if_none_match in ['"2"', 'W/"2"', "*", '"1", "2"', 'W/"1", W/"2"', ' "9" ,"2" ', " * "]:
            response = get(client, ALICE, task["id"], if_none_match)

            assert response.status_code == 304, (if_none_match, response.text)
            assert response.content == b""
            assert response.headers["etag"] == '"2"'
            assert response.headers.get("content-length", "0") == "0"
            assert response.headers["cache-control"] == "no-store"  # still an authenticated answer

    def test_any_other_version_gets_the_full_task(self, client, admin):
        task = at_version(client, admin, 2)
        plain = get(client, ALICE, task["id"]).json()
        assert plain["version"] == 2
        for if_none_match in ['"1"', 'W/"1"', '"3"', '"1", W/"3"', "2", '"two"', "", "garbage", '"2']:
            response = get(client, ALICE, task["id"], if_none_match)

            assert response.status_code == 200, if_none_match
            assert response.headers["etag"] == '"2"'
            assert response.json() == plain

    def test_a_cached_etag_revalidates_until_the_task_changes(self, client):
        task = create_task(client, ALICE)
        etag = get(client, ALICE, task["id"]).headers["etag"]
        assert get(client, ALICE, task["id"], etag).status_code == 304

        write(client, "PUT", ALICE, task["id"], json={"title": "newer"})

        fresh = get(client, ALICE, task["id"], etag)
        assert fresh.status_code == 200
        assert fresh.json()["title"] == "newer"
        assert fresh.headers["etag"] == '"2"'
        assert get(client, ALICE, task["id"], fresh.headers["etag"]).status_code == 304

    def test_a_missing_or_foreign_task_is_404_not_304(self, client):
        task = create_task(client, ALICE)
        for if_none_match in ["*", '"1"', 'W/"1"']:
            assert_problem(get(client, ALICE, task["id"] + 1000, if_none_match), 404, if_none_match)
            assert_problem(get(client, BOB, task["id"], if_none_match), 404, if_none_match)

    def test_304_needs_a_valid_token_for_the_path(self, client):
        task = create_task(client, ALICE)
        url = task_url(ALICE, task["id"])

        assert_problem(client.get(url, headers={"If-None-Match": "*"}), 401)
        assert_problem(client.get(url, headers={**bearer(token_for(BOB)), "If-None-Match": "*"}), 403)

    def test_if_none_match_does_not_apply_to_writes(self, client, admin):
        task = create_task(client, ALICE)

        response = client.put(
            task_url(ALICE, task["id"]),
            json={"title": "written"},
            headers={**bearer(token_for(ALICE)), "If-None-Match": '"1"'},
        )

        assert response.status_code == 200
        assert db_row(admin, task["id"])["title"] == "written"


# --- races, against a real server process --------------------------------------------------


def put_title(url: str, title: str, *, if_match: str) -> Call:
    return Call("PUT", url, {"title": title}, {"If-Match": if_match})


def test_two_editors_of_the_same_version_exactly_one_wins_every_round(server, server_admin):
    with server.client(ALICE) as http:
        task = http.post("/api/alice/tasks", json={"title": "start"}).json()
    url = task_url(ALICE, task["id"])

    for round_number in range(20):
        with server.client(ALICE) as http:
            etag = http.get(url).headers["etag"]
        assert etag == f'"{round_number + 1}"'
        titles = [f"round {round_number} by A", f"round {round_number} by B"]

        responses = at_once(server, ALICE, [put_title(url, title, if_match=etag) for title in titles])

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 412], [(r.status_code, r.text) for r in responses]
        [winner] = [response for response in responses if response.status_code == 200]
        [loser] = [response for response in responses if response.status_code == 412]
        assert loser.headers["content-type"] == "application/problem+json"
        row = db_row(server_admin, task["id"])
        assert row["title"] == winner.json()["title"] in titles
        assert row["version"] == round_number + 2
        assert winner.headers["etag"] == f'"{round_number + 2}"'


def test_an_editor_and_a_deleter_of_the_same_version_never_both_win(server, server_admin):
    with server.client(ALICE) as http:
        ids = [http.post("/api/alice/tasks", json={"title": "start"}).json()["id"] for _ in range(10)]

    for task_id in ids:
        url = task_url(ALICE, task_id)
        put, delete = at_once(
            server,
            ALICE,
            [
                put_title(url, "edited", if_match='"1"'),
                Call("DELETE", url, headers={"If-Match": '"1"'}),
            ],
        )

        row = db_row(server_admin, task_id)
        if delete.status_code == 204:
            assert put.status_code in (404, 412), put.text  # it lost: never a 200 for a deleted task
            assert row is None
        else:
            assert (put.status_code, delete.status_code) == (200, 412), (put.text, delete.text)
            assert (row["title"], row["version"]) == ("edited", 2)


def test_concurrent_toggles_without_if_match_are_all_applied(server, server_admin):
    requests = 20
    with server.client(ALICE) as http:
        task = http.post("/api/alice/tasks", json={"title": "toggled"}).json()
    url = f"{task_url(ALICE, task['id'])}/complete"

    responses = at_once(server, ALICE, [Call("PATCH", url)] * requests)

    assert [response.status_code for response in responses] == [200] * requests
    # Each toggle saw the one before it: the versions handed out are exactly 2 .. requests + 1.
    assert sorted(response.json()["version"] for response in responses) == list(range(2, requests + 2))
    assert sorted(int(response.headers["etag"].strip('"')) for response in responses) == list(range(2, requests + 2))
    # Toggle number k leaves completed == (k is odd); the answers agree with that order.
    assert all(response.json()["completed"] is (response.json()["version"] % 2 == 0) for response in responses)
    row = db_row(server_admin, task["id"])
    assert row["version"] == 1 + requests
    assert row["completed"] is (requests % 2 == 1)
