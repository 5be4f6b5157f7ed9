"""A frontend's typical session against a running server, for tests that drive real processes."""

import random

import httpx


def session_problems(base: str, user: str, headers: dict[str, str], rounds: int) -> list[str]:
    """One user's session: a list, then `rounds` times: create a task in it with a due date, a
    priority and tags (and retry with the same Idempotency-Key), edit with If-Match (then again,
    stale), list, filter, read, complete; at the end the list's counts, then the list deleted with
    its tasks kept. Every problem seen, as text. Keyed
    creates and conditional edits send several statements per transaction; run past psycopg's
    prepare threshold (5) they also show that no statement is ever prepared behind a pooler."""
    problems = []
    # Each user's own order of queries, so that connections prepare them in different orders.
    shuffle = random.Random(user).shuffle
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        made = client.post(f"/api/{user}/lists", json={"name": "Errands"}, headers={"Idempotency-Key": "list"})
        if made.status_code != 201:
            return [f"create list {made.status_code} {made.text}"]
        list_id = made.json()["id"]
        for round_number in range(rounds):
            body = {
                "title": f"{user} task {round_number}",
                "list_id": list_id,
                "due_at": f"2026-12-{round_number % 28 + 1:02d}T09:00:00+01:00",
                "priority": ["low", "high"][round_number % 2],
                "tags": ["Shop", f"round {round_number}"],
            }
            key = {"Idempotency-Key": f"{user}-{round_number}"}
            created = client.post(f"/api/{user}/tasks", json=body, headers=key)
            if created.status_code != 201:
                problems.append(f"create {created.status_code} {created.text}")
                continue
            task_id = created.json()["id"]
            retried = client.post(f"/api/{user}/tasks", json=body, headers=key)
            if (retried.status_code, retried.json().get("id")) != (201, task_id):
                problems.append(f"retried create {retried.status_code} {retried.text}")
            first_match = {"If-Match": created.headers["etag"]}
            edited = client.put(f"/api/{user}/tasks/{task_id}", json=body, headers=first_match)
            stale = client.put(f"/api/{user}/tasks/{task_id}", json=body, headers=first_match)
            if (edited.status_code, stale.status_code) != (200, 412):
                problems.append(f"If-Match edits {edited.status_code} then {stale.status_code}")
            calls = [
                lambda: client.get(f"/api/{user}/tasks", params={"limit": 100}),
                lambda: client.get(
                    f"/api/{user}/tasks", params={"list_id": list_id, "tag": "shop", "sort": "due", "limit": 100}
                ),
                lambda: client.get(f"/api/{user}/tasks/{task_id}"),  # noqa: B023 (called right away)
                lambda: client.patch(f"/api/{user}/tasks/{task_id}/complete"),  # noqa: B023
            ]
            shuffle(calls)
            for response in (call() for call in calls):
                if response.status_code != 200:
                    problems.append(f"{response.request.method} {response.status_code} {response.text}")
                    continue
                body = response.json()
                for task in body if isinstance(body, list) else [body]:
                    if task["user_id"] != user:
                        problems.append(f"{user} saw a task of {task['user_id']}")
        problems += _list_problems(client, user, list_id, rounds)
    return problems


def _list_problems(client: httpx.Client, user: str, list_id: int, rounds: int) -> list[str]:
    """The list counts every task and none open (each was completed once); deleting it keeps them."""
    problems = []
    the_list = client.get(f"/api/{user}/lists/{list_id}")
    counts = (the_list.status_code, the_list.json().get("task_count"), the_list.json().get("open_count"))
    if counts != (200, rounds, 0):
        problems.append(f"list counts {counts}")
    deleted = client.delete(f"/api/{user}/lists/{list_id}", headers={"If-Match": the_list.headers.get("etag", "")})
    kept = client.get(f"/api/{user}/tasks", params={"list_id": "none", "limit": 100})
    if (deleted.status_code, kept.status_code, len(kept.json())) != (204, 200, rounds):
        problems.append(f"list delete {deleted.status_code}, then {len(kept.json())} tasks in no list")
    return problems
