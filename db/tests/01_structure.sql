-- Structure: the policies that exist, RLS enabled and forced, and app_user without powers.
-- Run with: pg_prove -d <database> db/tests/*.sql   (everything is rolled back)
begin;
create extension if not exists pgtap;
select plan(44);

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

-- idempotency_keys: the same protection as tasks, per command
select policies_are(
  'public', 'idempotency_keys',
  array[
    'idempotency_keys_select_own', 'idempotency_keys_insert_own',
    'idempotency_keys_update_own', 'idempotency_keys_delete_own'
  ],
  'idempotency_keys has exactly the four owner policies'
);
select policy_roles_are(
  'public', 'idempotency_keys', 'idempotency_keys_select_own', array['app_user'],
  'idempotency_keys_select_own binds app_user only'
);
select policy_roles_are(
  'public', 'idempotency_keys', 'idempotency_keys_insert_own', array['app_user'],
  'idempotency_keys_insert_own binds app_user only'
);
select policy_roles_are(
  'public', 'idempotency_keys', 'idempotency_keys_update_own', array['app_user'],
  'idempotency_keys_update_own binds app_user only'
);
select policy_roles_are(
  'public', 'idempotency_keys', 'idempotency_keys_delete_own', array['app_user'],
  'idempotency_keys_delete_own binds app_user only'
);
select policy_cmd_is('public', 'idempotency_keys', 'idempotency_keys_select_own', 'select', 'idempotency_keys_select_own governs select');
select policy_cmd_is('public', 'idempotency_keys', 'idempotency_keys_insert_own', 'insert', 'idempotency_keys_insert_own governs insert');
select policy_cmd_is('public', 'idempotency_keys', 'idempotency_keys_update_own', 'update', 'idempotency_keys_update_own governs update');
select policy_cmd_is('public', 'idempotency_keys', 'idempotency_keys_delete_own', 'delete', 'idempotency_keys_delete_own governs delete');
select ok(
  (select relrowsecurity from pg_class where oid = 'public.idempotency_keys'::regclass),
  'row-level security is enabled on idempotency_keys'
);
select ok(
  (select relforcerowsecurity from pg_class where oid = 'public.idempotency_keys'::regclass),
  'row-level security is forced on idempotency_keys (binds the owner too)'
);
select isnt(
  (select pg_get_userbyid(relowner) from pg_class where oid = 'public.idempotency_keys'::regclass)::text,
  'app_user',
  'app_user does not own idempotency_keys'
);
select table_privs_are(
  'public', 'idempotency_keys', 'app_user', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'app_user may only select, insert, update and delete idempotency_keys'
);
select ok(
  not exists (
    select from pg_class c, aclexplode(c.relacl) acl
    where c.oid = 'public.idempotency_keys'::regclass and acl.grantee = 0
  ),
  'PUBLIC has no privileges on idempotency_keys'
);
select col_is_pk('public', 'idempotency_keys', array['user_id', 'key'], 'a key is unique per user, not globally');
select col_default_is(
  'public', 'idempotency_keys', 'user_id', 'app.current_user_id()',
  'a key''s owner defaults to the caller'
);

-- lists: the same protection per command, and tasks can only point at their owner's lists
select policies_are(
  'public', 'lists',
  array['lists_select_own', 'lists_insert_own', 'lists_update_own', 'lists_delete_own'],
  'lists has exactly the four owner policies'
);
select policy_roles_are('public', 'lists', 'lists_select_own', array['app_user'], 'lists_select_own binds app_user only');
select policy_roles_are('public', 'lists', 'lists_insert_own', array['app_user'], 'lists_insert_own binds app_user only');
select policy_roles_are('public', 'lists', 'lists_update_own', array['app_user'], 'lists_update_own binds app_user only');
select policy_roles_are('public', 'lists', 'lists_delete_own', array['app_user'], 'lists_delete_own binds app_user only');
select ok(
  (select relrowsecurity and relforcerowsecurity from pg_class where oid = 'public.lists'::regclass),
  'row-level security is enabled and forced on lists'
);
select isnt(
  (select pg_get_userbyid(relowner) from pg_class where oid = 'public.lists'::regclass)::text,
  'app_user',
  'app_user does not own lists'
);
select table_privs_are(
  'public', 'lists', 'app_user', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'app_user may only select, insert, update and delete lists'
);
select fk_ok(
  'public', 'tasks', array['list_id', 'user_id'], 'public', 'lists', array['id', 'user_id'],
  'a task''s list is named together with its owner: (list_id, user_id) references lists (id, user_id)'
);
select is(
  (select pg_get_constraintdef(oid) from pg_constraint where conname = 'tasks_list_id_fkey'),
  'FOREIGN KEY (list_id, user_id) REFERENCES lists(id, user_id) ON DELETE SET NULL (list_id)',
  'deleting a list nulls only list_id, never user_id'
);
select col_is_unique('public', 'lists', array['id', 'user_id'], 'lists (id, user_id) is unique, so tasks can reference it');

select is(
  (select string_agg(conname || ': ' || pg_get_constraintdef(oid), ' | ' order by conname::text)
     from pg_constraint
    where conname in ('tasks_completed_at_check', 'tasks_priority_check', 'tasks_tags_count_check',
                      'lists_name_length_check')),
  'lists_name_length_check: CHECK (((char_length(name) >= 1) AND (char_length(name) <= 100)))'
  || ' | tasks_completed_at_check: CHECK ((completed = (completed_at IS NOT NULL)))'
  || ' | tasks_priority_check: CHECK (((priority >= 0) AND (priority <= 3)))'
  || ' | tasks_tags_count_check: CHECK ((cardinality(tags) <= 20))',
  'the new columns keep their rules in the database: completed_at with completed, priority 0-3, at most 20 tags'
);

-- task_tags: the tag index of tasks, protected like every table of user data
select policies_are(
  'public', 'task_tags',
  array['task_tags_select_own', 'task_tags_insert_own', 'task_tags_update_own', 'task_tags_delete_own'],
  'task_tags has exactly the four owner policies'
);
select ok(
  (select relrowsecurity and relforcerowsecurity from pg_class where oid = 'public.task_tags'::regclass),
  'row-level security is enabled and forced on task_tags'
);
select fk_ok(
  'public', 'task_tags', array['task_id', 'user_id'], 'public', 'tasks', array['id', 'user_id'],
  'a tag entry is named together with its owner: (task_id, user_id) references tasks (id, user_id)'
);
select has_index('public', 'task_tags', 'task_tags_task_id_idx', 'one task''s tag entries are found by its id');
select ok(
  exists (select from pg_statistic_ext where stxname = 'task_tags_user_id_tag_key_stats'),
  'the planner knows how tags and users go together (extended statistics on task_tags)'
);

-- app.task_by_id: the API's get, a function only so that its plan is kept
select isnt_definer(
  'app', 'task_by_id', array['bigint'],
  'app.task_by_id runs as its caller (security invoker): the policies on tasks apply inside it'
);
select function_privs_are(
  'app', 'task_by_id', array['bigint'], 'public', array[]::text[], 'PUBLIC may not execute app.task_by_id'
);

select * from finish();
rollback;
