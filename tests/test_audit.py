"""`taskapi audit` on the migrated schema and on databases broken one way at a time."""

import json

import pytest

from api.ops.audit import run_audit
from tests.support.database import LOGIN_ROLE
from tests.support.servers import run_taskapi

SCHEMAS = ["public", "app"]


def findings(url: str) -> list[tuple[str, str, str]]:
    return [(f.severity, f.subject, f.problem) for f in run_audit(url, schemas=SCHEMAS).findings]


# PostgreSQL lets PUBLIC read the statistics views; only a superuser can change that.
STATISTICS_FINDING = ("low", "app_user")


def significant(report) -> list:
    """The findings above low: a freshly migrated database has exactly one low one, STATISTICS_FINDING."""
    return [f for f in report.findings if f.severity != "low"]


def test_the_migrated_schema_is_clean(admin_url, login_role):
    report = run_audit(admin_url, schemas=SCHEMAS)
    assert significant(report) == []
    assert [(f.severity, f.subject) for f in report.findings] == [STATISTICS_FINDING]
    assert "pg_stat_user_tables" in report.findings[0].problem
    names = ["public.idempotency_keys", "public.lists", "public.task_tags", "public.tasks"]
    assert [table.name for table in report.tables] == names
    for table in report.tables:
        prefix = table.name.removeprefix("public.")
        assert (table.rls_enabled, table.rls_forced) == (True, True)
        assert {(p.name, p.command) for p in table.policies} == {
            (f"{prefix}_select_own", "SELECT"),
            (f"{prefix}_insert_own", "INSERT"),
            (f"{prefix}_update_own", "UPDATE"),
            (f"{prefix}_delete_own", "DELETE"),
        }
        assert all(p.roles == ["app_user"] for p in table.policies)
        assert f"SELECT on {table.name}" in report.app_user_grants
    assert LOGIN_ROLE in report.app_user_members or report.app_user_members == []
    assert LOGIN_ROLE in report.app_user_login_members


def test_every_login_role_that_can_act_as_app_user_is_listed_and_a_second_one_is_a_finding(
    admin, admin_url, login_role
):
    admin.execute("create role taskapi_analyst login")
    admin.execute("create role taskapi_readers nologin")
    admin.execute("grant app_user to taskapi_readers")
    admin.execute("grant taskapi_readers to taskapi_analyst")  # a member through another role
    try:
        report = run_audit(admin_url, schemas=SCHEMAS)
    finally:
        admin.execute("drop role taskapi_analyst")  # roles are cluster-wide: never leak into other tests
        admin.execute("drop role taskapi_readers")
    assert {LOGIN_ROLE, "taskapi_analyst"} <= set(report.app_user_login_members)
    [finding] = [f for f in report.findings if f.severity == "high"]
    assert finding.subject == "app_user"
    assert "taskapi_analyst" in finding.problem and LOGIN_ROLE in finding.problem
    assert "set app.user_id to anyone" in finding.problem
    assert f"revoke app_user from <each of taskapi_analyst, {LOGIN_ROLE} but the API" in finding.fix


BREAKAGES = {
    "rls-disabled": (
        ["alter table tasks disable row level security"],
        ("critical", "public.tasks", "holds user data but row-level security is disabled"),
        "enable row level security",
    ),
    "rls-not-forced": (
        ["alter table tasks no force row level security"],
        ("high", "public.tasks", "row-level security is not forced: the owner bypasses it"),
        "force row level security",
    ),
    "policy-missing": (
        ["drop policy tasks_delete_own on tasks"],
        ("medium", "public.tasks", "no policy lets app_user DELETE"),
        "create policy tasks_delete_own on public.tasks for delete to app_user",
    ),
    "using-true": (
        ["alter policy tasks_select_own on tasks using (true)"],
        ("critical", "public.tasks policy tasks_select_own", "using (true) lets every row through"),
        "alter policy tasks_select_own on public.tasks using",
    ),
    "does-not-fail-closed": (
        [
            "insert into tasks (user_id, title) values ('alice', 'a')",
            "alter policy tasks_select_own on tasks using "
            "(user_id = coalesce(nullif(current_setting('app.user_id', true), ''), user_id))",
        ],
        ("critical", "public.tasks", "1 row(s) visible to app_user with no user set: a policy does not fail closed"),
        "app.current_user_id()",
    ),
    "app-user-bypassrls": (
        ["alter role app_user bypassrls"],
        ("critical", "app_user", "has BYPASSRLS"),
        "alter role app_user nobypassrls;",
    ),
    "app-user-owns-tasks": (
        ["alter table tasks owner to app_user"],
        ("critical", "app_user", "owns public.tasks, so policies do not bind it unless forced"),
        "owner to",
    ),
    "grant-to-public": (
        ["grant select on tasks to public"],
        ("high", "public.tasks", "PUBLIC is granted SELECT"),
        "revoke all on public.tasks from public;",
    ),
    "function-executable-by-public": (
        ["grant execute on function app.current_user_id() to public"],
        ("high", "function app.current_user_id()", "PUBLIC is granted EXECUTE"),
        "revoke all on function app.current_user_id() from public;",
    ),
    "search-path-not-pinned": (
        [
            "create or replace function app.current_user_id() returns text language sql stable"
            " as $$ select nullif(current_setting('app.user_id', true), '') $$"
        ],
        (
            "medium",
            "function app.current_user_id()",
            "its search_path is not pinned (nor is its body SQL-standard): names in it may resolve to a "
            "caller's own schema",
        ),
        "alter function app.current_user_id() set search_path = '';",
    ),
    "foreign-key-without-user-id": (
        [
            "alter table tasks drop constraint tasks_list_id_fkey",
            "alter table tasks add constraint tasks_list_id_fkey foreign key (list_id) references lists (id)",
        ],
        (
            "high",
            "public.tasks constraint tasks_list_id_fkey",
            "references user data in public.lists without pairing user_id with user_id: a row can point at "
            "another user's row, and the key check (which bypasses row-level security) tells whether that row "
            "exists",
        ),
        "foreign key (<columns>, user_id) references public.lists (<columns>, user_id);",
    ),
    "policy-for-public": (
        ["alter policy tasks_update_own on tasks to public"],
        ("high", "public.tasks policy tasks_update_own", "applies to PUBLIC, not only to app_user"),
        "to app_user;",
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=list(BREAKAGES))
def test_each_breakage_is_reported_with_its_fix(admin, admin_url, breakage):
    statements, expected, fix_fragment = BREAKAGES[breakage]
    try:
        for statement in statements:
            admin.execute(statement)
        report = run_audit(admin_url, schemas=SCHEMAS)
    finally:
        admin.execute("alter role app_user nobypassrls")  # cluster-wide: never leak into other tests
    found = {(f.severity, f.subject, f.problem): f.fix for f in report.findings}
    assert expected in found, report.findings
    assert fix_fragment in found[expected]


def test_the_fix_sql_repairs_what_it_reports(admin, admin_url):
    admin.execute("alter table tasks no force row level security")
    admin.execute("grant select on tasks to public")
    admin.execute(
        "create or replace function app.current_user_id() returns text language sql stable"
        " as $$ select nullif(current_setting('app.user_id', true), '') $$"
    )
    for finding in run_audit(admin_url, schemas=SCHEMAS).findings:
        admin.execute(finding.fix)  # this database's statistics views too: it is a clone of its own
    assert findings(admin_url) == []


def test_command_exit_status_and_json(admin, admin_url, tmp_path):
    env = {"DATABASE_URL": admin_url}
    clean = run_taskapi("audit", "--json", env=env, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert [f["severity"] for f in json.loads(clean.stdout)["findings"]] == ["low"]

    admin.execute("alter table tasks no force row level security")  # a "high" finding
    assert run_taskapi("audit", env=env, cwd=tmp_path).returncode == 1
    assert run_taskapi("audit", "--fail-on", "critical", env=env, cwd=tmp_path).returncode == 0
    text = run_taskapi("audit", "--fail-on", "critical", env=env, cwd=tmp_path).stdout
    assert "[high] public.tasks: row-level security is not forced" in text
    assert "fix: alter table public.tasks force row level security;" in text


def test_command_reports_an_unreachable_database(tmp_path):
    result = run_taskapi(
        "audit", env={"DATABASE_URL": "postgresql://x@/x?host=/nonexistent&connect_timeout=2"}, cwd=tmp_path
    )
    assert result.returncode == 2 and "cannot connect" in result.stderr
