"""What a task may hold, and what happens to input that does not fit: 4xx, never 500, no change."""

import json
from typing import ClassVar

import pytest

from tests.api.support import ROUTES, assert_invalid, assert_problem, db_row, table
from tests.support.app import create_task, task_url, tasks_url
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE

JSON = {"content-type": "application/json"}


@pytest.fixture
def task(client) -> dict:
    return create_task(client, ALICE, title="original", description="original words")


def post(client, body):
    return client.post(tasks_url(ALICE), json=body, headers=bearer(token_for(ALICE)))


def put(client, task_id, body):
    return client.put(task_url(ALICE, task_id), json=body, headers=bearer(token_for(ALICE)))


def post_raw(client, text: str):
    return client.post(tasks_url(ALICE), content=text, headers={**bearer(token_for(ALICE)), **JSON})


def put_raw(client, task_id, text: str):
    return client.put(task_url(ALICE, task_id), content=text, headers={**bearer(token_for(ALICE)), **JSON})


class TestTitle:
    def test_a_missing_or_non_string_title_is_rejected_on_create(self, client, admin):
        for body in (
            {},
            {"title": None},
            {"title": ""},
            {"title": 5},
            {"title": ["x"]},
            {"description": "d"},
        ):
            assert_invalid(post(client, body), "title", case=body)
        assert table(admin) == []

    def test_a_whitespace_only_title_is_rejected_on_create_and_update(self, client, admin, task):
        before = table(admin)

        for title in (" ", "   ", "\t\n", "\u00a0\u2003"):
            assert_invalid(post(client, {"title": title}), "title", case=title)
            assert_invalid(put(client, task["id"], {"title": title}), "title", case=title)
        assert table(admin) == before

    def test_the_title_is_trimmed_on_create(self, client, admin):
        response = post(client, {"title": "  \t Buy milk \n "})

        assert response.status_code == 201
        assert response.json()["title"] == "Buy milk"
        assert db_row(admin, response.json()["id"])["title"] == "Buy milk"

    def test_the_title_is_trimmed_on_update(self, client, admin, task):
        response = put(client, task["id"], {"title": "  renamed\t"})

        assert response.status_code == 200
        assert response.json()["title"] == "renamed"
        assert db_row(admin, task["id"])["title"] == "renamed"

    def test_inner_whitespace_of_the_title_is_kept(self, client):
        assert post(client, {"title": "a  b\tc"}).json()["title"] == "a  b\tc"

    @pytest.mark.parametrize("length", [1, 200])
    def test_a_title_of_1_to_200_characters_is_accepted(self, client, admin, length):
        response = post(client, {"title": "t" * length})

        assert response.status_code == 201
        assert db_row(admin, response.json()["id"])["title"] == "t" * length

    def test_a_201_character_title_is_rejected_on_create_and_update(self, client, admin, task):
        before = table(admin)

        assert_invalid(post(client, {"title": "t" * 201}), "title")
        assert_invalid(put(client, task["id"], {"title": "t" * 201}), "title")
        assert table(admin) == before


class TestDescription:
    def test_a_description_of_1000_characters_is_accepted(self, client, admin):
        response = post(client, {"title": "t", "description": "d" * 1000})

        assert response.status_code == 201
        assert db_row(admin, response.json()["id"])["description"] == "d" * 1000

    def test_a_null_description_is_accepted(self, client):
        response = post(client, {"title": "t", "description": None})

        assert response.status_code == 201
        assert response.json()["description"] is None

    def test_a_1001_character_description_is_rejected_on_create_and_update(self, client, admin, task):
        before = table(admin)

        assert_invalid(post(client, {"title": "t", "description": "d" * 1001}), "description")
        assert_invalid(put(client, task["id"], {"title": "t", "description": "d" * 1001}), "description")
        assert table(admin) == before

    def test_a_non_string_description_is_rejected(self, client, admin):
        for value in (5, True, ["d"], {"d": 1}):
            assert_invalid(post(client, {"title": "t", "description": value}), "description", case=value)
        assert table(admin) == []


class TestStrictBooleans:
    def test_completed_must_be_a_json_boolean_on_create_update_and_patch(self, client, admin, task):
        before = table(admin)

        for value in ("true", "false", 1, 0, "yes", 1.0, [True], None):
            if value is not None:  # on create, null is as wrong as the rest (tested below)
                assert_invalid(post(client, {"title": "t", "completed": value}), "completed", case=value)
            assert_invalid(put(client, task["id"], {"title": "t", "completed": value}), "completed", case=value)
            response = client.patch(
                f"{task_url(ALICE, task['id'])}/complete", json={"completed": value}, headers=bearer(token_for(ALICE))
            )
            assert_invalid(response, "completed", case=value)
        assert table(admin) == before

    def test_a_null_completed_is_rejected_on_create(self, client, admin):
        assert_invalid(post(client, {"title": "t", "completed": None}), "completed")
        assert table(admin) == []


READ_ONLY_OR_UNKNOWN = [
    ("id", 12345),
    ("user_id", "bob"),
    ("user_id", ALICE),
    ("created_at", "2020-01-01T00:00:00Z"),
    ("updated_at", "2020-01-01T00:00:00Z"),
    ("completed_at", "2020-01-01T00:00:00Z"),
    ("task_count", 3),
    ("Title", "case matters"),
]


class TestReadOnlyAndUnknownFields:
    def test_create_and_update_reject_the_field_and_change_nothing(self, client, admin, task):
        before = table(admin)

        for field, value in READ_ONLY_OR_UNKNOWN:
            assert_invalid(post(client, {"title": "t", field: value}), field, case=field)
            assert_invalid(put(client, task["id"], {"title": "t", field: value}), field, case=field)
        assert table(admin) == before

    def test_a_body_that_is_not_an_object_is_rejected(self, client, admin, task):
        before = table(admin)

        for body in ([], ["title"], "title", 5, None):
            assert_invalid(post_raw(client, json.dumps(body)))
            assert_invalid(put_raw(client, task["id"], json.dumps(body)))
        assert table(admin) == before


class TestMalformedJson:
    def test_malformed_json_is_a_400_problem_and_changes_nothing(self, client, admin, task):
        before = table(admin)

        for text in ('{"title": "x"', "{title: 'x'}", "not json", '{"title": "x"}}', "{,}"):
            assert_problem(post_raw(client, text), 400, case=text)
            assert_problem(put_raw(client, task["id"], text), 400, case=text)
            response = client.patch(
                f"{task_url(ALICE, task['id'])}/complete", content=text, headers={**bearer(token_for(ALICE)), **JSON}
            )
            assert_problem(response, 400, case=text)
        assert table(admin) == before


class TestPathIds:
    def test_an_id_outside_1_to_bigint_max_is_422_naming_task_id_on_every_item_route(self, client, admin, task):
        before = table(admin)

        for task_id in ("0", "-1", "9223372036854775808", "99999999999999999999999", "abc", "1.5", "1e3"):
            for method, suffix in [(m, s) for m, s, _, item in ROUTES if item]:
                url = tasks_url(ALICE) + suffix.format(id=task_id)
                body = {"PUT": {"title": "x"}, "PATCH": {"completed": True}}.get(method)
                response = client.request(method, url, json=body, headers=bearer(token_for(ALICE)))
                assert_invalid(response, "task_id", case=(method, url))
        assert table(admin) == before

    @pytest.mark.parametrize("spelling", ["1_0", "+10", "%2010", "10%20", "%D9%A1%D9%A0", "0x0A", "1%5F0"])
    def test_an_id_spelt_other_than_in_plain_digits_is_422_even_when_python_would_read_it(
        self, client, admin, spelling
    ):
        """int() reads "1_0" and " 10" as 10 (and digits of other scripts too): none may name task 10."""
        before = table(admin)

        for method, suffix in [(m, s) for m, s, _, item in ROUTES if item]:
            url = tasks_url(ALICE) + suffix.format(id=spelling)
            body = {"PUT": {"title": "x"}, "PATCH": {"completed": True}}.get(method)
            assert_invalid(
                client.request(method, url, json=body, headers=bearer(token_for(ALICE))), "task_id", case=url
            )
        assert table(admin) == before

    def test_the_largest_bigint_is_a_valid_id_that_is_simply_not_found(self, client):
        response = client.get(task_url(ALICE, 2**63 - 1), headers=bearer(token_for(ALICE)))

        assert_problem(response, 404)


class TestHostileInput:
    @pytest.mark.parametrize(
        "body",
        [
            {"title": "a\x00b"},
            {"title": "\x00"},
            {"title": "t", "description": "a\x00b"},
        ],
        ids=["nul-in-title", "only-nul-title", "nul-in-description"],
    )
    def test_nul_characters_are_rejected_on_create_and_update(self, client, admin, task, body):
        before = table(admin)
        field = "description" if "description" in body else "title"

        assert_invalid(post(client, body), field)
        assert_invalid(put(client, task["id"], body), field)
        assert table(admin) == before

    def test_a_nul_character_in_q_is_rejected(self, client, task):
        response = client.get(tasks_url(ALICE), params={"q": "a\x00b"}, headers=bearer(token_for(ALICE)))

        assert_invalid(response, "q")

    @pytest.mark.parametrize(
        ("text", "field"),
        [
            ('{"title": "\\ud800"}', "title"),
            ('{"title": "ok \\udfff ok"}', "title"),
            ('{"title": "t", "description": "\\ud800"}', "description"),
        ],
        ids=["lone-high-surrogate-title", "lone-low-surrogate-title", "surrogate-description"],
    )
    def test_lone_surrogates_are_rejected_on_create_and_update(self, client, admin, task, text, field):
        before = table(admin)

        assert_invalid(post_raw(client, text), field)
        assert_invalid(put_raw(client, task["id"], text), field)
        assert table(admin) == before

    def test_a_correctly_paired_surrogate_escape_is_an_ordinary_character(self, client):
        response = post_raw(client, '{"title": "\\ud83d\\ude00"}')

        assert response.status_code == 201
        assert response.json()["title"] == "\U0001f600"

    @pytest.mark.parametrize("field", ["title", "description"])
    def test_a_huge_field_is_too_large_and_changes_nothing(self, client, admin, task, field):
        before = table(admin)
        body = {"title": "t", field: "x" * 2_000_000}

        assert_problem(post(client, body), 413)
        assert_problem(put(client, task["id"], body), 413)
        assert table(admin) == before

    def test_a_huge_body_of_many_unknown_fields_is_too_large(self, client, admin):
        body = {"title": "t", **{f"f{n}": n for n in range(20_000)}}

        response = post(client, body)

        assert_problem(response, 413)
        assert table(admin) == []

    @pytest.mark.parametrize(
        "text",
        ["[" * 10_000 + "]" * 10_000, '{"title": ' + "[" * 10_000 + "]" * 10_000 + "}"],
        ids=["nested-lists", "nested-title"],
    )
    def test_deeply_nested_json_is_a_client_error_and_changes_nothing(self, client, admin, task, text):
        before = table(admin)

        for response in (post_raw(client, text), put_raw(client, task["id"], text)):
            assert response.status_code in (400, 422), response.text
            assert_problem(response, response.status_code)
        assert table(admin) == before


class TestUnicode:
    ODD_TEXT: ClassVar = [
        "\U0001f600 emoji \U0001f680",
        "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # Hebrew and Arabic
        "\u202eright-to-left override",
        "e\u0301 combining acute, not NFC-normalised",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 family (ZWJ sequence)",
        "\u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4",
        "zero\u200bwidth",
    ]

    def test_odd_unicode_is_accepted_and_round_trips_exactly(self, client, admin):
        for text in self.ODD_TEXT:
            response = post(client, {"title": text, "description": text})

            assert response.status_code == 201, text
            assert (response.json()["title"], response.json()["description"]) == (text, text)
            fetched = client.get(task_url(ALICE, response.json()["id"]), headers=bearer(token_for(ALICE))).json()
            assert (fetched["title"], fetched["description"]) == (text, text)
            row = db_row(admin, response.json()["id"])
            assert (row["title"], row["description"]) == (text, text)

    def test_odd_unicode_round_trips_through_update(self, client, admin, task):
        text = "e\u0301\u202e\U0001f600"

        response = put(client, task["id"], {"title": text, "description": text})

        assert (response.json()["title"], response.json()["description"]) == (text, text)
        assert db_row(admin, task["id"])["title"] == text

    def test_a_200_emoji_title_is_accepted(self, client, admin):
        title = "\U0001f600" * 200

        response = post(client, {"title": title})

        assert response.status_code == 201
        assert db_row(admin, response.json()["id"])["title"] == title

    def test_a_201_emoji_title_is_rejected(self, client, admin):
        assert_invalid(post(client, {"title": "\U0001f600" * 201}), "title")
        assert table(admin) == []

    def test_a_1000_emoji_description_is_accepted_and_1001_rejected(self, client, admin):
        assert post(client, {"title": "t", "description": "\U0001f600" * 1000}).status_code == 201
        assert_invalid(post(client, {"title": "t", "description": "\U0001f600" * 1001}), "description")
        assert len(table(admin)) == 1
