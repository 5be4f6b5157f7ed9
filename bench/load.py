"""Load generators: Debian's `wrk` with bench/wrk/tasks.lua, or a Python asyncio + httpx fallback.

Both take rows of (user_id, token, task_id), rotate through them, and return the same summary:
requests, requests/s, p50/p99 latency in ms, errors (non-2xx answers plus socket errors).
"""

import asyncio
import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import httpx

WRK_SCRIPT = Path(__file__).parent / "wrk" / "tasks.lua"
ROUTES = ("list", "get", "update", "complete", "create", "delete", "filter")
# Every filter and the nullable sort of issue #14 at once: still one statement, one round trip.
FILTERED_LIST = "?limit=20&sort=due&priority=high&priority=medium&priority=none&tag=home&overdue=false"
Row = tuple[str, str, int]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def write_rows(path: Path, rows: list[Row]) -> Path:
    path.write_text("".join(f"{user} {token} {task_id}\n" for user, token, task_id in rows))
    return path


def run_wrk(base_url: str, route: str, data_file: Path, concurrency: int, duration: float, threads: int) -> dict:
    threads = max(1, min(threads, concurrency))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        base_url,
        "--",
        route,
        str(data_file),
        str(threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            seconds = raw["duration_us"] / 1e6 or 1
            return {
                "requests": raw["requests"],
                "rps": raw["requests"] / seconds,
                "p50_ms": raw["p50_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
                "errors": raw["errors_status"] + raw["errors_socket"],
            }
    raise RuntimeError(f"wrk printed no summary (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


def build_request(route: str, row: Row) -> tuple[str, str, dict | None]:
    """(method, path, json body) for one request of `route`."""
    user, _, task_id = row
    base = f"/api/{user}/tasks"
    return {
        "list": ("GET", f"{base}?limit=20", None),
        "filter": ("GET", f"{base}{FILTERED_LIST}", None),
        "get": ("GET", f"{base}/{task_id}", None),
        "create": ("POST", base, {"title": "bench task", "description": "made by load.py"}),
        "update": ("PUT", f"{base}/{task_id}", {"title": "bench task, updated"}),
        "complete": ("PATCH", f"{base}/{task_id}/complete", {"completed": True}),
        "delete": ("DELETE", f"{base}/{task_id}", None),
    }[route]


async def _run_python(base_url: str, route: str, rows: list[Row], concurrency: int, duration: float) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as client:
        deadline = time.monotonic() + duration

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.monotonic() < deadline:
                row = rows[i % len(rows)]
                i += concurrency
                method, path, body = build_request(route, row)
                started = time.perf_counter()
                try:
                    response = await client.request(
                        method, path, json=body, headers={"Authorization": f"Bearer {row[1]}"}
                    )
                    if response.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.monotonic() - started
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": quantiles[49] * 1000 if quantiles else 0.0,
        "p99_ms": quantiles[98] * 1000 if quantiles else 0.0,
        "errors": errors,
    }


def run_python(base_url: str, route: str, rows: list[Row], concurrency: int, duration: float) -> dict:
    return asyncio.run(_run_python(base_url, route, rows, concurrency, duration))
