-- app_user may only update its own tasks, and cannot hand them to someone else.
create policy tasks_update_own
on public.tasks
as permissive
for update
to app_user
using (user_id = (select app.current_user_id()))
with check (user_id = (select app.current_user_id()));
