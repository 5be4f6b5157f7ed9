"""A frontend's typical session against a running server, for tests that drive real processes."""

import random

import httpx


def session_problems(base: str, user: str, headers: dict[str, str], rounds: int) -> list[str]:
    """One user's session, `rounds` times: create (and retry with the same Idempotency-Key), edit
    with If-Match (then again, stale), list, read, complete; every problem seen, as text. Keyed
    creates and conditional edits send several statements per transaction; run past psycopg's
    prepare threshold (5) they also show that no statement is ever prepared behind a pooler."""
    problems = []
    # Each user's own order of queries, so that connections prepare them in different orders.
    shuffle = random.Random(user).shuffle
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for round_number in range(rounds):
            body, key = {"title": f"{user} task {round_number}"}, {"Idempotency-Key": f"{user}-{round_number}"}
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
    return problems
