-- Structure: the policies that exist, RLS enabled and forced, and app_user without powers.
-- Run with: pg_prove -d <database> db/tests/*.sql   (everything is rolled back)
begin;
create extension if not exists pgtap;
select plan(9);

select policies_are(
  'public', 'tasks',
  array['tasks_select_own', 'tasks_insert_own', 'tasks_update_own', 'tasks_delete_own'],
  'tasks has exactly the four owner policies'
);
select policy_roles_are('public', 'tasks', 'tasks_select_own', array['app_user'], 'tasks_select_own binds app_user');
select policy_cmd_is('public', 'tasks', 'tasks_update_own', 'update', 'tasks_update_own governs update');
select ok(
  (select relrowsecurity from pg_class where oid = 'public.tasks'::regclass),
  'row-level security is enabled on tasks'
);
select ok(
  (select relforcerowsecurity from pg_class where oid = 'public.tasks'::regclass),
  'row-level security is forced on tasks (binds the owner too)'
);
select isnt_superuser('app_user', 'app_user is not a superuser');
select ok(not (select rolbypassrls from pg_roles where rolname = 'app_user'), 'app_user has no BYPASSRLS');
select isnt(
  (select pg_get_userbyid(relowner) from pg_class where oid = 'public.tasks'::regclass)::text,
  'app_user',
  'app_user does not own tasks'
);
select is(app.current_user_id(), null, 'with no user set, the current user is null');

select * from finish();
rollback;
