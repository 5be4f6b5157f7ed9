"""lists, due dates, priorities and tags

`lists` holds each user's task lists, with row-level security enabled, forced and one policy
per command, like `tasks`, in the same migration that creates it. A task belongs to at most
one list through a composite foreign key, `(list_id, user_id)` -> `lists (id, user_id)`: a
foreign key is checked without row-level security, so a plain `list_id` reference would let a
user attach a task to someone else's list. With the owner in the key, the list must belong to
the task's owner. Deleting a list nulls only `list_id` in its tasks (`on delete set null
(list_id)`, PostgreSQL 15+); the tasks stay theirs.

Tasks gain `due_at`, `priority` (0 none, 1 low, 2 medium, 3 high: sorting by it sorts by
importance), `tags` (found through a GIN index on app.tag_keys(user_id, tags): this user's
entries only) and `completed_at`, which is set exactly when the task is completed. Existing
tasks get no list, no due date, priority none and no tags; a task already completed gets its
`updated_at` as the moment it was completed, the best the table knows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 02:00:00
"""

from collections.abc import Sequence

from alembic import op
from alembic_utils.pg_function import PGFunction
from alembic_utils.pg_policy import PGPolicy

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_CHECK = "user_id = (select app.current_user_id())"
TABLE = "public.lists"

tag_keys = PGFunction(
    schema="app",
    signature="tag_keys(owner text, tags text[])",
    definition="""returns text[]
language sql
immutable
parallel safe
begin atomic
  select array(select owner || pg_catalog.chr(31) || pg_catalog.lower(tag) from pg_catalog.unnest(tags) as tag);
end""",
)

policies = [
    PGPolicy(
        schema="public",
        signature="lists_select_own",
        on_entity=TABLE,
        definition=f"as permissive for select to app_user using ({OWNER_CHECK})",
    ),
    PGPolicy(
        schema="public",
        signature="lists_insert_own",
        on_entity=TABLE,
        definition=f"as permissive for insert to app_user with check ({OWNER_CHECK})",
    ),
    PGPolicy(
        schema="public",
        signature="lists_update_own",
        on_entity=TABLE,
        definition=f"as permissive for update to app_user using ({OWNER_CHECK}) with check ({OWNER_CHECK})",
    ),
    PGPolicy(
        schema="public",
        signature="lists_delete_own",
        on_entity=TABLE,
        definition=f"as permissive for delete to app_user using ({OWNER_CHECK})",
    ),
]


def upgrade() -> None:
    op.execute(
        """
        create table public.lists (
          id bigint generated always as identity,
          user_id text not null default app.current_user_id(),
          name text not null,
          created_at timestamptz not null default now(),
          updated_at timestamptz not null default now(),
          version bigint not null default 1,
          constraint lists_pkey primary key (id),
          -- what tasks reference: a list together with its owner
          constraint lists_id_user_id_key unique (id, user_id),
          constraint lists_name_length_check check (char_length(name) between 1 and 100),
          constraint lists_user_id_length_check check (char_length(user_id) between 1 and 255)
        )
        """
    )
    # Names are unique per user, ignoring case.
    op.execute("create unique index lists_user_id_lower_name_key on public.lists (user_id, lower(name))")
    op.execute("revoke all on public.lists from public")
    op.execute("grant select, insert, update, delete on public.lists to app_user")
    op.execute("alter table public.lists enable row level security")
    op.execute("alter table public.lists force row level security")
    for policy in policies:
        op.create_entity(policy)

    op.create_entity(tag_keys)
    op.execute("revoke all on function app.tag_keys(text, text[]) from public")
    op.execute("grant execute on function app.tag_keys(text, text[]) to app_user")

    # Constant defaults: existing rows get them without a rewrite of the table.
    op.execute(
        """
        alter table public.tasks
          add column list_id bigint,
          add column due_at timestamptz,
          add column priority smallint not null default 0,
          add column tags text[] not null default '{}',
          add column completed_at timestamptz,
          add constraint tasks_priority_check check (priority between 0 and 3),
          add constraint tasks_tags_count_check check (cardinality(tags) <= 20),
          add constraint tasks_list_id_fkey foreign key (list_id, user_id)
            references public.lists (id, user_id) on delete set null (list_id)
        """
    )
    op.execute("update public.tasks set completed_at = updated_at where completed")
    op.execute(
        "alter table public.tasks add constraint tasks_completed_at_check"
        " check (completed = (completed_at is not null))"
    )
    op.execute("create index tasks_user_id_list_id_idx on public.tasks (user_id, list_id)")
    op.execute("create index tasks_user_id_due_at_id_idx on public.tasks (user_id, due_at, id)")
    op.execute("create index tasks_user_id_priority_id_idx on public.tasks (user_id, priority, id)")
    op.execute("create index tasks_tag_keys_idx on public.tasks using gin (app.tag_keys(user_id, tags))")


def downgrade() -> None:
    op.execute("drop index public.tasks_tag_keys_idx")
    op.execute("drop index public.tasks_user_id_priority_id_idx")
    op.execute("drop index public.tasks_user_id_due_at_id_idx")
    op.execute("drop index public.tasks_user_id_list_id_idx")
    op.execute(
        """
        alter table public.tasks
          drop constraint tasks_completed_at_check,
          drop constraint tasks_list_id_fkey,
          drop column completed_at,
          drop column tags,
          drop column priority,
          drop column due_at,
          drop column list_id
        """
    )
    op.drop_entity(tag_keys)
    for policy in reversed(policies):
        op.drop_entity(policy)
    op.execute("drop table public.lists")
