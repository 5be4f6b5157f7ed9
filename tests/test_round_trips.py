"""Each request costs one database round trip: counted on the wire, not timed.

A loopback proxy between the API and PostgreSQL counts exchanges: each time the client sends
again after the server said ReadyForQuery (the end of its answer), that is one round trip.
"""

import asyncio
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.support.app import make_settings
from tests.support.tokens import bearer, token_for


class CountingProxy:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.exchanges = 0
        self._server_ready = True  # the startup message is the first exchange
        self._from_server = b""
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _serve(self) -> None:
        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _handle(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_unix_connection(self.socket_path)
        self._writers += [client_writer, server_writer]
        await asyncio.gather(
            self._pipe(client_reader, server_writer, from_client=True),
            self._pipe(server_reader, client_writer, from_client=False),
        )

    async def _pipe(self, reader, writer, *, from_client: bool) -> None:
        try:
            while data := await reader.read(65536):
                if from_client and self._server_ready:
                    self.exchanges += 1
                    self._server_ready = False
                elif not from_client:
                    self._watch_for_ready_for_query(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _watch_for_ready_for_query(self, data: bytes) -> None:
        """Frame the server's messages (a type byte, then a length) and spot 'Z'."""
        self._from_server += data
        while len(self._from_server) >= 5:
            length = int.from_bytes(self._from_server[1:5], "big")
            if len(self._from_server) < 1 + length:
                return
            if self._from_server[0:1] == b"Z":
                self._server_ready = True
            self._from_server = self._from_server[1 + length :]

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            await asyncio.sleep(0.05)  # let the pipes finish

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@pytest.fixture
def proxied(postgresql, login_role) -> Iterator[tuple[TestClient, CountingProxy]]:
    info = postgresql.info
    proxy = CountingProxy(f"{info.host}/.s.PGSQL.{info.port}")
    url = f"postgresql://{login_role}@127.0.0.1:{proxy.port}/{info.dbname}?sslmode=disable"
    settings = make_settings(url, db_pool_size=1, db_max_overflow=0, rate_limit_per_minute=0)
    with TestClient(create_app(settings)) as client:
        yield client, proxy
    proxy.close()


def round_trips(proxy: CountingProxy, call) -> tuple[int, object]:
    before = proxy.exchanges
    response = call()
    return proxy.exchanges - before, response


def test_every_route_costs_one_round_trip(proxied):
    client, proxy = proxied
    alice = bearer(token_for("alice"))
    client.get("/api/alice/tasks", headers=alice)  # the pool's connection is open now
    trips, created = round_trips(proxy, lambda: client.post("/api/alice/tasks", json={"title": "t"}, headers=alice))
    assert (created.status_code, trips) == (201, 1)
    url = f"/api/alice/tasks/{created.json()['id']}"
    for name, call, status in [
        ("list", lambda: client.get("/api/alice/tasks", headers=alice), 200),
        ("get", lambda: client.get(url, headers=alice), 200),
        ("update", lambda: client.put(url, json={"title": "u"}, headers=alice), 200),
        ("complete", lambda: client.patch(f"{url}/complete", headers=alice), 200),
        ("delete", lambda: client.delete(url, headers=alice), 204),
        ("not found", lambda: client.get(url, headers=alice), 404),
    ]:
        trips, response = round_trips(proxy, call)
        assert (name, response.status_code, trips) == (name, status, 1)


def test_lists_and_every_filter_and_sort_cost_one_round_trip(proxied):
    client, proxy = proxied
    alice = bearer(token_for("alice"))
    trips, created = round_trips(proxy, lambda: client.post("/api/alice/lists", json={"name": "Home"}, headers=alice))
    assert (created.status_code, trips) == (201, 1)
    list_url = f"/api/alice/lists/{created.json()['id']}"
    task = {"title": "t", "list_id": created.json()["id"], "due_at": "2026-01-01T00:00:00Z", "tags": ["a", "b"]}
    trips, response = round_trips(proxy, lambda: client.post("/api/alice/tasks", json=task, headers=alice))
    assert (response.status_code, trips) == (201, 1)
    every_filter = {
        "list_id": created.json()["id"],
        "priority": ["none", "high"],
        "tag": ["A", "b"],
        "due_before": "2027-01-01T00:00:00Z",
        "due_after": "2025-01-01T00:00:00Z",
        "overdue": "true",
        "status": "pending",
        "q": "t",
    }
    calls = [(f"sort {sort}", {**every_filter, "sort": sort}) for sort in ("due", "-due", "priority", "-priority")]
    calls += [("no list", {"list_id": "none"}), ("overdue false", {"overdue": "false"})]
    for name, params in calls:
        trips, response = round_trips(proxy, lambda p=params: client.get("/api/alice/tasks", params=p, headers=alice))
        assert (name, response.status_code, trips) == (name, 200, 1)
    assert len(client.get("/api/alice/tasks", params=calls[0][1], headers=alice).json()) == 1  # it did filter
    for name, call, status in [
        ("lists", lambda: client.get("/api/alice/lists", headers=alice), 200),
        ("get list", lambda: client.get(list_url, headers=alice), 200),
        ("rename", lambda: client.put(list_url, json={"name": "House"}, headers=alice), 200),
        ("duplicate", lambda: client.post("/api/alice/lists", json={"name": "house"}, headers=alice), 409),
        ("delete list", lambda: client.delete(list_url, headers=alice), 204),
        ("missing list", lambda: client.get(list_url, headers=alice), 404),
    ]:
        trips, response = round_trips(proxy, call)
        assert (name, response.status_code, trips) == (name, status, 1)


def test_a_rejected_token_costs_no_round_trip(proxied):
    client, proxy = proxied
    client.get("/api/alice/tasks", headers=bearer(token_for("alice")))
    trips, response = round_trips(proxy, lambda: client.get("/api/alice/tasks", headers=bearer("x")))
    assert (response.status_code, trips) == (401, 0)
    trips, response = round_trips(proxy, lambda: client.get("/api/bob/tasks", headers=bearer(token_for("alice"))))
    assert (response.status_code, trips) == (403, 0)


def test_a_failing_statement_costs_one_round_trip_too_and_is_rolled_back(proxied, admin):
    """The message is one implicit transaction: PostgreSQL rolls it back itself, no ROLLBACK."""
    client, proxy = proxied
    alice = bearer(token_for("alice"))
    client.get("/api/alice/tasks", headers=alice)
    admin.execute("alter table tasks add constraint no_x check (title <> 'x')")
    trips, response = round_trips(proxy, lambda: client.post("/api/alice/tasks", json={"title": "x"}, headers=alice))
    assert (response.status_code, trips) == (422, 1)
    assert admin.execute("select count(*) from tasks").fetchone() == (0,)
    trips, response = round_trips(proxy, lambda: client.get("/api/alice/tasks", headers=alice))
    assert (response.status_code, trips) == (200, 1), "the connection is clean for the next request"


def test_conditional_and_idempotent_requests_cost_one_round_trip_too(proxied):
    """If-Match tells 404 from 412 in the same statement; an Idempotency-Key's claim, creation
    and stored answer travel in the same flight as the rest of the transaction."""
    client, proxy = proxied
    alice = bearer(token_for("alice"))
    client.get("/api/alice/tasks", headers=alice)
    keyed = {**alice, "Idempotency-Key": "one-flight"}
    create = lambda: client.post("/api/alice/tasks", json={"title": "t"}, headers=keyed)  # noqa: E731
    trips, created = round_trips(proxy, create)
    assert (created.status_code, trips) == (201, 1)
    trips, replayed = round_trips(proxy, create)
    assert (replayed.status_code, replayed.headers.get("idempotent-replayed"), trips) == (201, "true", 1)
    url = f"/api/alice/tasks/{created.json()['id']}"
    for name, call, status in [
        ("current", lambda: client.put(url, json={"title": "u"}, headers={**alice, "If-Match": '"1"'}), 200),
        ("stale", lambda: client.put(url, json={"title": "v"}, headers={**alice, "If-Match": '"1"'}), 412),
        ("not modified", lambda: client.get(url, headers={**alice, "If-None-Match": '"2"'}), 304),
        ("stale delete", lambda: client.delete(url, headers={**alice, "If-Match": '"1"'}), 412),
    ]:
        trips, response = round_trips(proxy, call)
        assert (name, response.status_code, trips) == (name, status, 1)
