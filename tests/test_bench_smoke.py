"""The benchmark command at its tiniest: a real PostgreSQL, three apps, the delay proxy, real HTTP load."""

import json
import re
import subprocess
import sys
from pathlib import Path

from bench import load

ROOT = Path(__file__).resolve().parent.parent


def test_bench_runs_end_to_end(tmp_path: Path) -> None:
    # wrk when installed (make bench installs it as root); otherwise the Python load generator.
    generator = "wrk" if load.wrk_available() else "python"
    command = [
        *(sys.executable, "-m", "bench", "--users", "5", "--tasks", "3", "--duration", "1"),
        *("--concurrency", "1", "--delays", "0,1", "--routes", "get,delete,filter", "--load", generator),
        *("--apps", "project,baseline,hello", "--rounds", "1"),
        *("--out-dir", str(tmp_path)),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr

    results = json.loads((tmp_path / "results.json").read_text())["results"]
    throughput = {(r["app"], r["route"]) for r in results if r["phase"] == "throughput"}
    # hello-world only answers reads; only the project has the filters
    assert throughput == {
        ("project", "get"),
        ("project", "delete"),
        ("project", "filter"),
        ("baseline", "get"),
        ("baseline", "delete"),
        ("hello", "get"),
    }
    delays = {(r["app"], r["route"], r["delay_ms"]) for r in results if r["phase"] == "delay"}
    assert delays == {(app, "get", delay) for app in ("project", "baseline") for delay in (0, 1)} | {
        ("project", "filter", delay) for delay in (0, 1)
    }
    for record in results:
        assert record["requests"] > 0 and record["rps"] > 0 and record["p50_ms"] > 0, record
        assert record["errors"] == 0, record

    report = (tmp_path / "benchmarks.md").read_text()
    assert "round trips per request" in report.lower()
    # Round trips, both apps (a 1 ms delay on a busy machine may even read negative: it is noise).
    assert re.search(r"\| get \| -?\d+\.\d \| -?\d+\.\d \|", report), report
    assert re.search(r"\| filter \| -?\d+\.\d \| - \|", report), report
    assert re.search(r"\| get \| 1 \| \d+ \| \d+ \| \d+ \| \d+\.\d\d [✓✗] \| \d+\.\d\d [✓✗] \|", report), report
    cpu_per_request = r"\| project \| get \| 1 \| \d+ \| \d+ \| \d+ \| \d+ \| \d+ \| \d+ \|"
    assert re.search(cpu_per_request, report), report
    assert "nproc" in report and "uname -a" in report
    png = (tmp_path / "benchmark-latency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "round trips per request" in result.stdout


def test_the_memory_soak_runs_end_to_end(tmp_path: Path) -> None:
    """bench.soak at its tiniest: every route gets a window of real load, and none fails."""
    generator = "wrk" if load.wrk_available() else "python"
    out = tmp_path / "soak.md"
    command = [sys.executable, "-m", "bench.soak", "--minutes", "0.1", "--window", "1", "--load", generator]
    result = subprocess.run([*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr

    windows = re.findall(r"^\| (\d+) \| (\w+) \| (\d+) \| (\d+) \| ([\d.]+) \|$", out.read_text(), re.MULTILINE)
    routes = [route for _, route, *_ in windows]
    assert routes[0] == "start" and set(routes[1:]) >= {"list", "get", "update", "complete", "create", "delete"}
    for _, route, rps, errors, rss in windows[1:]:
        assert int(rps) > 0 and int(errors) == 0 and float(rss) > 10, (route, rps, errors)
    assert "growth" in out.read_text()
