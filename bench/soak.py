"""Memory soak: a server process's resident memory under steady load.

    python -m bench.soak [--minutes 5] [--window 15] [--concurrency 16] [--out docs/soak.md]

Starts a throwaway PostgreSQL, seeds it, serves the API with `taskapi serve` (one process),
then drives it with wrk (or the Python load generator) route after route, window after
window, sampling the server's resident set size (VmRSS) after each window.
"""

import argparse
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from api.identity.tokens import mint_token
from api.ops.embedded import start_server
from bench import load
from bench.run import (
    APPS,
    app_command,
    app_env,
    fodder_rows,
    free_port,
    log,
    process,
    seeded_rows,
    setup_database,
)

ROUTES = ["list", "get", "update", "complete", "create", "delete"]
USERS, TASKS = 200, 20


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def run_window(args, base: str, route: str, rows: list, workdir: Path) -> dict:
    if args.load == "wrk":
        data = load.write_rows(workdir / f"soak-{route}.txt", rows)
        return load.run_wrk(base, route, data, args.concurrency, args.window, threads=2)
    return load.run_python(base, route, rows, args.concurrency, args.window)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--window", type=float, default=15, help="seconds of load between samples")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--load", choices=["wrk", "python"], default="wrk" if load.wrk_available() else "python")
    parser.add_argument("--out", type=Path, default=Path("docs/soak.md"))
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="taskapi-soak-"))
    server = start_server(workdir / "pg", cleanup_mode="delete")
    samples: list[tuple[float, int, str, float, int]] = []
    try:
        admin_url, socket_query = setup_database(server, USERS, TASKS)
        secret = secrets.token_urlsafe(48)
        tokens = {f"u{n}": mint_token(secret, f"u{n}", ttl_seconds=24 * 3600) for n in range(1, USERS + 1)}
        rows = seeded_rows(admin_url, tokens, USERS, TASKS)
        port = free_port()
        project = APPS["project"]  # as make bench serves it: one process, metrics on, JSON log lines
        with process(
            app_command(project, port),
            env=app_env(project, socket_query, secret),
            log_path=workdir / "soak.log",
            ready=f"http://127.0.0.1:{port}/healthz",
        ) as proc:
            base = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            samples.append((0.0, resident_kib(proc.pid), "start", 0.0, 0))
            window = 0
            while time.monotonic() - started < args.minutes * 60:
                route = ROUTES[window % len(ROUTES)]
                fodder = max(1000, round(args.window * 6000))  # more than a window can delete
                window_rows = fodder_rows(admin_url, tokens, fodder) if route == "delete" else rows
                result = run_window(args, base, route, window_rows, workdir)
                elapsed = time.monotonic() - started
                samples.append((elapsed, resident_kib(proc.pid), route, result["rps"], result["errors"]))
                log(f"{elapsed:6.0f}s {route:8} {result['rps']:7.0f} req/s  rss {samples[-1][1] / 1024:.1f} MiB")
                window += 1
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    write_report(args, samples)


def write_report(args, samples: list[tuple[float, int, str, float, int]]) -> None:
    first_minute = [rss for t, rss, *_ in samples if 0 < t <= 60] or [samples[1][1]]
    last_minute = [rss for t, rss, *_ in samples if t > samples[-1][0] - 60]
    growth = (max(last_minute) - max(first_minute)) / max(first_minute) * 100
    rows = "\n".join(
        f"| {t:.0f} | {route} | {rps:.0f} | {errors} | {rss / 1024:.1f} |" for t, rss, route, rps, errors in samples
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"""# Memory soak

Produced by `python -m bench.soak --minutes {args.minutes:g} --window {args.window:g}
--concurrency {args.concurrency}` ({args.load} load, one `taskapi serve` process, {USERS} users).
Resident memory (VmRSS) of the server process after each window of load:

| seconds | route in the window | req/s | errors | RSS (MiB) |
|---|---|---|---|---|
{rows}

Peak RSS in the first minute: {max(first_minute) / 1024:.1f} MiB; in the last minute:
{max(last_minute) / 1024:.1f} MiB; growth **{growth:+.1f}%**.
"""
    )
    print(args.out.read_text())


if __name__ == "__main__":
    main()
