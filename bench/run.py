"""make bench: the project against a naive baseline and a hello-world ceiling, in one run.

    python -m bench [--users 1000] [--tasks 20] [--duration 5] [--rounds 2] [--concurrency 16,64]
                    [--delays 0,2,5] [--routes list,get,...] [--apps project,baseline,hello,...]

Starts a throwaway PostgreSQL (pgserver; fsync, synchronous_commit and full_page_writes off, as
the test suite does), migrates and seeds it, then:

1. Throughput. Every app serves at once, straight on PostgreSQL's unix socket. For each route
   and concurrency the apps take turns, `--rounds` times, and each app's median is kept, so the
   drift of a shared machine hits them all alike. The apps:
   - project: `taskapi serve`, one process, metrics on, one JSON log line per request to a file;
   - project-2w: the same with `--workers 2`;
   - project-no-metrics: one process with METRICS_ENABLED=false (what the metrics cost);
   - baseline, baseline-2w: bench/baseline_app.py, a tutorial-style FastAPI + SQLModel app;
   - hello, hello-2w: bench/hello_app.py, a hello-world FastAPI endpoint (the ceiling; reads only).
   All are served by uvicorn with uvloop and httptools (uvicorn[standard]).
2. Round trips. The project and the baseline, one process each, reach PostgreSQL through
   bench/delay_proxy.py, which adds a one-way delay; at concurrency 1 the latency grows by one
   round trip time per round trip.

Writes results.json, benchmarks.md and benchmark-latency.png into --out-dir.
"""

import argparse
import contextlib
import json
import os
import platform
import resource
import secrets
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from api.identity.tokens import mint_token
from api.ops import migrations
from api.ops.embedded import start_server
from bench import load

ROOT = Path(__file__).resolve().parent.parent
DBNAME = "taskapi"
LOGIN_ROLE = "taskapi_bench_login"
READS = ("list", "get")
WRITES = ("create", "update", "complete", "delete")
# The list with the filters and sort of issue #14, which only the project has.
PROJECT_ONLY = ("filter",)
# What the project must reach (issue #13): reads against the baseline and the ceiling, writes.
READ_BASELINE_TARGET, READ_CEILING_TARGET, WRITE_BASELINE_TARGET = 3.0, 0.40, 2.5


@dataclass(frozen=True)
class App:
    name: str
    kind: str  # project, baseline, hello
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)

    @property
    def serves(self) -> tuple[str, ...]:
        if self.kind == "hello":
            return READS
        return (*READS, *WRITES, *(PROJECT_ONLY if self.kind == "project" else ()))


APPS = {
    app.name: app
    for app in (
        App("project", "project"),
        App("project-2w", "project", workers=2),
        App("project-no-metrics", "project", env={"METRICS_ENABLED": "false"}),
        App("baseline", "baseline"),
        App("baseline-2w", "baseline", workers=2),
        App("hello", "hello"),
        App("hello-2w", "hello", workers=2),
    )
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU time of a process and its descendants (a server's workers, PostgreSQL's
    backends), from /proc."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        used[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def load_cpu_seconds(generator: str) -> float:
    """The load generator's CPU so far: wrk runs as a child, the Python one in this process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if generator == "wrk" else resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def process(command: list[str], *, env: dict[str, str], log_path: Path, ready: str, timeout: float = 60) -> Iterator:
    """Run a process until `ready` (a URL answering 200, or tcp://port) responds; stop it after."""
    with log_path.open("ab") as output:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[:4]} not ready in {timeout}s:\n{log_path.read_text()[-3000:]}")
            try:
                if ready.startswith("tcp://"):
                    socket.create_connection(("127.0.0.1", int(ready[6:])), timeout=1).close()
                    break
                if httpx.get(ready, timeout=2).status_code == 200:
                    break
            except (OSError, httpx.HTTPError):
                pass
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def setup_database(server, users: int, tasks: int) -> tuple[str, str]:
    """Create, migrate and seed the database; return (admin URL, unix socket directory and port)."""
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"alter system set {setting} = off")
        conn.execute("alter system set max_connections = 200")  # every app's pool at once
        conn.execute("select pg_reload_conf()")
        conn.execute(f'create database "{DBNAME}"')
    admin_url = server.get_uri(DBNAME)
    migrations.upgrade(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"create role {LOGIN_ROLE} login nosuperuser nobypassrls")
        conn.execute(f"grant app_user to {LOGIN_ROLE}")
        started = time.monotonic()
        conn.execute(
            "insert into tasks (user_id, title, description, completed, completed_at, created_at, updated_at,"
            "                   due_at, priority, tags)"
            " select 'u' || u, 'task ' || t || ' of u' || u, case when t %% 2 = 0 then 'seeded' end, t %% 3 = 0,"
            "        case when t %% 3 = 0 then now() end,"
            "        now() - make_interval(mins => t), now() - make_interval(mins => t),"
            "        case when t %% 4 <> 0 then now() + make_interval(days => t %% 9 - 4) end, t %% 4,"
            "        case t %% 3 when 0 then array['Home'] when 1 then array['work', 'urgent'] else '{}' end"
            " from generate_series(1, %s) t, generate_series(1, %s) u",
            (tasks, users),
        )
        conn.execute("analyze tasks")
        log(f"seeded {users} users x {tasks} tasks in {time.monotonic() - started:.1f}s")
    info = server.get_postmaster_info()
    return admin_url, f"host={info.socket_dir}&port={info.port or 5432}"


def seeded_rows(admin_url: str, tokens: dict[str, str], users: int, tasks: int) -> list[load.Row]:
    """One row per seeded task, ordered so consecutive rows belong to different users."""
    with psycopg.connect(admin_url) as conn:
        found = conn.execute(
            "select user_id, id from tasks where user_id = any(%s) order by id limit %s",
            ([f"u{u}" for u in range(1, users + 1)], users * tasks),
        ).fetchall()
    return [(user, tokens[user], task_id) for user, task_id in found]


def fodder_rows(admin_url: str, tokens: dict[str, str], count: int) -> list[load.Row]:
    """Fresh tasks for the delete route to consume, spread over the users."""
    users = list(tokens)
    with psycopg.connect(admin_url) as conn:
        found = conn.execute(
            "insert into tasks (user_id, title) select (%s::text[])[1 + n %% %s], 'to delete'"
            " from generate_series(0, %s - 1) n returning user_id, id",
            (users, len(users), count),
        ).fetchall()
    return [(user, tokens[user], task_id) for user, task_id in found]


def app_command(app: App, port: int) -> list[str]:
    if app.kind == "project":
        command = [sys.executable, "-c", "from api.ops.cli import main; main()", "serve", "--port", str(port)]
        return [*command, "--workers", str(app.workers)]
    module = {"baseline": "bench.baseline_app:create_app", "hello": "bench.hello_app:create_app"}[app.kind]
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", module, "--workers", str(app.workers)),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
    ]


def app_env(app: App, database: str, secret: str) -> dict[str, str]:
    """`database`: "tcp://127.0.0.1:PORT" (the delay proxy) or the unix socket's query string."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "JWT_", "BENCH_", "PROMETHEUS"))}
    where = f"127.0.0.1:{database[6:]}/{DBNAME}?sslmode=disable" if database.startswith("tcp://") else None
    if app.kind == "project":
        url = f"postgresql://{LOGIN_ROLE}@{where}" if where else f"postgresql://{LOGIN_ROLE}@/{DBNAME}?{database}"
        return env | {
            "DATABASE_URL": url,
            "JWT_SECRET": secret,
            "RATE_LIMIT_PER_MINUTE": "0",
            "LOG_FORMAT": "json",
            **app.env,
        }
    url = f"postgresql+psycopg://postgres@{where}" if where else f"postgresql+psycopg://postgres@/{DBNAME}?{database}"
    return env | {"BENCH_DATABASE_URL": url, "BENCH_JWT_SECRET": secret}


def measure(args, base_url: str, route: str, rows: list[load.Row], concurrency: int, workdir: Path) -> dict:
    if args.load == "wrk":
        data_file = load.write_rows(workdir / f"rows-{route}.txt", rows)
        return load.run_wrk(base_url, route, data_file, concurrency, args.duration, args.threads)
    return load.run_python(base_url, route, rows, concurrency, args.duration)


def measure_with_cpu(args, base_url: str, route: str, rows, concurrency: int, workdir: Path, pids: dict) -> dict:
    """`measure`, and the CPU each request cost the server, PostgreSQL and the load generator (us)."""

    def used() -> dict[str, float]:
        return {
            "server": cpu_seconds(pids["server"]),
            "postgres": cpu_seconds(pids["postgres"]),
            "load": load_cpu_seconds(args.load),
        }

    before = used()
    result = measure(args, base_url, route, rows, concurrency, workdir)
    after = used()
    requests = max(1, result["requests"])
    return result | {f"cpu_{part}_us": (after[part] - before[part]) * 1e6 / requests for part in before}


def median_of(runs: list[dict]) -> dict:
    """Each number's median over the rounds; errors are summed, every one counts."""
    return {
        "rps": statistics.median(run["rps"] for run in runs),
        "p50_ms": statistics.median(run["p50_ms"] for run in runs),
        "p99_ms": statistics.median(run["p99_ms"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "requests": sum(run["requests"] for run in runs),
        "rounds_rps": [round(run["rps"]) for run in runs],
        **{
            key: statistics.median(run[key] for run in runs)
            for key in ("cpu_server_us", "cpu_postgres_us", "cpu_load_us")
            if all(key in run for run in runs)
        },
    }


def throughput(
    args, workdir: Path, admin_url: str, socket_query: str, secret: str, tokens, rows, postgres_pid: int
) -> list[dict]:
    apps = [APPS[name] for name in args.apps]
    with contextlib.ExitStack() as stack:
        bases, pids = {}, {}
        for app in apps:
            port = free_port()
            bases[app.name] = f"http://127.0.0.1:{port}"
            pids[app.name] = stack.enter_context(
                process(
                    app_command(app, port),
                    env=app_env(app, socket_query, secret),
                    log_path=workdir / f"{app.name}.log",
                    ready=f"{bases[app.name]}/readyz",
                    timeout=90,
                )
            ).pid
            load.run_python(bases[app.name], "get", rows, 16, 1.0)  # warm: connections, caches
        results = []
        for route in args.routes:
            for concurrency in args.concurrency:
                runs: dict[str, list[dict]] = {app.name: [] for app in apps if route in app.serves}
                for _ in range(args.rounds):
                    for app in apps:
                        if route not in app.serves:
                            continue
                        route_rows = rows
                        if route == "delete":
                            route_rows = fodder_rows(admin_url, tokens, 6000 * max(1, round(args.duration)))
                        app_pids = {"server": pids[app.name], "postgres": postgres_pid}
                        run = measure_with_cpu(args, bases[app.name], route, route_rows, concurrency, workdir, app_pids)
                        runs[app.name].append(run)
                for name, app_runs in runs.items():
                    record = {"phase": "throughput", "app": name, "route": route, "concurrency": concurrency}
                    results.append(record | median_of(app_runs))
                    summary = results[-1]
                    log(
                        f"{name:18} {route:8} c={concurrency:<3} {summary['rps']:8.1f} req/s  "
                        f"p99 {summary['p99_ms']:7.2f} ms  errors {summary['errors']}  rounds {summary['rounds_rps']}"
                    )
        return results


def round_trip_latencies(args, workdir: Path, socket_path: str, secret: str, rows) -> list[dict]:
    results = []
    for name in ("project", "baseline"):
        app = APPS[name]
        for delay in args.delays:
            proxy_port, app_port = free_port(), free_port()
            proxy = [sys.executable, "-m", "bench.delay_proxy", "--port", str(proxy_port)]
            proxy += ["--unix", socket_path, "--delay-ms", str(delay)]
            base_url = f"http://127.0.0.1:{app_port}"
            with (
                process(proxy, env=dict(os.environ), log_path=workdir / "proxy.log", ready=f"tcp://{proxy_port}"),
                process(
                    app_command(app, app_port),
                    env=app_env(app, f"tcp://{proxy_port}", secret),
                    log_path=workdir / f"{name}-delay.log",
                    ready=f"{base_url}/readyz",
                    timeout=90,
                ),
            ):
                load.run_python(base_url, "get", rows, 1, 0.5)
                for route in args.routes:
                    if route == "delete" or route not in app.serves:
                        continue  # delete: the same one round trip as update; deleting needs fresh rows
                    summary = measure(args, base_url, route, rows, 1, workdir)
                    results.append({"phase": "delay", "app": name, "delay_ms": delay, "route": route} | summary)
                    log(f"{name:8} delay {delay:g} ms {route:8} p50 {summary['p50_ms']:7.2f} ms")
    return results


def run_benchmarks(args, workdir: Path) -> list[dict]:
    server = start_server(workdir / "pg", cleanup_mode="delete")
    try:
        admin_url, socket_query = setup_database(server, args.users, args.tasks)
        info = server.get_postmaster_info()
        socket_path = str(Path(info.socket_dir) / f".s.PGSQL.{info.port or 5432}")
        secret = secrets.token_urlsafe(48)
        tokens = {f"u{u}": mint_token(secret, f"u{u}", ttl_seconds=6 * 3600) for u in range(1, args.users + 1)}
        rows = seeded_rows(admin_url, tokens, args.users, args.tasks)
        results = throughput(args, workdir, admin_url, socket_query, secret, tokens, rows, info.pid)
        if len(args.delays) > 1:
            results += round_trip_latencies(args, workdir, socket_path, secret, rows)
        return results
    finally:
        server.cleanup()


def _find(results: list[dict], **key) -> dict | None:
    return next((r for r in results if all(r.get(k) == v for k, v in key.items())), None)


def round_trips(results: list[dict], app: str, route: str, delays: list[float]) -> float | None:
    """(p50 at the largest delay - p50 at no delay) / RTT, at concurrency 1."""
    low = _find(results, phase="delay", app=app, route=route, delay_ms=delays[0])
    high = _find(results, phase="delay", app=app, route=route, delay_ms=delays[-1])
    if low is None or high is None or delays[-1] == delays[0]:
        return None
    return (high["p50_ms"] - low["p50_ms"]) / (2 * (delays[-1] - delays[0]))


def ratio(results: list[dict], app: str, other: str, route: str, concurrency: int) -> float | None:
    a = _find(results, phase="throughput", app=app, route=route, concurrency=concurrency)
    b = _find(results, phase="throughput", app=other, route=route, concurrency=concurrency)
    return a["rps"] / b["rps"] if a and b and b["rps"] else None


def _cell(value: float | None, target: float | None = None) -> str:
    if value is None:
        return "-"
    mark = "" if target is None else (" ✓" if value >= target else " ✗")
    return f"{value:.2f}{mark}"


def comparison_table(results: list[dict], args, project: str, baseline: str, hello: str) -> list[str]:
    lines = [
        f"| route | c | {project} req/s | {baseline} req/s | {hello} req/s | vs {baseline} | vs {hello} |",
        "|---|---|---|---|---|---|---|",
    ]
    for route in args.routes:
        reads = route in READS
        for concurrency in args.concurrency:
            found = [
                _find(results, phase="throughput", app=app, route=route, concurrency=concurrency)
                for app in (project, baseline, hello)
            ]
            if found[0] is None:
                continue
            rates = " | ".join("-" if r is None else f"{r['rps']:.0f}" for r in found)
            vs_baseline = ratio(results, project, baseline, route, concurrency)
            vs_hello = ratio(results, project, hello, route, concurrency)
            baseline_target = READ_BASELINE_TARGET if reads else WRITE_BASELINE_TARGET
            ceiling_target = READ_CEILING_TARGET if reads else None
            lines.append(
                f"| {route} | {concurrency} | {rates} | {_cell(vs_baseline, baseline_target)} |"
                f" {_cell(vs_hello, ceiling_target)} |"
            )
    return lines


def latency_table(results: list[dict], args, apps: list[str]) -> list[str]:
    lines = [
        "| app | route | c | req/s | p50 ms | p99 ms | errors | rounds (req/s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for app in apps:
        for route in args.routes:
            for concurrency in args.concurrency:
                r = _find(results, phase="throughput", app=app, route=route, concurrency=concurrency)
                if r:
                    lines.append(
                        f"| {app} | {route} | {concurrency} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
                        f" {r['errors']} | {', '.join(map(str, r['rounds_rps']))} |"
                    )
    return lines


def cpu_table(results: list[dict], args, apps: list[str]) -> list[str]:
    lines = [
        "| app | route | c | server us | PostgreSQL us | load us | total us | 1 core req/s | 2 cores req/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cores = os.cpu_count() or 2
    for app in apps:
        for route in args.routes:
            for concurrency in args.concurrency:
                r = _find(results, phase="throughput", app=app, route=route, concurrency=concurrency)
                if r and "cpu_server_us" in r:
                    parts = [r["cpu_server_us"], r["cpu_postgres_us"], r["cpu_load_us"]]
                    total = sum(parts)
                    one_core = 1e6 / parts[0] if parts[0] > 0 else float("inf")
                    all_cores = cores * 1e6 / total if total > 0 else float("inf")
                    lines.append(
                        f"| {app} | {route} | {concurrency} | "
                        + " | ".join(f"{part:.0f}" for part in (*parts, total))
                        + f" | {one_core:.0f} | {all_cores:.0f} |"
                    )
    return lines


def render_markdown(args, results: list[dict], machine: dict[str, str], command: str) -> str:
    generator = "wrk + bench/wrk/tasks.lua" if args.load == "wrk" else "Python asyncio + httpx (bench/load.py)"
    lines = [
        "# Benchmarks",
        "",
        "The project against a naive baseline (`bench/baseline_app.py`: FastAPI + SQLModel in the style of",
        "its tutorial, logged in as the superuser, `WHERE user_id = sub` in Python, add/commit/refresh)",
        "and a hello-world FastAPI endpoint (`bench/hello_app.py`: no database, no token check) as the",
        "ceiling of the stack on this machine. All run under uvicorn with uvloop and httptools, with a",
        "10-connection pool each; the project logs one JSON line per request (to a file) and counts",
        "its metrics; the others log nothing.",
        "",
        f"Generated by: `{command}`",
        "",
        f"Load generator: **{generator}**; {args.users} users x {args.tasks} tasks; {args.duration:g} s per"
        f" point; {args.rounds} rounds, the apps taking turns, the median kept. PostgreSQL from pgserver with",
        "fsync, synchronous_commit and full_page_writes off, reached on its unix socket. The load",
        "generator, the apps and PostgreSQL share the machine's two cores, so absolute numbers are",
        "pessimistic: compare the apps with each other. `list` asks for 20 tasks; `complete` sends",
        '`{"completed": true}`; `delete` consumes freshly inserted tasks. Errors are non-2xx answers',
        "plus socket errors and timeouts.",
        "",
        "## One server process each",
        "",
        f"Targets: reads at least {READ_BASELINE_TARGET:g}x the baseline and {READ_CEILING_TARGET:.0%} of the"
        f" hello-world endpoint; writes at least {WRITE_BASELINE_TARGET:g}x the baseline.",
        "",
        *comparison_table(results, args, "project", "baseline", "hello"),
        "",
        "## Two worker processes each (`--workers 2`)",
        "",
        *comparison_table(results, args, "project-2w", "baseline-2w", "hello-2w"),
        "",
        "## What the metrics cost",
        "",
        "| route | c | metrics on req/s | metrics off req/s | on / off |",
        "|---|---|---|---|---|",
    ]
    for route in args.routes:
        for concurrency in args.concurrency:
            on = _find(results, phase="throughput", app="project", route=route, concurrency=concurrency)
            off = _find(results, phase="throughput", app="project-no-metrics", route=route, concurrency=concurrency)
            if on and off:
                lines.append(
                    f"| {route} | {concurrency} | {on['rps']:.0f} | {off['rps']:.0f} | {on['rps'] / off['rps']:.2f} |"
                )
    lines += ["", "## Latency and errors", "", *latency_table(results, args, list(args.apps))]
    lines += [
        "",
        "## CPU per request",
        "",
        "User + system CPU time over each point, divided by its requests (medians over the rounds):",
        "the server process (and its workers), PostgreSQL (every backend) and the load generator.",
        "One process can use at most one core, so `1 core` is the most req/s the server's own CPU",
        "allows; the three share the machine's two cores, so `2 cores` is the most they allow",
        "together. The slower of the two is the ceiling at this cost per request.",
        "",
        *cpu_table(results, args, [app for app in ("project", "baseline", "hello") if app in args.apps]),
    ]
    if len(args.delays) > 1:
        d0, d1 = args.delays[0], args.delays[-1]
        lines += [
            "",
            "## Database round trips per request (measured)",
            "",
            f"(p50 at {d1:g} ms - p50 at {d0:g} ms) / (2 x {d1 - d0:g} ms), at concurrency 1, through",
            "`bench/delay_proxy.py`. The proxy's asyncio timers fire a little late, so each round trip",
            "costs a bit more than 2 x delay and these counts read 10-20 % high.",
            "",
            "| route | project | baseline |",
            "|---|---|---|",
        ]
        for route in args.routes:
            if route == "delete":
                continue
            cells = [round_trips(results, app, route, args.delays) for app in ("project", "baseline")]
            lines.append(f"| {route} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
        lines += ["", "![latency vs injected delay](benchmark-latency.png)"]
    lines += ["", "## Machine", ""]
    for name, value in machine.items():
        lines += [f"`{name}`:", "", "```", value, "```", ""]
    return "\n".join(lines)


def machine_description() -> dict[str, str]:
    def sh(command: str) -> str:
        try:
            return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "(unavailable)"

    return {
        "nproc": sh("nproc"),
        "free -h": sh("free -h"),
        "uname -a": sh("uname -a"),
        "python": platform.python_version(),
        "wrk": sh("wrk --version 2>&1 | head -1") if load.wrk_available() else "(not installed)",
    }


def plot(args, results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = [route for route in args.routes if route != "delete"]
    columns = min(3, len(routes))
    rows_n = (len(routes) + columns - 1) // columns
    figure, axes = plt.subplots(rows_n, columns, figsize=(4.2 * columns, 3.4 * rows_n), squeeze=False)
    for ax, route in zip(axes.flat, routes, strict=False):
        for app, style in (("project", "o-"), ("baseline", "s--")):
            points = [
                (d, r["p50_ms"])
                for d in args.delays
                if (r := _find(results, phase="delay", app=app, route=route, delay_ms=d))
            ]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=app)
        ax.set_title(route)
        ax.set_xlabel("injected one-way delay (ms)")
        ax.set_ylabel("p50 latency (ms), concurrency 1")
        ax.grid(True, alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(routes) :]:
        ax.axis("off")
    figure.suptitle("Task API: project (RLS) vs naive baseline, latency vs DB link delay")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _numbers(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=20, help="tasks per user")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per point")
    parser.add_argument("--rounds", type=int, default=2, help="turns each app takes at each point")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in _numbers(s)], default=[16, 64])
    parser.add_argument("--delays", type=_numbers, default=[0.0, 2.0, 5.0], help="one-way delays in ms")
    parser.add_argument("--routes", type=lambda s: s.split(","), default=list(load.ROUTES))
    parser.add_argument("--apps", type=lambda s: s.split(","), default=list(APPS))
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="wrk threads (at most -c)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    for name, chosen, known in (("routes", args.routes, load.ROUTES), ("apps", args.apps, APPS)):
        unknown = set(chosen) - set(known)
        if unknown:
            parser.error(f"unknown {name}: {', '.join(sorted(unknown))}")
    args.delays = sorted(set(args.delays))
    if args.load == "auto":
        args.load = "wrk" if load.wrk_available() else "python"
        if args.load == "python":
            log("wrk is not installed (apt-get install -y wrk); using the Python load generator")
    return args


# The hand-written part of benchmarks.md (before and after, the profile) starts here; a run keeps it.
HAND_WRITTEN = "<!-- Below: written by hand, kept by python -m bench. -->"


def hand_written_part(path: Path) -> str:
    text = path.read_text() if path.exists() else ""
    return text[text.index(HAND_WRITTEN) :] if HAND_WRITTEN in text else ""


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="taskapi-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        results = run_benchmarks(args, workdir)
    machine = machine_description()
    (args.out_dir / "results.json").write_text(json.dumps({"command": command, "results": results}, indent=1))
    markdown = render_markdown(args, results, machine, command)
    report = args.out_dir / "benchmarks.md"
    kept = hand_written_part(report)
    report.write_text(markdown + "\n" + (f"\n{kept}" if kept else ""))
    if len(args.delays) > 1:
        plot(args, results, args.out_dir / "benchmark-latency.png")
    print(markdown.split("## Machine")[0])
    print(f"wrote {args.out_dir / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
