"""Isolation proven at the database: connect as the API does, run SQL with no user filter.

Each test opens a transaction exactly as a request does (`begin_as`: the identity statement from
api/database/session.py), as a login role that is neither superuser nor owner, and shows what the
row-level-security policies allow. Nothing here goes through Python service code.
"""

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests.support.database import begin_as, url_for


@pytest.fixture
def seeded(admin: psycopg.Connection) -> dict[str, list[int]]:
    """Two users' tasks, written past RLS by the superuser."""
    ids: dict[str, list[int]] = {"alice": [], "bob": []}
    for owner, titles in {"alice": ["a1", "a2"], "bob": ["b1", "b2", "b3"]}.items():
        for title in titles:
            row = admin.execute(
                "insert into tasks (user_id, title) values (%s, %s) returning id", (owner, title)
            ).fetchone()
            ids[owner].append(row[0])
    return ids


@pytest.fixture
def superuser_conn(admin_url: str) -> Iterator[psycopg.Connection]:
    """A connection as the superuser: the embedded default and Neon's owner role log in so."""
    with psycopg.connect(admin_url) as conn:
        yield conn


class TestReading:
    def test_owner_sees_only_own_rows_without_any_where_clause(self, app_conn, seeded):
        rows = begin_as(app_conn, "alice").execute("select user_id, title from tasks").fetchall()
        assert sorted(rows) == [("alice", "a1"), ("alice", "a2")]

    def test_other_users_row_by_id_is_invisible(self, app_conn, seeded):
        cursor = begin_as(app_conn, "alice")
        cursor.execute("select * from tasks where id = %s", (seeded["bob"][0],))
        assert cursor.fetchall() == []

    def test_aggregates_count_only_own_rows(self, app_conn, seeded):
        assert begin_as(app_conn, "bob").execute("select count(*) from tasks").fetchone() == (3,)

    @pytest.mark.parametrize("user_id", [None, ""], ids=["unset", "empty"])
    def test_no_user_sees_nothing(self, app_conn, seeded, user_id):
        assert begin_as(app_conn, user_id).execute("select count(*) from tasks").fetchone() == (0,)

    def test_superuser_login_is_isolated_after_the_prologue(self, superuser_conn, seeded):
        rows = begin_as(superuser_conn, "bob").execute("select user_id from tasks").fetchall()
        assert {row[0] for row in rows} == {"bob"} and len(rows) == 3

    def test_row_security_cannot_be_switched_off(self, app_conn, seeded):
        cursor = begin_as(app_conn, "alice")
        cursor.execute("set local row_security = off")
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            cursor.execute("select * from tasks")


class TestWriting:
    def test_insert_defaults_the_owner_to_the_caller(self, app_conn, admin):
        cursor = begin_as(app_conn, "alice")
        cursor.execute("insert into tasks (title) values ('mine') returning user_id")
        assert cursor.fetchone() == ("alice",)
        app_conn.commit()
        assert admin.execute("select user_id from tasks").fetchall() == [("alice",)]

    def test_insert_for_another_owner_is_refused(self, app_conn, admin):
        cursor = begin_as(app_conn, "alice")
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            cursor.execute("insert into tasks (user_id, title) values ('bob', 'planted')")
        app_conn.rollback()
        assert admin.execute("select count(*) from tasks").fetchone() == (0,)

    def test_moving_own_row_to_another_owner_is_refused(self, app_conn, admin, seeded):
        cursor = begin_as(app_conn, "alice")
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            cursor.execute("update tasks set user_id = 'bob' where id = %s", (seeded["alice"][0],))
        app_conn.rollback()
        owner = admin.execute("select user_id from tasks where id = %s", (seeded["alice"][0],))
        assert owner.fetchone() == ("alice",)

    def test_update_of_another_users_rows_affects_nothing(self, app_conn, admin, seeded):
        cursor = begin_as(app_conn, "alice")
        cursor.execute("update tasks set title = 'hijacked' where user_id = 'bob'")
        assert cursor.rowcount == 0
        app_conn.commit()
        titles = admin.execute("select title from tasks where user_id = 'bob' order by title")
        assert titles.fetchall() == [("b1",), ("b2",), ("b3",)]

    def test_delete_of_another_users_rows_affects_nothing(self, app_conn, admin, seeded):
        cursor = begin_as(app_conn, "alice")
        cursor.execute("delete from tasks where id = any(%s)", (seeded["bob"],))
        assert cursor.rowcount == 0
        app_conn.commit()
        assert admin.execute("select count(*) from tasks where user_id = 'bob'").fetchone() == (3,)

    def test_no_user_cannot_insert(self, app_conn, admin):
        cursor = begin_as(app_conn, None)
        with pytest.raises((errors.NotNullViolation, errors.InsufficientPrivilege)):
            cursor.execute("insert into tasks (title) values ('orphan')")
        app_conn.rollback()
        assert admin.execute("select count(*) from tasks").fetchone() == (0,)

    def test_app_user_cannot_change_the_table_or_its_policies(self, app_conn):
        cursor = begin_as(app_conn, "alice")
        with pytest.raises(errors.InsufficientPrivilege):
            cursor.execute("alter table tasks disable row level security")
        app_conn.rollback()
        cursor = begin_as(app_conn, "alice")
        with pytest.raises(errors.InsufficientPrivilege):
            cursor.execute("drop policy tasks_select_own on tasks")
        app_conn.rollback()
        cursor = begin_as(app_conn, "alice")
        with pytest.raises(errors.InsufficientPrivilege):
            cursor.execute("truncate tasks")


class TestNoIdentityOutlivesItsTransaction:
    @pytest.mark.parametrize("end", ["commit", "rollback"])
    def test_settings_are_gone_after_the_transaction(self, app_conn, login_role, end):
        begin_as(app_conn, "alice").execute("select 1")
        getattr(app_conn, end)()
        user_setting, role = app_conn.execute("select current_setting('app.user_id', true), current_user").fetchone()
        assert user_setting in (None, "")
        assert role == login_role
        assert app_conn.execute("select count(*) from tasks").fetchone() is not None


class TestTheAppRole:
    def test_is_least_privileged(self, admin):
        facts = admin.execute(
            "select rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb "
            "from pg_roles where rolname = 'app_user'"
        ).fetchone()
        assert facts == (False, False, False, False, False)

    def test_does_not_own_tasks_and_rls_is_enabled_and_forced(self, admin):
        owner, enabled, forced = admin.execute(
            "select pg_get_userbyid(relowner), relrowsecurity, relforcerowsecurity "
            "from pg_class where oid = 'public.tasks'::regclass"
        ).fetchone()
        assert owner != "app_user" and enabled and forced

    def test_is_granted_only_dml_on_tasks(self, admin):
        privileges = admin.execute(
            "select privilege_type from information_schema.role_table_grants "
            "where grantee = 'app_user' and table_name = 'tasks' order by 1"
        ).fetchall()
        assert [row[0] for row in privileges] == ["DELETE", "INSERT", "SELECT", "UPDATE"]

    def test_policies_cover_every_command_and_only_app_user(self, admin):
        policies = admin.execute(
            "select policyname, cmd, roles::text[] from pg_policies where tablename = 'tasks' order by 1"
        ).fetchall()
        assert policies == [
            ("tasks_delete_own", "DELETE", ["app_user"]),
            ("tasks_insert_own", "INSERT", ["app_user"]),
            ("tasks_select_own", "SELECT", ["app_user"]),
            ("tasks_update_own", "UPDATE", ["app_user"]),
        ]

    def test_a_login_role_without_membership_cannot_become_app_user(self, admin, pg_template):
        admin.execute("drop role if exists taskapi_outsider")
        admin.execute("create role taskapi_outsider login")
        try:
            url = url_for(
                host=pg_template.host,
                port=pg_template.port,
                user="taskapi_outsider",
                dbname=admin.info.dbname,
            )
            with psycopg.connect(url) as conn, pytest.raises(errors.InsufficientPrivilege):
                begin_as(conn, "alice")
        finally:
            admin.execute("drop role taskapi_outsider")


class TestSideChannels:
    def test_planner_statistics_do_not_show_other_users_values(self, app_conn, admin, seeded):
        admin.execute("analyze tasks")
        assert admin.execute("select count(*) from pg_stats where tablename = 'tasks'").fetchone()[0] > 0
        cursor = begin_as(app_conn, "alice")
        assert cursor.execute("select count(*) from pg_stats where tablename = 'tasks'").fetchone() == (0,)

    def test_a_schema_early_in_the_search_path_cannot_answer_for_the_policies(self, app_conn, admin, seeded):
        """A caller puts a schema of theirs before pg_catalog, holding its own current_setting():
        the policies' app.current_user_id() was resolved when it was created, and still asks
        PostgreSQL's."""
        admin.execute("create schema hijack")
        admin.execute(
            "create function hijack.current_setting(text, boolean) returns text language sql as $$ select 'bob' $$"
        )
        admin.execute("grant usage on schema hijack to app_user")
        cursor = begin_as(app_conn, None)  # nobody
        cursor.execute("select set_config('search_path', 'hijack, pg_catalog, public', true)")

        assert cursor.execute("select count(*) from tasks").fetchone() == (0,)
        assert cursor.execute("select app.current_user_id()").fetchone() == (None,)


class TestAcrossTables:
    """Tasks point at lists. A foreign-key check runs without row-level security, so the key
    names the owner too: (list_id, user_id) references lists (id, user_id)."""

    @pytest.fixture
    def lists(self, admin: psycopg.Connection) -> dict[str, int]:
        ids = {}
        for owner in ("alice", "bob"):
            ids[owner] = admin.execute(
                "insert into lists (user_id, name) values (%s, 'Home') returning id", (owner,)
            ).fetchone()[0]
            for title, completed in (("in list", False), ("done in list", True)):
                admin.execute(
                    "insert into tasks (user_id, title, list_id, completed, completed_at)"
                    " values (%s, %s, %s, %s, case when %s then now() end)",
                    (owner, title, ids[owner], completed, completed),
                )
        return ids

    def table(self, admin: psycopg.Connection) -> list[tuple]:
        return (
            admin.execute("select * from tasks order by id").fetchall()
            + admin.execute("select * from lists order by id").fetchall()
        )

    def test_a_raw_insert_pointing_at_another_users_list_fails(self, app_conn, admin, lists):
        before = self.table(admin)
        cursor = begin_as(app_conn, "alice")
        with pytest.raises(errors.ForeignKeyViolation):
            cursor.execute("insert into tasks (title, list_id) values ('planted', %s)", (lists["bob"],))
        app_conn.rollback()
        assert self.table(admin) == before

    def test_a_raw_update_pointing_at_another_users_list_fails(self, app_conn, admin, lists):
        before = self.table(admin)
        cursor = begin_as(app_conn, "alice")
        with pytest.raises(errors.ForeignKeyViolation):
            cursor.execute("update tasks set list_id = %s where list_id = %s", (lists["bob"], lists["alice"]))
        app_conn.rollback()
        assert self.table(admin) == before

    def test_another_users_list_and_a_missing_one_fail_alike(self, app_conn, lists):
        messages = []
        for list_id in (lists["bob"], lists["bob"] + 1000):
            cursor = begin_as(app_conn, "alice")
            with pytest.raises(errors.ForeignKeyViolation) as raised:
                cursor.execute("insert into tasks (title, list_id) values ('planted', %s)", (list_id,))
            app_conn.rollback()
            messages.append(raised.value.diag.message_primary)
        assert messages[0] == messages[1]

    def test_deleting_a_list_never_touches_another_users_rows(self, app_conn, admin, lists):
        bobs_before = admin.execute("select * from tasks where user_id = 'bob' order by id").fetchall()
        cursor = begin_as(app_conn, "alice")
        cursor.execute("delete from lists where id = any(%s)", ([lists["alice"], lists["bob"]],))
        assert cursor.rowcount == 1
        app_conn.commit()
        assert admin.execute("select user_id from lists").fetchall() == [("bob",)]
        assert admin.execute("select * from tasks where user_id = 'bob' order by id").fetchall() == bobs_before
        alices = admin.execute("select user_id, list_id from tasks where user_id = 'alice'").fetchall()
        assert alices == [("alice", None), ("alice", None)]  # moved to no list, owner kept

    def test_list_counts_never_include_another_users_tasks(self, app_conn, admin, lists):
        # Even counting by bob's list id, with no owner in the query: only alice's rows exist.
        admin.execute("update tasks set list_id = null where user_id = 'alice'")
        cursor = begin_as(app_conn, "alice")
        counted = cursor.execute(
            "select count(*), count(*) filter (where not completed) from tasks where list_id = %s", (lists["bob"],)
        ).fetchone()
        joined = cursor.execute("select count(*) from lists l join tasks t on t.list_id = l.id").fetchone()
        assert (counted, joined) == ((0, 0), (0,))

    def test_another_users_list_is_invisible_and_cannot_be_renamed(self, app_conn, admin, lists):
        cursor = begin_as(app_conn, "alice")
        assert cursor.execute("select id from lists").fetchall() == [(lists["alice"],)]
        cursor.execute("update lists set name = 'mine' where id = %s", (lists["bob"],))
        assert cursor.rowcount == 0
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            cursor.execute("insert into lists (user_id, name) values ('bob', 'planted')")
        app_conn.rollback()
        assert admin.execute("select name from lists where user_id = 'bob'").fetchall() == [("Home",)]


class TestTagIndex:
    """task_tags, the tag index of tasks, follows tasks.tags by triggers, as the caller and
    under the same policies; its key to tasks names the owner too."""

    def tags(self, admin: psycopg.Connection) -> list[tuple]:
        return admin.execute("select user_id, tag_key, task_id from task_tags order by 1, 2, 3").fetchall()

    def test_the_index_follows_inserts_updates_and_deletes(self, app_conn, admin):
        cursor = begin_as(app_conn, "alice")
        [task_id] = cursor.execute(
            "insert into tasks (title, tags) values ('t', '{Home,WORK}') returning id"
        ).fetchone()
        app_conn.commit()
        assert self.tags(admin) == [("alice", "home", task_id), ("alice", "work", task_id)]

        begin_as(app_conn, "alice").execute("update tasks set tags = '{Errands}' where id = %s", (task_id,))
        app_conn.commit()
        assert self.tags(admin) == [("alice", "errands", task_id)]

        begin_as(app_conn, "alice").execute("update tasks set title = 'renamed'")  # tags untouched
        app_conn.commit()
        assert self.tags(admin) == [("alice", "errands", task_id)]

        begin_as(app_conn, "alice").execute("delete from tasks")
        app_conn.commit()
        assert self.tags(admin) == []

    def test_no_one_can_tag_another_users_task_or_see_their_tags(self, app_conn, admin):
        [bobs] = admin.execute(
            "insert into tasks (user_id, title, tags) values ('bob', 'b', '{secret}') returning id"
        ).fetchone()
        cursor = begin_as(app_conn, "alice")
        assert cursor.execute("select count(*) from task_tags").fetchone() == (0,)
        with pytest.raises(errors.ForeignKeyViolation):
            cursor.execute("insert into task_tags (tag_key, task_id) values ('mine', %s)", (bobs,))
        app_conn.rollback()
        cursor = begin_as(app_conn, "alice")
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            cursor.execute("insert into task_tags (user_id, tag_key, task_id) values ('bob', 'x', %s)", (bobs,))
        app_conn.rollback()
        cursor = begin_as(app_conn, "alice")
        cursor.execute("delete from task_tags")
        assert cursor.rowcount == 0
        app_conn.commit()
        assert self.tags(admin) == [("bob", "secret", bobs)]
