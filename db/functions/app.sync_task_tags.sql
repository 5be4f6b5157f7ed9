-- Keeps public.task_tags, the tag index of tasks, in step with tasks.tags: one row per task and
-- distinct tag in lower case. A table and not a GIN index on tasks.tags, because row-level
-- security lets only leakproof operators into an index scan before the policy has run, and
-- array containment is not leakproof: a GIN index would never be used for app_user. Equality
-- on text is, so "this user's tasks tagged x" is a range of task_tags' primary key.
-- It runs as the caller (app_user), under the policies on task_tags, and writes only rows of
-- the task's owner, who is the caller. The search_path is pinned: every name is qualified.
create or replace function app.sync_task_tags()
returns trigger
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
$function$;
