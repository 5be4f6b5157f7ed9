-- app_user may only see task_tags owned by itself.
create policy task_tags_select_own
on public.task_tags
as permissive
for select
to app_user
using (user_id = (select app.current_user_id()));
