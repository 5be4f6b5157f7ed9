-- The caller's user id for this transaction, or null when none is set.
-- A pooled connection that already served a request reports '' rather than null,
-- so both mean "nobody": every policy comparing against null matches no row.
-- A SQL-standard body (begin atomic): parsed once, here, so every name in it is resolved now
-- and no search_path a caller sets later can change it. That pins it as `set search_path`
-- would, without making every call save and restore a setting (25-35 us per statement).
create or replace function app.current_user_id()
returns text
language sql
stable
begin atomic
  select nullif(pg_catalog.current_setting('app.user_id', true), '');
end;
