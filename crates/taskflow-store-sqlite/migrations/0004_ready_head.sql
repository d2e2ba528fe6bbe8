-- taskflow schema, version 4: claim-next finds the head of the ready queue by index.
--
-- Claim-next takes the first ready task of the most urgent priority that has one. With this
-- index it walks, per priority in urgency order, the ready status's entries of that priority in
-- id order and stops at the first that is unassigned (or the caller's) and waits on nothing,
-- instead of ranking every ready task on every claim. Nothing existing changes.
CREATE INDEX tasks_ready_head ON tasks (status, priority, id);
