-- Behaviour, as app_user, for two users. Rows are written through the policies themselves,
-- so this runs as any role that may become app_user; everything is rolled back.
begin;
create extension if not exists pgtap;
select plan(40);

set local role app_user;
select set_config('app.user_id', 'alice', true);
insert into tasks (title) values ('alice 1'), ('alice 2');
select set_config('app.user_id', 'bob', true);
insert into tasks (title) values ('bob 1');
select set_config('test.bob_task', (select id::text from tasks where title = 'bob 1'), true);
insert into idempotency_keys (key, request_hash, expires_at)
values ('bob-key', 'h', now() + interval '1 hour'), ('shared', 'h', now() + interval '1 hour');
select set_config('app.user_id', 'alice', true);
insert into idempotency_keys (key, request_hash, expires_at)
values ('alice-key', 'h', now() + interval '1 hour'), ('shared', 'h', now() + interval '1 hour');

-- Reading
select set_config('app.user_id', 'alice', true);
select results_eq(
  'select title from tasks order by title',
  array['alice 1', 'alice 2'],
  'alice sees only her rows, with no where clause'
);
select is((select count(*)::int from tasks where user_id = 'bob'), 0, 'alice cannot find bob''s rows by asking');
select is(
  (select count(*)::int from app.task_by_id(current_setting('test.bob_task')::bigint)), 0,
  'alice cannot get bob''s task by its id (app.task_by_id, the API''s get)'
);
select results_eq(
  'select title from app.task_by_id((select min(id) from tasks))', array['alice 1'],
  'alice gets her own task by its id'
);
-- PL/pgSQL keeps the plan, and after five calls may keep a generic one: the policy must still
-- decide on every call, for whoever is asking then.
select set_config('test.alice_task', (select min(id)::text from tasks), true);
select is(
  (select count(*)::int from generate_series(1, 12) as g,
     lateral app.task_by_id(current_setting('test.alice_task')::bigint + g * 0)),
  12, 'alice gets her task on each of 12 calls'
);
select set_config('app.user_id', 'bob', true);
select is(
  (select count(*)::int from generate_series(1, 12) as g,
     lateral app.task_by_id(current_setting('test.alice_task')::bigint + g * 0)),
  0, 'then bob, on the same connection and its kept plan, gets none of them'
);
select set_config('app.user_id', 'alice', true);

-- Writing for someone else
select throws_ok(
  $$insert into tasks (user_id, title) values ('bob', 'planted')$$,
  '42501', null, 'alice cannot insert a row for bob'
);
select throws_ok(
  $$update tasks set user_id = 'bob' where title = 'alice 1'$$,
  '42501', null, 'alice cannot move her row to bob'
);
select lives_ok($$update tasks set title = 'hijacked' where user_id = 'bob'$$, 'alice may try to update bob''s rows');
select lives_ok($$delete from tasks where user_id = 'bob'$$, 'alice may try to delete bob''s rows');

-- ... and it affected nothing: bob's row is still there, unchanged
select set_config('app.user_id', 'bob', true);
select results_eq('select title from tasks', array['bob 1'], 'bob''s row survived alice''s update and delete');

-- Nobody
select set_config('app.user_id', '', true);
select is((select count(*)::int from tasks), 0, 'an empty user id sees nothing');
select throws_ok($$insert into tasks (title) values ('orphan')$$, null, null, 'an empty user id cannot insert');
select set_config('app.user_id', 'alice', true);
select is((select count(*)::int from tasks), 2, 'alice still sees her own rows');

-- What the policies must still allow
update tasks set completed = true, completed_at = now() where title = 'alice 1';
select is((select count(*)::int from tasks where completed), 1, 'alice can update her own row');
delete from tasks where title = 'alice 2';
select is((select count(*)::int from tasks), 1, 'alice can delete her own row');

-- Idempotency keys: the same isolation, per user (both users hold a key named 'shared')
select results_eq(
  'select user_id, key from idempotency_keys order by key',
  $$values ('alice', 'alice-key'), ('alice', 'shared')$$,
  'alice sees only her idempotency keys, with no where clause'
);
select is(
  (select count(*)::int from idempotency_keys where user_id = 'bob'), 0,
  'alice cannot find bob''s idempotency keys by asking'
);
select throws_ok(
  $$insert into idempotency_keys (user_id, key, request_hash, expires_at) values ('bob', 'planted', 'h', now())$$,
  '42501', null, 'alice cannot record an idempotency key for bob'
);
select throws_ok(
  $$update idempotency_keys set user_id = 'bob', key = 'moved' where key = 'alice-key'$$,
  '42501', null, 'alice cannot move her idempotency key to bob'
);
select lives_ok(
  $$update idempotency_keys set response_status = 201, response_body = '{"id": 1}' where user_id = 'bob'$$,
  'alice may try to overwrite bob''s stored answers'
);
select lives_ok($$delete from idempotency_keys where user_id = 'bob'$$, 'alice may try to delete bob''s keys');
select set_config('app.user_id', 'bob', true);
select results_eq(
  'select key, response_status, response_body from idempotency_keys order by key',
  $$values ('bob-key', null::smallint, null::jsonb), ('shared', null, null)$$,
  'bob''s keys survived alice''s update and delete, unchanged'
);
select set_config('app.user_id', '', true);
select is((select count(*)::int from idempotency_keys), 0, 'an empty user id sees no idempotency key');
select throws_ok(
  $$insert into idempotency_keys (key, request_hash, expires_at) values ('orphan', 'h', now())$$,
  null, null, 'an empty user id cannot record an idempotency key'
);
select set_config('app.user_id', 'alice', true);
update idempotency_keys set response_status = 201 where key = 'shared';
select is(
  (select count(*)::int from idempotency_keys where response_status = 201), 1,
  'alice can store the answer on her own key'
);
delete from idempotency_keys where key = 'alice-key';
select is((select count(*)::int from idempotency_keys), 1, 'alice can delete her own key');

-- Lists, and tasks that point at them: a foreign-key check bypasses row-level security, so the
-- key names the owner too, and another user's list is the same as no list at all.
select set_config('app.user_id', 'bob', true);
insert into lists (name) values ('bob''s list');
insert into tasks (title, list_id) select 'bob listed', id from lists;
select set_config('app.user_id', 'alice', true);
insert into lists (name) values ('alice''s list');
select results_eq('select name from lists', array['alice''s list'], 'alice sees only her lists');
select throws_ok(
  format('insert into tasks (title, list_id) values (%L, %s)', 'planted', (select max(id) from lists) + 1000),
  '23503', null, 'a task cannot point at a list that does not exist'
);
select throws_ok(
  format('insert into tasks (title, list_id) values (%L, %s)', 'planted',
         (select max(id) from lists) - 1),  -- bob's list: created just before alice's
  '23503', null, 'a raw insert cannot point a task at bob''s list'
);
select throws_ok(
  format('update tasks set list_id = %s where title = %L', (select max(id) from lists) - 1, 'alice 1'),
  '23503', null, 'a raw update cannot move a task into bob''s list'
);
select throws_ok(
  $$insert into lists (user_id, name) values ('bob', 'planted')$$,
  '42501', null, 'alice cannot create a list for bob'
);
update tasks set list_id = (select id from lists) where title = 'alice 1';
select is(
  (select count(*)::int from lists l join tasks t on t.list_id = l.id),
  1, 'a count of alice''s list includes only her tasks'
);
select lives_ok($$delete from lists where user_id = 'bob'$$, 'alice may try to delete bob''s list');
select lives_ok($$delete from lists$$, 'alice deletes her own list');
select results_eq(
  'select title, list_id from tasks', $$values ('alice 1', null::bigint)$$,
  'deleting her list moved her task to no list, and kept it'
);
select set_config('app.user_id', 'bob', true);
select results_eq(
  'select t.title, l.name from tasks t join lists l on l.id = t.list_id',
  $$values ('bob listed', 'bob''s list')$$,
  'bob''s list and his task in it survived alice''s deletes, unchanged'
);

-- Tags: the index follows the tasks, per owner, and cannot be pointed at another's task
select set_config('app.user_id', 'bob', true);
insert into tasks (title, tags) values ('bob tagged', '{Secret}');
select set_config('test.bobs_task', (select id::text from tasks where title = 'bob tagged'), true);
select set_config('app.user_id', 'alice', true);
update tasks set tags = '{Home, home2}' where title = 'alice 1';
select results_eq(
  'select tag_key from task_tags order by 1', array['home', 'home2'],
  'alice sees only her tag entries, written by the trigger in lower case'
);
select throws_ok(
  format('insert into task_tags (tag_key, task_id) values (%L, %s)', 'mine', current_setting('test.bobs_task')),
  '23503', null, 'a raw insert cannot point alice''s tag entry at bob''s task'
);
select set_config('app.user_id', 'bob', true);
select results_eq('select tag_key from task_tags', array['secret'], 'bob''s tag entry is his alone');

select * from finish();
rollback;
