-- app_user sees only the tasks it owns.
create policy tasks_select_own
on public.tasks
as permissive
for select
to app_user
using (user_id = (select app.current_user_id()));
