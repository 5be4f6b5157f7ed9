-- app_user may only delete its own lists.
create policy lists_delete_own
on public.lists
as permissive
for delete
to app_user
using (user_id = (select app.current_user_id()));
