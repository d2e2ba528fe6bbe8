-- taskflow schema, version 5: claim-next in one project finds the head by index too.
--
-- With a project named, schema 4's `tasks (status, priority, id)` walks every ready task of
-- the priority, in every project, to find the first of this one: behind 60,000 pending tasks
-- of another project, each claim read them all. This index starts with the project, so a claim
-- in a project walks that project's ready tasks of the priority only. Nothing existing changes.
CREATE INDEX tasks_ready_project ON tasks (project_slug, status, priority, id);
