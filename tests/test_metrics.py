"""GET /metrics in one process: what each series counts, and what it never holds."""

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from tests.support.app import close_offline, create_task, make_settings, offline_test_client
from tests.support.tokens import bearer, token_for


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_template_and_status_never_by_path(app_url):
    settings = make_settings(app_url, rate_limit_per_minute=0)
    with TestClient(create_app(settings)) as client:
        before = samples(client)
        task = create_task(client, "carol-the-user")
        client.get(f"/api/carol-the-user/tasks/{task['id']}", headers=bearer(token_for("carol-the-user")))
        client.get("/api/carol-the-user/tasks/999999", headers=bearer(token_for("carol-the-user")))
        after = samples(client)
        text = client.get("/metrics").text

    count = "taskapi_http_request_duration_seconds_count"
    item = "/api/{user_id}/tasks/{task_id}"
    assert value(after, count, method="POST", route="/api/{user_id}/tasks", status="201") == (
        value(before, count, method="POST", route="/api/{user_id}/tasks", status="201") + 1
    )
    for status in ("200", "404"):
        assert value(after, count, method="GET", route=item, status=status) == (
            value(before, count, method="GET", route=item, status=status) + 1
        )
    transactions = "taskapi_db_transaction_duration_seconds_count"
    assert value(after, transactions) == value(before, transactions) + 3
    assert "carol-the-user" not in text and f"/tasks/{task['id']}" not in text  # no user, no raw path


def test_429s_are_counted_by_reason_and_metrics_themselves_are_never_limited(app_url):
    settings = make_settings(app_url, rate_limit_per_minute=2)
    with TestClient(create_app(settings)) as client:
        before = samples(client)
        statuses = [client.get("/api/dave/tasks", headers=bearer(token_for("dave"))).status_code for _ in range(4)]
        for _ in range(5):
            assert client.get("/metrics").status_code == 200  # no token, no limit
        after = samples(client)

    assert statuses == [200, 200, 429, 429]
    name = "taskapi_too_many_requests_responses_total"
    assert value(after, name, reason="rate_limit") == value(before, name, reason="rate_limit") + 2


def test_503s_are_counted_by_cause():
    client = offline_test_client(db_connect_timeout_seconds=0.1)
    try:
        before = samples(client)
        response = client.get("/api/erin/tasks", headers=bearer(token_for("erin")))
        after = samples(client)
    finally:
        close_offline(client)

    assert response.status_code == 503
    name = "taskapi_unavailable_responses_total"
    assert value(after, name, cause="unreachable") == value(before, name, cause="unreachable") + 1


def test_metrics_can_be_turned_off(app_url):
    with TestClient(create_app(make_settings(app_url, metrics_enabled=False))) as client:
        assert client.get("/metrics").status_code == 404
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]
