"""A stateful model test: two users interleave every task and list route at random.

An in-memory model holds each user's tasks (title, description, completion and when it came,
list, due date, priority, tags, version) and lists (name, version). After every step both
tables, as an administrator sees them past row-level security, must equal the model exactly,
and no response may ever carry a row of anyone but the caller. Users also try each other's
task and list ids, deleted ids and ids never issued: always a 404 on a route, the same 422 as
a task's `list_id`, and nothing changes. A rename or deletion of a list first names a stale
version (a 412, and nothing changes), and a list created under an Idempotency-Key is created
again: the first answer comes back, and nothing new is made.

Listing compares the API's answer with the model's: tasks through every filter (list, no list,
tag, priority, due before and after, overdue, status, search) and every sort, page by page
along `Link` until each task has come exactly once; lists with their counts. Due dates are
years in the past or the future, so that "overdue" does not depend on when the test runs.

One app and one client serve the whole run; each Hypothesis example starts by truncating the
tables, which is much cheaper than a fresh database per example.
"""

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
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

USERS = ("alice", "auth0|carol")  # the second one needs escaping in the path
HEADERS = {user: bearer(token_for(user)) for user in USERS}
SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# A small alphabet, so that searches find something, titles collide and sort, and case and
# LIKE's wildcards (`%`, `_`, the escape `\`) are exercised; ASCII only, so that Python's
# lower() is exactly what ILIKE and lower() compare.
ALPHABET = "aAbB %_\\"
texts = st.text(ALPHABET, max_size=8)
titles = st.text(ALPHABET, min_size=1, max_size=8)  # may be blank: then a 422
descriptions = st.one_of(st.just("absent"), st.none(), texts)
completions = st.sampled_from(["absent", True, False])
users = st.sampled_from(USERS)
OWNER = "owner"  # stands for the task's (former) owner: half the attempts on an id are theirs
actors = st.one_of(st.just(OWNER), users)
never_issued = st.integers(10**9, 2**63 - 1)
if_matches = st.sampled_from([None, "current", "*"])  # a stale one is tried first, every time

# Names and tags that clash ignoring case and surrounding spaces; a blank name is a 422.
names = st.sampled_from(["Home", "home", " Work ", "WORK", "errands", " "])
TAGS = ("home", "HOME", " work ", "urgent", "x")
tag_lists = st.lists(st.sampled_from(TAGS), max_size=2)  # a repeat ignoring case is a 422
PRIORITIES = ("none", "low", "medium", "high")  # in the order `sort=priority` sorts them
# Every instant here is years away from now: overdue or not is settled.
PAST = ("2001-02-03T04:05:06+02:00", "2001-02-03T02:05:06Z", "1999-12-31T23:59:59.999999-05:00")
FUTURE = ("2099-01-01T00:00:00Z", "2099-01-01T00:00:00.5+00:00", "2100-06-15T12:00:00-11:30")
NOW = datetime.now(UTC)
dues = st.sampled_from(["absent", None, *PAST, *FUTURE])
bounds = st.sampled_from([*PAST, *FUTURE, "2050-01-01T00:00:00+01:00"])
SORTS = ("created", "-created", "updated", "-updated", "title", "-title", "due", "-due", "priority", "-priority")
LINK = re.compile(r'<([^>]+)>; rel="next"')
SLACK = timedelta(seconds=1)  # between the test's clock and the database's, on the same machine


@dataclass(frozen=True)
class Task:
    owner: str
    title: str
    description: str | None
    completed: bool
    list_id: int | None = None
    due_at: datetime | None = None
    priority: str = "none"
    tags: tuple[str, ...] = ()
    completed_at: datetime | None = None
    version: int = 1

    @property
    def overdue(self) -> bool:
        return self.due_at is not None and self.due_at < NOW and not self.completed


@dataclass(frozen=True)
class TaskList:
    owner: str
    name: str
    version: int = 1


@dataclass(frozen=True)
class ListRef:
    """A list by its place, looked up when the step runs: the acting user's n-th list (`own`),
    or else the n-th list anyone ever made, deleted ones included."""

    n: int
    own: bool


def tasks_url(user: str) -> str:
    return f"/api/{quote(user, safe='')}/tasks"


def lists_url(user: str) -> str:
    return f"/api/{quote(user, safe='')}/lists"


def instant(text: str | None) -> datetime | None:
    """An answer's timestamp, which must be in UTC with a Z."""
    if text is None:
        return None
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def present(fields: dict[str, Any]) -> dict[str, Any]:
    """A body: "absent" leaves the field out."""
    return {name: value for name, value in fields.items() if value != "absent"}


def clashes(tags: Any) -> bool:
    return isinstance(tags, list) and len({tag.strip().lower() for tag in tags}) < len(tags)


@pytest.fixture
def fuzz_client(app_url: str) -> Iterator[TestClient]:
    """The rate limit (600/min by default) would cut a run of a few thousand requests short."""
    app = create_app(make_settings(app_url, rate_limit_per_minute=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_users_only_ever_see_and_change_their_own_tasks_and_lists(fuzz_client: TestClient, admin: psycopg.Connection):
    client = fuzz_client
    outcomes: Counter[tuple[str, int]] = Counter()  # (rule, status), for the guard at the end
    met: Counter[str] = Counter()  # what a run must have met not to pass vacuously

    class TasksAndLists(RuleBasedStateMachine):
        ids = Bundle("ids")  # every task id ever created, by anyone; deleted ones stay in
        list_refs = st.builds(ListRef, st.integers(0, 7), st.booleans())
        fields: ClassVar[dict[str, st.SearchStrategy[Any]]] = {  # of a task, as POST takes them
            "description": descriptions,
            "completed": completions,
            "list_id": st.one_of(st.just("absent"), st.none(), list_refs),
            "due_at": dues,
            "priority": st.sampled_from(["absent", *PRIORITIES]),
            "tags": st.one_of(st.just("absent"), tag_lists),
        }
        updates: ClassVar[dict[str, st.SearchStrategy[Any]]] = fields | {  # as PUT takes them
            "priority": st.sampled_from(["absent", *PRIORITIES, None]),  # null: a 422, never "none"
            "tags": st.one_of(st.sampled_from(["absent", "absent", None]), tag_lists),  # null: a 422, never []
        }
        filters: ClassVar[dict[str, st.SearchStrategy[Any]]] = {  # of GET .../tasks
            "status": st.sampled_from(["all", "pending", "completed"]),
            "q": st.text(ALPHABET, min_size=1, max_size=3),
            "list_id": st.one_of(st.just("none"), list_refs),
            "priority": st.lists(st.sampled_from(PRIORITIES), min_size=1, max_size=2),
            "tag": st.lists(st.sampled_from(TAGS), min_size=1, max_size=2),
            "due_before": bounds,
            "due_after": bounds,
            "overdue": st.booleans(),
        }

        def __init__(self) -> None:
            super().__init__()
            # Each example starts from empty tables (and those derived from them: cascade)
            # with ids from 1, so that Hypothesis, replaying it to shrink it, meets the same
            # responses again.
            admin.execute("truncate tasks, lists, idempotency_keys restart identity cascade")
            self.model: dict[int, Task] = {}
            self.owners: dict[int, str] = {}  # every task id ever created, deleted ones included
            self.lists: dict[int, TaskList] = {}
            self.list_owners: dict[int, str] = {}
            self.keys: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # -> (name, first answer)

        @initialize(
            target=ids, tasks=st.lists(st.tuples(users, titles, st.fixed_dictionaries(fields)), min_size=4, max_size=10)
        )
        def start_with_two_lists_and_some_tasks_each(self, tasks: list[tuple[str, str, dict[str, Any]]]) -> Any:
            """Enough rows from the start for filters and pages to have something to tell apart."""
            for user in USERS:
                for name in (f"{user}'s", "Home"):
                    self.make_list(user, name, None)
            created = (self.create(user, title, fields) for user, title, fields in tasks)
            return multiple(*(task_id for task_id in created if task_id is not None))

        # --- helpers ------------------------------------------------------------------

        def call(self, rule: str, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
            response = client.request(method, path, headers={**HEADERS[user], **kwargs.pop("headers", {})}, **kwargs)
            outcomes[(rule, response.status_code)] += 1
            assert response.status_code < 500, response.text
            if response.status_code in (200, 201):
                body = response.json()
                for row in body if isinstance(body, list) else [body]:
                    assert row["user_id"] == user, (user, row)  # never anyone else's task or list
            return response

        def assert_is_the_model(self, body: dict[str, Any]) -> None:
            seen = Task(
                owner=body["user_id"],
                title=body["title"],
                description=body["description"],
                completed=body["completed"],
                list_id=body["list_id"],
                due_at=instant(body["due_at"]),
                priority=body["priority"],
                tags=tuple(body["tags"]),
                completed_at=instant(body["completed_at"]),
                version=body["version"],
            )
            assert seen == self.model[body["id"]]

        def assert_is_the_list(self, body: dict[str, Any]) -> None:
            task_list = self.lists[body["id"]]
            held = [task for task in self.model.values() if task.list_id == body["id"]]
            counts = (len(held), sum(not task.completed for task in held))
            seen = (body["user_id"], body["name"], body["version"], body["task_count"], body["open_count"])
            assert seen == (task_list.owner, task_list.name, task_list.version, *counts)
            met["a list with tasks"] += counts[0] > 0

        def actor(self, actor: str, task_id: int) -> str:
            return self.owners[task_id] if actor == OWNER else actor

        def visible(self, user: str, task_id: int) -> bool:
            return task_id in self.model and self.model[task_id].owner == user

        def list_visible(self, user: str, list_id: int) -> bool:
            return list_id in self.lists and self.lists[list_id].owner == user

        def resolved(self, user: str, list_id: Any) -> Any:
            """A ListRef as the id it stands for (None if there is none); anything else as it is."""
            if not isinstance(list_id, ListRef):
                return list_id
            if list_id.own:
                ids = sorted(i for i, task_list in self.lists.items() if task_list.owner == user)
            else:
                ids = sorted(self.list_owners)
            return ids[list_id.n % len(ids)] if ids else None

        def assert_not_found(self, response: httpx.Response) -> None:
            assert response.status_code == 404, response.text
            assert response.headers["content-type"] == "application/problem+json"

        def assert_unknown_list(self, response: httpx.Response) -> None:
            """Another user's list, a deleted one and one never made: the same 422."""
            assert response.status_code == 422, response.text
            assert [error["loc"] for error in response.json()["errors"]] == [["body", "list_id"]]
            met["an unknown list_id"] += 1

        def completion(self, before: Task | None, after: Task, answer: dict[str, Any], started: datetime) -> Task:
            """`completed_at`: kept while the task stays completed, set when it becomes so, else null."""
            if not after.completed:
                return replace(after, completed_at=None)
            if before is not None and before.completed:
                return replace(after, completed_at=before.completed_at)
            completed_at = instant(answer["completed_at"])
            assert completed_at is not None and started - SLACK <= completed_at <= datetime.now(UTC) + SLACK
            return replace(after, completed_at=completed_at)

        def written(self, task: Task, fields: dict[str, Any]) -> Task:
            """The task with the fields sent; absent ones stay as they are."""
            sent = present(fields)
            if "due_at" in sent:
                sent["due_at"] = None if sent["due_at"] is None else datetime.fromisoformat(sent["due_at"])
            if "tags" in sent:
                sent["tags"] = tuple(tag.strip() for tag in sent["tags"])
            return replace(task, **sent)

        # --- tasks --------------------------------------------------------------------

        @rule(target=ids, user=users, title=titles, **fields)
        def create_task(self, user: str, title: str, **fields: Any) -> Any:
            task_id = self.create(user, title, fields)
            return multiple() if task_id is None else task_id

        def create(self, user: str, title: str, fields: dict[str, Any]) -> int | None:
            fields = fields | {"list_id": self.resolved(user, fields["list_id"])}
            started = datetime.now(UTC)
            response = self.call("create", user, "POST", tasks_url(user), json=present({"title": title, **fields}))
            if not title.strip() or clashes(fields["tags"]):
                assert response.status_code == 422, response.text
                return None
            if fields["list_id"] not in ("absent", None) and not self.list_visible(user, fields["list_id"]):
                self.assert_unknown_list(response)
                return None
            assert response.status_code == 201, response.text
            body = response.json()
            task_id = body["id"]
            assert task_id not in self.owners, "an id was reused"
            assert response.headers["location"] == f"{tasks_url(user)}/{task_id}"
            self.owners[task_id] = user
            task = self.written(Task(owner=user, title=title.strip(), description=None, completed=False), fields)
            self.model[task_id] = self.completion(None, task, body, started)
            self.assert_is_the_model(body)
            return task_id

        @rule(user=actors, task_id=ids, title=titles, **updates)
        def update_task(self, user: str, task_id: int, title: str, **fields: Any) -> None:
            user = self.actor(user, task_id)
            fields["list_id"] = self.resolved(user, fields["list_id"])
            started = datetime.now(UTC)
            body = present({"title": title, **fields})
            response = self.call("update", user, "PUT", f"{tasks_url(user)}/{task_id}", json=body)
            if not title.strip() or fields["priority"] is None or fields["tags"] is None or clashes(fields["tags"]):
                assert response.status_code == 422, response.text
                return
            if not self.visible(user, task_id):
                self.assert_not_found(response)
                return
            if fields["list_id"] not in ("absent", None) and not self.list_visible(user, fields["list_id"]):
                self.assert_unknown_list(response)
                return
            assert response.status_code == 200, response.text
            before = self.model[task_id]
            task = self.written(replace(before, title=title.strip(), version=before.version + 1), fields)
            self.model[task_id] = self.completion(before, task, response.json(), started)
            self.assert_is_the_model(response.json())

        @rule(user=actors, task_id=ids)
        def get_task(self, user: str, task_id: int) -> None:
            user = self.actor(user, task_id)
            response = self.call("get", user, "GET", f"{tasks_url(user)}/{task_id}")
            if not self.visible(user, task_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 200, response.text
            assert response.headers["etag"] == f'"{self.model[task_id].version}"'
            self.assert_is_the_model(response.json())

        @rule(user=actors, task_id=ids, completed=st.sampled_from([True, False, None]))
        def complete_task(self, user: str, task_id: int, completed: bool | None) -> None:
            user = self.actor(user, task_id)
            started = datetime.now(UTC)
            body = {} if completed is None else {"json": {"completed": completed}}  # no body: toggle
            response = self.call("complete", user, "PATCH", f"{tasks_url(user)}/{task_id}/complete", **body)
            if not self.visible(user, task_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 200, response.text
            before = self.model[task_id]
            after = not before.completed if completed is None else completed
            task = replace(before, completed=after, version=before.version + 1)
            self.model[task_id] = self.completion(before, task, response.json(), started)
            self.assert_is_the_model(response.json())

        @rule(user=actors, task_id=ids)
        def delete_task(self, user: str, task_id: int) -> None:
            user = self.actor(user, task_id)
            response = self.call("delete", user, "DELETE", f"{tasks_url(user)}/{task_id}")
            if not self.visible(user, task_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 204, response.text
            assert response.content == b""
            del self.model[task_id]

        @rule(
            user=users,
            sort=st.sampled_from([None, *SORTS]),
            filters=st.fixed_dictionaries(filters),
            pair=st.tuples(st.sampled_from(list(filters)), st.sampled_from(list(filters))),
        )
        def list_tasks(self, user: str, sort: str | None, filters: dict[str, Any], pair: tuple[str, str]) -> None:
            """Each filter alone, then two together (with more, almost every answer would be empty)."""
            for name, value in filters.items():
                self.check_listing(user, sort, None, {name: value})
            self.check_listing(user, sort, None, {name: filters[name] for name in pair})

        # Due and priority first: their walks are the intricate ones, and sampled_from favours its first values.
        @rule(
            user=users, key=st.sampled_from(["due", "priority", "created", "updated", "title"]), limit=st.integers(1, 2)
        )
        def page_through(self, user: str, key: str, limit: int) -> None:
            for sort in (key, f"-{key}"):
                self.check_listing(user, sort, limit, {})

        def check_listing(self, user: str, sort: str | None, limit: int | None, filters: dict[str, Any]) -> None:
            """Every page along the next links: each task the model expects, once, in order."""
            if "list_id" in filters:
                filters = filters | {"list_id": self.resolved(user, filters["list_id"]) or "none"}
            query = {"sort": sort, "limit": limit, **filters}
            query = {name: value for name, value in query.items() if value is not None}
            pages = self.walk("list", user, tasks_url(user), query, limit or 50)
            got = [task["id"] for page in pages for task in page]
            assert len(got) == len(set(got)), f"a task came twice: {got}"

            expected = [i for i, task in sorted(self.model.items()) if task.owner == user and matches(task, filters)]
            assert sorted(got) == expected, (got, expected)
            order = in_order(expected, self.model, sort or "-created")
            if order is not None:
                assert got == order, (got, order)
            for page in pages:
                for task in page:
                    self.assert_is_the_model(task)
            if sort in ("updated", "-updated"):  # the answer's own keys, in its order
                keys = [(instant(task["updated_at"]), task["id"]) for page in pages for task in page]
                assert keys == sorted(keys, reverse=sort == "-updated")
            for name in filters:
                met[f"{name} found a task"] += bool(got)
            if len(pages) > 1:
                met[f"pages sorted by {(sort or '-created').lstrip('-')}"] += 1

        def walk(self, rule: str, user: str, path: str, query: dict[str, Any], size: int) -> list[list[dict]]:
            """Follow `rel="next"` from the first page to the last: every page but the last is full."""
            response = self.call(rule, user, "GET", path, params=query)
            pages = []
            while True:
                assert response.status_code == 200, response.text
                pages.append(response.json())
                link = LINK.fullmatch(response.headers.get("link", ""))
                if link is None:
                    assert pages[-1] or len(pages) == 1, "an empty page after a next link"
                    return pages
                assert len(pages[-1]) == size, (size, pages)
                assert len(pages) <= 100, "the next links never end"
                response = self.call(rule, user, "GET", link[1])

        # --- lists --------------------------------------------------------------------

        @rule(user=users, name=names, key=st.sampled_from(["k1", None, "k2"]))
        def create_list(self, user: str, name: str, key: str | None) -> None:
            if self.make_list(user, name, key) and key is not None:
                # The client retries, say after a timeout: the first answer, and nothing new.
                self.make_list(user, f" {name.strip()} ", key)

        def make_list(self, user: str, name: str, key: str | None) -> bool:
            """POST the list; whether a new one was made."""
            headers = {} if key is None else {"Idempotency-Key": key}
            response = self.call("create list", user, "POST", lists_url(user), json={"name": name}, headers=headers)
            if not name.strip():
                assert response.status_code == 422, response.text
                return False
            if key is not None and (user, key) in self.keys:
                first_name, first_answer = self.keys[(user, key)]
                if first_name != name.strip():
                    assert response.status_code == 422, response.text  # the key was used for another list
                    return False
                assert response.status_code == 201, response.text
                assert response.headers["idempotent-replayed"] == "true"
                assert response.json() == first_answer  # the first answer, as it was then
                met["a replay"] += 1
                return False
            if self.name_taken(user, name):
                assert response.status_code == 409, response.text
                return False
            assert response.status_code == 201, response.text
            body = response.json()
            list_id = body["id"]
            assert list_id not in self.list_owners, "an id was reused"
            assert response.headers["location"] == f"{lists_url(user)}/{list_id}"
            assert response.headers["etag"] == '"1"'
            self.list_owners[list_id] = user
            self.lists[list_id] = TaskList(owner=user, name=name.strip())
            self.assert_is_the_list(body)
            if key is not None:
                self.keys[(user, key)] = (name.strip(), body)
            return True

        def name_taken(self, user: str, name: str, but: int | None = None) -> bool:
            """Another of the user's lists has this name, ignoring case."""
            folded = name.strip().lower()
            return any(
                task_list.owner == user and task_list.name.lower() == folded and list_id != but
                for list_id, task_list in self.lists.items()
            )

        def if_match(self, which: str | None, list_id: int) -> dict[str, str]:
            if which is None or list_id not in self.lists:
                return {}
            return {"If-Match": {"*": "*", "current": f'"{self.lists[list_id].version}"'}[which]}

        def refuses_a_stale_version(self, rule: str, user: str, method: str, list_id: int, **kwargs: Any) -> None:
            """The same request naming a version not reached yet: a 412, and nothing changes."""
            stale = {"If-Match": f'"{self.lists[list_id].version + 1}"'}
            response = self.call(rule, user, method, f"{lists_url(user)}/{list_id}", headers=stale, **kwargs)
            assert response.status_code == 412, response.text

        @rule(user=users, list_id=list_refs, name=names, if_match=if_matches)
        def rename_list(self, user: str, list_id: Any, name: str, if_match: str | None) -> None:
            list_id = self.resolved(user, list_id)
            if list_id is None:
                return
            if name.strip() and self.list_visible(user, list_id):
                self.refuses_a_stale_version("rename list", user, "PUT", list_id, json={"name": name})
            headers = self.if_match(if_match, list_id)
            path = f"{lists_url(user)}/{list_id}"
            response = self.call("rename list", user, "PUT", path, json={"name": name}, headers=headers)
            if not name.strip():
                assert response.status_code == 422, response.text
                return
            if not self.list_visible(user, list_id):
                self.assert_not_found(response)
                return
            if self.name_taken(user, name, but=list_id):
                assert response.status_code == 409, response.text
                return
            assert response.status_code == 200, response.text
            task_list = self.lists[list_id]
            self.lists[list_id] = replace(task_list, name=name.strip(), version=task_list.version + 1)
            assert response.headers["etag"] == f'"{task_list.version + 1}"'
            self.assert_is_the_list(response.json())

        @rule(user=users, list_id=list_refs, if_match=if_matches)
        def delete_list(self, user: str, list_id: Any, if_match: str | None) -> None:
            list_id = self.resolved(user, list_id)
            if list_id is None:
                return
            if self.list_visible(user, list_id):
                self.refuses_a_stale_version("delete list", user, "DELETE", list_id)
            headers = self.if_match(if_match, list_id)
            response = self.call("delete list", user, "DELETE", f"{lists_url(user)}/{list_id}", headers=headers)
            if not self.list_visible(user, list_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 204, response.text
            del self.lists[list_id]
            for task_id, task in self.model.items():  # its tasks stay, in no list, each at a new version
                if task.list_id == list_id:
                    self.model[task_id] = replace(task, list_id=None, version=task.version + 1)
                    met["a task moved out of a deleted list"] += 1

        @rule(user=users, list_id=list_refs)
        def get_list(self, user: str, list_id: Any) -> None:
            list_id = self.resolved(user, list_id)
            if list_id is None:
                return
            response = self.call("get list", user, "GET", f"{lists_url(user)}/{list_id}")
            if not self.list_visible(user, list_id):
                self.assert_not_found(response)
                return
            assert response.status_code == 200, response.text
            assert response.headers["etag"] == f'"{self.lists[list_id].version}"'
            self.assert_is_the_list(response.json())

        @rule(user=users, limit=st.sampled_from([None, 1, 2]))
        def list_lists(self, user: str, limit: int | None) -> None:
            pages = self.walk("lists", user, lists_url(user), {} if limit is None else {"limit": limit}, limit or 100)
            got = [task_list["id"] for page in pages for task_list in page]
            assert got == sorted(i for i, task_list in self.lists.items() if task_list.owner == user)  # oldest first
            for page in pages:
                for task_list in page:
                    self.assert_is_the_list(task_list)

        @rule(
            user=users,
            route=st.sampled_from(["/{id}", "/{id}/complete", "lists/{id}"]),
            method=st.sampled_from(["GET", "PUT", "DELETE"]),
            row_id=never_issued,
        )
        def an_id_never_issued_is_not_found(self, user: str, route: str, method: str, row_id: int) -> None:
            if route == "/{id}/complete":
                path, method, body = f"{tasks_url(user)}/{row_id}/complete", "PATCH", {}
            elif route == "/{id}":
                path, body = f"{tasks_url(user)}/{row_id}", {"title": "x"}
            else:
                path, body = f"{lists_url(user)}/{row_id}", {"name": "x"}
            sent = {"json": body} if method == "PUT" else {}
            self.assert_not_found(self.call("never issued", user, method, path, **sent))

        # --- after every step -----------------------------------------------------------

        @invariant()
        def the_tables_are_the_model(self) -> None:
            rows = admin.execute(
                "select id, user_id, title, description, completed, list_id, due_at, priority, tags,"
                " completed_at, version from tasks"
            ).fetchall()
            table = {row[0]: Task(*row[1:7], PRIORITIES[row[7]], tuple(row[8]), *row[9:]) for row in rows}
            assert table == self.model
            lists = admin.execute("select id, user_id, name, version from lists").fetchall()
            assert {row[0]: TaskList(*row[1:]) for row in lists} == self.lists

    run_state_machine_as_test(TasksAndLists, settings=SETTINGS)

    # A run that never succeeded at something, or never got a 404 or a 409, would pass vacuously.
    for rule_name in ("create", "list", "create list", "lists"):
        assert any(rule == rule_name and status < 300 for rule, status in outcomes), (rule_name, outcomes)
    for rule_name in ("get", "update", "complete", "delete", "rename list", "delete list", "get list"):
        assert any(rule == rule_name and status < 300 for rule, status in outcomes), (rule_name, outcomes)
        assert outcomes[(rule_name, 404)], (rule_name, outcomes)
    for rule_name, status in (("create list", 409), ("rename list", 409), ("rename list", 412), ("delete list", 412)):
        assert outcomes[(rule_name, status)], (rule_name, status, outcomes)
    events = ["an unknown list_id", "a replay", "a task moved out of a deleted list", "a list with tasks"]
    events += [f"{name} found a task" for name in ("list_id", "priority", "tag", "due_before", "due_after", "overdue")]
    events += [f"pages sorted by {key}" for key in ("due", "priority")]
    for event in events:
        assert met[event], (event, met)


def matches(task: Task, filters: dict[str, Any]) -> bool:
    """Whether the task answers the list query: every filter given holds."""
    status, q, list_id = filters.get("status"), filters.get("q"), filters.get("list_id")
    if (status == "pending" and task.completed) or (status == "completed" and not task.completed):
        return False
    if q is not None and q.lower() not in task.title.lower() and q.lower() not in (task.description or "").lower():
        return False
    if list_id is not None and task.list_id != (None if list_id == "none" else list_id):
        return False
    if filters.get("priority") and task.priority not in filters["priority"]:
        return False
    if not {tag.strip().lower() for tag in filters.get("tag", [])} <= {tag.lower() for tag in task.tags}:
        return False
    for name, before in (("due_before", True), ("due_after", False)):
        if name in filters:
            bound = datetime.fromisoformat(filters[name])
            if task.due_at is None or (task.due_at < bound) != before:
                return False
    return "overdue" not in filters or task.overdue == filters["overdue"]


def in_order(ids: list[int], model: dict[int, Task], sort: str) -> list[int] | None:
    """The ids in the order the sort gives them, ties by id; None where the model cannot tell
    (the database's clock and collation decide `updated` and `title`)."""
    descending = sort.startswith("-")
    if sort.lstrip("-") == "created":  # ids grow with creation time
        return sorted(ids, reverse=descending)
    if sort.lstrip("-") == "priority":
        return sorted(ids, key=lambda i: (PRIORITIES.index(model[i].priority), i), reverse=descending)
    if sort.lstrip("-") == "due":  # those without a due date last, in both directions
        dated = sorted((i for i in ids if model[i].due_at is not None), key=lambda i: (model[i].due_at, i))
        undated = sorted(i for i in ids if model[i].due_at is None)
        return dated[::-1] + undated[::-1] if descending else dated + undated
    return None
