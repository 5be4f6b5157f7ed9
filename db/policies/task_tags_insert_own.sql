-- app_user may only create task_tags owned by itself.
create policy task_tags_insert_own
on public.task_tags
as permissive
for insert
to app_user
with check (user_id = (select app.current_user_id()));
