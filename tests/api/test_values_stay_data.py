"""Values are bound on the client (psycopg's ClientCursor quotes them into the message), so a
value that looks like SQL, a quote, an escape or a placeholder must arrive in the database as
the exact characters sent, and change nothing else."""

import pytest

from tests.api.support import db_row, insert_task, table
from tests.support.app import create_task, tasks_url
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE, BOB

HOSTILE = [
    "it's",
    "''",
    "\\",
    "\\'",
    "'; delete from tasks; --",
    "'); select set_config('app.user_id', 'bob', true); --",
    "$$ $tag$ $1",
    "%s %% %(app_user_id)s %(title)s",
    ":title :user_id",
    "E'\\x41' U&'\\0041'",
    "line one\nline\ttwo\rthree",  # inner whitespace: titles are trimmed at the ends
    "ünïcödé ✓ 😀 \u202e",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_title_and_description_are_stored_exactly(client, admin, text):
    insert_task(admin, BOB, "bob's task")

    created = create_task(client, ALICE, title=text, description=text)

    assert (created["title"], created["description"]) == (text, text)
    row = db_row(admin, created["id"])
    assert row is not None and (row["title"], row["description"], row["user_id"]) == (text, text, ALICE)
    assert sorted(r["user_id"] for r in table(admin)) == [ALICE, BOB]  # nothing else changed


@pytest.mark.parametrize("text", HOSTILE)
def test_a_search_matches_the_characters_not_the_sql(client, admin, text):
    insert_task(admin, ALICE, f"before {text} after")
    insert_task(admin, ALICE, "unrelated")
    insert_task(admin, BOB, f"bob {text}")

    response = client.get(tasks_url(ALICE), params={"q": text}, headers=bearer(token_for(ALICE)))

    assert response.status_code == 200, response.text
    assert [task["title"] for task in response.json()] == [f"before {text} after"]


@pytest.mark.parametrize("subject", ["o'brien", "back\\slash", "x'; reset role; --", "%(app_user_id)s"])
def test_a_subject_with_quotes_is_one_user_like_any_other(client, admin, subject):
    insert_task(admin, BOB, "bob's task")
    url = tasks_url(subject)

    created = client.post(url, json={"title": "mine"}, headers=bearer(token_for(subject)))
    listed = client.get(url, headers=bearer(token_for(subject)))

    assert created.status_code == 201, created.text
    assert [task["title"] for task in listed.json()] == ["mine"]
    row = db_row(admin, created.json()["id"])
    assert row is not None and row["user_id"] == subject
