"""The fast lane (api/tasks/hot_reads.py) answers exactly as FastAPI's routing would.

Two apps on one database, one with the fast lane and one without, get the same requests: plain
ones the lane answers, and malformed, foreign or unusual ones it must leave to FastAPI. Every
answer must be the same: status, headers and body. The lane records which requests it took, so
these tests also fail if it stops answering the plain reads it exists for.
"""

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.main import create_app
from api.tasks import hot_reads
from tests.api.support import insert_task
from tests.support.app import make_settings, task_url, tasks_url
from tests.support.tokens import bearer, token_for

# Headers that differ between any two answers, whoever gives them.
VARYING = {"x-request-id", "date", "ratelimit-reset"}


@pytest.fixture
def lanes(app_url: str, monkeypatch) -> Iterator[tuple[TestClient, TestClient, list[str]]]:
    """(with the fast lane, without it, the paths of requests the lane answered)."""
    answered: list[str] = []
    answer_for = hot_reads.HotReads.answer_for

    def recording(self: hot_reads.HotReads, scope: dict[str, Any]) -> Any:
        answer = answer_for(self, scope)
        if answer is not None:
            answered.append(scope["path"] + "?" + scope["query_string"].decode())
        return answer

    monkeypatch.setattr(hot_reads.HotReads, "answer_for", recording)
    settings_ = make_settings(app_url)
    with (
        TestClient(create_app(settings_), raise_server_exceptions=False) as fast,
        TestClient(create_app(settings_, answer_hot_reads=False), raise_server_exceptions=False) as slow,
    ):
        yield fast, slow, answered


@pytest.fixture
def seeded(admin) -> dict[str, int]:
    alice = [
        insert_task(admin, "alice", "Buy milk", priority=3, tags=["Home", "shop"], due_at="2026-01-01T10:00:00Z"),
        insert_task(admin, "alice", "Write report", description="q3", completed=True, priority=1),
        insert_task(admin, "alice", "Call Bob", due_at="2030-06-01T08:30:00.123456+02:00", tags=["work"]),
    ]
    return {"alice": alice[0], "alice_done": alice[1], "bob": insert_task(admin, "bob", "Bob's own")}


def same_answer(fast: TestClient, slow: TestClient, path: str, headers: dict[str, str]) -> int:
    return same_response(fast, slow, path, headers).status_code


def same_response(fast: TestClient, slow: TestClient, path: str, headers: dict[str, str]) -> Response:
    """The fast lane's answer, once it is checked to be the other app's too."""
    one, other = fast.get(path, headers=headers), slow.get(path, headers=headers)
    assert (one.status_code, one.content) == (other.status_code, other.content), path
    assert _headers(one) == _headers(other), path
    return one


def _headers(response: Response) -> list[tuple[str, str]]:
    return sorted((name, value) for name, value in response.headers.multi_items() if name not in VARYING)


ALICE = bearer(token_for("alice"))


def list_queries(alice_task: int) -> list[str]:
    return [
        "",
        "limit=1",
        "limit=2&sort=title",
        "sort=-due&limit=2",
        "sort=priority",
        "status=completed",
        "status=open&q=milk",
        "q=%25",
        "tag=home",
        "tag=HOME&tag=shop",
        "priority=high&priority=low",
        "list_id=none",
        "list_id=7",
        "overdue=true",
        "due_before=2027-01-01T00:00:00Z&due_after=2020-01-01T00:00:00%2B01:00",
        "limit=1&limit=3",  # the last value counts
        "unknown=1&limit=2",
        "limit=0",
        "limit=abc",
        "limit=",
        "sort=bogus",
        "status=",
        "cursor=not-a-cursor",
        "cursor=" + "A" * 2000,
        "due_before=tomorrow",
        "due_before=2026-01-01%2010:00:00Z",
        "priority=urgent",
        "tag=" + "x" * 100,
        "q=" + "%00",
        "list_id=0",
        "list_id=-1",
        "overdue=maybe",
        f"tag={'&tag='.join(str(n) for n in range(25))}",
    ]


def test_list_answers_are_the_same_both_ways(lanes, seeded):
    fast, slow, answered = lanes
    statuses = {query: same_answer(fast, slow, f"{tasks_url('alice')}?{query}", ALICE) for query in list_queries(0)}
    assert statuses[""] == statuses["sort=-due&limit=2"] == 200
    assert statuses["limit=0"] == statuses["sort=bogus"] == statuses["cursor=not-a-cursor"] == 422
    # The lane answered every valid query, and left every invalid one to FastAPI.
    taken = {path.partition("?")[2] for path in answered}
    assert taken == {query for query, status in statuses.items() if status == 200}


def test_following_pages_is_the_same_both_ways(lanes, seeded):
    fast, slow, answered = lanes
    for sort in ("-created", "title", "-due", "priority"):
        path, seen = f"{tasks_url('alice')}?limit=1&sort={quote(sort)}", []
        while path:
            page = same_response(fast, slow, path, ALICE)
            assert page.status_code == 200
            seen += [task["id"] for task in page.json()]
            link = page.headers.get("link")
            path = link[1 : link.index(">")] if link else ""
        assert sorted(seen) == sorted([seeded["alice"], seeded["alice_done"], seeded["alice"] + 2]), sort
    assert sum("cursor=" in path for path in answered) >= 4 * 2  # the later pages took the lane too


def test_task_answers_are_the_same_both_ways(lanes, seeded):
    fast, slow, answered = lanes
    mine, bobs = seeded["alice"], seeded["bob"]
    version = same_response(fast, slow, task_url("alice", mine), ALICE).headers["etag"]
    cases = {
        "plain": (task_url("alice", mine), {}),
        "current version": (task_url("alice", mine), {"If-None-Match": version}),
        "weak current version": (task_url("alice", mine), {"If-None-Match": f"W/{version}"}),
        "any version": (task_url("alice", mine), {"If-None-Match": "*"}),
        "old version": (task_url("alice", mine), {"If-None-Match": '"999"'}),
        "list of versions": (task_url("alice", mine), {"If-None-Match": f'"998", {version}'}),
        "malformed version": (task_url("alice", mine), {"If-None-Match": "garbage"}),
        "long header": (task_url("alice", mine), {"If-None-Match": '"1"' + ", " * 600}),
        "bob's task": (task_url("alice", bobs), {}),
        "missing task": (task_url("alice", 10**12), {}),
        "largest id": (task_url("alice", 2**63 - 1), {}),
        "id too large": (task_url("alice", 2**63), {}),
        "id of 5000 digits": (task_url("alice", "1" * 5000), {}),  # past int()'s digit limit
        "id zero": (task_url("alice", 0), {}),
        "leading zero": (task_url("alice", f"0{mine}"), {}),
        "underscore": (task_url("alice", "1_0"), {}),
        "plus": (task_url("alice", "%2B1"), {}),
        "arabic digits": (task_url("alice", quote("\u0661")), {}),
        "not a number": (task_url("alice", "abc"), {}),
        "query ignored": (task_url("alice", mine) + "?limit=5&x=%ff", {}),
    }
    statuses = {name: same_answer(fast, slow, path, ALICE | extra) for name, (path, extra) in cases.items()}
    assert statuses["plain"] == statuses["old version"] == 200
    assert statuses["current version"] == statuses["any version"] == 304
    assert statuses["bob's task"] == statuses["missing task"] == 404
    assert statuses["id too large"] == statuses["id of 5000 digits"] == statuses["underscore"] == 422
    assert any(path.startswith(task_url("alice", mine) + "?") for path in answered)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (tasks_url("alice"), {}),  # no token
        (tasks_url("alice"), {"Authorization": "Bearer not-a-jwt"}),
        (tasks_url("alice"), {"Authorization": "Basic YTpi"}),
        (tasks_url("bob"), ALICE),  # another user's path
        (task_url("bob", 1), ALICE),
        (tasks_url(quote("alice/..", safe="")), ALICE),
        (tasks_url("x" * 300), ALICE),
        (tasks_url("alice") + "/", ALICE),
        ("/api//tasks", ALICE),
    ],
)
def test_refusals_are_the_same_both_ways(lanes, path, headers):
    fast, slow, _ = lanes
    assert same_answer(fast, slow, path, headers) >= 400


def test_other_methods_never_take_the_lane(lanes, seeded):
    fast, _, answered = lanes
    assert fast.head(tasks_url("alice"), headers=ALICE).status_code in (200, 405)
    assert fast.delete(task_url("alice", seeded["alice"]), headers=ALICE).status_code == 204
    assert answered == []


QUERY_WORDS = st.sampled_from(
    ["limit", "sort", "status", "q", "cursor", "list_id", "priority", "tag", "due_before", "overdue", "other"]
)
QUERY_VALUES = st.sampled_from(
    ["", "1", "0", "100", "101", "-1", "title", "-due", "priority", "open", "none", "true", "high", "Home",
     "2026-01-01T00:00:00Z", "%", "%25", "%ff", "a b", "AAAA", "\u0000"]
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(QUERY_WORDS, QUERY_VALUES), max_size=5))
def test_any_query_is_answered_the_same_both_ways(lanes, seeded, pairs):
    fast, slow, _ = lanes
    query = "&".join(f"{quote(name)}={quote(value)}" for name, value in pairs)
    same_answer(fast, slow, f"{tasks_url('alice')}?{query}", ALICE)
