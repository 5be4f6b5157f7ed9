-- app_user may only delete its own keys (the expired ones are purged as new ones arrive).
create policy idempotency_keys_delete_own
on public.idempotency_keys
as permissive
for delete
to app_user
using (user_id = (select app.current_user_id()));
