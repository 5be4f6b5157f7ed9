"""`taskapi audit`: who can see what, read from the database's own catalogs.

Read-only: the one probe that runs as app_user happens inside a transaction that is rolled
back. The report lists every table, its RLS state and policies, the roles that matter, and
findings, each with a severity and the SQL that fixes it.
"""

import json
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg.rows import DictRow, dict_row

from api.database.session import APP_ROLE, IDENTITY_SQL, identity

SEVERITIES = ["low", "medium", "high", "critical"]
COMMANDS = ["SELECT", "INSERT", "UPDATE", "DELETE"]
OWNER_EXPRESSION = "user_id = (select app.current_user_id())"


@dataclass
class Finding:
    severity: str
    subject: str
    problem: str
    fix: str


@dataclass
class Policy:
    name: str
    command: str
    permissive: bool
    roles: list[str]
    using: str | None
    with_check: str | None


@dataclass
class Table:
    name: str
    owner: str
    rls_enabled: bool
    rls_forced: bool
    holds_user_data: bool
    policies: list[Policy] = field(default_factory=list)


@dataclass
class Report:
    database: str
    tables: list[Table]
    roles: list[DictRow]
    app_user_members: list[str]
    # Every login role that can act as app_user (and so as any user), superusers included.
    app_user_login_members: list[str]
    app_user_grants: list[str]
    findings: list[Finding]

    def fails(self, threshold: str) -> bool:
        return any(SEVERITIES.index(f.severity) >= SEVERITIES.index(threshold) for f in self.findings)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


_TABLES = """
select c.oid, format('%%I.%%I', n.nspname, c.relname) as name, pg_get_userbyid(c.relowner) as owner,
       c.relrowsecurity as rls_enabled, c.relforcerowsecurity as rls_forced,
       exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'user_id'
               and not a.attisdropped) as holds_user_data
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and n.nspname = any(%(schemas)s) and c.relname <> 'alembic_version'
 order by 2
"""
# Foreign keys that reach a table of user data without pairing user_id with user_id. The key
# check bypasses row-level security, so such a key lets a row point at another user's row and
# tells the writer whether that row exists.
_UNPAIRED_FOREIGN_KEYS = """
select con.conname as name, format('%%I.%%I', n.nspname, c.relname) as table_name,
       format('%%I.%%I', rn.nspname, r.relname) as referenced
  from pg_constraint con
  join pg_class c on c.oid = con.conrelid join pg_namespace n on n.oid = c.relnamespace
  join pg_class r on r.oid = con.confrelid join pg_namespace rn on rn.oid = r.relnamespace
 where con.contype = 'f' and n.nspname = any(%(schemas)s)
   and exists (select from pg_attribute a
                where a.attrelid = con.confrelid and a.attname = 'user_id' and not a.attisdropped)
   and not exists (
       select from unnest(con.conkey, con.confkey) as pair(col, ref_col)
         join pg_attribute a on a.attrelid = con.conrelid and a.attnum = pair.col
         join pg_attribute ra on ra.attrelid = con.confrelid and ra.attnum = pair.ref_col
        where a.attname = 'user_id' and ra.attname = 'user_id')
 order by 2, 1
"""
_POLICIES = """
select polname as name,
       case polcmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE'
                   when 'd' then 'DELETE' else 'ALL' end as command,
       polpermissive as permissive,
       case when polroles = '{0}' then array['public']
            else array(select rolname from pg_roles where oid = any(polroles) order by 1) end as roles,
       pg_get_expr(polqual, polrelid) as using, pg_get_expr(polwithcheck, polrelid) as with_check
  from pg_policy where polrelid = %(oid)s order by polname
"""
_ROLES = """
select r.rolname as name, r.rolcanlogin as can_login, r.rolsuper as superuser,
       r.rolbypassrls as bypassrls,
       array(select format('%%I.%%I', n.nspname, c.relname) from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where c.relowner = r.oid and n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p')
              order by 1) as owns
  from pg_roles r
 where r.rolname = %(app_role)s or r.rolsuper or r.rolbypassrls
    or pg_has_role(r.oid, %(app_role)s, 'MEMBER')
    or exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where c.relowner = r.oid and n.nspname = any(%(schemas)s))
 order by 1
"""
_MEMBERS = """
select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.member
 where m.roleid = (select oid from pg_roles where rolname = %(app_role)s) order by 1
"""
_APP_GRANTS = """
select format('%%s on %%I.%%I', privilege_type, table_schema, table_name) from information_schema.role_table_grants
 where grantee = %(app_role)s order by 1
"""
_PUBLIC_GRANTS = """
select format('%%I.%%I', table_schema, table_name) as object, string_agg(privilege_type, ', ' order by privilege_type)
  from information_schema.role_table_grants
 where grantee = 'PUBLIC' and table_schema = any(%(schemas)s)
 group by 1
union all
select format('function %%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), 'EXECUTE'
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = any(%(schemas)s) and n.nspname <> 'public' and has_function_privilege('public', p.oid, 'EXECUTE')
 order by 1
"""
# Every login role that can act as app_user, directly or through other roles. Each can set
# app.user_id to anyone: only the API's own login role should be here. Superusers are members
# of every role and are listed apart.
_LOGIN_MEMBERS = """
select r.rolname as name, r.rolsuper as superuser,
       exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where c.relowner = r.oid and n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p')) as owner
  from pg_roles r
 where r.rolcanlogin and r.rolname <> %(app_role)s and pg_has_role(r.oid, %(app_role)s, 'MEMBER')
 order by 1
"""
# Functions in the audited schemas (not an extension's) and whether what their bodies name is
# fixed: by a pinned search_path, or by a SQL-standard body (begin atomic), parsed at creation.
_FUNCTIONS = """
select format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as name,
       p.prosqlbody is not null
       or exists (select from unnest(coalesce(p.proconfig, '{}')) setting
                   where setting like 'search\\_path=%%') as pins_search_path
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = any(%(schemas)s)
   and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                   and d.deptype = 'e')
 order by 1
"""
# Statistics views that count every user's rows and changes (PUBLIC may read them by default).
STATISTICS_VIEWS = ("pg_stat_user_tables", "pg_stat_all_tables", "pg_stat_xact_user_tables", "pg_statio_user_tables")
_READABLE_STATISTICS = """
select v as view from unnest(%(views)s::text[]) v
 where has_table_privilege(%(app_role)s, 'pg_catalog.' || v, 'SELECT')
 order by 1
"""
_APP_ROLE_FACTS = """
select rolsuper, rolbypassrls, rolcanlogin,
       array(select format('%%I.%%I', n.nspname, c.relname) from pg_class c
               join pg_namespace n on n.oid = c.relnamespace where c.relowner = r.oid) as owns
  from pg_roles r where rolname = %(app_role)s
"""


def run_audit(database_url: str, *, schemas: list[str]) -> Report:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        params = {"schemas": schemas, "app_role": APP_ROLE}
        tables = [
            Table(
                name=row["name"],
                owner=row["owner"],
                rls_enabled=row["rls_enabled"],
                rls_forced=row["rls_forced"],
                holds_user_data=row["holds_user_data"],
                policies=[Policy(**p) for p in conn.execute(_POLICIES, {"oid": row["oid"]}).fetchall()],
            )
            for row in conn.execute(_TABLES, params).fetchall()
        ]
        roles = conn.execute(_ROLES, params).fetchall()
        members = [row["rolname"] for row in conn.execute(_MEMBERS, params).fetchall()]
        grants = [next(iter(row.values())) for row in conn.execute(_APP_GRANTS, params).fetchall()]
        public_grants = conn.execute(_PUBLIC_GRANTS, params).fetchall()
        app_role = conn.execute(_APP_ROLE_FACTS, params).fetchone()
        login_members = conn.execute(_LOGIN_MEMBERS, params).fetchall() if app_role else []
        functions = conn.execute(_FUNCTIONS, params).fetchall()
        statistics = conn.execute(_READABLE_STATISTICS, {**params, "views": list(STATISTICS_VIEWS)}).fetchall()
        findings = _table_findings(tables) + _role_findings(app_role) + _public_grant_findings(public_grants)
        findings += _fail_closed_findings(conn, tables, app_role is not None)
        findings += _impersonation_findings(login_members) + _search_path_findings(functions)
        findings += _statistics_findings([row["view"] for row in statistics])
        findings += _foreign_key_findings(conn.execute(_UNPAIRED_FOREIGN_KEYS, params).fetchall())
        database = conn.info.dbname
    findings.sort(key=lambda f: (-SEVERITIES.index(f.severity), f.subject))
    logins = [row["name"] for row in login_members]
    return Report(database, tables, roles, members, logins, grants, findings)


def _table_findings(tables: list[Table]) -> list[Finding]:
    findings = []
    for table in (t for t in tables if t.holds_user_data):
        if not table.rls_enabled:
            findings.append(
                Finding(
                    "critical",
                    table.name,
                    "holds user data but row-level security is disabled",
                    f"alter table {table.name} enable row level security;",
                )
            )
        if not table.rls_forced:
            findings.append(
                Finding(
                    "high",
                    table.name,
                    "row-level security is not forced: the owner bypasses it",
                    f"alter table {table.name} force row level security;",
                )
            )
        findings += _policy_findings(table)
    return findings


def _policy_findings(table: Table) -> list[Finding]:
    findings = []
    for command in COMMANDS:
        covering = [p for p in table.policies if p.command in (command, "ALL") and p.permissive]
        if not any(APP_ROLE in p.roles or "public" in p.roles for p in covering):
            clause = "with check" if command == "INSERT" else "using"
            name = f"{table.name.split('.')[-1]}_{command.lower()}_own"
            findings.append(
                Finding(
                    "medium",
                    table.name,
                    f"no policy lets {APP_ROLE} {command}",
                    f"create policy {name} on {table.name} for {command.lower()} to {APP_ROLE} "
                    f"{clause} ({OWNER_EXPRESSION});",
                )
            )
    for policy in table.policies:
        for clause, expression in (("using", policy.using), ("with check", policy.with_check)):
            if expression is not None and expression.strip().lower() in ("true", "(true)"):
                findings.append(
                    Finding(
                        "critical",
                        f"{table.name} policy {policy.name}",
                        f"{clause} (true) lets every row through",
                        f"alter policy {policy.name} on {table.name} {clause} ({OWNER_EXPRESSION});",
                    )
                )
        if "public" in policy.roles:
            findings.append(
                Finding(
                    "high",
                    f"{table.name} policy {policy.name}",
                    "applies to PUBLIC, not only to app_user",
                    f"alter policy {policy.name} on {table.name} to {APP_ROLE};",
                )
            )
    return findings


def _role_findings(app_role: DictRow | None) -> list[Finding]:
    if app_role is None:
        return [Finding("critical", APP_ROLE, "the role does not exist", "taskapi migrate")]
    findings = []
    if app_role["rolsuper"]:
        findings.append(Finding("critical", APP_ROLE, "is a superuser", f"alter role {APP_ROLE} nosuperuser;"))
    if app_role["rolbypassrls"]:
        findings.append(Finding("critical", APP_ROLE, "has BYPASSRLS", f"alter role {APP_ROLE} nobypassrls;"))
    if app_role["rolcanlogin"]:
        findings.append(Finding("medium", APP_ROLE, "can log in directly", f"alter role {APP_ROLE} nologin;"))
    for owned in app_role["owns"]:
        findings.append(
            Finding(
                "critical",
                APP_ROLE,
                f"owns {owned}, so policies do not bind it unless forced",
                f"alter table {owned} owner to <the migration role>;",
            )
        )
    return findings


def _impersonation_findings(login_members: list[DictRow]) -> list[Finding]:
    """More than one ordinary login role that can act as app_user: each can read anyone's tasks.

    Superusers and the tables' owners are left out: they can read every row anyway.
    """
    ordinary = [row["name"] for row in login_members if not row["superuser"] and not row["owner"]]
    if len(ordinary) <= 1:
        return []
    return [
        Finding(
            "high",
            APP_ROLE,
            f"{len(ordinary)} login roles can act as {APP_ROLE} and set app.user_id to anyone: "
            f"{', '.join(ordinary)}; only the API's login role should",
            f"revoke {APP_ROLE} from <each of {', '.join(ordinary)} but the API's own login role>;",
        )
    ]


def _search_path_findings(functions: list[DictRow]) -> list[Finding]:
    return [
        Finding(
            "medium",
            f"function {row['name']}",
            "its search_path is not pinned (nor is its body SQL-standard): names in it may resolve to a "
            "caller's own schema",
            f"alter function {row['name']} set search_path = '';",
        )
        for row in functions
        if not row["pins_search_path"]
    ]


def _statistics_findings(readable_views: list[str]) -> list[Finding]:
    if not readable_views:
        return []
    views = ", ".join(f"pg_catalog.{view}" for view in readable_views)
    return [
        Finding(
            "low",
            APP_ROLE,
            f"can read {', '.join(readable_views)}: every user's task counts and changes, in aggregate "
            "(only a superuser can revoke this; pg_class.reltuples and EXPLAIN show table sizes regardless)",
            f"revoke select on {views} from public; grant select on {views} to pg_monitor;",
        )
    ]


def _foreign_key_findings(keys: list[DictRow]) -> list[Finding]:
    return [
        Finding(
            "high",
            f"{key['table_name']} constraint {key['name']}",
            f"references user data in {key['referenced']} without pairing user_id with user_id: a row can "
            "point at another user's row, and the key check (which bypasses row-level security) tells "
            "whether that row exists",
            f"alter table {key['table_name']} drop constraint {key['name']}, add constraint {key['name']} "
            f"foreign key (<columns>, user_id) references {key['referenced']} (<columns>, user_id);",
        )
        for key in keys
    ]


def _public_grant_findings(grants: list[DictRow]) -> list[Finding]:
    return [
        Finding(
            "high",
            row["object"],
            f"PUBLIC is granted {row['string_agg']}",
            f"revoke all on {row['object']} from public;",
        )
        for row in grants
    ]


def _fail_closed_findings(
    conn: psycopg.Connection[DictRow], tables: list[Table], app_role_exists: bool
) -> list[Finding]:
    """As app_user with no user set, nothing may be visible. Probed, then rolled back."""
    if not app_role_exists:
        return []
    findings = []
    for table in (t for t in tables if t.holds_user_data and t.rls_enabled):
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(IDENTITY_SQL, identity("", statement_timeout_ms=10_000, lock_timeout_ms=10_000))
                [row] = conn.execute(f"select count(*) as n from {table.name}").fetchall()
                visible = row["n"]
        except psycopg.Error:
            continue  # no privilege to probe: the grants section shows why
        if visible:
            findings.append(
                Finding(
                    "critical",
                    table.name,
                    f"{visible} row(s) visible to {APP_ROLE} with no user set: a policy does not fail closed",
                    f"make every policy compare with (select app.current_user_id()), "
                    f"e.g. alter policy ... on {table.name} using ({OWNER_EXPRESSION});",
                )
            )
    return findings


def render_text(report: Report) -> str:
    lines = [f"Row-level security audit of database {report.database}", ""]
    for table in report.tables:
        enabled = "enabled" if table.rls_enabled else "DISABLED"
        flags = f"RLS {enabled}, {'forced' if table.rls_forced else 'NOT forced'}"
        lines.append(f"table {table.name} (owner {table.owner}): {flags}")
        for p in table.policies:
            kind = "permissive" if p.permissive else "restrictive"
            lines.append(f"  policy {p.name}: {p.command} to {', '.join(p.roles)} ({kind})")
            if p.using:
                lines.append(f"    using      {p.using}")
            if p.with_check:
                lines.append(f"    with check {p.with_check}")
        if not table.policies:
            lines.append("  no policies")
    lines += ["", "roles:"]
    for role in report.roles:
        powers = [name for name in ("can_login", "superuser", "bypassrls") if role[name]]
        owns = f"; owns {', '.join(role['owns'])}" if role["owns"] else ""
        lines.append(f"  {role['name']}: {', '.join(powers) or 'no special attributes'}{owns}")
    lines.append(f"members of {APP_ROLE}: {', '.join(report.app_user_members) or 'none'}")
    lines.append(
        f"login roles that can act as {APP_ROLE} (and so as any user): "
        f"{', '.join(report.app_user_login_members) or 'none'}"
    )
    lines.append(f"{APP_ROLE} is granted: {'; '.join(report.app_user_grants) or 'nothing'}")
    lines += ["", f"findings: {len(report.findings) or 'none'}"]
    for finding in report.findings:
        lines.append(f"  [{finding.severity}] {finding.subject}: {finding.problem}")
        lines.append(f"      fix: {finding.fix}")
    return "\n".join(lines)
