"""task versions and idempotency keys

`tasks.version` is bumped by every change and serves as the ETag, so PUT, PATCH and DELETE
can honour If-Match. `idempotency_keys` remembers each POST's Idempotency-Key and its answer,
per user: RLS is enabled and forced in the same migration that creates it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 01:10:00
"""

from collections.abc import Sequence

from alembic import op
from alembic_utils.pg_policy import PGPolicy

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_CHECK = "user_id = (select app.current_user_id())"
TABLE = "public.idempotency_keys"

policies = [
    PGPolicy(
        schema="public",
        signature="idempotency_keys_select_own",
        on_entity=TABLE,
        definition=f"as permissive for select to app_user using ({OWNER_CHECK})",
    ),
    PGPolicy(
        schema="public",
        signature="idempotency_keys_insert_own",
        on_entity=TABLE,
        definition=f"as permissive for insert to app_user with check ({OWNER_CHECK})",
    ),
    PGPolicy(
        schema="public",
        signature="idempotency_keys_update_own",
        on_entity=TABLE,
        definition=f"as permissive for update to app_user using ({OWNER_CHECK}) with check ({OWNER_CHECK})",
    ),
    PGPolicy(
        schema="public",
        signature="idempotency_keys_delete_own",
        on_entity=TABLE,
        definition=f"as permissive for delete to app_user using ({OWNER_CHECK})",
    ),
]


def upgrade() -> None:
    # A constant default: existing rows get version 1 without rewriting the table.
    op.execute("alter table public.tasks add column version bigint not null default 1")

    op.execute(
        """
        create table public.idempotency_keys (
          user_id text not null default app.current_user_id(),
          key text not null,
          request_hash text not null,
          response_status smallint,
          response_body jsonb,
          created_at timestamptz not null default now(),
          expires_at timestamptz not null,
          constraint idempotency_keys_pkey primary key (user_id, key),
          constraint idempotency_keys_key_length_check check (char_length(key) between 1 and 255)
        )
        """
    )
    op.execute("create index idempotency_keys_user_id_expires_at_idx on public.idempotency_keys (user_id, expires_at)")
    op.execute("revoke all on public.idempotency_keys from public")
    op.execute("grant select, insert, update, delete on public.idempotency_keys to app_user")
    op.execute("alter table public.idempotency_keys enable row level security")
    op.execute("alter table public.idempotency_keys force row level security")
    for policy in policies:
        op.create_entity(policy)


def downgrade() -> None:
    for policy in reversed(policies):
        op.drop_entity(policy)
    op.execute("drop table public.idempotency_keys")
    op.execute("alter table public.tasks drop column version")
