-- app_user sees only its own Idempotency-Keys and the answers stored with them.
create policy idempotency_keys_select_own
on public.idempotency_keys
as permissive
for select
to app_user
using (user_id = (select app.current_user_id()));
