"""The published OpenAPI document describes the contract the other tests check."""

import pytest

from tests.api.support import LIST_ROUTES, ROUTES, api_operations, resolve
from tests.support.app import PROBLEM_JSON

OPERATIONS = {
    operation: (method.lower(), f"/api/{{user_id}}/{kind}" + suffix.replace("{id}", "{" + item_id + "}"))
    for kind, item_id, routes in (("tasks", "task_id", ROUTES), ("lists", "list_id", LIST_ROUTES))
    for method, suffix, operation, _ in routes
}
ITEM_OPERATIONS = [operation for _, _, operation, item in ROUTES + LIST_ROUTES if item]


def test_the_document_is_served_without_a_token(offline_client):
    response = offline_client.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["openapi"].startswith("3.")


def test_the_eleven_operations_have_their_ids_methods_and_paths(spec):
    assert set(api_operations(spec)) == set(OPERATIONS)
    for operation_id, (method, path) in OPERATIONS.items():
        assert spec["paths"][path][method]["operationId"] == operation_id


def test_a_bearer_security_scheme_is_declared(spec):
    schemes = spec["components"]["securitySchemes"]
    bearer = [s for s in schemes.values() if s.get("type") == "http" and s.get("scheme", "").lower() == "bearer"]

    assert len(bearer) == 1


def test_every_api_operation_requires_the_bearer_scheme(spec):
    (name,) = [n for n, s in spec["components"]["securitySchemes"].items() if s.get("scheme") == "bearer"]
    for operation_id, operation in api_operations(spec).items():
        assert {name: []} in operation.get("security", []), operation_id


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_every_api_operation_documents_401_403_and_422_as_problem_json(spec, operation_id):
    operation = api_operations(spec)[operation_id]

    for status in ("401", "403", "422"):
        assert status in operation["responses"], (operation_id, status)
        content = operation["responses"][status].get("content", {})
        assert PROBLEM_JSON in content, (operation_id, status)
        problem = resolve(spec, content[PROBLEM_JSON]["schema"])
        assert {"type", "title", "status", "detail"} <= set(problem["properties"])


@pytest.mark.parametrize("operation_id", ITEM_OPERATIONS)
def test_every_item_operation_documents_404_as_problem_json(spec, operation_id):
    response = api_operations(spec)[operation_id]["responses"].get("404")

    assert response is not None
    problem = resolve(spec, response["content"][PROBLEM_JSON]["schema"])
    assert {"type", "title", "status", "detail"} <= set(problem["properties"])


def test_the_422_problem_documents_the_errors_list(spec):
    content = api_operations(spec)["createTask"]["responses"]["422"]["content"][PROBLEM_JSON]
    errors = resolve(spec, content["schema"])["properties"]["errors"]
    items = next(option for option in errors.get("anyOf", [errors]) if option.get("type") == "array")["items"]

    assert {"loc", "msg", "type"} <= set(resolve(spec, items)["properties"])


def test_the_success_responses_are_documented(spec):
    operations = api_operations(spec)

    assert "200" in operations["listTasks"]["responses"]
    assert "Link" in operations["listTasks"]["responses"]["200"]["headers"]
    assert "201" in operations["createTask"]["responses"]
    assert "Location" in operations["createTask"]["responses"]["201"]["headers"]
    assert "200" in operations["getTask"]["responses"]
    assert "200" in operations["updateTask"]["responses"]
    assert "204" in operations["deleteTask"]["responses"]
    assert "200" in operations["completeTask"]["responses"]
    assert "Link" in operations["listLists"]["responses"]["200"]["headers"]
    assert "Location" in operations["createList"]["responses"]["201"]["headers"]
    assert "204" in operations["deleteList"]["responses"]


def test_the_health_checks_need_no_token(spec):
    for path in ("/healthz", "/readyz"):
        assert not spec["paths"][path]["get"].get("security"), path
