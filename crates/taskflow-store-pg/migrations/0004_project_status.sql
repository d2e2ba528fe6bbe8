-- taskflow schema, version 4: a project's tasks in one status, by index.
--
-- `GET /api/tasks?project=…&status=…` reads a page and counts every match for
-- `X-Total-Count`. With only the one-column indexes, PostgreSQL combined the project's entries
-- with every entry of the status (a quarter of a million pending tasks at 1,000,000 tasks,
-- about 15 ms a page); with this index both the page and the count read only the matches.
-- Nothing existing changes.
CREATE INDEX tasks_project_status_idx ON tasks (project_slug, status, id);
