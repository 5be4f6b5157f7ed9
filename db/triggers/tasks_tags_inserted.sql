-- A new task's tags into task_tags (db/functions/app.sync_task_tags.sql); untagged tasks cost nothing.
create trigger tasks_tags_inserted after insert on public.tasks
for each row when (cardinality(new.tags) > 0) execute function app.sync_task_tags();
