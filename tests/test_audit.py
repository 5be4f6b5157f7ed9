"""`taskapi audit` on the migrated schema and on databases broken one way at a time."""

import json

import pytest

from api.audit import run_audit
from tests.conftest import LOGIN_ROLE
from tests.servers import run_taskapi

SCHEMAS = ["public", "app"]


def findings(url: str) -> list[tuple[str, str, str]]:
    return [(f.severity, f.subject, f.problem) for f in run_audit(url, schemas=SCHEMAS).findings]


def test_the_migrated_schema_is_clean(admin_url):
    report = run_audit(admin_url, schemas=SCHEMAS)
    assert report.findings == []
    assert [table.name for table in report.tables] == ["public.idempotency_keys", "public.tasks"]
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
    for finding in run_audit(admin_url, schemas=SCHEMAS).findings:
        admin.execute(finding.fix)
    assert findings(admin_url) == []


def test_command_exit_status_and_json(admin, admin_url, tmp_path):
    env = {"DATABASE_URL": admin_url}
    clean = run_taskapi("audit", "--json", env=env, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["findings"] == []

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
