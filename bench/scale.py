"""Scale check: the list queries on a large table, as app_user under RLS.

Seeds 1,000,000 tasks across 10,000 users (one user holding 100,000, in 50 lists and none)
with generate_series: lists, due dates (none, past or future), priorities and tags (a few per
task from a vocabulary, in mixed case). Then, for that user, with the service's own statements:
- every sort, page 1 vs a middle page vs page 1,000 of a keyset walk (should cost the same);
- the filters: a tag (common, rare, absent, two of them), overdue, a list, no list, a priority;
- GET /lists with its counts, the user's 50 lists on one page;
each with its plan (EXPLAIN (ANALYZE, BUFFERS), summarised) and the same statement run by a
role that bypasses RLS (what the policy costs, and whether it changes the plan); then
- substring searches (`q`) over that user's tasks, and the worst case a user can construct
  (long tasks, a pathological pattern), with and without the search budget (DB_SEARCH_TIMEOUT_MS).

    python -m bench.scale [--tasks 1000000] [--users 10000] [--heavy 100000] [--out docs/scale.md]
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from api.database.session import IDENTITY_SQL, Statement, identity
from api.lists.service import _page_statement  # GET /lists' own statement
from api.ops import migrations
from api.ops.embedded import start_server
from api.tasks.models import Priority, TaskSort
from api.tasks.pagination import Cursor
from api.tasks.queries import NO_LIST, ListQuery
from api.tasks.service import list_statement

HEAVY_USER = "heavy"
HEAVY_LISTS = 50
OTHER_LISTS = 3  # for every fifth other user
LIST_ID_BASE = 1_000  # other users' list ids start here; the heavy user's are 1..HEAVY_LISTS
BINDING_URL = ""  # any connection to the server: psycopg binds values for its encoding
PAGE_SIZE = 100
LISTS_PAGE_SIZE = 100  # GET /lists' default limit
RUNS = 300
MIN_RUNS = 10
CASE_BUDGET_S = 6.0  # a slow case stops after this long (and at least MIN_RUNS)
SLOW_MS = 5.0  # execution above this is named as not fast

# Stored in mixed case; a filter matches ignoring case.
COMMON_TAG = ("work", "Work", "WORK")  # on 30% of tasks
VOCABULARY = (
    *("home", "Errand", "finance", "Health", "reading", "Travel", "garden", "CAR"),
    *("school", "Family", "music", "Shopping", "code", "Review", "call", "Email"),
)  # about 6% each
RARE_TAG = "Tax-2026"  # on one task in 1,000


def seed(conn: psycopg.Connection, *, tasks: int, users: int, heavy: int) -> float:
    started = time.perf_counter()
    conn.execute(
        """
        insert into lists (id, user_id, name) overriding system value
        select n, %(heavy_user)s, 'List ' || n from generate_series(1, %(heavy_lists)s) n
        union all
        select %(base)s + %(other_lists)s * k + j, 'user' || k, 'List ' || j
          from generate_series(0, %(users)s - 2, 5) k, generate_series(0, %(other_lists)s - 1) j
        """,
        {"heavy_user": HEAVY_USER, "heavy_lists": HEAVY_LISTS, "base": LIST_ID_BASE, "other_lists": OTHER_LISTS}
        | {"users": users},
    )
    conn.execute("select setval(pg_get_serial_sequence('lists', 'id'), max(id)) from lists")
    # hashint4extended(g, seed): independent pseudo-random draws, the same on every run.
    conn.execute(
        """
        with numbered as (
          select g, g <= %(heavy)s as heavy, g %% (%(users)s - 1) as k, g %% 3 = 0 as done,
                 timestamptz '2026-01-01' + g * interval '1 second' as created,
                 hashint4extended(g, 1) & 1023 as r1, hashint4extended(g, 2) & 1023 as r2,
                 hashint4extended(g, 3) & 1023 as r3, hashint4extended(g, 4) & 1023 as r4,
                 hashint4extended(g, 5) & 1023 as r5, hashint4extended(g, 6) & 1023 as r6,
                 hashint4extended(g, 7) & 1023 as r7
            from generate_series(1, %(tasks)s) g
        )
        insert into tasks (user_id, title, completed, completed_at, created_at, updated_at,
                           list_id, due_at, priority, tags)
        select case when heavy then %(heavy_user)s else 'user' || k end,
               'task ' || g, done, case when done then created + interval '1 day' end,
               created, created + r1 * interval '1 minute',
               -- the heavy user: 9 tasks in 10 spread over the lists; half of a list owner's
               case when heavy then case when g %% 10 <> 0 then 1 + (g / 10) %% %(heavy_lists)s end
                    when k %% 5 = 0 and g %% 2 = 0 then %(base)s + %(other_lists)s * k + (g / 2) %% %(other_lists)s
               end,
               -- 30%% without a due date; the others within six weeks either side of now
               case when r2 >= 307 then date_trunc('hour', now()) + (r3 - 512) * interval '2 hours' end,
               (array[0, 0, 0, 0, 1, 1, 1, 2, 2, 3])[1 + r4 %% 10]::smallint,
               array_remove(array[
                 case when r5 %% 10 < 3 then (%(common)s::text[])[1 + r5 %% 3] end,
                 case when r6 %% 4 > 0 then (%(vocabulary)s::text[])[1 + r7 %% 16] end,
                 case when r6 %% 4 = 3 then (%(vocabulary)s::text[])[1 + (r7 %% 16 + 1 + r7 / 16 %% 15) %% 16] end,
                 case when g %% 1000 = 7 then %(rare)s end
               ], null)
          from numbered
        """,
        {"heavy": heavy, "heavy_user": HEAVY_USER, "users": users, "tasks": tasks, "heavy_lists": HEAVY_LISTS}
        | {"base": LIST_ID_BASE, "other_lists": OTHER_LISTS}
        | {"common": list(COMMON_TAG), "vocabulary": list(VOCABULARY), "rare": RARE_TAG},
    )
    conn.execute("vacuum analyze lists, tasks")
    return time.perf_counter() - started


def list_sql(**fields: Any) -> str:
    """The service's own list statement for the heavy user, values bound as the API binds them."""
    return bound(list_statement(ListQuery(limit=PAGE_SIZE, **fields), HEAVY_USER))


def lists_page_sql() -> str:
    """GET /lists' statement: page 1 of the heavy user's lists, each with its counts."""
    return bound(_page_statement(False).bind(owner=HEAVY_USER, page_rows=LISTS_PAGE_SIZE + 1))


def bound(statement: Statement) -> str:
    """The statement as PostgreSQL receives it: values bound on the client, as psycopg does."""
    with psycopg.connect(BINDING_URL) as conn:
        return psycopg.ClientCursor(conn).mogrify(statement.sql, statement.params)


def as_heavy_user(conn: psycopg.Connection) -> None:
    conn.execute(IDENTITY_SQL, identity(HEAVY_USER, statement_timeout_ms=0, lock_timeout_ms=0))


def explain(conn: psycopg.Connection, sql: str, *, as_app_user: bool) -> dict:
    with conn.transaction(force_rollback=True):
        if as_app_user:
            as_heavy_user(conn)
        # TIMING OFF: per-node clock reads would charge the plan with more nodes for them.
        [[result]] = conn.execute(f"explain (analyze, buffers, timing off, format json) {sql}").fetchall()
    return result[0]


def measure(conn: psycopg.Connection, sql: str) -> dict:
    """Median execution and planning times (ms) under RLS and with RLS bypassed, the two
    alternating so that drift on a busy machine hits both; RUNS of each, or fewer for a slow
    statement (CASE_BUDGET_S), and one plan of each."""
    explain(conn, sql, as_app_user=True)  # warm the cache and the backend
    runs: dict[bool, list[dict]] = {True: [], False: []}
    started = time.perf_counter()
    while len(runs[True]) < RUNS and (len(runs[True]) < MIN_RUNS or time.perf_counter() - started < CASE_BUDGET_S):
        for as_app_user, plans in runs.items():
            plans.append(explain(conn, sql, as_app_user=as_app_user))
    rls, bypassed = runs[True], runs[False]
    executions = [plan["Execution Time"] for plan in rls]
    p25, _, p75 = statistics.quantiles(executions, n=4)
    top = rls[-1]["Plan"]
    return {
        "runs": len(rls),
        "ms": round(statistics.median(executions), 3),
        "p25_ms": round(p25, 3),
        "p75_ms": round(p75, 3),
        "planning_ms": round(statistics.median(plan["Planning Time"] for plan in rls), 3),
        "bypass_ms": round(statistics.median(plan["Execution Time"] for plan in bypassed), 3),
        "rows": top["Actual Rows"],
        "buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
        "scans": scans(rls[-1]),
        "bypass_scans": scans(bypassed[-1]),
        "plan": plan_lines(rls[-1]),
    }


def statement_latencies(conn: psycopg.Connection, sql: str) -> tuple[float, float]:
    """Median wall times (ms) of running the statement as the API does (planning included), under
    RLS and with RLS bypassed, the two alternating so that drift on a busy machine hits both."""
    under_rls, bypassed = [], []
    started = time.perf_counter()
    while len(under_rls) < RUNS and (len(under_rls) < MIN_RUNS or time.perf_counter() - started < CASE_BUDGET_S):
        for as_app_user, times in ((True, under_rls), (False, bypassed)):
            with conn.transaction(force_rollback=True):
                if as_app_user:
                    as_heavy_user(conn)
                started_run = time.perf_counter()
                conn.execute(sql).fetchall()
                times.append((time.perf_counter() - started_run) * 1000)
    return statistics.median(under_rls), statistics.median(bypassed)


def nodes(plan: dict) -> list[tuple[int, dict]]:
    """The plan's nodes, depth first, with their depth."""
    found, stack = [], [(0, plan["Plan"])]
    while stack:
        depth, node = stack.pop()
        found.append((depth, node))
        stack.extend((depth + 1, child) for child in reversed(node.get("Plans", [])))
    return found


def label(node: dict) -> str:
    text = node["Node Type"]
    if node.get("Scan Direction") == "Backward":
        text += " Backward"
    if node.get("Index Name"):
        text += f" {'on' if text.startswith('Bitmap') else 'using'} {node['Index Name']}"
    elif node.get("Relation Name"):
        text += f" on {node['Relation Name']}"
    if node.get("Sort Method"):
        text += f" ({node['Sort Method']})"
    return text


def counted(node: dict) -> str:
    """Rows a node returned (and discarded by its filter), over all its loops."""
    loops = node.get("Actual Loops", 1)
    text = f"{round(node['Actual Rows'] * loops):,} rows"
    if loops > 1:
        text += f" over {loops:,} loops"
    removed = round(node.get("Rows Removed by Filter", 0) * loops)
    return f"{text}, {removed:,} filtered out" if removed else text


def scans(plan: dict) -> list[str]:
    """What reads the rows: each scan and sort, with what it returned."""
    return [
        f"{label(node)}: {counted(node)}"
        for _, node in nodes(plan)
        if ("Scan" in node["Node Type"] and node["Node Type"] != "Subquery Scan") or node["Node Type"] == "Sort"
    ]


DETAILS = ("Index Cond", "Recheck Cond", "Filter", "Sort Key")


def plan_lines(plan: dict) -> list[str]:
    lines = []
    for depth, node in nodes(plan):
        name = f"{node['Subplan Name']}: " if node.get("Subplan Name") else ""
        lines.append(f"{'  ' * depth}{name}{label(node)} ({counted(node)})")
        for condition in DETAILS:
            if condition in node:
                value = node[condition]
                lines.append(f"{'  ' * depth}    {condition}: {', '.join(value) if isinstance(value, list) else value}")
    return lines


def cursor_at(conn: psycopg.Connection, sort: TaskSort, position: int) -> Cursor:
    """The cursor the API issues after the heavy user's task at `position` in this order, as
    the client sends it back (through its wire format)."""
    direction = "desc" if sort.descending else "asc"
    # Due sorts: tasks without a due date last, by id, in both directions.
    key, task_id = conn.execute(
        f"select {sort.column}, id from tasks where user_id = %s"
        f" order by {sort.column} {direction} nulls last, id {direction} offset %s limit 1",
        (HEAVY_USER, position - 1),
    ).fetchone()
    return Cursor.decode(Cursor.after({sort.column: key, "id": task_id}, sort).encode())


def check_page(conn: psycopg.Connection, sort: TaskSort, cursor: Cursor, position: int) -> None:
    """The page after the cursor starts with the task after `position`: the walk is right."""
    with conn.transaction(force_rollback=True):
        as_heavy_user(conn)
        first = conn.execute(list_sql(sort=sort, cursor=cursor)).fetchone()
    following = cursor_at(conn, sort, position + 1)
    assert first is not None and first[0] == following.id, (sort, position, first, following)


def sort_report(conn: psycopg.Connection, pages: tuple[int, ...]) -> dict:
    report: dict = {}
    for sort in TaskSort:
        for page in pages:
            cursor = None
            if page > 1:
                cursor = cursor_at(conn, sort, (page - 1) * PAGE_SIZE)
                check_page(conn, sort, cursor, (page - 1) * PAGE_SIZE)
            report[f"{sort.value} page {page}"] = measure(conn, list_sql(sort=sort, cursor=cursor))
    return report


LOWER_TAGS = "array(select lower(tag) from unnest(tags) tag)"
# Each filter, and the heavy user's tasks it matches, written independently of the service.
FILTERS: dict[str, tuple[dict[str, Any], str]] = {
    "tag, common (work)": ({"tag": ["work"]}, f"{LOWER_TAGS} @> array['work']"),
    "tag, one in 16 (Garden)": ({"tag": ["Garden"]}, f"{LOWER_TAGS} @> array['garden']"),
    "tag, rare (tax-2026)": ({"tag": ["tax-2026"]}, f"{LOWER_TAGS} @> array['tax-2026']"),
    "tag, in no task (milk)": ({"tag": ["milk"]}, f"{LOWER_TAGS} @> array['milk']"),
    "tags, two (work and garden)": ({"tag": ["work", "garden"]}, f"{LOWER_TAGS} @> array['work', 'garden']"),
    "overdue=true": ({"overdue": True}, "due_at < now() and not completed"),
    "overdue=false": ({"overdue": False}, "due_at is null or due_at >= now() or completed"),
    "list_id=1 (one of 50)": ({"list_id": 1}, "list_id = 1"),
    "list_id=none": ({"list_id": NO_LIST}, "list_id is null"),
    "priority=high": ({"priority": [Priority.high]}, "priority = 3"),
}


def filter_report(conn: psycopg.Connection) -> dict:
    report = {}
    for name, (fields, matching) in FILTERS.items():
        report[name] = measure(conn, list_sql(**fields))
        [[report[name]["matching"]]] = conn.execute(
            f"select count(*) from tasks where user_id = %s and ({matching})", (HEAVY_USER,)
        ).fetchall()
    return report


SEARCH_RUNS = 20
SEARCH_BUDGET_MS = 500  # DB_SEARCH_TIMEOUT_MS's default
ATTACKER, ATTACK_TASKS = "mallory", 3_000
WORST_QUERY = "a" * 199 + "b"


def search_sql(user: str, q: str) -> str:
    """The service's own list statement with `q`, values bound."""
    return bound(list_statement(ListQuery(q=q, limit=PAGE_SIZE), user))


def search_latency(
    conn: psycopg.Connection, user: str, q: str, *, budget_ms: int = 0, runs: int = SEARCH_RUNS
) -> float:
    """Median wall time (ms) of the search as app_user; a cancelled run counts as the time it took."""
    times = []
    for _ in range(runs):
        with conn.transaction(force_rollback=True):
            conn.execute(IDENTITY_SQL, identity(user, statement_timeout_ms=budget_ms, lock_timeout_ms=0))
            started = time.perf_counter()
            try:
                with conn.transaction():
                    conn.execute(search_sql(user, q)).fetchall()
            except psycopg.errors.QueryCanceled:
                pass
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def search_report(conn: psycopg.Connection) -> dict:
    conn.execute(
        "insert into tasks (user_id, title, description)"
        " select %s, repeat('a', 198) || 'c', 'aab' || repeat('a', 997) from generate_series(1, %s)",
        (ATTACKER, ATTACK_TASKS),
    )
    conn.execute("analyze tasks")
    searches = {"a word in no task": "milk", "a number in 1 task": "task 54321", "a word in every task": "task"}
    report: dict = {
        label: {"q": q, "ms": round(search_latency(conn, HEAVY_USER, q), 2)} for label, q in searches.items()
    }
    report["worst case"] = {
        "q": f"'a' x 199 + 'b', against {ATTACK_TASKS:,} tasks of 1,000 characters",
        "unbounded_ms": round(search_latency(conn, ATTACKER, WORST_QUERY, runs=3), 1),
        "with_budget_ms": round(search_latency(conn, ATTACKER, WORST_QUERY, budget_ms=SEARCH_BUDGET_MS, runs=3), 1),
    }
    return report


def machine(conn: psycopg.Connection) -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "postgresql": conn.execute("show server_version").fetchone()[0],
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--heavy", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("docs/scale.md"))
    args = parser.parse_args()

    global BINDING_URL
    workdir = Path(tempfile.mkdtemp(prefix="taskapi-scale-"))
    server = start_server(workdir / "pg", cleanup_mode="delete")
    last_page = args.heavy // PAGE_SIZE
    pages = (1, last_page // 2, last_page)
    try:
        url = BINDING_URL = server.get_uri()
        migrations.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            before = machine(conn)
            seconds = seed(conn, tasks=args.tasks, users=args.users, heavy=args.heavy)
            sorts = sort_report(conn, pages)
            filters = filter_report(conn)
            lists = measure(conn, lists_page_sql())
            latencies = {
                name: statement_latencies(conn, sql)
                for name, sql in (
                    ("page 1, -created", list_sql()),
                    ("tag, rare (tax-2026)", list_sql(**FILTERS["tag, rare (tax-2026)"][0])),
                    ("GET /lists, 50 lists with counts", lists_page_sql()),
                )
            }
            searches = search_report(conn)
            after = machine(conn)
        report = {
            "machine": before | {"load_average_after": after["load_average"]},
            "tasks": args.tasks,
            "users": args.users,
            "heavy_user_tasks": args.heavy,
            "seed_seconds": round(seconds, 1),
            "pages": pages,
            "sorts": sorts,
            "filters": filters,
            "lists": lists,
            "statements": {
                name: {"ms": round(rls, 3), "without_rls_ms": round(bypassed, 3)}
                for name, (rls, bypassed) in latencies.items()
            },
            "searches": searches,
        }
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({key: value for key, value in report.items() if key not in ("sorts", "filters")}, indent=2))
    write_markdown(args.out, report)


def ms(value: float) -> str:
    return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"


def timing(case: dict) -> str:
    text = f"{ms(case['ms'])} ({ms(case['p25_ms'])}-{ms(case['p75_ms'])})"
    return f"**{text}**" if case["ms"] > SLOW_MS else text


def bypassed(case: dict) -> str:
    """The time with RLS bypassed, and its plan when it differs."""
    if case["bypass_scans"] == case["scans"]:
        return ms(case["bypass_ms"])
    return f"{ms(case['bypass_ms'])}: {'; '.join(case['bypass_scans'])}"


def case_row(name: str, case: dict, *extra: str) -> str:
    cells = [name, *extra, "; ".join(case["scans"]), f"{case['buffers']:,}", ms(case["planning_ms"])]
    return "| " + " | ".join([*cells, timing(case), bypassed(case), str(case["runs"])]) + " |"


def sort_rows(sorts: dict, pages: tuple[int, ...]) -> str:
    return "\n".join(
        case_row(f"`{sort.value}`", sorts[f"{sort.value} page {page}"], f"{page:,}")
        for sort in TaskSort
        for page in pages
    )


def filter_rows(filters: dict) -> str:
    return "\n".join(case_row(name, case, f"{case['matching']:,}") for name, case in filters.items())


def slow_rows(report: dict) -> str:
    cases = {f"`{name}`": case for name, case in report["sorts"].items()}
    cases |= {name: case for name, case in report["filters"].items()}
    cases["GET /lists, 50 lists with counts"] = report["lists"]
    slow = [
        f"- {name}: {ms(case['ms'])} ms under RLS, {ms(case['bypass_ms'])} ms bypassed"
        for name, case in cases.items()
        if case["ms"] > SLOW_MS
    ]
    return "\n".join(slow) or "- none"


def tag_index_unused(filters: dict) -> bool:
    """Under RLS the tag filter is no index condition (the GIN index is used only when bypassed)."""
    return any(
        "tasks_tag_keys_idx" not in " ".join(case["scans"]) and "tasks_tag_keys_idx" in " ".join(case["bypass_scans"])
        for name, case in filters.items()
        if name.startswith("tag")
    )


def plans(report: dict) -> str:
    cases = {f"{name}": case for name, case in report["sorts"].items()}
    cases |= {name: case for name, case in report["filters"].items()}
    cases["GET /lists"] = report["lists"]
    return "\n\n".join(f"{name}:\n\n```\n{chr(10).join(case['plan'])}\n```" for name, case in cases.items())


def statement_rows(statements: dict) -> str:
    return "\n".join(f"| {name} | {ms(row['ms'])} | {ms(row['without_rls_ms'])} |" for name, row in statements.items())


def search_rows(searches: dict) -> str:
    return "\n".join(f"| {label} | `{row['q']}` | {row['ms']} |" for label, row in searches.items() if "ms" in row)


# Why each slow case is slow, and the fix proposed. The fixes were measured by hand on the
# database this script seeds, at the default scale, each run alternately with the current
# statement (medians of 15 to 41 runs of each; the machine's noise applies).
TAG_CAUSE = """\
**The tag filter does not use its GIN index under RLS.** PostgreSQL applies a user's
conditions only after the policy's unless their operators are LEAKPROOF, and neither `@>`
(`arraycontains`) nor `app.tag_keys` is (only a superuser can mark a function leakproof; the
migration role on Neon is not one). So for app_user `app.tag_keys(user_id, tags) @> ...` is a
filter, evaluated row by row (`app.tag_keys` is a SQL function, not inlined: 3 to 9 µs a row
in all, depending on the machine's load). The planner walks the user's tasks newest first and
stops after a page of matches: fast for a tag on 30% of them, 1,800 rows for one on 6%, and
every one of the user's tasks for a rare tag, a tag in no task or two tags together. With RLS
bypassed the same statement is a Bitmap Index Scan on tasks_tag_keys_idx (the "bypassed"
column). The cost is bounded by the user's own task count, like a substring search's, but it
is not fast, and unlike `q` a tag filter is not under the search budget (DB_SEARCH_TIMEOUT_MS).

Proposed fix: keep the tags' keys in a table of their own, `task_tags (user_id, tag_key,
task_id)`, primary key in that order, RLS forced with the same policy, written with the task;
filter with one semi-join per tag, `id in (select task_id from task_tags where user_id =
:owner and tag_key = lower(:tag))`. Equality on text and bigint is leakproof, so these are
index conditions under RLS. Measured by hand (fixed vs current): a rare tag 0.49 vs 311 ms, a
tag in no task 0.05 vs 319, two tags 9.6 vs 409, a common tag 0.93 vs 1.25; but a tag on 6%
of the tasks 18 to 33 vs 8: the planner joins all 6,236 of them (hashing the user's 100,000
tasks, or looking each up by id), then sorts them, where the filter stops after 1,800 rows."""

DUE_CAUSE = """\
**The undated branch of the due sorts can read the whole table.** It is ordered by `id` alone,
so the planner reads it through `tasks_pkey`, in id order, filtering on `user_id` and `due_at
IS NULL`, expecting the user's undated tasks to be spread evenly through the table. This user's
tasks are the first 100,000 ids (as after an import): `-due` reads every other user's task
before reaching them, and the last page of `due`, which has fewer rows than the limit, reads on
past them to the end of the table. With a user's tasks interleaved with others', a full page
would read about (all tasks / the user's undated tasks) rows per row it returns (not
measured). A partial index on `(user_id, id) where due_at is null` does not help: the planner
still prefers the primary key, whose rows are in id order on disk and so cost less to fetch.

Proposed fix, with no new index: order the undated branch by `due_at, id` (`due_at desc, id
desc` for `-due`) instead of `id`, the same order since `due_at` is null throughout. The
(user_id, due_at, id) index gives that order, with `due_at IS NULL` (and the cursor's `id`) as
index conditions, and the scan stops after one page. Measured by hand (fixed vs current; the
same rows come back): `due` page 1,000 0.12 vs 178 ms, `-due` page 1 0.28 vs 128, page 500
0.36 vs 154."""

LISTS_CAUSE = """\
**GET /lists counts every task in the lists, on every request.** Each list's two counts are
subqueries: task_count reads the list's entries in tasks_user_id_list_id_idx (an index-only
scan), open_count reads them again and fetches each row for `completed`; for 50 lists of
1,800 tasks that is 90,000 index entries and 90,000 rows. One lateral subquery per list
computing both (`count(*)`, `count(*) filter (where not completed)`) reads them once: measured
by hand, 15 to 24 ms vs 20 to 33 for the current statement; an index `(user_id, list_id)
include (completed)`, to count without fetching rows, gave no consistent gain. Either way the
cost is linear in the tasks listed (0.2 to 0.4 µs each); constant time would take counts kept
on `lists` by the writes that change them (at the price of a row every such write updates)."""


def write_markdown(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    host, searches, pages = report["machine"], report["searches"], report["pages"]
    worst = searches["worst case"]
    first = report["sorts"]["-created page 1"]
    lists = report["lists"]
    slow_lists = lists["ms"] > SLOW_MS
    slow_due = any(
        case["ms"] > SLOW_MS and "tasks_pkey" in " ".join(case["scans"])
        for name, case in report["sorts"].items()
        if name.startswith(("due", "-due"))
    )
    causes = [TAG_CAUSE] * tag_index_unused(report["filters"]) + [DUE_CAUSE] * slow_due + [LISTS_CAUSE] * slow_lists
    path.write_text(
        f"""# Scale: the list queries under row-level security

Produced by `python -m bench.scale` (PostgreSQL {host["postgresql"]} from the pgserver wheel) on
{host["cores"]} cores ({host["cpu"]}) shared with other jobs: the load average was
{", ".join(map(str, host["load_average"]))} before and {", ".join(map(str, host["load_average_after"]))} after.
Timings on such a machine are noisy: each is the median server execution time of up to {RUNS}
`EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)` runs (fewer for a slow statement, at least
{MIN_RUNS}; the number is in the last column), with the interquartile range, under RLS and with
RLS bypassed (a superuser) alternately, so that drift hits both. Differences of a few
hundredths of a millisecond are noise, and from one run of this script to the next the slow
cases' medians moved by up to 2.5x (three runs at the default scale, load average 1 to 6).

{report["tasks"]:,} tasks across {report["users"]:,} users. The user measured holds
{report["heavy_user_tasks"]:,}, the first {report["heavy_user_tasks"]:,} ids (as after an import),
9 in 10 of them spread over {HEAVY_LISTS} lists (1 in 10 in none); every fifth other user has
{OTHER_LISTS} lists, holding half their tasks. 30% of tasks have no due date, the others are due
within six weeks either side of now; priorities none to high (40/30/20/10%); tags: `work` in
mixed case on 30%, one or two of {len(VOCABULARY)} words (in mixed case) on most, `{RARE_TAG}` on
one task in 1,000. A third of the tasks are completed. Pages of {PAGE_SIZE}; every statement is
the service's own (`list_statement`, and GET /lists' statement), values bound as the API binds
them; deeper pages use the cursor the API issues after the task at that position (checked: the
page starts with the next task). Seeding took {report["seed_seconds"]} s.

Execution times in ms. Bold: above {SLOW_MS:g} ms. "Plan" lists the scans and sorts of the
plan under RLS with the rows they returned; "bypassed" adds the plan when it differs.

## Every sort, page 1 vs page {pages[1]:,} vs page {pages[2]:,}

| sort | page | plan under RLS | buffers | planning | execution (p25-p75) | RLS bypassed | runs |
|---|---|---|---|---|---|---|---|
{sort_rows(report["sorts"], pages)}

For the due sorts, page {pages[2]:,} lies past every dated task (ascending and descending, the
tasks without a due date come last), so it is the undated branch alone.

## Filters (newest first, page 1)

| filter | matching tasks | plan under RLS | buffers | planning | execution (p25-p75) | RLS bypassed | runs |
|---|---|---|---|---|---|---|---|
{filter_rows(report["filters"])}

## GET /lists with its counts ({HEAVY_LISTS} lists, one page)

| | plan under RLS | buffers | planning | execution (p25-p75) | RLS bypassed | runs |
|---|---|---|---|---|---|---|
{case_row("GET /lists", lists)}

```
{chr(10).join(lists["plan"])}
```

## Not fast

Above {SLOW_MS:g} ms:

{slow_rows(report)}

{(chr(10) * 2).join(causes)}

## The cost of the policy

On page 1, newest first: {ms(first["ms"])} ms under RLS vs {ms(first["bypass_ms"])} ms bypassed, that is
{round((first["ms"] - first["bypass_ms"]) * 1000)} µs: evaluating the policy's InitPlan once and
passing the page through the Result node that checks it. The policy's `app.current_user_id()`
runs once, as an InitPlan; the Result node compares it once with the owner the query names for
the planner, and the index scan stops after one page:

```
{chr(10).join(first["plan"])}
```

Run as the API runs it (parse, plan, execute and fetch over a unix socket; median wall time):

| statement | under RLS (ms) | RLS bypassed (ms) |
|---|---|---|
{statement_rows(report["statements"])}

## Substring search (`q`)

The same user's {report["heavy_user_tasks"]:,} tasks, searched as the API searches (`title ILIKE '%q%' OR
description ILIKE '%q%'`, as app_user, planning included; median of {SEARCH_RUNS}). A page that
fills up early stops early; a rare word reads every one of the user's tasks:

| search | q | ms |
|---|---|---|
{search_rows(searches)}

Why no trigram index: under row-level security PostgreSQL applies a user's conditions only
after the policy's, unless their operators are LEAKPROOF, and `ILIKE` is not (only a superuser
can mark a function leakproof). So a pg_trgm GIN index is never used as an index condition for
app_user: measured on PostgreSQL 18 with pg_trgm, 100,000 tasks, `q=milk` took 0.06 ms through
the index when RLS was bypassed and 60 ms under RLS with the index in place, the plan ignoring
it. What bounds the cost instead is the user's own row count, the search budget and the share.

The worst case a user can build for themselves defeats any index: {ATTACK_TASKS:,} tasks whose
1,000-character descriptions hold every trigram of a 200-character pattern that never matches,
so each row is compared character by character, quadratically. Searched with
{worst["q"]}: **{worst["unbounded_ms"]} ms unbounded; cancelled after
{worst["with_budget_ms"]} ms with the search budget** (DB_SEARCH_TIMEOUT_MS = {SEARCH_BUDGET_MS}). With
at most DB_CONNECTIONS_PER_USER (3) of a user's transactions at once, one user can keep at most
3 backends busy, each for at most the budget.

## Every plan under RLS

<details>
<summary>{len(report["sorts"]) + len(report["filters"]) + 1} plans</summary>

{plans(report)}

</details>
"""
    )


if __name__ == "__main__":
    main()
