"""The OpenAPI document is fit for client generators.

A generator (openapi-typescript, openapi-generator, orval...) names functions after operation
ids, types after component schemas, and knows only the responses, headers and parameters that
are written down. So: fixed operation ids, schema names that are identifiers, an example on
every schema that its schema accepts, and every response a client can get (success, each error
as problem details, 304 and 412 of the conditional requests) documented with its headers.
tests/test_typescript_client.py compiles a real client against the same document.
"""

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from tests.api.support import LIST_ROUTES, ROUTES, api_operations, resolve
from tests.support.app import PROBLEM_JSON

API_OPERATIONS = {operation for _, _, operation, _ in ROUTES + LIST_ROUTES}
HEALTH_OPERATIONS = {"healthz", "readyz"}
ITEM_OPERATIONS = {operation for _, _, operation, item in ROUTES + LIST_ROUTES if item}
BODY_OPERATIONS = {"createTask", "updateTask", "completeTask", "createList", "updateList"}
CONDITIONAL_WRITES = {"updateTask", "deleteTask", "completeTask", "updateList", "deleteList"}  # If-Match, 412
SINGLE_ANSWERS = [  # responses that carry one task or list, and so its ETag
    ("createTask", "201"),
    ("getTask", "200"),
    ("getTask", "304"),
    ("updateTask", "200"),
    ("completeTask", "200"),
    ("createList", "201"),
    ("getList", "200"),
    ("updateList", "200"),
]
SUCCESS = {  # operation: (status, the schema of the body or of its items)
    "listTasks": ("200", "TaskRead"),
    "createTask": ("201", "TaskRead"),
    "getTask": ("200", "TaskRead"),
    "updateTask": ("200", "TaskRead"),
    "deleteTask": ("204", None),
    "completeTask": ("200", "TaskRead"),
    "listLists": ("200", "ListRead"),
    "createList": ("201", "ListRead"),
    "getList": ("200", "ListRead"),
    "updateList": ("200", "ListRead"),
    "deleteList": ("204", None),
}
REQUEST_HEADERS = [  # (operation, header parameter)
    ("createTask", "Idempotency-Key"),
    ("getTask", "If-None-Match"),
    ("updateTask", "If-Match"),
    ("deleteTask", "If-Match"),
    ("completeTask", "If-Match"),
    ("createList", "Idempotency-Key"),
    ("updateList", "If-Match"),
    ("deleteList", "If-Match"),
]
SCHEMA_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def all_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation in the document."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def responses(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(operationId, status, response) for every response of every operation."""
    for _, _, operation in all_operations(spec):
        for status, response in operation["responses"].items():
            yield operation["operationId"], status, response


def subschemas(schema: Any, pointer: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A schema and every schema nested in it, by JSON pointer (keywords, not property names)."""
    if not isinstance(schema, dict):
        return
    yield pointer, schema
    for keyword in ("items", "additionalProperties", "not", "contains"):
        yield from subschemas(schema.get(keyword), f"{pointer}/{keyword}")
    for keyword in ("properties", "patternProperties", "$defs"):
        for name, child in schema.get(keyword, {}).items():
            yield from subschemas(child, f"{pointer}/{keyword}/{name}")
    for keyword in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for index, child in enumerate(schema.get(keyword, [])):
            yield from subschemas(child, f"{pointer}/{keyword}/{index}")


def listing(items: list[Any]) -> str:
    """A failure message naming every item (pytest would cut a long list short)."""
    return "\n".join(["", *map(str, items)])


def examples_of(schema: dict[str, Any]) -> list[Any]:
    return [*schema.get("examples", []), *([schema["example"]] if "example" in schema else [])]


def documented_schemas(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema in the document: the components and the parameters' own."""
    for name, schema in spec["components"]["schemas"].items():
        yield from subschemas(schema, f"#/components/schemas/{name}")
    for method, path, operation in all_operations(spec):
        for parameter in operation.get("parameters", []):
            yield from subschemas(parameter["schema"], f"{method.upper()} {path} {parameter['name']}")


# --- names --------------------------------------------------------------------------------


def test_every_operation_has_one_of_the_fixed_operation_ids(spec):
    operation_ids = [operation.get("operationId") for _, _, operation in all_operations(spec)]

    assert sorted(operation_ids) == sorted(API_OPERATIONS | HEALTH_OPERATIONS)
    assert set(api_operations(spec)) == API_OPERATIONS


def test_schema_names_are_identifiers(spec):
    """No `Body_complete_task_api__user_id_...` or `TaskRead-Output`: each name becomes a type."""
    names = list(spec["components"]["schemas"])

    assert [name for name in names if not SCHEMA_NAME.match(name)] == []


# --- examples -----------------------------------------------------------------------------


def test_every_component_schema_has_an_example(spec):
    schemas = spec["components"]["schemas"]

    assert [name for name, schema in schemas.items() if not examples_of(schema)] == []


def test_every_example_is_valid_for_its_schema(spec):
    """Component examples, examples on their properties, and examples on the parameters."""
    checked, invalid = 0, []
    for pointer, schema in documented_schemas(spec):
        validator = jsonschema_rs.validator_for({**schema, "components": spec["components"]})
        for example in examples_of(schema):
            checked += 1
            invalid += [f"{pointer}: {example!r}: {error.message}" for error in validator.iter_errors(example)]

    assert checked >= len(spec["components"]["schemas"])
    assert invalid == [], listing(invalid)


# --- responses ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation_id", sorted(API_OPERATIONS))
def test_every_api_operation_documents_its_success(spec, operation_id):
    status, schema_name = SUCCESS[operation_id]
    response = api_operations(spec)[operation_id]["responses"].get(status)

    assert response is not None, (operation_id, status)
    if schema_name is None:
        assert "content" not in response
    else:
        schema = response["content"]["application/json"]["schema"]
        item = schema.get("items", schema)
        assert item == {"$ref": f"#/components/schemas/{schema_name}"}, (operation_id, schema)


def test_every_success_body_has_a_schema(spec):
    """An empty schema (`{}`) becomes `unknown` in a generated client."""
    untyped = [
        (operation_id, status)
        for operation_id, status, response in responses(spec)
        if status.startswith("2")
        for content in response.get("content", {}).values()
        if not content.get("schema")
    ]

    assert untyped == [], listing(untyped)


@pytest.mark.parametrize("operation_id", sorted(API_OPERATIONS))
def test_every_api_operation_documents_the_errors_it_can_return(spec, operation_id):
    expected = {"401", "403", "422", "429", "503"}
    if operation_id in ITEM_OPERATIONS:
        expected |= {"404"}
    if operation_id in BODY_OPERATIONS:
        expected |= {"400", "413", "415"}

    documented = set(api_operations(spec)[operation_id]["responses"])

    assert expected - documented == set()


@pytest.mark.parametrize("operation_id", sorted(CONDITIONAL_WRITES))
def test_conditional_writes_document_412(spec, operation_id):
    assert "412" in api_operations(spec)[operation_id]["responses"]


def test_get_task_documents_304_without_a_body(spec):
    response = api_operations(spec)["getTask"]["responses"].get("304")

    assert response is not None
    assert "content" not in response


@pytest.mark.parametrize("operation_id", ["createTask", "createList", "updateList"])
def test_creates_and_renames_document_409(spec, operation_id):
    """A key still in progress; for lists also a name the caller already uses."""
    assert "409" in api_operations(spec)[operation_id]["responses"]


def test_every_error_response_is_a_problem(spec):
    """Health checks included: readyz answers 503 with problem details too."""
    problem = {"$ref": "#/components/schemas/Problem"}
    not_problems = [
        (operation_id, status, list(response.get("content", {})))
        for operation_id, status, response in responses(spec)
        if int(status) >= 400 and response.get("content", {}).get(PROBLEM_JSON, {}).get("schema") != problem
    ]

    assert not_problems == [], listing(not_problems)


def test_task_read_publishes_version_as_a_required_integer(spec):
    task_read = resolve(spec, {"$ref": "#/components/schemas/TaskRead"})

    assert task_read["properties"]["version"]["type"] == "integer"
    assert "version" in task_read["required"]


# --- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("operation_id", "header"), REQUEST_HEADERS)
def test_request_headers_are_documented_as_optional_string_parameters(spec, operation_id, header):
    parameters = api_operations(spec)[operation_id].get("parameters", [])
    (parameter,) = [p for p in parameters if p["in"] == "header" and p["name"].lower() == header.lower()] or [None]

    assert parameter is not None, f"{operation_id} does not document {header}"
    assert parameter["name"] == header
    assert not parameter.get("required", False)
    assert parameter.get("description")
    schema = parameter["schema"]
    assert {"type": "string"} in [{"type": option.get("type")} for option in schema.get("anyOf", [schema])]


@pytest.mark.parametrize(("operation_id", "status"), SINGLE_ANSWERS)
def test_single_answers_document_their_etag(spec, operation_id, status):
    response = api_operations(spec)[operation_id]["responses"].get(status)

    assert response is not None, (operation_id, status)
    assert "ETag" in response.get("headers", {}), (operation_id, status)


def test_list_and_create_document_link_and_location(spec):
    operations = api_operations(spec)

    assert "Link" in operations["listTasks"]["responses"]["200"].get("headers", {})
    assert "Location" in operations["createTask"]["responses"]["201"].get("headers", {})


def test_error_responses_document_the_headers_a_client_acts_on(spec):
    """A 401 says how to authenticate; a 429 or a 503 says when to retry."""
    expected = {"401": "WWW-Authenticate", "429": "Retry-After", "503": "Retry-After"}
    missing = [
        (operation_id, status, expected[status])
        for operation_id, status, response in responses(spec)
        if status in expected and expected[status] not in response.get("headers", {})
    ]

    assert missing == [], listing(missing)


def test_every_response_header_has_a_schema_and_a_description(spec):
    """OpenAPI requires a schema on a header; without one a generator can only say `unknown`."""
    incomplete = [
        (operation_id, status, name)
        for operation_id, status, response in responses(spec)
        for name, header in response.get("headers", {}).items()
        if not (header.get("schema") or header.get("content")) or not header.get("description")
    ]

    assert incomplete == [], listing(incomplete)
