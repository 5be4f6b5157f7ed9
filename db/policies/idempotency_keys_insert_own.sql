-- app_user may only record keys under its own identity.
create policy idempotency_keys_insert_own
on public.idempotency_keys
as permissive
for insert
to app_user
with check (user_id = (select app.current_user_id()));
