"""lists, due dates, priorities and tags

`lists` holds each user's task lists, with row-level security enabled, forced and one policy
per command, like `tasks`, in the same migration that creates it. A task belongs to at most
one list through a composite foreign key, `(list_id, user_id)` -> `lists (id, user_id)`: a
foreign key is checked without row-level security, so a plain `list_id` reference would let a
user attach a task to someone else's list. With the owner in the key, the list must belong to
the task's owner. Deleting a list nulls only `list_id` in its tasks (`on delete set null
(list_id)`, PostgreSQL 15+); the tasks stay theirs.

Tasks gain `due_at`, `priority` (0 none, 1 low, 2 medium, 3 high: sorting by it sorts by
importance), `tags` and `completed_at`, which is set exactly when the task is completed.
Tags are found through `task_tags` (owner, lower-cased tag, task), kept in step by triggers: a
GIN index on `tasks.tags` would never serve app_user, because row-level security admits only
leakproof operators into an index scan and array containment is not one. `task_tags` has the
same row-level security as every table, and its key to `tasks` names the owner too. Existing
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
from alembic_utils.pg_trigger import PGTrigger

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_CHECK = "user_id = (select app.current_user_id())"

sync_task_tags = PGFunction(
    schema="app",
    signature="sync_task_tags()",
    definition="""returns trigger
language plpgsql
set search_path = ''
as $function$
begin
  if tg_op = 'UPDATE' then
    delete from public.task_tags where task_id = old.id and user_id = old.user_id;
  end if;
  insert into public.task_tags (user_id, tag_key, task_id)
  select distinct new.user_id, pg_catalog.lower(tag), new.id from pg_catalog.unnest(new.tags) as tag;
  return null;
end
$function$""",
)
triggers = [
    PGTrigger(
        schema="public",
        signature="tasks_tags_inserted",
        on_entity="public.tasks",
        definition="after insert on public.tasks"
        " for each row when (cardinality(new.tags) > 0) execute function app.sync_task_tags()",
    ),
    PGTrigger(
        schema="public",
        signature="tasks_tags_updated",
        on_entity="public.tasks",
        definition="after update of tags on public.tasks"
        " for each row when (old.tags is distinct from new.tags) execute function app.sync_task_tags()",
    ),
]


# What each command's policy says: only the caller's rows, and never one written for another.
OWNER_CLAUSES = {
    "select": f"using ({OWNER_CHECK})",
    "insert": f"with check ({OWNER_CHECK})",
    "update": f"using ({OWNER_CHECK}) with check ({OWNER_CHECK})",
    "delete": f"using ({OWNER_CHECK})",
}


def owner_policies(table: str) -> list[PGPolicy]:
    """The four policies every table of user data has, one per command."""
    name = table.removeprefix("public.")
    return [
        PGPolicy(
            schema="public",
            signature=f"{name}_{command}_own",
            on_entity=table,
            definition=f"as permissive for {command} to app_user {clause}",
        )
        for command, clause in OWNER_CLAUSES.items()
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
    protect("public.lists")

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

    # What task_tags references: a task together with its owner.
    op.execute("alter table public.tasks add constraint tasks_id_user_id_key unique (id, user_id)")
    op.execute(
        """
        create table public.task_tags (
          user_id text not null default app.current_user_id(),
          tag_key text not null,
          task_id bigint not null,
          constraint task_tags_pkey primary key (user_id, tag_key, task_id),
          constraint task_tags_task_id_fkey foreign key (task_id, user_id)
            references public.tasks (id, user_id) on delete cascade
        )
        """
    )
    # One task's entries: what the cascade of a task's delete and the trigger's delete look for.
    op.execute("create index task_tags_task_id_idx on public.task_tags (task_id)")
    # Most tags belong to one user: without statistics on the pair, the planner multiplies the
    # tag's share by the user's and expects far too few of a user's entries for a tag.
    op.execute(
        "create statistics public.task_tags_user_id_tag_key_stats (mcv) on user_id, tag_key from public.task_tags"
    )
    protect("public.task_tags")
    op.create_entity(sync_task_tags)
    op.execute("revoke all on function app.sync_task_tags() from public")
    for trigger in triggers:
        op.create_entity(trigger)


def protect(table: str) -> None:
    """What every table of user data gets as it is created: no grant to PUBLIC, DML for
    app_user, row-level security enabled and forced, and the four owner policies."""
    op.execute(f"revoke all on {table} from public")
    op.execute(f"grant select, insert, update, delete on {table} to app_user")
    op.execute(f"alter table {table} enable row level security")
    op.execute(f"alter table {table} force row level security")
    for policy in owner_policies(table):
        op.create_entity(policy)


def downgrade() -> None:
    for trigger in reversed(triggers):
        op.drop_entity(trigger)
    op.drop_entity(sync_task_tags)
    op.execute("drop table public.task_tags")  # its policies go with it
    op.execute("alter table public.tasks drop constraint tasks_id_user_id_key")
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
    op.execute("drop table public.lists")  # its policies go with it
