"""tasks with row-level security

The role, the schema of helper functions, the tasks table, its grants and its policies.
RLS is enabled and forced in the same migration that creates the table, so there is no
revision in which the table exists unprotected.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 23:00:00
"""

from collections.abc import Sequence

from alembic import op
from alembic_utils.pg_function import PGFunction
from alembic_utils.pg_policy import PGPolicy

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_CHECK = "user_id = (select app.current_user_id())"

app_current_user_id = PGFunction(
    schema="app",
    signature="current_user_id()",
    definition="""returns text
language sql
stable
as $$
  select nullif(current_setting('app.user_id', true), '')
$$""",
)

policies = [
    PGPolicy(
        schema="public",
        signature="tasks_select_own",
        on_entity="public.tasks",
        definition=f"as permissive for select to app_user using ({OWNER_CHECK})",
    ),
    PGPolicy(
        schema="public",
        signature="tasks_insert_own",
        on_entity="public.tasks",
        definition=f"as permissive for insert to app_user with check ({OWNER_CHECK})",
    ),
    PGPolicy(
        schema="public",
        signature="tasks_update_own",
        on_entity="public.tasks",
        definition=(f"as permissive for update to app_user using ({OWNER_CHECK}) with check ({OWNER_CHECK})"),
    ),
    PGPolicy(
        schema="public",
        signature="tasks_delete_own",
        on_entity="public.tasks",
        definition=f"as permissive for delete to app_user using ({OWNER_CHECK})",
    ),
]


def upgrade() -> None:
    # Roles are cluster-wide: other databases on this server may have created it already,
    # possibly at this very moment.
    op.execute(
        """
        do $$
        begin
          if not exists (select from pg_roles where rolname = 'app_user') then
            create role app_user nologin nosuperuser nobypassrls;
          end if;
        exception when duplicate_object then null;
        end $$
        """
    )
    # The login role must be able to switch to app_user for each transaction.
    op.execute(
        """
        do $$
        begin
          if not pg_has_role(current_user, 'app_user', 'MEMBER') then
            execute format('grant app_user to %I', current_user);
          end if;
        end $$
        """
    )

    op.execute("create schema app")
    op.execute("grant usage on schema app to app_user")
    op.create_entity(app_current_user_id)
    op.execute("revoke all on function app.current_user_id() from public")
    op.execute("grant execute on function app.current_user_id() to app_user")

    op.execute(
        """
        create table public.tasks (
          id bigint generated always as identity,
          user_id text not null default app.current_user_id(),
          title text not null,
          description text,
          completed boolean not null default false,
          created_at timestamptz not null default now(),
          updated_at timestamptz not null default now(),
          constraint tasks_pkey primary key (id),
          constraint tasks_title_length_check check (char_length(title) between 1 and 200),
          constraint tasks_description_length_check
            check (description is null or char_length(description) <= 1000),
          constraint tasks_user_id_length_check check (char_length(user_id) between 1 and 255)
        )
        """
    )
    op.execute("create index tasks_user_id_created_at_id_idx on public.tasks (user_id, created_at, id)")
    op.execute("create index tasks_user_id_updated_at_id_idx on public.tasks (user_id, updated_at, id)")
    op.execute("create index tasks_user_id_title_id_idx on public.tasks (user_id, title, id)")

    op.execute("revoke all on public.tasks from public")
    op.execute("grant select, insert, update, delete on public.tasks to app_user")
    op.execute("alter table public.tasks enable row level security")
    op.execute("alter table public.tasks force row level security")
    for policy in policies:
        op.create_entity(policy)
    # Lets the server confirm at start-up that the schema is current, as app_user.
    op.execute("grant select on public.alembic_version to app_user")


def downgrade() -> None:
    for policy in reversed(policies):
        op.drop_entity(policy)
    op.execute("drop table public.tasks")
    op.drop_entity(app_current_user_id)
    op.execute("drop schema app")
    # app_user stays: it is cluster-wide and other databases on this server may use it.
