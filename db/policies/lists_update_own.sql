-- app_user may only change its own lists, and never give one away.
create policy lists_update_own
on public.lists
as permissive
for update
to app_user
using (user_id = (select app.current_user_id()))
with check (user_id = (select app.current_user_id()));
