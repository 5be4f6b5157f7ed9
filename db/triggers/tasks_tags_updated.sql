-- A task's changed tags into task_tags (db/functions/app.sync_task_tags.sql); other updates cost nothing.
create trigger tasks_tags_updated after update of tags on public.tasks
for each row when (old.tags is distinct from new.tags) execute function app.sync_task_tags();
