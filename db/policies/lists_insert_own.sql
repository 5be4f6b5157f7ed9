-- app_user may only create lists owned by itself.
create policy lists_insert_own
on public.lists
as permissive
for insert
to app_user
with check (user_id = (select app.current_user_id()));
