-- app_user may only insert tasks owned by itself.
create policy tasks_insert_own
on public.tasks
as permissive
for insert
to app_user
with check (user_id = (select app.current_user_id()));
