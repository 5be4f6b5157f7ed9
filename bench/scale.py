"""Scale check: the list queries on a large table, as app_user under RLS.

Seeds 1,000,000 tasks across 10,000 users (one user holding 100,000, in 50 lists and none)
with generate_series: lists, due dates (none, past or future), priorities and tags (a few per
task from a vocabulary, in mixed case), and task_tags, the tag index the triggers keep, then
ANALYZE, which fills its extended statistics on (user_id, tag_key) (checked, with the planner's
estimates of the user's entries of a tag). Then, for that user, with the service's own statements:
- every sort, page 1 vs a middle page vs page 1,000 of a keyset walk (should cost the same);
- the filters: a tag (common, 1 in 16, rare, absent, two of them), overdue, a list, no list, a
  priority; each tag filter's page checked against the tasks' own tags, and its plan checked
  for task_tags_pkey as an index condition;
- GET /lists with its counts, the user's 50 lists on one page;
each with its plan (EXPLAIN (ANALYZE, BUFFERS), summarised) and the same statement run by a
role that bypasses RLS (what the policy costs, and whether it changes the plan); then
- what the tag triggers add to a write: inserting a task with 3 tags vs none, updating it with
  and without changing its tags, deleting it (as app_user, each in a transaction rolled back),
  and how the trigger's delete and the cascade of a task's delete find its entries
  (task_tags_task_id_idx);
- substring searches (`q`) over that user's tasks, and the worst case a user can construct
  (long tasks, a pathological pattern), with and without the search budget (DB_SEARCH_TIMEOUT_MS);
- the worst tag filters a user can construct (tags each on most of their tasks, together on
  none), with and without the search budget, which the API gives a tag filter as it gives `q`.

    python -m bench.scale [--tasks 1000000] [--users 10000] [--heavy 100000] [--out docs/scale.md]
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql

from api.common.writes import guarded_delete, version_params
from api.config import Settings
from api.database.session import IDENTITY_SQL, Statement, _tighter, identity
from api.lists.service import _page_statement  # GET /lists' own statement
from api.ops import migrations
from api.ops.embedded import start_server
from api.tasks.models import TASKS, Priority, TaskCreate, TaskSort, TaskUpdate
from api.tasks.pagination import Cursor
from api.tasks.queries import NO_LIST, ListQuery
from api.tasks.service import _CREATE, _stored_values, _update_statement, list_statement  # the service's own writes

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
    insert_tasks(
        conn,
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
    conn.execute("vacuum analyze lists, tasks, task_tags")
    return time.perf_counter() - started


def insert_tasks(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> None:
    """Insert tasks in bulk, then their task_tags rows in one statement, as the trigger would
    write them (db/functions/app.sync_task_tags.sql). The trigger is off meanwhile: a function
    call and an insert per task made the load a third slower (measured at 200,000 tasks)."""
    [[last_id]] = conn.execute("select coalesce(max(id), 0) from tasks").fetchall()
    conn.execute("alter table tasks disable trigger tasks_tags_inserted")
    try:
        conn.execute(sql, params)
    finally:
        conn.execute("alter table tasks enable trigger tasks_tags_inserted")
    # In task order, as the trigger writes them, so the index grows (and splits) as it would.
    conn.execute(
        "insert into task_tags (user_id, tag_key, task_id)"
        " select distinct user_id, lower(tag), id from tasks, unnest(tags) tag where id > %s order by id",
        (last_id,),
    )


TAG_STATISTICS = "task_tags_user_id_tag_key_stats"  # migration 0004: (mcv) on user_id, tag_key
ESTIMATED_TAGS = ("work", "garden", "tax-2026", "milk")  # the tags the filters below ask for


def tag_statistics(conn: psycopg.Connection) -> dict:
    """What the seed's ANALYZE left in the extended statistics on task_tags: the (user_id,
    tag_key) pairs of their MCV list, and the planner's estimate of the user's entries of each
    tag filtered on, against the count; and the sizes of task_tags' two indexes."""
    [[pairs, own_pairs]] = conn.execute(
        "select count(*), count(*) filter (where %s = any(item.values))"
        " from pg_statistic_ext stats join pg_statistic_ext_data data on data.stxoid = stats.oid,"
        " pg_mcv_list_items(data.stxdmcv) item where stats.stxname = %s",
        (HEAVY_USER, TAG_STATISTICS),
    ).fetchall()
    assert pairs > 0, f"ANALYZE left no MCV list in {TAG_STATISTICS}"
    estimates = {}
    for tag in ESTIMATED_TAGS:
        where = psycopg.sql.SQL("user_id = {} and tag_key = {}").format(
            psycopg.sql.Literal(HEAVY_USER), psycopg.sql.Literal(tag)
        )
        [plan] = conn.execute(
            psycopg.sql.SQL("explain (format json) select from task_tags where {}").format(where)
        ).fetchone()
        [[count]] = conn.execute(psycopg.sql.SQL("select count(*) from task_tags where {}").format(where)).fetchall()
        estimates[tag] = {"estimated": plan[0]["Plan"]["Plan Rows"], "actual": count}
    [[pkey_mb, task_id_mb]] = conn.execute(
        "select pg_relation_size('task_tags_pkey') / 1048576.0, pg_relation_size('task_tags_task_id_idx') / 1048576.0"
    ).fetchall()
    return {
        "mcv_pairs": pairs,
        "own_pairs": own_pairs,
        "estimates": estimates,
        "index_mb": {"task_tags_pkey": round(float(pkey_mb), 1), "task_tags_task_id_idx": round(float(task_id_mb), 1)},
    }


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
        "index_conds": index_conditions(rls[-1]),
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
    if loops > 1 and node["Actual Rows"] == 0:  # a mean per loop, rounded: under 0.5 is shown as 0
        text = "under 0.5 rows a loop"
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


def index_conditions(plan: dict) -> list[dict]:
    """Each index the plan reads, the condition it reads it by and the filter on what it finds."""
    return [
        {"index": node["Index Name"], "cond": node["Index Cond"], "filter": node.get("Filter", "")}
        for _, node in nodes(plan)
        if "Index Cond" in node
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
# Each filter, and the heavy user's tasks it matches, written independently of the service
# (for tags: from tasks.tags, not task_tags).
FILTERS: dict[str, tuple[dict[str, Any], str]] = {
    "tag, common (work)": ({"tag": ["work"]}, f"{LOWER_TAGS} @> array['work']"),
    "tag, one in 16 (Garden)": ({"tag": ["Garden"]}, f"{LOWER_TAGS} @> array['garden']"),
    "tag, rare (tax-2026)": ({"tag": ["tax-2026"]}, f"{LOWER_TAGS} @> array['tax-2026']"),
    "tag, in no task (milk)": ({"tag": ["milk"]}, f"{LOWER_TAGS} @> array['milk']"),
    "tags, rare and common (Tax-2026, work)": (
        {"tag": ["Tax-2026", "work"]},
        f"{LOWER_TAGS} @> array['tax-2026', 'work']",
    ),
    "tags, two common (work, garden)": ({"tag": ["work", "garden"]}, f"{LOWER_TAGS} @> array['work', 'garden']"),
    "overdue=true": ({"overdue": True}, "due_at < now() and not completed"),
    "overdue=false": ({"overdue": False}, "due_at is null or due_at >= now() or completed"),
    "list_id=1 (one of 50)": ({"list_id": 1}, "list_id = 1"),
    "list_id=none": ({"list_id": NO_LIST}, "list_id is null"),
    "priority=high": ({"priority": [Priority.high]}, "priority = 3"),
}
TAG_INDEX = "task_tags_pkey"


def filter_report(conn: psycopg.Connection) -> dict:
    report = {}
    for name, (fields, matching) in FILTERS.items():
        check_filter(conn, fields, matching)
        report[name] = measure(conn, list_sql(**fields))
        [[report[name]["matching"]]] = conn.execute(
            f"select count(*) from tasks where user_id = %s and ({matching})", (HEAVY_USER,)
        ).fetchall()
    return report


def check_filter(conn: psycopg.Connection, fields: dict[str, Any], matching: str) -> None:
    """The service's first page under RLS is the first page of the tasks matching, newest first."""
    with conn.transaction(force_rollback=True):
        as_heavy_user(conn)
        page = [row[0] for row in conn.execute(list_sql(**fields))]
    expected = conn.execute(
        f"select id from tasks where user_id = %s and ({matching}) order by created_at desc, id desc limit %s",
        (HEAVY_USER, PAGE_SIZE + 1),
    ).fetchall()
    assert page == [row[0] for row in expected], (fields, page[:3], expected[:3])


WRITE_RUNS = 300
WRITE_TAGS = ["work", "Garden", "milk"]  # "milk" is in no seeded task: never a task's tags already
TAG_TRIGGERS = ("tasks_tags_inserted", "tasks_tags_updated")
TAG_KEY = "task_tags_task_id_fkey"  # its cascade deletes a task's rows in task_tags


def tag_trigger(trigger: dict) -> bool:
    return trigger["Trigger Name"] in TAG_TRIGGERS or trigger.get("Constraint Name") == TAG_KEY


def write_statements(conn: psycopg.Connection) -> dict[str, str]:
    """The service's own writes, for the heavy user: a task created without tags and with 3; one
    of their tasks holding 3 tags updated (PUT: the title always sent) without its tags (the
    trigger does not fire), with the same tags (its condition is false) and with 3 others (3
    rows deleted, 3 inserted); and a task deleted without tags and with 3 (3 rows cascaded)."""
    [[tagged, title, tags]] = conn.execute(
        "select id, title, tags from tasks where user_id = %s and cardinality(tags) = 3 order by id limit 1",
        (HEAVY_USER,),
    ).fetchall()
    [[untagged]] = conn.execute(
        "select min(id) from tasks where user_id = %s and cardinality(tags) = 0", (HEAVY_USER,)
    ).fetchall()

    def create(tags: list[str]) -> Statement:
        return _CREATE.bind(**_stored_values(TaskCreate(title="written", tags=tags)))

    def update(**fields: Any) -> Statement:
        changes = _stored_values(TaskUpdate(title=title, **fields), only_sent=True)
        statement = _update_statement(frozenset(changes), toggle=False, guarded=False)
        return statement.bind(**changes, **version_params(tagged, None))

    def delete(task_id: int) -> Statement:
        return guarded_delete(TASKS, guarded=False).bind(**version_params(task_id, None))

    statements = {
        "insert, no tags": create([]),
        "insert, 3 tags": create(WRITE_TAGS),
        "update, tags not sent": update(),
        "update, the same 3 tags": update(tags=tags),
        "update, 3 other tags": update(tags=WRITE_TAGS),
        "delete, no tags": delete(untagged),
        "delete, 3 tags": delete(tagged),
    }
    return {name: bound(statement) for name, statement in statements.items()}


def check_tags_written(conn: psycopg.Connection, statements: dict[str, str]) -> None:
    """The trigger writes what the seed wrote for tasks: the distinct tags in lower case."""
    for name in ("insert, 3 tags", "update, 3 other tags"):
        with conn.transaction(force_rollback=True):
            as_heavy_user(conn)
            [[task_id]] = conn.execute(f"with written as ({statements[name]}) select id from written").fetchall()
            keys = conn.execute("select tag_key from task_tags where task_id = %s order by 1", (task_id,)).fetchall()
        assert [key for [key] in keys] == sorted(tag.lower() for tag in WRITE_TAGS), (name, keys)


def entry_lookup(conn: psycopg.Connection) -> dict:
    """How a task's entries in task_tags are found: the trigger's delete (a change of tags), as
    app_user under the policies on task_tags, and with RLS not applied, as the cascade of
    task_tags_task_id_fkey runs its own `delete ... where task_id = $1 and user_id = $2` (as the
    table's owner), for one of the user's tasks with 3 tags; each explained alone, rolled back."""
    [[task_id]] = conn.execute(
        "select min(id) from tasks where user_id = %s and cardinality(tags) = 3", (HEAVY_USER,)
    ).fetchall()
    sql = psycopg.sql.SQL("delete from public.task_tags where task_id = {} and user_id = {}").format(
        psycopg.sql.Literal(task_id), psycopg.sql.Literal(HEAVY_USER)
    )
    return measure(conn, sql.as_string(conn))


def write_report(conn: psycopg.Connection) -> dict:
    """Median server execution time (EXPLAIN ANALYZE: the statement and its triggers), the tag
    trigger's share of it, and wall time as the API runs it, as app_user, each run rolled back;
    the cases alternating so that drift on a busy machine hits all of them."""
    statements = write_statements(conn)
    check_tags_written(conn, statements)
    runs: dict[str, dict[str, list[float]]] = {name: {"ms": [], "trigger_ms": [], "wall_ms": []} for name in statements}
    for _ in range(WRITE_RUNS):
        for name, sql in statements.items():
            with conn.transaction(force_rollback=True):
                as_heavy_user(conn)
                [[result]] = conn.execute(f"explain (analyze, format json) {sql}").fetchall()
            runs[name]["ms"].append(result[0]["Execution Time"])
            triggers = result[0].get("Triggers", [])
            runs[name]["trigger_ms"].append(sum(trigger["Time"] for trigger in triggers if tag_trigger(trigger)))
            with conn.transaction(force_rollback=True):
                as_heavy_user(conn)
                started = time.perf_counter()
                conn.execute(sql).fetchall()
                runs[name]["wall_ms"].append((time.perf_counter() - started) * 1000)
    return {
        name: {measure: round(statistics.median(values), 3) for measure, values in times.items()} | {"runs": WRITE_RUNS}
        for name, times in runs.items()
    }


SEARCH_RUNS = 20
DEFAULTS = Settings.model_fields
SEARCH_BUDGET_MS = DEFAULTS["db_search_timeout_ms"].default  # DB_SEARCH_TIMEOUT_MS's default, 500
# What the API sets for a list with `q` or `tag`: the tighter of the search budget and the
# statement timeout (DB_STATEMENT_TIMEOUT_MS's default, 5,000), as RequestTransaction.run_all does.
BUDGET_AS_SET_MS = _tighter(str(DEFAULTS["db_statement_timeout_ms"].default), SEARCH_BUDGET_MS)
ATTACKER, ATTACK_TASKS = "mallory", 3_000
WORST_QUERY = "a" * 199 + "b"


def search_sql(user: str, q: str) -> str:
    """The service's own list statement with `q`, values bound."""
    return bound(list_statement(ListQuery(q=q, limit=PAGE_SIZE), user))


def latency(
    conn: psycopg.Connection,
    user: str,
    sql: str,
    *,
    budget_ms: int = 0,
    runs: int,
    expected: list | None = None,
    stop_when_cancelled: bool = False,
) -> tuple[float, int, int]:
    """Median wall time (ms) of the statement as app_user `user`, planning included, with
    statement_timeout = budget_ms (0: none), how many runs it cancelled and how many ran; a cancelled run
    counts as the time until its error. `expected`: the rows a run that finishes must return.
    `stop_when_cancelled`: no more runs after the first one cancelled."""
    times, cancelled = [], 0
    for _ in range(runs):
        if cancelled and stop_when_cancelled:
            break
        with conn.transaction(force_rollback=True):
            conn.execute(IDENTITY_SQL, identity(user, statement_timeout_ms=budget_ms, lock_timeout_ms=0))
            started = time.perf_counter()
            try:
                with conn.transaction():
                    rows = conn.execute(sql).fetchall()
            except psycopg.errors.QueryCanceled:
                cancelled += 1
            else:
                assert expected is None or rows == expected, (user, sql[:200], rows[:3])
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), cancelled, len(times)


def search_latency(
    conn: psycopg.Connection, user: str, q: str, *, budget_ms: int = 0, runs: int = SEARCH_RUNS
) -> float:
    """Median wall time (ms) of the search as app_user; a cancelled run counts as the time it took."""
    return latency(conn, user, search_sql(user, q), budget_ms=budget_ms, runs=runs)[0]


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
        "with_budget_ms": round(search_latency(conn, ATTACKER, WORST_QUERY, budget_ms=BUDGET_AS_SET_MS, runs=3), 1),
    }
    return report


TAGGER, TAGGER_TASKS = "tagger", 100_000
TAGGER_WORDS = [f"t{n:02d}" for n in range(20)]  # each task: all but one, and "left" or "right" (20 tags, the most)
TAG_WORST_RUNS = 3  # without the budget: seconds each
TAG_WORST_BUDGET_RUNS = 5
# Without the budget a run stops here: since the statistics on (user_id, tag_key), the planner can
# pick a plan for many tags that takes minutes (over 15 in one run of this script).
TAG_WORST_CAP_MS = 30_000
TAG_WORST = {
    "20 tags, each on 95% of the tasks, together on none": TAGGER_WORDS,
    "2 tags, each on half of the tasks, together on none": ["left", "right"],
}


def tag_worst_report(conn: psycopg.Connection) -> dict:
    """The worst tag filters a user can build for themselves: tags each on most of their tasks,
    together on none. Median wall time as app_user, planning included, without the search budget
    (stopped at TAG_WORST_CAP_MS) and with it as the API sets it for a list with `tag`
    (statement_timeout = BUDGET_AS_SET_MS); and the plan the planner picks, with the sets of
    tasks it expects to be small enough to scan once per task (a Materialize under a Nested Loop
    with a Join Filter), against their true sizes."""
    insert_tasks(
        conn,
        """
        insert into tasks (user_id, title, tags)
        select %(user)s, 'task ' || g,
               array(select word from unnest(%(words)s::text[]) with ordinality w(word, n) where n - 1 <> g %% 20)
               || case when g %% 2 = 0 then 'left' else 'right' end
          from generate_series(1, %(tasks)s) g
        """,
        {"user": TAGGER, "words": TAGGER_WORDS, "tasks": TAGGER_TASKS},
    )
    conn.execute("vacuum analyze tasks, task_tags")
    report = {}
    for name, tags in TAG_WORST.items():
        sql = bound(list_statement(ListQuery(tag=tags, limit=PAGE_SIZE), TAGGER))
        plan = estimated_plan(conn, TAGGER, sql)
        unbounded, capped, ran = latency(
            conn, TAGGER, sql, budget_ms=TAG_WORST_CAP_MS, runs=TAG_WORST_RUNS, expected=[], stop_when_cancelled=True
        )
        with_budget, cut, _ = latency(
            conn, TAGGER, sql, budget_ms=BUDGET_AS_SET_MS, runs=TAG_WORST_BUDGET_RUNS, expected=[]
        )
        report[name] = {
            "unbounded_ms": round(unbounded, 1),
            "capped": bool(capped),
            "runs": ran,
            "with_budget_ms": round(with_budget, 1),
            "cancelled": cut,
            "budget_runs": TAG_WORST_BUDGET_RUNS,
            "rescans": [rescan | {"actual": tasks_tagged(conn, TAGGER, rescan["tags"])} for rescan in rescans(plan)],
            "plan": estimated_lines(plan),
        }
    return report


def estimated_plan(conn: psycopg.Connection, user: str, sql: str) -> dict:
    """The plan (EXPLAIN, not run) of the statement as app_user `user`."""
    with conn.transaction(force_rollback=True):
        conn.execute(IDENTITY_SQL, identity(user, statement_timeout_ms=0, lock_timeout_ms=0))
        [[result]] = conn.execute(f"explain (format json) {sql}").fetchall()
    return result[0]


def estimated_lines(plan: dict) -> list[str]:
    lines = []
    for depth, node in nodes(plan):
        name = f"{node['Subplan Name']}: " if node.get("Subplan Name") else ""
        if node["Node Type"] == "Result" and not node.get("Plans"):
            continue  # the policies' InitPlans, one per task_tags read
        lines.append(f"{'  ' * depth}{name}{label(node)} (estimated {node['Plan Rows']:,} rows)")
        for condition in (*DETAILS, "Join Filter", "Merge Cond"):
            if condition in node:
                lines.append(f"{'  ' * depth}    {condition}: {node[condition]}")
    return lines


def rescans(plan: dict) -> list[dict]:
    """Each set the plan materialises and scans again for every row of the other side of a
    Nested Loop (its Join Filter compares them row by row): the tags it is made of, the rows the
    planner expects of it and of the other side."""
    found = []
    for _, node in nodes(plan):
        if node["Node Type"] != "Nested Loop" or "Join Filter" not in node:
            continue
        outer, inner = node["Plans"]
        if inner["Node Type"] == "Materialize":
            tags = sorted(set(re.findall(r"tag_key = '([^']+)'", json.dumps(inner))))
            found.append({"tags": tags, "estimated": inner["Plan Rows"], "outer_estimated": outer["Plan Rows"]})
    return found


def tasks_tagged(conn: psycopg.Connection, user: str, tags: list[str]) -> int:
    """How many of the user's tasks carry all these tags, from tasks.tags."""
    [[count]] = conn.execute(
        f"select count(*) from tasks where user_id = %s and {LOWER_TAGS} @> %s::text[]", (user, tags)
    ).fetchall()
    return count


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
            loads = [before["load_average"][0], os.getloadavg()[0]]
            tag_stats = tag_statistics(conn)
            [[tag_rows, heavy_tag_rows]] = conn.execute(
                "select count(*), count(*) filter (where user_id = %s) from task_tags", (HEAVY_USER,)
            ).fetchall()
            sorts = sort_report(conn, pages)
            loads.append(os.getloadavg()[0])
            filters = filter_report(conn)
            lists = measure(conn, lists_page_sql())
            loads.append(os.getloadavg()[0])
            latencies = {
                name: statement_latencies(conn, sql)
                for name, sql in (
                    ("page 1, -created", list_sql()),
                    ("tag, rare (tax-2026)", list_sql(**FILTERS["tag, rare (tax-2026)"][0])),
                    ("tags, two common (work, garden)", list_sql(**FILTERS["tags, two common (work, garden)"][0])),
                    ("GET /lists, 50 lists with counts", lists_page_sql()),
                )
            }
            writes = write_report(conn)
            lookup = entry_lookup(conn)
            loads.append(os.getloadavg()[0])
            searches = search_report(conn)
            loads.append(os.getloadavg()[0])
            tag_worst = tag_worst_report(conn)
            after = machine(conn)
            loads.append(after["load_average"][0])
        report = {
            "machine": before
            | {"load_average_after": after["load_average"], "load_1min_range": [min(loads), max(loads)]},
            "tasks": args.tasks,
            "users": args.users,
            "heavy_user_tasks": args.heavy,
            "seed_seconds": round(seconds, 1),
            "task_tags_rows": tag_rows,
            "heavy_user_tag_rows": heavy_tag_rows,
            "tag_statistics": tag_stats,
            "pages": pages,
            "sorts": sorts,
            "filters": filters,
            "lists": lists,
            "statements": {
                name: {"ms": round(rls, 3), "without_rls_ms": round(bypassed, 3)}
                for name, (rls, bypassed) in latencies.items()
            },
            "writes": writes,
            "entry_lookup": lookup,
            "searches": searches,
            "tag_worst": tag_worst,
        }
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    shown = {key: value for key, value in report.items() if key not in ("sorts", "filters", "lists", "entry_lookup")}
    print(json.dumps(shown, indent=2, default=str))
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
    slow += [
        f"- {name}: {ms(row['ms'])} ms (execution)" for name, row in report["writes"].items() if row["ms"] > SLOW_MS
    ]
    slow += [
        f"- tag filter, {name}: {unbounded_text(row)} without the search budget (wall time);"
        f" with it, {budget_outcome(row)}"
        for name, row in report["tag_worst"].items()
    ]
    return "\n".join(slow) or "- none"


def tag_filters(filters: dict) -> dict:
    return {name: case for name, case in filters.items() if name.startswith("tag")}


def tag_lookups(case: dict) -> list[dict]:
    """The reads of task_tags' indexes under RLS that name a tag, in the condition or the filter."""
    return [
        read
        for read in case["index_conds"]
        if read["index"].startswith("task_tags") and "tag_key" in read["cond"] + read["filter"]
    ]


def tag_lookup_cell(read: dict) -> str:
    text = f"{read['index']}: `{read['cond']}`"
    return f"{text}, filter `{read['filter']}`" if read["filter"] else text


def probe_index(case: dict) -> str | None:
    """The task_tags index a plan probes once per task (`task_id` in its condition), if any."""
    return next((read["index"] for read in tag_lookups(case) if "task_id = tasks.id" in read["cond"]), None)


def tag_rows(filters: dict) -> str:
    rows = []
    for name, case in tag_filters(filters).items():
        conditions = "<br>".join(tag_lookup_cell(read) for read in tag_lookups(case)) or "**none**"
        same = "same plan" if case["bypass_scans"] == case["scans"] else "another plan"
        before = BEFORE_TAGS.get(name)
        cells = [name, f"{case['matching']:,}", conditions, timing(case), f"{ms(case['bypass_ms'])}, {same}"]
        cells.append(ms(PREVIOUS_TAGS[name]) if name in PREVIOUS_TAGS else "not measured")
        cells.append(f"{ms(before[0])} ({ms(before[1])} bypassed)" if before else "not measured")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def tags_by_index(filters: dict) -> str:
    """Whether, under RLS, every tag filter finds each tag through an index of task_tags."""
    missing = [name for name, case in tag_filters(filters).items() if not every_tag_indexed(name, case)]
    if missing:
        return f"**Not every tag is found through an index under RLS**: {', '.join(missing)} (see the plans)."
    same = all(case["bypass_scans"] == case["scans"] for case in tag_filters(filters).values())
    return (
        "Under RLS every tag asked for is found through an index of task_tags: either an index\n"
        f"condition on {TAG_INDEX}, `user_id` and `tag_key` (the tag's entries, one range of the\n"
        "index), or, where the plan probes the tasks one by one, `task_id` the index condition and\n"
        "the owner and tag a filter on that task's own entries (at most four here). Text and bigint\n"
        "equality are leakproof, so row-level security lets them into the index scan. With RLS\n"
        "bypassed the plans are " + ("the same." if same else 'not all the same (the column "RLS bypassed").')
    )


def every_tag_indexed(name: str, case: dict) -> bool:
    """Each tag of the filter, as its key (lower case), is an index condition on task_tags_pkey
    or a filter on a probe of one task's entries (`task_id` in the index condition)."""
    fields, _ = FILTERS[name]
    found = " ".join(
        read["cond"] + (read["filter"] if "task_id =" in read["cond"] else "") for read in tag_lookups(case)
    )
    return all(f"(tag_key = '{tag.lower()}'::text)" in found for tag in fields["tag"])


def write_rows(writes: dict) -> str:
    return "\n".join(
        f"| {name} | {ms(row['ms'])} | {ms(row['trigger_ms'])} | {ms(row['wall_ms'])} | {row['runs']} |"
        f" {ms(BEFORE_WRITES[name][0])} | {ms(BEFORE_WRITES[name][1])} |"
        for name, row in writes.items()
    )


def estimate_rows(estimates: dict) -> str:
    return "\n".join(f"| `{tag}` | {row['estimated']:,} | {row['actual']:,} |" for tag, row in estimates.items())


def budget_outcome(row: dict) -> str:
    """What the search budget did to a worst tag filter's runs."""
    runs, cut = row["budget_runs"], row["cancelled"]
    if cut == runs:
        return f"cancelled after {ms(row['with_budget_ms'])} ms (every one of {runs} runs: a 503)"
    if cut == 0:
        return f"finished under it in {ms(row['with_budget_ms'])} ms ({runs} runs)"
    return f"{ms(row['with_budget_ms'])} ms, cancelled in {cut} of {runs} runs (a 503), finished in the others"


def plans(report: dict) -> str:
    cases = {f"{name}": case for name, case in report["sorts"].items()}
    cases |= {name: case for name, case in report["filters"].items()}
    cases["GET /lists"] = report["lists"]
    return "\n\n".join(f"{name}:\n\n```\n{chr(10).join(case['plan'])}\n```" for name, case in cases.items())


def statement_rows(statements: dict) -> str:
    return "\n".join(f"| {name} | {ms(row['ms'])} | {ms(row['without_rls_ms'])} |" for name, row in statements.items())


def search_rows(searches: dict) -> str:
    return "\n".join(f"| {label} | `{row['q']}` | {row['ms']} |" for label, row in searches.items() if "ms" in row)


def unbounded_text(row: dict) -> str:
    """A worst tag filter's time without the budget, or that it ran past TAG_WORST_CAP_MS."""
    if row["capped"]:
        runs = f"{row['runs']} run" + ("s" if row["runs"] > 1 else "")
        return f"over {TAG_WORST_CAP_MS:,} ms (stopped there; {runs})"
    return f"{ms(row['unbounded_ms'])} ms"


def tag_worst_rows(tag_worst: dict) -> str:
    return "\n".join(
        f"| {name} | {unbounded_text(row)} | {ms(PREVIOUS_TAG_WORST[name])} | {ms(row['with_budget_ms'])}"
        f" | {row['cancelled']} of {row['budget_runs']} |"
        for name, row in tag_worst.items()
    )


def rescan_rows(tag_worst: dict) -> str:
    return "\n".join(
        f"| {name} | {', '.join(f'`{tag}`' for tag in rescan['tags'])} | {rescan['estimated']:,}"
        f" | {rescan['actual']:,} | {rescan['outer_estimated']:,} |"
        for name, row in tag_worst.items()
        for rescan in row["rescans"]
    )


# The tag filters as the previous run of this script measured them (commit b72a68b), when tags
# were found through a GIN index on app.tag_keys(user_id, tags), never used under RLS: (ms
# under RLS, ms bypassed).
BEFORE_TAGS = {
    "tag, common (work)": (1.387, 1.450),
    "tag, one in 16 (Garden)": (8.899, 10.7),
    "tag, rare (tax-2026)": (328.3, 0.253),
    "tag, in no task (milk)": (443.5, 0.035),
    "tags, two common (work, garden)": (424.0, 3.966),
}

# The previous run of this script (docs/scale.md at commit f682c04, written before that commit
# added task_tags_task_id_idx and the statistics on (user_id, tag_key)): tag filters, ms under RLS.
PREVIOUS_TAGS = {
    "tag, common (work)": 1.002,
    "tag, one in 16 (Garden)": 4.613,
    "tag, rare (tax-2026)": 0.327,
    "tag, in no task (milk)": 0.026,
    "tags, rare and common (Tax-2026, work)": 0.555,
    "tags, two common (work, garden)": 10.7,
}
# The same run's worst tag filters, wall ms, no budget (none applied to a tag filter then).
PREVIOUS_TAG_WORST = {
    "20 tags, each on 95% of the tasks, together on none": 2888.6,
    "2 tags, each on half of the tasks, together on none": 495.0,
}
# The same run's writes: (execution, tag triggers), ms. Without task_tags_task_id_idx the trigger's
# delete and the cascade read all the owner's 130,268 entries.
BEFORE_WRITES = {
    "insert, no tags": (0.202, 0.0),
    "insert, 3 tags": (0.311, 0.178),
    "update, tags not sent": (0.174, 0.0),
    "update, the same 3 tags": (0.141, 0.0),
    "update, 3 other tags": (9.669, 9.530),
    "delete, no tags": (9.111, 9.029),
    "delete, 3 tags": (9.197, 9.111),
}

# Measured by hand on the database this script seeds, at the default scale, before and after
# commit f682c04 added the statistics: tags only the user measured has, written into task_tags for
# 1 task in N of theirs (medians of 21 runs, one seed each).
OWN_TAGS = """\
Which plan the planner takes rests on its estimate of the user's entries of a tag. Without
statistics on the pair that is the tag's share of all of task_tags times the user's share:
right for the vocabulary shared by every user here, too low for a tag only this user has (as
most users' tags are). Measured by hand before the statistics, with such a tag on 1 task in N
of this user's, N = 8, 16, 25, 50, 100, 200: 22.8, 17.5, 8.7, 5.9, 3.3 and 1.7 ms, every one
reading the tag's entries (12,500 of them for N = 8) where walking the tasks would stop after
8 x 101 (in another seed, with other tags beside it, N = 8 was walked: 1.8 ms; the choice moved
with ANALYZE's sample). Migration 0004 now creates extended statistics on the pair,
`create statistics task_tags_user_id_tag_key_stats (mcv) on user_id, tag_key from task_tags`,
which ANALYZE fills with the pairs of the users with the most entries, the ones for whom it
matters; measured by hand with them: 2.8 ms for N = 8, 5.6 for 16, 12.6 for 50 (walked, where
reading the entries took 5.9) and 4.5 for 100; the shared tags' plans do not change. Two such
tags on 1 in 8 and 1 in 16, every task of the second carrying the first: 27 ms, both tags'
entries read. So a single tag costs at most where the two plans cross, about 6 to 13 ms for
100,000 tasks, growing with the tag's entries (more without the statistics)."""

WRITE_CAUSE = """\
**Deleting a task, or changing its tags, is still not fast with task_tags_task_id_idx in
place.** Both the cascade of `task_tags_task_id_fkey` (run for every task deleted, tagged or
not) and the trigger's `delete ... where task_id = old.id and user_id = old.user_id` (every
change of tags) should read only the task's entries through the index; the lookup's plan here:
{scans} ({lookup_ms} ms as app_user, {lookup_bypass_ms} ms with RLS not applied). Before the
index, each read all of the owner's entries ({rows:,} here), about 9 ms a write."""

TWO_TAGS_CAUSE = """\
**Two common tags together read both tags' entries.** For `work` and `garden` the planner
reads the user's entries of each tag in task_tags ({work:,} and {garden:,}), joins them by task, fetches
the {both:,} tasks carrying both and sorts them for the page; {ms_two} ms against {ms_before} ms
when the tasks' tags were filtered row by row, but the cost grows with the entries of the tags
asked for: linear in the rarer tag's entries among the user's tasks, with nothing to stop
early, since the page's order (newest first) is not task_tags' order. A single common tag does
not: the planner walks the user's tasks newest first and probes task_tags for each, stopping
after a page. Bounded like any tag filter by the search budget (below)."""

SINGLE_TAG_CAUSE = """\
**A single tag on about 1 in 16 to 1 in 50 of the user's tasks costs the most**: there walking
the user's tasks newest first (for `garden`, about 16 of them for each task of the page) and
reading the tag's entries cost about the same. See "Tags, through task_tags" for the estimate
behind the choice, and the statistics that keep it from going far wrong for a user's own tags."""


TAG_WORST_CAUSE = """\
**A user can build tag filters that read all their tasks, several times over; the search budget
cuts them off.** A filter with up to 20 tags costs at most the entries of those tags among the
user's own tasks, but a user who tags most of their tasks with each of them, and none with all,
makes it read them all (the table above). Without the budget:
{worst} for 20 tags and {halves} for 2.
Since commit f682c04 a list with a tag filter has the search budget, as a list with `q` has it
(api/tasks/service.py `list_tasks`): statement_timeout = DB_SEARCH_TIMEOUT_MS ({budget} ms by
default) for that statement, and past it a 503 with `Retry-After: 1` saying the search (q or
tag) took too long. Run that way, the 20 tags:
{worst_outcome}; the 2 tags:
{halves_outcome}.
With at most DB_CONNECTIONS_PER_USER (3) of a user's transactions at once per process, one
user can keep at most 3 backends busy, each for at most the budget. The cost is bounded, not
removed: such a filter still fails for the user who builds it."""

TAG_PLAN_CAUSE = """\
**Since the statistics on (user_id, tag_key), a filter by many tags that go together can take a
plan quadratic in the user's tasks.** The planner takes a task's tags to be independent of each
other, so it expects the tasks carrying all of several tags to shrink with each tag: here
{estimated:,} tasks carrying {tags}, where {actual:,} do. With each tag's entries now estimated
right, it materialises that set and compares it row by row with the other side of the join
(the user's tasks, {outer:,} expected), a Nested Loop with a Join Filter: {outer:,} x {actual:,}
comparisons. Without the budget the 20-tag filter ran {unbounded}, against
{previous} ms in the previous run, without the statistics, when the planner, expecting even
fewer tasks, probed the tags task by task. By hand, on this seed: dropping the statistics and
analysing again brought that plan back (3.0 s); creating them again, this one (over 30 s). The
budget cancels it as it cancelled the old plan, so what one
user can take from the others is unchanged; without a budget (DB_SEARCH_TIMEOUT_MS = 0) only
DB_STATEMENT_TIMEOUT_MS bounds it.

The misestimate itself predates the statistics and hits legitimate filters too: several tags
that most of a user's tasks carry together. Measured by hand at this scale (one seed, medians
of 5 wall times, the machine at a load average of about 4), the service's statement for this
user, without the statistics vs with them: 20 tags 2.8 s vs over 20 s; 10 tags and `left`
1.6 vs 3.9 s; `t00` to `t07`, which 60% of the tasks carry (the first page lies at the top of
the user's tasks), 1.6 vs 2.1 s; `t00` to `t02`, walked, 5 vs 3 ms. Past the budget each is a
503. For the user measured the statistics changed little (`work` 2.4 vs 4.6 ms, `garden` 7.7
vs 4.9, `work` and `garden` 19 vs 15, three common tags 4.9 vs 6.3: within the noise at that
load). One grouped semi-join in place of one per tag, `tasks.id in (select task_id from
task_tags where user_id = :owner and tag_key = any(:keys) group by task_id having count(*) =
:n)`, is linear in the tags' entries (0.6-0.9 s for 20 tags, 0.6-0.7 s for `t00` to `t07`) but
reads every entry of the tags even when a page is found at once: 120 ms for `work` alone and
0.4-0.5 s for `t00` to `t02`, so it is no fix as it stands. Not fixed: the budget bounds it."""

LISTS_CAUSE = """\
**GET /lists counts every task in the lists, on every request.** The counts come from one
lateral pass per list over its entries in tasks_user_id_list_id_idx, fetching each row for
`completed`: for 50 lists of 1,800 tasks, 90,000 index entries and 90,000 rows. The cost is
linear in the tasks listed (about {per_task} µs each here), and unlike a search it has no
budget of its own (only DB_STATEMENT_TIMEOUT_MS). An index `(user_id, list_id)
include (completed)` in place of tasks_user_id_list_id_idx lets the pass count from the index
alone: measured by hand, 60 runs of each alternately, 18.7 ms (12.3-22.9) vs 25.3 (17.2-29.5),
but that index is 39 MB against 11 MB (a btree with INCLUDE columns is not deduplicated), and
the cost is still linear. Constant time would take counts kept on `lists` by the writes that
change them (at the price of a row every such write updates, and a lock that serialises the
writes to one list). Not done."""


TAG_HEADER = (
    "| filter | matching tasks | task_tags read under RLS (index: condition, filter)"
    " | execution (p25-p75) | RLS bypassed | previous run: no task_id index, no statistics"
    " | commit b72a68b, no task_tags |"
)
WRITE_HEADER = (
    "| write | execution (ms) | of which tag triggers (ms) | wall (ms) | runs"
    " | before the index: execution | before: tag triggers |"
)


def write_markdown(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    host, searches, pages = report["machine"], report["searches"], report["pages"]
    worst = searches["worst case"]
    first = report["sorts"]["-created page 1"]
    lists, filters, writes, tag_worst = report["lists"], report["filters"], report["writes"], report["tag_worst"]
    due = {name: case for name, case in report["sorts"].items() if name.startswith(("due", "-due"))}
    due_fast = all(case["ms"] <= SLOW_MS for case in due.values())
    two = filters["tags, two common (work, garden)"]
    causes = []
    lookup = report["entry_lookup"]
    slow_writes = any(
        writes[name]["ms"] > SLOW_MS for name in ("delete, no tags", "delete, 3 tags", "update, 3 other tags")
    )
    if slow_writes:
        causes.append(
            WRITE_CAUSE.format(
                scans="; ".join(lookup["scans"]),
                lookup_ms=ms(lookup["ms"]),
                lookup_bypass_ms=ms(lookup["bypass_ms"]),
                rows=report["heavy_user_tag_rows"],
            )
        )
    if two["ms"] > SLOW_MS:
        causes.append(
            TWO_TAGS_CAUSE.format(
                work=filters["tag, common (work)"]["matching"],
                garden=filters["tag, one in 16 (Garden)"]["matching"],
                both=two["matching"],
                ms_two=ms(two["ms"]),
                ms_before=ms(BEFORE_TAGS["tags, two common (work, garden)"][0]),
            )
        )
    if filters["tag, one in 16 (Garden)"]["ms"] > SLOW_MS:
        causes.append(SINGLE_TAG_CAUSE)
    worst_tags, halves = tag_worst.values()
    causes.append(
        TAG_WORST_CAUSE.format(
            worst=unbounded_text(worst_tags),
            halves=unbounded_text(halves),
            budget=SEARCH_BUDGET_MS,
            worst_outcome=budget_outcome(worst_tags),
            halves_outcome=budget_outcome(halves),
        )
    )
    if worst_tags["rescans"]:
        rescan = max(worst_tags["rescans"], key=lambda rescan: rescan["actual"] * rescan["outer_estimated"])
        causes.append(
            TAG_PLAN_CAUSE.format(
                estimated=rescan["estimated"],
                tags=", ".join(f"`{tag}`" for tag in rescan["tags"]),
                actual=rescan["actual"],
                outer=rescan["outer_estimated"],
                unbounded=unbounded_text(worst_tags),
                previous=ms(PREVIOUS_TAG_WORST[next(iter(tag_worst))]),
            )
        )
    if lists["ms"] > SLOW_MS:
        per_task = round(lists["ms"] * 1000 / (report["heavy_user_tasks"] * 9 // 10), 2)  # 9 in 10 are listed
        causes.append(LISTS_CAUSE.format(per_task=per_task))
    insert_cost = writes["insert, 3 tags"]["ms"] - writes["insert, no tags"]["ms"]
    lookup_plan = "; ".join(lookup["scans"])
    if lookup["bypass_scans"] != lookup["scans"]:
        lookup_plan += f" (with RLS not applied: {'; '.join(lookup['bypass_scans'])})"
    write_note = (
        "One that changes them, and every delete, tagged or not, is still not fast: below."
        if slow_writes
        else f"Changing the tags costs\n{ms(writes['update, 3 other tags']['trigger_ms'])} ms in the triggers and"
        f" deleting a task {ms(writes['delete, 3 tags']['trigger_ms'])} ms in the cascade, against\n"
        f"{ms(BEFORE_WRITES['update, 3 other tags'][1])} and {ms(BEFORE_WRITES['delete, 3 tags'][1])} ms before"
        " task_tags_task_id_idx."
    )
    stats = report["tag_statistics"]
    own_pairs = "all of them" if stats["own_pairs"] == stats["mcv_pairs"] else f"{stats['own_pairs']} of them"
    owner_entries = (
        "130,268 then, as now"
        if report["heavy_user_tag_rows"] == 130_268
        else f"130,268 then, {report['heavy_user_tag_rows']:,} now"
    )
    rescan_note = (
        "Where the planner rescans a set it expects to be small (a Materialize under a Nested Loop\n"
        "that compares every pair of rows, its Join Filter), the set's tags, the rows it expects,\n"
        "the tasks that carry them all, and the rows it expects on the other side:\n\n"
        "| filter | tags of the set | expected | tasks carrying them | other side, expected |\n"
        "|---|---|---|---|---|\n" + rescan_rows(tag_worst)
        if any(row["rescans"] for row in tag_worst.values())
        else "In neither plan does the planner rescan a set for every task (no Nested Loop with a Join Filter\n"
        "over a Materialize)."
    )
    worst_plans = "\n\n".join(f"{name}:\n\n```\n{chr(10).join(row['plan'])}\n```" for name, row in tag_worst.items())
    lookup_uses = (
        "both read task_tags_task_id_idx, one entry per tag of the task"
        if all("task_tags_task_id_idx" in " ".join(scans) for scans in (lookup["scans"], lookup["bypass_scans"]))
        else "**do not both read task_tags_task_id_idx** (the plans below)"
    )
    low_load, high_load = host["load_1min_range"]
    index_mb = stats["index_mb"]
    work, garden = filters["tag, common (work)"]["ms"], filters["tag, one in 16 (Garden)"]["ms"]
    common_tags = (
        f"`work` took {ms(work)} ms ({ms(PREVIOUS_TAGS['tag, common (work)'])} in the previous run,"
        f" {ms(BEFORE_TAGS['tag, common (work)'][0])} at b72a68b), `garden` {ms(garden)}"
        f" ({ms(PREVIOUS_TAGS['tag, one in 16 (Garden)'])}, {ms(BEFORE_TAGS['tag, one in 16 (Garden)'][0])})"
    )
    probe = probe_index(filters["tag, common (work)"])
    probe_note = {
        None: "probes task_tags for each",
        TAG_INDEX: f"probes {TAG_INDEX} for each, by owner,\ntag and `task_id`, from the index alone,",
        "task_tags_task_id_idx": "probes task_tags for each through task_tags_task_id_idx, `task_id` the index\n"
        "condition, fetching the task's own entries and filtering them by owner and tag (the previous\n"
        f"run, without that index, probed {TAG_INDEX} by all three, from the index alone),",
    }.get(probe, f"probes task_tags for each through {probe},")
    due_note = (
        "They read the\nundated tasks through tasks_user_id_due_at_id_idx, `due_at IS NULL` an index condition,\n"
        "ordered by `(due_at, id)`; before commit 24ff296 they were ordered by `id` and read through\n"
        "tasks_pkey, past every other user's rows: 181 ms at page 1,000 of `due`, 151 and 190 ms at\n"
        "pages 1 and 500 of `-due`."
        if due_fast
        else "**Some due sorts are not fast**: see below and the plans."
    )
    path.write_text(
        f"""# Scale: the list queries under row-level security

Produced by `python -m bench.scale` (PostgreSQL {host["postgresql"]} from the pgserver wheel) on
{host["cores"]} cores ({host["cpu"]}) shared with other jobs: the load average was
{", ".join(map(str, host["load_average"]))} before and {", ".join(map(str, host["load_average_after"]))} after
(1, 5 and 15 minutes); sampled between sections, the 1-minute figure ranged from {low_load:.2f} to {high_load:.2f}.
Timings on such a machine are noisy, so every figure here is a median: each is the median
server execution time of up to {RUNS}
`EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)` runs (fewer for a slow statement, at least
{MIN_RUNS}; the number is in the last column), with the interquartile range, under RLS and with
RLS bypassed (a superuser) alternately, so that drift hits both. Differences of a few
hundredths of a millisecond are noise, and from one run of this script to the next the slow
cases' medians moved by up to 2.5x (load average 1 to 6).

{report["tasks"]:,} tasks across {report["users"]:,} users. The user measured holds
{report["heavy_user_tasks"]:,}, the first {report["heavy_user_tasks"]:,} ids (as after an import),
9 in 10 of them spread over {HEAVY_LISTS} lists (1 in 10 in none); every fifth other user has
{OTHER_LISTS} lists, holding half their tasks. 30% of tasks have no due date, the others are due
within six weeks either side of now; priorities none to high (40/30/20/10%); tags: `work` in
mixed case on 30%, one or two of {len(VOCABULARY)} words (in mixed case) on most, `{RARE_TAG}` on
one task in 1,000. A third of the tasks are completed. task_tags, the tags' index, holds
{report["task_tags_rows"]:,} rows ({report["heavy_user_tag_rows"]:,} of the user measured), written
after the tasks in one statement with what the trigger writes, in task order (the trigger off
meanwhile: row by row it made the load a third slower), then analyzed with the tasks, which
fills its extended statistics (below). Pages of {PAGE_SIZE}; every statement is
the service's own (`list_statement`, GET /lists' statement, the task writes), values bound as
the API binds them; deeper pages use the cursor the API issues after the task at that position
(checked: the page starts with the next task), and each filter's page is checked against a
query of its own (for tags, on `tasks.tags`, not task_tags). Seeding took {report["seed_seconds"]} s.

Execution times in ms. Bold: above {SLOW_MS:g} ms. "Plan" lists the scans and sorts of the
plan under RLS with the rows they returned; "bypassed" adds the plan when it differs.

## Every sort, page 1 vs page {pages[1]:,} vs page {pages[2]:,}

| sort | page | plan under RLS | buffers | planning | execution (p25-p75) | RLS bypassed | runs |
|---|---|---|---|---|---|---|---|
{sort_rows(report["sorts"], pages)}

For the due sorts, page {pages[2]:,} lies past every dated task (ascending and descending, the
tasks without a due date come last), so it is the undated branch alone. {due_note}

## Filters (newest first, page 1)

| filter | matching tasks | plan under RLS | buffers | planning | execution (p25-p75) | RLS bypassed | runs |
|---|---|---|---|---|---|---|---|
{filter_rows(filters)}

## Tags, through task_tags

A tag filter is one semi-join per tag, `tasks.id in (select task_id from task_tags where
user_id = :owner and tag_key = lower(:tag))`. How it reads task_tags under RLS (the index,
the condition it reads it by and the filter on what it finds), and the times (under RLS) of
the previous run of this script, before commit f682c04 added task_tags_task_id_idx and the
statistics on (user_id, tag_key) (same seed, same machine, its own noise), and of the run
before task_tags (commit b72a68b), when tags were filtered through
`app.tag_keys(user_id, tags) @> ...`, which under RLS was a filter on every row:

{TAG_HEADER}
|---|---|---|---|---|---|---|
{tag_rows(filters)}

{tags_by_index(filters)}

Two plans, chosen by the planner from the tags' frequencies. For a common tag it walks the
user's tasks newest first and {probe_note}
stopping after a page (the probes' "under 0.5 rows a loop": most tasks do not carry it).
Here {common_tags}
(at a smaller scale the planner hashes the user's tasks against the entries of `garden`
instead). For a rare tag, a tag in no task or a rare one with a common one, it reads the
rarest tag's entries, fetches those tasks by id and sorts them: cost by the tag's entries, not
the user's tasks. For two common tags it reads both tags' entries and joins them.

{OWN_TAGS}

In this seed ANALYZE left {stats["mcv_pairs"]} (user, tag) pairs in the statistics' MCV list,
{own_pairs} the user measured's. The planner's estimates of that user's entries of
the tags filtered on, against the count (a tag absent from the list is estimated from what the
list leaves over):

| tag | estimated entries | entries |
|---|---|---|
{estimate_rows(stats["estimates"])}

## GET /lists with its counts ({HEAVY_LISTS} lists, one page)

| | plan under RLS | buffers | planning | execution (p25-p75) | RLS bypassed | runs |
|---|---|---|---|---|---|---|
{case_row("GET /lists", lists)}

```
{chr(10).join(lists["plan"])}
```

## What the tag triggers cost a write

The service's own statements as app_user, for the user measured (one of their tasks with 3
tags for the updates and a delete), each run in a transaction rolled back, the cases
alternating; medians of {WRITE_RUNS}. "Execution" is EXPLAIN ANALYZE's, triggers included;
"tag triggers" is the share of tasks_tags_inserted, tasks_tags_updated and the cascade of
{TAG_KEY}; "wall" is the statement as the API sends it (planning and the round trip
included). The commit is not included: its cost (the WAL flush) grows with the 3 rows more.
The last two columns: the previous run of this script, before commit f682c04 added
task_tags_task_id_idx, when the trigger's delete and the cascade read all of the owner's
entries ({owner_entries}).

{WRITE_HEADER}
|---|---|---|---|---|---|---|
{write_rows(writes)}

Inserting a task with 3 tags costs {ms(insert_cost)} ms more than without (3 entries, each in
{TAG_INDEX} and task_tags_task_id_idx); an update that does not change the tags (not sent, or
the same) costs nothing more, the triggers' conditions being false. {write_note}

How a task's entries are found: the trigger's `delete from task_tags where task_id = old.id
and user_id = old.user_id` (a change of tags) and the cascade of {TAG_KEY} (`delete ... where
task_id = $1 and user_id = $2`, run for every task deleted, tagged or not, as the table's owner,
RLS not applied)
{lookup_uses}.
The trigger's statement alone for a task with 3 tags, as app_user and with RLS bypassed,
median of {lookup["runs"]} EXPLAIN ANALYZE runs, rolled back:

| statement | plan under RLS | buffers | execution under RLS (p25-p75) | RLS bypassed (the cascade's case) |
|---|---|---|---|---|
| delete a task's 3 entries | {lookup_plan} | {lookup["buffers"]:,} | {timing(lookup)} | {ms(lookup["bypass_ms"])} |

The index takes {index_mb["task_tags_task_id_idx"]} MB against {index_mb["task_tags_pkey"]} MB for {TAG_INDEX}
({report["task_tags_rows"]:,} entries).

## The worst tag filters a user can build

Another user, {TAGGER_TASKS:,} tasks, each carrying 19 of {len(TAGGER_WORDS)} words and `left` or
`right` (20 tags, the most a task may have); filters that match none of them, as app_user,
wall time, planning included. Without the search budget: median of {TAG_WORST_RUNS}, a run
stopped at {TAG_WORST_CAP_MS:,} ms and the case with it; the previous run of this script
(before commit f682c04: no statistics on (user_id, tag_key), no budget for a tag filter)
alongside. With the search budget: statement_timeout = {BUDGET_AS_SET_MS} ms, as the API sets it
for a list with a tag filter (the tighter of DB_SEARCH_TIMEOUT_MS and DB_STATEMENT_TIMEOUT_MS,
both at their defaults), median of {TAG_WORST_BUDGET_RUNS}; a cancelled run counts as the time until its
error, which the API answers with a 503. Every tag filter is under that budget now: see "Not
fast".

| filter | without the budget | previous run (ms) | with the search budget (ms) | cancelled |
|---|---|---|---|---|
{tag_worst_rows(tag_worst)}

{rescan_note}

<details>
<summary>Their plans (EXPLAIN, estimates only: without the budget the 20 tags may not finish)</summary>

{worst_plans}

</details>

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
