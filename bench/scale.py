"""Scale check: the list query on a large table, as app_user under RLS.

Seeds 1,000,000 tasks across 10,000 users (one user holding 100,000) with generate_series,
then, for that user:
- the plan of the list query (index scan, the policy's function evaluated once as an InitPlan);
- page 1 and page 1,000 of a keyset walk (should cost the same);
- the same query run by a role that bypasses RLS (the overhead RLS adds).

    python -m bench.scale [--tasks 1000000] [--users 10000] [--heavy 100000] [--out docs/scale.md]
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from api import migrations
from api.embedded import start_server
from api.tasks.models import TaskSort, TaskStatus
from api.tasks.pagination import Cursor
from api.tasks.service import TASK_COLUMNS, ListQuery, _filtered, _hint_owner, _ordered_after_cursor

HEAVY_USER = "heavy"
PAGE_SIZE = 100
RUNS = 300


def seed(conn: psycopg.Connection, *, tasks: int, users: int, heavy: int) -> float:
    started = time.perf_counter()
    conn.execute(
        """
        insert into tasks (user_id, title, completed, created_at, updated_at)
        select case when g <= %(heavy)s then %(heavy_user)s else 'user' || (g %% (%(users)s - 1)) end,
               'task ' || g, g %% 3 = 0,
               timestamptz '2026-01-01' + (g || ' seconds')::interval,
               timestamptz '2026-01-01' + (g || ' seconds')::interval
          from generate_series(1, %(tasks)s) g
        """,
        {"heavy": heavy, "heavy_user": HEAVY_USER, "users": users, "tasks": tasks},
    )
    conn.execute("vacuum analyze tasks")
    return time.perf_counter() - started


def list_sql(cursor: Cursor | None) -> str:
    """The service's own list statement, with its parameters inlined for EXPLAIN."""
    query = ListQuery(status=TaskStatus.all, sort=TaskSort.newest_first, limit=PAGE_SIZE, cursor=cursor)
    statement = _hint_owner(_ordered_after_cursor(_filtered(select(*TASK_COLUMNS), query), query), HEAVY_USER)
    statement = statement.limit(PAGE_SIZE + 1)
    return str(statement.compile(dialect=postgresql.psycopg.dialect(), compile_kwargs={"literal_binds": True}))


def timed_runs(conn: psycopg.Connection, sql: str, *, as_app_user: bool) -> tuple[float, dict]:
    """Median server execution time (ms) over RUNS, and one plan."""
    times, plan = [], {}
    for _ in range(RUNS):
        with conn.transaction(force_rollback=True):
            if as_app_user:
                conn.execute(
                    "select set_config('role', 'app_user', true), set_config('app.user_id', %s, true)", (HEAVY_USER,)
                )
            # TIMING OFF: per-node clock reads would charge the plan with more nodes for them.
            [[result]] = conn.execute(f"explain (analyze, timing off, format json) {sql}").fetchall()
            plan = result[0]
            times.append(plan["Execution Time"])
    return statistics.median(times), plan


def statement_latency(conn: psycopg.Connection, sql: str, *, as_app_user: bool) -> float:
    """Median wall time (ms) of running the statement itself, as the API does (planning included)."""
    times = []
    with conn.transaction(force_rollback=True):
        if as_app_user:
            conn.execute(
                "select set_config('role', 'app_user', true), set_config('app.user_id', %s, true),"
                " set_config('plan_cache_mode', 'force_custom_plan', true)",
                (HEAVY_USER,),
            )
        for _ in range(RUNS):
            started = time.perf_counter()
            conn.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def plan_nodes(plan: dict) -> list[str]:
    found, stack = [], [plan["Plan"]]
    while stack:
        node = stack.pop()
        label = node["Node Type"]
        if node.get("Subplan Name"):
            label = f"{node['Subplan Name']}: {label}"
        if node.get("Index Name"):
            label += f" using {node['Index Name']}"
        found.append(label)
        stack.extend(node.get("Plans", []))
    return found


def cursor_at(conn: psycopg.Connection, position: int) -> Cursor:
    created_at, task_id = conn.execute(
        "select created_at, id from tasks where user_id = %s order by created_at desc, id desc offset %s limit 1",
        (HEAVY_USER, position - 1),
    ).fetchone()
    return Cursor(sort=TaskSort.newest_first, key=created_at, id=task_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--heavy", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("docs/scale.md"))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="taskapi-scale-"))
    server = start_server(workdir / "pg", cleanup_mode="delete")
    try:
        url = server.get_uri()
        migrations.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            seconds = seed(conn, tasks=args.tasks, users=args.users, heavy=args.heavy)
            last_page = args.heavy // PAGE_SIZE
            deep = cursor_at(conn, (last_page - 1) * PAGE_SIZE)
            timed_runs(conn, list_sql(None), as_app_user=True)  # warm the cache and the backend
            bypass, plan_b = timed_runs(conn, list_sql(None), as_app_user=False)
            page_1, plan_1 = timed_runs(conn, list_sql(None), as_app_user=True)
            page_n, plan_n = timed_runs(conn, list_sql(deep), as_app_user=True)
            statement_bypass = statement_latency(conn, list_sql(None), as_app_user=False)
            statement_rls = statement_latency(conn, list_sql(None), as_app_user=True)
        report = {
            "tasks": args.tasks,
            "users": args.users,
            "heavy_user_tasks": args.heavy,
            "seed_seconds": round(seconds, 1),
            "page_1_ms": round(page_1, 3),
            f"page_{last_page}_ms": round(page_n, 3),
            "without_rls_ms": round(bypass, 3),
            "rls_overhead_percent": round((page_1 / bypass - 1) * 100, 1),
            "statement_ms": round(statement_rls, 3),
            "statement_without_rls_ms": round(statement_bypass, 3),
            "statement_rls_overhead_percent": round((statement_rls / statement_bypass - 1) * 100, 1),
            "plan_page_1": plan_nodes(plan_1),
            f"plan_page_{last_page}": plan_nodes(plan_n),
            "plan_without_rls": plan_nodes(plan_b),
        }
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))
    write_markdown(args.out, report, last_page)


def write_markdown(path: Path, report: dict, last_page: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""# Scale: the list query under row-level security

Produced by `python -m bench.scale` (PostgreSQL from the pgserver wheel, on this machine).
{report["tasks"]:,} tasks across {report["users"]:,} users; the user measured holds
{report["heavy_user_tasks"]:,}. Pages of {PAGE_SIZE}, newest first, keyset cursors; median server
execution time of {RUNS} `EXPLAIN (ANALYZE, TIMING OFF)` runs.

| query | median execution (ms) |
|---|---|
| page 1, as app_user under RLS | {report["page_1_ms"]} |
| page {last_page:,}, as app_user under RLS | {report[f"page_{last_page}_ms"]} |
| page 1, the same query with RLS bypassed | {report["without_rls_ms"]} |

RLS overhead in execution time on page 1: {report["rls_overhead_percent"]}%, that is
{round((report["page_1_ms"] - report["without_rls_ms"]) * 1000)} µs: evaluating the policy's InitPlan once and
passing the page through the Result node that checks it.

Run as the API runs it (parse, plan, execute and fetch page 1 over a unix socket; median of
{RUNS}): **{report["statement_ms"]} ms under RLS vs {report["statement_without_rls_ms"]} ms with
RLS bypassed, an overhead of {report["statement_rls_overhead_percent"]}%.**

Seeding took {report["seed_seconds"]} s.

Plan of page 1 under RLS. The policy's `app.current_user_id()` runs once, as an InitPlan; the
Result node compares it once with the owner the query names for the planner, and the index scan
stops after one page:

```
{chr(10).join(report["plan_page_1"])}
```

Plan of page {last_page:,}:

```
{chr(10).join(report[f"plan_page_{last_page}"])}
```
"""
    )


if __name__ == "__main__":
    main()
