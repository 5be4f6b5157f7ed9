"""What operators scrape: `GET /metrics`, in Prometheus' text format.

With several server processes (`taskapi serve --workers N`), each writes its values to files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, chosen when the module is first
imported), and every scrape, whichever process answers it, sums them all. With one process the
values live in its memory. Labels never hold a raw path or a user: `route` is the template,
e.g. `/api/{user_id}/tasks`.
"""

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# From a cached read to a transaction waiting on a lock: 1 ms to the statement timeout.
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_SECONDS = Histogram(
    "taskapi_http_request_duration_seconds",
    "Time to answer a request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=_SECONDS,
)
REQUESTS_IN_FLIGHT = Gauge(
    "taskapi_http_requests_in_flight", "Requests being answered now.", multiprocess_mode="livesum"
)
POOL_CONNECTIONS_IN_USE = Gauge(
    "taskapi_db_pool_connections_in_use",
    "Pooled database connections held by requests now, by database (primary, replica).",
    ["database"],
    multiprocess_mode="livesum",
)
POOL_REQUESTS_WAITING = Gauge(
    "taskapi_db_pool_requests_waiting",
    "Requests waiting for a pooled database connection now, by database.",
    ["database"],
    multiprocess_mode="livesum",
)
TRANSACTION_SECONDS = Histogram(
    "taskapi_db_transaction_duration_seconds",
    "Time from sending a request's transaction to PostgreSQL to having its answer.",
    buckets=_SECONDS,
)
UNAVAILABLE = Counter(
    "taskapi_unavailable_responses_total",
    "503 answers, by cause: pool_timeout, statement_timeout, unreachable, overloaded, conflict, identity_provider.",
    ["cause"],
)
TOO_MANY_REQUESTS = Counter(
    "taskapi_too_many_requests_responses_total",
    "429 answers, by reason: rate_limit (requests per minute), database_share (connections at once).",
    ["reason"],
)
JWKS_FETCHES = Counter(
    "taskapi_jwks_fetches_total", "Fetches of the identity provider's JWKS, by outcome.", ["outcome"]
)


_request_series: dict[tuple[str, str, int], Any] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One answered request (its series looked up once: `labels()` costs more than `observe()`)."""
    series = _request_series.get((method, route, status))
    if series is None:
        series = _request_series[(method, route, status)] = REQUEST_SECONDS.labels(method, route, str(status))
    series.observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type: every process's values when there are several."""
    if values.ValueClass is not values.MutexValue:  # multiprocess mode: the values are in files
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
