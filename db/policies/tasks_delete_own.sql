-- app_user may only delete its own tasks.
create policy tasks_delete_own
on public.tasks
as permissive
for delete
to app_user
using (user_id = (select app.current_user_id()));
