-- Behaviour, as app_user, for two users. Rows are written through the policies themselves,
-- so this runs as any role that may become app_user; everything is rolled back.
begin;
create extension if not exists pgtap;
select plan(12);

set local role app_user;
select set_config('app.user_id', 'alice', true);
insert into tasks (title) values ('alice 1'), ('alice 2');
select set_config('app.user_id', 'bob', true);
insert into tasks (title) values ('bob 1');

-- Reading
select set_config('app.user_id', 'alice', true);
select results_eq(
  'select title from tasks order by title',
  array['alice 1', 'alice 2'],
  'alice sees only her rows, with no where clause'
);
select is((select count(*)::int from tasks where user_id = 'bob'), 0, 'alice cannot find bob''s rows by asking');

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
update tasks set completed = true where title = 'alice 1';
select is((select count(*)::int from tasks where completed), 1, 'alice can update her own row');
delete from tasks where title = 'alice 2';
select is((select count(*)::int from tasks), 1, 'alice can delete her own row');

select * from finish();
rollback;
