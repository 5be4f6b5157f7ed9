"""The TypeScript client in clients/typescript compiles against the document the app publishes.

openapi-typescript turns the app's OpenAPI document into types, and tsc type-checks
clients/typescript/client.ts against them, in a temporary directory (the repository is left as
it is). A contract change that would break a typed frontend (a renamed field, a changed type, a
removed header or route) fails here, not in a browser. Needs Node.js (CI has Node 20); the first
test of a session installs the pinned tools with `npm ci` when they are missing.
"""

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.main import create_app
from tests.support.app import make_settings
from tests.support.database import UNREACHABLE_DATABASE

CLIENT_DIR = Path(__file__).resolve().parent.parent / "clients" / "typescript"
CLIENT_FILES = ("client.ts", "tsconfig.json")
# The same options as `npm run generate` in clients/typescript/package.json. Without this one,
# openapi-typescript makes every field that has a default required, even in request bodies.
GENERATOR_OPTIONS = ("--default-non-nullable", "false")


def run(command: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {result.returncode}\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def node_bin() -> Path:
    """clients/typescript/node_modules/.bin, installed from the lock file once per session if missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js is not installed: the TypeScript client check did not run")
    bin_dir = CLIENT_DIR / "node_modules" / ".bin"
    if not ((bin_dir / "tsc").exists() and (bin_dir / "openapi-typescript").exists()):
        installed = run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, timeout=600)
        assert installed.returncode == 0, f"npm ci failed in {CLIENT_DIR}:\n{output(installed)}"
    return bin_dir


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # The document needs no database: the app is built, never started.
    return create_app(make_settings(UNREACHABLE_DATABASE)).openapi()


def generate(node_bin: Path, document: dict[str, Any], workdir: Path) -> None:
    """Write workdir/schema.d.ts from this document, as `npm run generate` does from the server."""
    source = workdir / "openapi.json"
    source.write_text(json.dumps(document))
    generated = run(
        [str(node_bin / "openapi-typescript"), str(source), "-o", str(workdir / "schema.d.ts"), *GENERATOR_OPTIONS],
        cwd=workdir,
    )
    assert generated.returncode == 0, f"openapi-typescript failed:\n{output(generated)}"


@pytest.fixture(scope="module")
def published_schema(node_bin: Path, document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The types generated from the app's document, once per module."""
    workdir = tmp_path_factory.mktemp("schema")
    generate(node_bin, document, workdir)
    return workdir / "schema.d.ts"


def client_copy(workdir: Path, schema: Path | None = None) -> Path:
    """client.ts and its tsconfig in workdir, beside a schema.d.ts (copied unless already there)."""
    for name in CLIENT_FILES:
        shutil.copy(CLIENT_DIR / name, workdir / name)
    if schema is not None:
        shutil.copy(schema, workdir / "schema.d.ts")
    return workdir


def typecheck(node_bin: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    return run([str(node_bin / "tsc"), "-p", str(workdir / "tsconfig.json"), "--pretty", "false"], cwd=workdir)


def test_the_client_compiles_against_the_published_document(node_bin, published_schema, tmp_path):
    result = typecheck(node_bin, client_copy(tmp_path, published_schema))

    assert result.returncode == 0, f"clients/typescript/client.ts does not compile:\n{output(result)}"


def test_the_client_calls_every_api_operation(document):
    """demo() and the functions it calls name each route, so tsc checks every one of them."""
    client = (CLIENT_DIR / "client.ts").read_text()

    for path, item in document["paths"].items():
        if path.startswith("/api/"):
            for method in item:
                assert f'paths["{path}"]["{method}"]' in client, f"{method.upper()} {path} is not in the client"


def test_reading_a_field_the_document_does_not_have_fails_to_compile(node_bin, published_schema, tmp_path):
    """The check can fail: a misspelt field is a compile error, reported in the file that has it."""
    workdir = client_copy(tmp_path, published_schema)
    (workdir / "drift.ts").write_text(
        'import type { Task } from "./client";\n\nexport const title = (task: Task): string => task.titel;\n'
    )

    result = typecheck(node_bin, workdir)

    assert result.returncode != 0, "tsc accepted task.titel"
    assert "drift.ts" in result.stdout and "titel" in result.stdout, output(result)
    assert "client.ts" not in result.stdout, output(result)


def _rename(schema: dict[str, Any], old: str, new: str) -> None:
    schema["properties"][new] = schema["properties"].pop(old)
    schema["required"] = [new if name == old else name for name in schema["required"]]


def _list_tasks_parameters(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]


# Each changes the document the way a careless contract change would, and names what the
# compiler must then complain about in client.ts.
DRIFTS = {
    "task-field-renamed": (
        lambda doc: _rename(doc["components"]["schemas"]["TaskRead"], "completed", "done"),
        "completed",
    ),
    "list-count-renamed": (
        lambda doc: _rename(doc["components"]["schemas"]["ListRead"], "open_count", "open"),
        "open_count",
    ),
    "priority-dropped": (
        lambda doc: doc["components"]["schemas"]["Priority"]["enum"].remove("high"),
        '"high"',
    ),
    # The client creates a task with every writable field and lists with every filter, so one
    # it does not know yet fails too.
    "new-task-field": (
        lambda doc: doc["components"]["schemas"]["TaskCreate"]["properties"].update(colour={"type": "string"}),
        "colour",
    ),
    "new-filter": (
        lambda doc: _list_tasks_parameters(doc).append(
            {"name": "starred", "in": "query", "required": False, "schema": {"type": "boolean"}}
        ),
        "starred",
    ),
    "list-route-removed": (
        lambda doc: doc["paths"].pop("/api/{user_id}/lists/{list_id}"),
        "/api/{user_id}/lists/{list_id}",
    ),
}


@pytest.mark.parametrize("drift", DRIFTS, ids=DRIFTS)
def test_the_client_stops_compiling_when_the_document_drifts(node_bin, document, tmp_path, drift):
    """The same client, against a document changed under it, fails to compile, in client.ts."""
    change, culprit = DRIFTS[drift]
    drifted = copy.deepcopy(document)
    change(drifted)
    generate(node_bin, drifted, tmp_path)

    result = typecheck(node_bin, client_copy(tmp_path))

    assert result.returncode != 0, f"the client compiled against a document with {drift}"
    assert "client.ts" in result.stdout and culprit in result.stdout, output(result)
