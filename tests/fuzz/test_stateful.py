"""A stateful model test: three users interleave all six routes at random.

An in-memory model holds each user's tasks (id -> title, description, completed). After
every step the table, as an administrator sees it past row-level security, must equal the
model exactly, and no response may ever carry a task of anyone but the caller. Users also
try each other's task ids, deleted ids and ids never issued: always a 404, and nothing changes.

One app and one client serve the whole run; each Hypothesis example starts by truncating the
table, which is much cheaper than a fresh database per example.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from api.main import create_app
from tests.support.app import make_settings
from tests.support.tokens import bearer, token_for

USERS = ("alice", "bob", "auth0|carol")  # the last one needs escaping in the path
HEADERS = {user: bearer(token_for(user)) for user in USERS}
SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# A small alphabet, so that searches find something, titles collide and sort, and case and
# LIKE's wildcards (`%`, `_`, the escape `\`) are exercised; ASCII only, so that Python's
# lower() is exactly what ILIKE compares.
ALPHABET = "aAbB %_\\"
texts = st.text(ALPHABET, max_size=8)
titles = st.text(ALPHABET, min_size=1, max_size=8)  # may be blank: then a 422
descriptions = st.one_of(st.just("absent"), st.none(), texts)
completions = st.sampled_from(["absent", True, False])
users = st.sampled_from(USERS)
OWNER = "owner"  # stands for the task's (former) owner: half the attempts on an id are theirs
actors = st.one_of(st.just(OWNER), users)
never_issued = st.integers(10**9, 2**63 - 1)


@dataclass(frozen=True)
class Task:
    owner: str
    title: str
    description: str | None
    completed: bool


def tasks_url(user: str) -> str:
    return f"/api/{quote(user, safe='')}/tasks"


def writes(title: str, description: Any, completed: Any) -> dict[str, Any]:
    """A create or update body: "absent" leaves the field out."""
    body: dict[str, Any] = {"title": title}
    if description != "absent":
        body["description"] = description
    if completed != "absent":
        body["completed"] = completed
    return body


@pytest.fixture
def fuzz_client(app_url: str) -> Iterator[TestClient]:
    """The rate limit (600/min by default) would cut a run of a few thousand requests short."""
    app = create_app(make_settings(app_url, rate_limit_per_minute=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_users_only_ever_see_and_change_their_own_tasks(fuzz_client: TestClient, admin: psycopg.Connection):
    client = fuzz_client
    outcomes: Counter[tuple[str, int]] = Counter()  # (rule, status), for the guard at the end

    class Tasks(RuleBasedStateMachine):
        ids = Bundle("ids")  # every id ever created, by anyone; deleted ones stay in

        def __init__(self) -> None:
            super().__init__()
            self.model: dict[int, Task] = {}
            self.owners: dict[int, str] = {}  # every id ever created, deleted ones included

        @initialize(target=ids)
        def start_with_a_task_each(self) -> Any:
            admin.execute("truncate tasks restart identity")
            return multiple(*(self.create(user, f"{user}'s first", "absent", "absent") for user in USERS))

        # --- helpers ------------------------------------------------------------------

        def call(self, rule: str, user: str, method: str, suffix: str = "", **kwargs: Any) -> httpx.Response:
            response = client.request(method, tasks_url(user) + suffix, headers=HEADERS[user], **kwargs)
            outcomes[(rule, response.status_code)] += 1
            assert response.status_code < 500, response.text
            if response.status_code in (200, 201):
                body = response.json()
                for task in body if isinstance(body, list) else [body]:
                    assert task["user_id"] == user, (user, task)  # never anyone else's task
            return response

        def assert_is_the_model(self, body: dict[str, Any]) -> None:
            task = self.model[body["id"]]
            seen = (body["user_id"], body["title"], body["description"], body["completed"])
            assert seen == (task.owner, task.title, task.description, task.completed)

        def actor(self, actor: str, task_id: int) -> str:
            return self.owners[task_id] if actor == OWNER else actor

        def visible(self, user: str, task_id: int) -> bool:
            return task_id in self.model and self.model[task_id].owner == user

        def assert_not_found(self, response: httpx.Response) -> None:
            assert response.status_code == 404, response.text
            assert response.headers["content-type"] == "application/problem+json"

        # --- the six routes -----------------------------------------------------------

        @rule(target=ids, user=users, title=titles, description=descriptions, completed=completions)
        def create_task(self, user: str, title: str, description: Any, completed: Any) -> Any:
            task_id = self.create(user, title, description, completed)
            return multiple() if task_id is None else task_id

        def create(self, user: str, title: str, description: Any, completed: Any) -> int | None:
            response = self.call("create", user, "POST", json=writes(title, description, completed))
            if not title.strip():
                assert response.status_code == 422, response.text
                return None
            assert response.status_code == 201, response.text
            task_id = response.json()["id"]
            assert task_id not in self.owners, "an id was reused"
            assert response.headers["location"] == f"{tasks_url(user)}/{task_id}"
            self.owners[task_id] = user
            self.model[task_id] = Task(
                owner=user,
                title=title.strip(),
                description=None if description == "absent" else description,
                completed=False if completed == "absent" else completed,
            )
            self.assert_is_the_model(response.json())
            return task_id

        @rule(
            user=users,
            status=st.sampled_from([None, "all", "pending", "completed"]),
            sort=st.sampled_from([None, "created", "-created", "updated", "-updated", "title", "-title"]),
            q=st.one_of(st.none(), st.text(ALPHABET, min_size=1, max_size=3)),
            limit=st.one_of(st.none(), st.integers(1, 4)),
        )
        def list_tasks(self, user: str, status: str | None, sort: str | None, q: str | None, limit: int | None):
            params = {"status": status, "sort": sort, "q": q, "limit": limit}
            response = self.call("list", user, "GET", params={k: v for k, v in params.items() if v is not None})
            assert response.status_code == 200, response.text

            def matches(task: Task) -> bool:
                if (status == "pending" and task.completed) or (status == "completed" and not task.completed):
                    return False
                return q is None or q.lower() in task.title.lower() or q.lower() in (task.description or "").lower()

            expected = sorted(i for i, task in self.model.items() if task.owner == user and matches(task))
            size = limit or 50
            page = response.json()
            got = [task["id"] for task in page]
            assert len(got) == min(size, len(expected)), (got, expected)
            assert set(got) <= set(expected), (got, expected)
            if sort in (None, "created", "-created"):  # ids grow with creation time
                assert got == (expected if sort == "created" else expected[::-1])[:size]
            for task in page:
                self.assert_is_the_model(task)
            assert ("link" in response.headers) == (len(expected) > size)

        @rule(user=actors, task_id=ids)
        def get_task(self, user: str, task_id: int) -> None:
            user = self.actor(user, task_id)
            response = self.call("get", user, "GET", f"/{task_id}")
            if not self.visible(user, task_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 200, response.text
            self.assert_is_the_model(response.json())

        @rule(user=actors, task_id=ids, title=titles, description=descriptions, completed=completions)
        def update_task(self, user: str, task_id: int, title: str, description: Any, completed: Any) -> None:
            user = self.actor(user, task_id)
            response = self.call("update", user, "PUT", f"/{task_id}", json=writes(title, description, completed))
            if not title.strip():
                assert response.status_code == 422, response.text
                return
            if not self.visible(user, task_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 200, response.text
            task = replace(self.model[task_id], title=title.strip())  # absent fields stay as they are
            if description != "absent":
                task = replace(task, description=description)
            if completed != "absent":
                task = replace(task, completed=completed)
            self.model[task_id] = task
            self.assert_is_the_model(response.json())

        @rule(user=actors, task_id=ids, completed=st.sampled_from([True, False, None]))
        def complete_task(self, user: str, task_id: int, completed: bool | None) -> None:
            user = self.actor(user, task_id)
            body = {} if completed is None else {"json": {"completed": completed}}  # no body: toggle
            response = self.call("complete", user, "PATCH", f"/{task_id}/complete", **body)
            if not self.visible(user, task_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 200, response.text
            task = self.model[task_id]
            self.model[task_id] = replace(task, completed=not task.completed if completed is None else completed)
            self.assert_is_the_model(response.json())

        @rule(user=actors, task_id=ids)
        def delete_task(self, user: str, task_id: int) -> None:
            user = self.actor(user, task_id)
            response = self.call("delete", user, "DELETE", f"/{task_id}")
            if not self.visible(user, task_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 204, response.text
            assert response.content == b""
            del self.model[task_id]

        @rule(user=users, method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]), task_id=never_issued)
        def an_id_never_issued_is_not_found(self, user: str, method: str, task_id: int) -> None:
            suffix = f"/{task_id}/complete" if method == "PATCH" else f"/{task_id}"
            body = {"json": {"title": "x"}} if method == "PUT" else {}
            self.assert_not_found(self.call("never issued", user, method, suffix, **body))

        # --- after every step -----------------------------------------------------------

        @invariant()
        def the_table_is_the_model(self) -> None:
            rows = admin.execute("select id, user_id, title, description, completed from tasks").fetchall()
            table = {row[0]: Task(owner=row[1], title=row[2], description=row[3], completed=row[4]) for row in rows}
            assert table == self.model

    run_state_machine_as_test(Tasks, settings=SETTINGS)

    # A run that never succeeded at something, or never got a 404, would pass vacuously.
    for rule_name in ("create", "list", "get", "update", "complete", "delete"):
        assert any(rule == rule_name and status < 300 for rule, status in outcomes), (rule_name, outcomes)
        if rule_name not in ("create", "list"):
            assert outcomes[(rule_name, 404)], (rule_name, outcomes)
