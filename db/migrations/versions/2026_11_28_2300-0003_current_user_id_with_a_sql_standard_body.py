"""pin what app.current_user_id() resolves to: a SQL-standard body

Every policy calls app.current_user_id(). Its body was plain SQL text, parsed at each call
with the caller's search_path, so a schema earlier in the path could supply its own
current_setting(). A SQL-standard body (`begin atomic`) is parsed once, at creation: the names
it uses are fixed then, as `set search_path = ''` would fix them, but without the setting's
save and restore on every call (measured: 25-35 us per statement). `taskapi audit` reports a
function with neither. `create or replace` keeps the function's owner and grants.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 23:00:00
"""

from collections.abc import Sequence

from alembic import op
from alembic_utils.pg_function import PGFunction

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "current_user_id()"
pinned = PGFunction(
    schema="app",
    signature=SIGNATURE,
    definition="""returns text
language sql
stable
begin atomic
  select nullif(pg_catalog.current_setting('app.user_id', true), '');
end""",
)
unpinned = PGFunction(
    schema="app",
    signature=SIGNATURE,
    definition="""returns text
language sql
stable
as $$
  select nullif(current_setting('app.user_id', true), '')
$$""",
)


def upgrade() -> None:
    op.replace_entity(pinned)


def downgrade() -> None:
    op.replace_entity(unpinned)
