"""A real `taskapi serve` process on a database of its own, shared by a module's race tests.

Races need real sockets and a real server process; starting one per test costs more than the
tests themselves, so a module starts one, on its own clone of the migrated template database.
Each test then works on tasks (and users) of its own.
"""

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from tests.support.database import cloned_database
from tests.support.servers import serving
from tests.support.tokens import JWT_SECRET, bearer, token_for


@dataclass(frozen=True)
class LiveServer:
    base: str
    admin_url: str  # the superuser, past every policy
    app_url: str  # the least-privileged login role the server itself uses

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=bearer(token_for(user)), timeout=30)

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True)


@contextmanager
def live_server(pg_template, login_role: str, cwd: Path, **env: str) -> Iterator[LiveServer]:
    """A fresh clone of the template database and `taskapi serve` on it (extra env: `env`)."""
    with cloned_database(pg_template, "taskapi_live") as urls:
        admin_url, app_url = urls["admin_url"], urls["app_url"]
        settings = {"DATABASE_URL": app_url, "JWT_SECRET": JWT_SECRET, "RATE_LIMIT_PER_MINUTE": "0", **env}
        with serving(settings, cwd) as (base, _):
            yield LiveServer(base=base, admin_url=admin_url, app_url=app_url)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read off a raw socket."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True)
class Call:
    """One request to send in a race."""

    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def at_once(server: LiveServer, user: str, calls: list[Call]) -> list[Answer]:
    """Send each call on its own connection, all completed at the same instant.

    Each request is written whole but for its last byte; once every connection is ready, the
    last bytes go out together, so the server reads all the requests in the same instant
    instead of one thread's scheduling apart (a race that needs overlap otherwise rarely gets it).
    """
    barrier = threading.Barrier(len(calls))
    host, port = urlsplit(server.base).hostname, urlsplit(server.base).port

    def run(call: Call) -> Answer:
        body = json.dumps(call.body).encode() if call.body is not None else b""
        headers = {
            "Host": f"{host}:{port}",
            **bearer(token_for(user)),
            "Content-Length": str(len(body)),
            "Connection": "close",
            **({"Content-Type": "application/json"} if call.body is not None else {}),
            **call.headers,
        }
        head = f"{call.method} {call.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = head.encode() + b"\r\n" + body
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(request[:-1])
            barrier.wait(timeout=10)
            sock.sendall(request[-1:])
            response = http.client.HTTPResponse(sock)
            response.begin()
            content = response.read()
            return Answer(response.status, httpx.Headers(response.getheaders()), content)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def warm_up(server: LiveServer, user: str, connections: int) -> None:
    """Make the server open `connections` database connections now, not during a race."""
    answers = at_once(server, user, [Call("GET", f"/api/{user}/tasks")] * connections)
    assert [answer.status_code for answer in answers] == [200] * connections
