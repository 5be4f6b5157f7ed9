-- app_user may only see lists owned by itself.
create policy lists_select_own
on public.lists
as permissive
for select
to app_user
using (user_id = (select app.current_user_id()));
