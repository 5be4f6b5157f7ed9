-- The caller's user id for this transaction, or null when none is set.
-- A pooled connection that already served a request reports '' rather than null,
-- so both mean "nobody": every policy comparing against null matches no row.
create or replace function app.current_user_id()
returns text
language sql
stable
as $$
  select nullif(current_setting('app.user_id', true), '')
$$;
