"""GET /metrics from a real `taskapi serve --workers 2`: every scrape counts every worker's requests."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import serving
from tests.support.tokens import JWT_SECRET, bearer, token_for

LIST = "/api/{user_id}/tasks"
REQUEST_FAMILY = "taskapi_http_request_duration_seconds"


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, on a connection of its own (so any worker may answer it)."""
    response = httpx.get(f"{base}/metrics", headers={"Connection": "close"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests_counted(samples: dict, route: str, status: str) -> float:
    key = (
        "taskapi_http_request_duration_seconds_count",
        frozenset({("method", "GET"), ("route", route), ("status", status)}),
    )
    return samples.get(key, 0.0)


def requests_per_worker(directory: Path) -> dict[str, float]:
    """List requests each worker counted, read from its own file in the multiprocess directory."""
    counts = {}
    for path in directory.glob("histogram_*.db"):
        for metric in MultiProcessCollector.merge([str(path)]):
            if metric.name == REQUEST_FAMILY:
                samples = [s for s in metric.samples if s.name.endswith("_count") and s.labels["route"] == LIST]
                counts[path.stem] = sum(s.value for s in samples)
    return counts


def test_every_scrape_sums_the_workers_and_the_counters_move(database, tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        "DATABASE_URL": database["app_url"],
        "JWT_SECRET": JWT_SECRET,
        "RATE_LIMIT_PER_MINUTE": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),  # an operator's own directory is used as it is
    }
    alice = bearer(token_for("alice"))
    with serving(env, tmp_path, "--workers", "2") as (base, output):
        before = scrape(base)
        sent = 0
        # A connection each: the kernel spreads them over the workers, until both have answered some.
        while len([n for n in requests_per_worker(metrics_dir).values() if n > 0]) < 2 and sent < 400:
            with ThreadPoolExecutor(4) as pool:
                statuses = list(pool.map(lambda _: get_list(base, alice), range(10)))
            assert statuses == [200] * 10
            sent += 10
        httpx.get(f"{base}/api/alice/tasks/999", headers=alice)  # a 404
        per_worker = requests_per_worker(metrics_dir)
        scrapes = [scrape(base) for _ in range(8)]
        started = "".join(output).count("Application startup complete")

    assert started == 2
    assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker
    assert requests_counted(before, LIST, "200") == 0
    for samples in scrapes:  # whichever worker answered, it counted both workers' requests
        assert requests_counted(samples, LIST, "200") == sent
        assert requests_counted(samples, "/api/{user_id}/tasks/{task_id}", "404") == 1
        assert samples[("taskapi_db_transaction_duration_seconds_count", frozenset())] == sent + 1
        assert samples[("taskapi_http_requests_in_flight", frozenset())] == 1  # the scrape itself
        assert samples[("taskapi_db_pool_connections_in_use", frozenset({("database", "primary")}))] == 0
        # Multiprocess mode: no single process's runtime series, which would describe one worker only.
        assert not any(name.startswith("python_gc") for name, _ in samples)


def get_list(base: str, headers: dict[str, str]) -> int:
    return httpx.get(f"{base}/api/alice/tasks", headers={**headers, "Connection": "close"}).status_code
