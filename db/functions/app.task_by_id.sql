-- One task by its id, as the caller sees it: the API's `get` (GET /api/{user_id}/tasks/{id}).
-- It runs as the caller (app_user, security invoker), so the policies on public.tasks decide
-- whether the row exists: another user's task is no row, exactly as a plain select would be.
-- A PL/pgSQL function because PL/pgSQL keeps its statement's plan for the life of the server
-- connection: planning this select anew for every request (the planner weighs each of the
-- table's indexes against the policy's user_id) cost PostgreSQL more than running it. No
-- prepared statement is involved, so it works the same behind any transaction pooler.
-- The search_path is pinned: every name is qualified.
create or replace function app.task_by_id(wanted bigint)
returns setof public.tasks
language plpgsql
stable
set search_path = ''
as $function$
begin
  return query select * from public.tasks where public.tasks.id operator(pg_catalog.=) wanted;
end
$function$;
