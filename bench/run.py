"""Benchmark the RLS task API against a naive baseline over a delayed link to PostgreSQL.

    python -m bench [--users 1000] [--tasks 20] [--duration 5] [--concurrency 1,16,64] [--delays 0,2,5]

Starts a throwaway PostgreSQL (pgserver; fsync, synchronous_commit and full_page_writes off,
as the test suite does: nothing here needs crash safety), migrates it, seeds it with
generate_series, then for each app (the project via `taskapi serve`, the baseline via uvicorn)
and each injected one-way delay starts a delay proxy between the app and PostgreSQL and drives
each route with wrk (or the Python load generator). Writes results.json, benchmarks.md and
benchmark-latency.png into --out-dir.
"""

import argparse
import contextlib
import json
import os
import platform
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
APPS = ("project", "baseline")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    """Create, migrate and seed the database; return (admin URL, unix socket path)."""
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"alter system set {setting} = off")
        conn.execute("select pg_reload_conf()")
        conn.execute(f'create database "{DBNAME}"')
    admin_url = server.get_uri(DBNAME)
    migrations.upgrade(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"create role {LOGIN_ROLE} login nosuperuser nobypassrls")
        conn.execute(f"grant app_user to {LOGIN_ROLE}")
        started = time.monotonic()
        conn.execute(
            "insert into tasks (user_id, title, description, completed, created_at, updated_at)"
            " select 'u' || u, 'task ' || t || ' of u' || u, case when t %% 2 = 0 then 'seeded' end, t %% 3 = 0,"
            "        now() - make_interval(mins => t), now() - make_interval(mins => t)"
            " from generate_series(1, %s) t, generate_series(1, %s) u",
            (tasks, users),
        )
        conn.execute("analyze tasks")
        log(f"seeded {users} users x {tasks} tasks in {time.monotonic() - started:.1f}s")
    info = server.get_postmaster_info()
    socket_path = str(Path(info.socket_dir) / f".s.PGSQL.{info.port or 5432}")
    return admin_url, socket_path


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


def app_command(app: str, port: int) -> list[str]:
    if app == "project":
        return [sys.executable, "-c", "from api.ops.cli import main; main()", "serve", "--port", str(port)]
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", "bench.baseline_app:create_app"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
    ]


def app_env(app: str, proxy_port: int, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "JWT_", "BENCH_"))}
    tcp = f"127.0.0.1:{proxy_port}/{DBNAME}?sslmode=disable&gssencmode=disable"
    if app == "project":
        env |= {
            "DATABASE_URL": f"postgresql://{LOGIN_ROLE}@{tcp}",
            "JWT_SECRET": secret,
            "RATE_LIMIT_PER_MINUTE": "0",
            "LOG_FORMAT": "json",
        }
    else:
        env |= {"BENCH_DATABASE_URL": f"postgresql+psycopg://postgres@{tcp}", "BENCH_JWT_SECRET": secret}
    return env


def measure(args, base_url: str, route: str, rows: list[load.Row], concurrency: int, workdir: Path) -> dict:
    if args.load == "wrk":
        data_file = load.write_rows(workdir / f"rows-{route}.txt", rows)
        return load.run_wrk(base_url, route, data_file, concurrency, args.duration, args.threads)
    return load.run_python(base_url, route, rows, concurrency, args.duration)


def run_benchmarks(args, workdir: Path) -> list[dict]:
    server = start_server(workdir / "pg", cleanup_mode="delete")
    try:
        admin_url, socket_path = setup_database(server, args.users, args.tasks)
        secret = secrets.token_urlsafe(48)
        tokens = {f"u{u}": mint_token(secret, f"u{u}", ttl_seconds=6 * 3600) for u in range(1, args.users + 1)}
        rows = seeded_rows(admin_url, tokens, args.users, args.tasks)
        results: list[dict] = []
        for app in APPS:
            for delay in args.delays:
                concurrencies = args.concurrency if delay == args.delays[0] else [1]
                proxy_port, app_port = free_port(), free_port()
                proxy = [sys.executable, "-m", "bench.delay_proxy", "--port", str(proxy_port)]
                proxy += ["--unix", socket_path, "--delay-ms", str(delay)]
                base_url = f"http://127.0.0.1:{app_port}"
                with (
                    process(proxy, env=dict(os.environ), log_path=workdir / "proxy.log", ready=f"tcp://{proxy_port}"),
                    process(
                        app_command(app, app_port),
                        env=app_env(app, proxy_port, secret),
                        log_path=workdir / f"{app}.log",
                        ready=f"{base_url}/readyz",
                        timeout=90,
                    ),
                ):
                    warm = min(max(concurrencies), 16)
                    load.run_python(base_url, "list", rows, warm, min(1.0, args.duration))
                    for route in args.routes:
                        for concurrency in concurrencies:
                            route_rows = rows
                            if route == "delete":
                                rps = next(
                                    (
                                        r["rps"]
                                        for r in results[::-1]
                                        if (r["app"], r["delay_ms"], r["concurrency"]) == (app, delay, concurrency)
                                    ),
                                    2000.0,
                                )
                                route_rows = fodder_rows(admin_url, tokens, int(rps * args.duration * 2) + 200)
                            summary = measure(args, base_url, route, route_rows, concurrency, workdir)
                            record = {"app": app, "delay_ms": delay, "route": route, "concurrency": concurrency}
                            results.append(record | summary)
                            log(
                                f"{app:8} delay {delay:g} ms  {route:8} c={concurrency:<3} "
                                f"{summary['rps']:8.1f} req/s  p50 {summary['p50_ms']:7.2f} ms  "
                                f"p99 {summary['p99_ms']:7.2f} ms  errors {summary['errors']}"
                            )
        return results
    finally:
        server.cleanup()


def machine_description() -> dict[str, str]:
    def sh(command: str) -> str:
        try:
            return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "(unavailable)"

    wrk_version = sh("wrk --version 2>&1 | head -1") if load.wrk_available() else "(not installed)"
    return {
        "nproc": sh("nproc"),
        "free -h": sh("free -h"),
        "uname -a": sh("uname -a"),
        "python": platform.python_version(),
        "wrk": wrk_version,
    }


def _find(results: list[dict], app: str, route: str, delay: float, concurrency: int) -> dict | None:
    key = (app, route, delay, concurrency)
    return next((r for r in results if (r["app"], r["route"], r["delay_ms"], r["concurrency"]) == key), None)


def round_trips(results: list[dict], app: str, route: str, delays: list[float]) -> float | None:
    """(p50 at the largest delay - p50 at no delay) / RTT, at concurrency 1."""
    low, high = _find(results, app, route, delays[0], 1), _find(results, app, route, delays[-1], 1)
    if low is None or high is None or delays[-1] == delays[0]:
        return None
    return (high["p50_ms"] - low["p50_ms"]) / (2 * (delays[-1] - delays[0]))


def render_markdown(args, results: list[dict], machine: dict[str, str], command: str) -> str:
    d0 = args.delays[0]
    generator = "wrk + bench/wrk/tasks.lua" if args.load == "wrk" else "Python asyncio + httpx (bench/load.py)"
    lines = [
        "# Benchmarks",
        "",
        "The project (RLS: every request is one transaction that starts with the identity statement, as",
        "`app_user`) against a naive baseline (`bench/baseline_app.py`: plain FastAPI + SQLModel, the",
        "superuser, `WHERE user_id = sub` in Python, tutorial-style add/commit/refresh). Both use a",
        "steady 10-connection pool and one server process, and reach PostgreSQL through",
        "`bench/delay_proxy.py`, which adds a one-way delay in each direction (RTT = 2 x delay).",
        "",
        f"Generated by: `{command}`",
        "",
        f"Load generator: **{generator}**;\n"
        f"{args.users} users x {args.tasks} tasks seeded with generate_series; {args.duration:g} s per point;"
        " PostgreSQL from pgserver with fsync, synchronous_commit and full_page_writes off. The load",
        "generator, both apps, the proxy and PostgreSQL share the machine, so absolute numbers are",
        "pessimistic; compare the two apps with each other. The project logs one JSON line per request",
        "(to a file); the baseline logs nothing. `list` asks for 20 tasks; `complete` sends",
        '`{"completed": true}`; `delete` consumes freshly inserted tasks. Errors are non-2xx answers',
        "plus socket errors.",
        "",
        "## Database round trips per request (measured)",
        "",
        f"(p50 at {args.delays[-1]:g} ms - p50 at {d0:g} ms) / (2 x {args.delays[-1] - d0:g} ms), at concurrency 1.",
        "The proxy's asyncio timers fire a little late, so each round trip costs a bit more than",
        "2 x delay and these counts read 10-20 % high: round them down to the nearest integer.",
        "",
        "| route | project | baseline |",
        "|---|---|---|",
    ]
    for route in args.routes:
        cells = [round_trips(results, app, route, args.delays) for app in APPS]
        lines.append(f"| {route} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    lines += [
        "",
        f"## Throughput at {d0:g} ms injected delay",
        "",
        "| route | concurrency | project req/s | p50 ms | p99 ms | errors | baseline req/s | p50 ms | p99 ms"
        " | errors | project / baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for route in args.routes:
        for concurrency in args.concurrency:
            p, b = _find(results, "project", route, d0, concurrency), _find(results, "baseline", route, d0, concurrency)
            if p is None or b is None:
                continue
            ratio = p["rps"] / b["rps"] if b["rps"] else float("nan")
            lines.append(
                f"| {route} | {concurrency} | {p['rps']:.0f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | {p['errors']}"
                f" | {b['rps']:.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {b['errors']} | {ratio:.2f} |"
            )
    lines += [
        "",
        "## Median latency (ms) at concurrency 1 by injected one-way delay",
        "",
        "![latency vs injected delay](benchmark-latency.png)",
        "",
        "| route | app | " + " | ".join(f"{d:g} ms" for d in args.delays) + " |",
        "|---|---|" + "---|" * len(args.delays),
    ]
    for route in args.routes:
        for app in APPS:
            cells = [_find(results, app, route, d, 1) for d in args.delays]
            lines.append(
                f"| {route} | {app} | " + " | ".join("-" if c is None else f"{c['p50_ms']:.2f}" for c in cells) + " |"
            )
    lines += ["", "## Machine", ""]
    for name, value in machine.items():
        lines += [f"`{name}`:", "", "```", value, "```", ""]
    return "\n".join(lines)


def plot(args, results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(args.routes))
    rows_n = (len(args.routes) + columns - 1) // columns
    figure, axes = plt.subplots(rows_n, columns, figsize=(4.2 * columns, 3.4 * rows_n), squeeze=False)
    for ax, route in zip(axes.flat, args.routes, strict=False):
        for app, style in (("project", "o-"), ("baseline", "s--")):
            points = [(d, r["p50_ms"]) for d in args.delays if (r := _find(results, app, route, d, 1))]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=app)
        ax.set_title(route)
        ax.set_xlabel("injected one-way delay (ms)")
        ax.set_ylabel("p50 latency (ms), concurrency 1")
        ax.grid(True, alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(args.routes) :]:
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
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in _numbers(s)], default=[1, 16, 64])
    parser.add_argument("--delays", type=_numbers, default=[0.0, 2.0, 5.0], help="one-way delays in ms")
    parser.add_argument("--routes", type=lambda s: s.split(","), default=list(load.ROUTES))
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="wrk threads (at most -c)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    unknown = set(args.routes) - set(load.ROUTES)
    if unknown:
        parser.error(f"unknown routes: {', '.join(sorted(unknown))}")
    if 1 not in args.concurrency:
        args.concurrency = [1, *args.concurrency]
    args.delays = sorted(set(args.delays))
    if args.load == "auto":
        args.load = "wrk" if load.wrk_available() else "python"
        if args.load == "python":
            log("wrk is not installed (apt-get install -y wrk); using the Python load generator")
    return args


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
    (args.out_dir / "benchmarks.md").write_text(render_markdown(args, results, machine, command) + "\n")
    plot(args, results, args.out_dir / "benchmark-latency.png")
    print(f"\nround trips per request (p50 delta / RTT, concurrency 1), delays {args.delays}:")
    for route in args.routes:
        p, b = (round_trips(results, app, route, args.delays) for app in APPS)
        print(f"  {route:8} project {p if p is None else round(p, 2)}  baseline {b if b is None else round(b, 2)}")
    print("throughput ratio project/baseline at the first delay:")
    for route in args.routes:
        for concurrency in args.concurrency:
            p = _find(results, "project", route, args.delays[0], concurrency)
            q = _find(results, "baseline", route, args.delays[0], concurrency)
            if p and q and q["rps"]:
                ratio = p["rps"] / q["rps"]
                print(f"  {route:8} c={concurrency:<3} {ratio:.2f}  ({p['rps']:.0f} vs {q['rps']:.0f} req/s)")
    print(f"wrote {args.out_dir / 'benchmarks.md'} and {args.out_dir / 'benchmark-latency.png'}")


if __name__ == "__main__":
    main()
