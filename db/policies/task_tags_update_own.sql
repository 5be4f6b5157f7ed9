-- app_user may only change its own task_tags, and never give one away.
create policy task_tags_update_own
on public.task_tags
as permissive
for update
to app_user
using (user_id = (select app.current_user_id()))
with check (user_id = (select app.current_user_id()));
