-- app_user may only delete its own task_tags.
create policy task_tags_delete_own
on public.task_tags
as permissive
for delete
to app_user
using (user_id = (select app.current_user_id()));
