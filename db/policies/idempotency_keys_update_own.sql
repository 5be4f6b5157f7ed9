-- app_user may only update its own keys (storing the answer, or reclaiming an expired key).
create policy idempotency_keys_update_own
on public.idempotency_keys
as permissive
for update
to app_user
using (user_id = (select app.current_user_id()))
with check (user_id = (select app.current_user_id()));
