-- The keys a task's tags are found by: one per tag, the owner and the tag in lower case.
-- A GIN index on app.tag_keys(user_id, tags) then answers "this user's tasks carrying all
-- of these tags" from this user's entries alone, however common a tag is among other users.
-- Tags hold no control characters, so the unit separator (chr(31)) cannot occur in one.
-- Immutable (it reads nothing but its arguments), so an index may use it. A SQL-standard body:
-- every name in it is resolved now, so no search_path set later can redirect what it calls.
create or replace function app.tag_keys(owner text, tags text[])
returns text[]
language sql
immutable
parallel safe
begin atomic
  select array(select owner || pg_catalog.chr(31) || pg_catalog.lower(tag) from pg_catalog.unnest(tags) as tag);
end;
