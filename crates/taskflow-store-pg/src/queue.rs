//! [`QueueStore`] for [`PgStore`]: dependency edges, the ready queue, claim-next and leases.
//!
//! Every write is one READ COMMITTED transaction (see [`BEGIN`]) with its audit row, and a
//! compare-and-set on the task's version; the statements whose correctness depends on how
//! concurrent transactions interleave live in `queries/*.sql`, each with a comment saying why it
//! is correct.

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{Row, Transaction};
use taskflow_core::lifecycle::ReadyRule;
use taskflow_core::model::{Page, Priority, ReadyFilter, Task, TaskStatus, Timestamp};
use taskflow_core::{
    Claim, Conflict, Dependencies, DependencyWrite, EdgeChange, LeaseWrite, QueueStore, Result,
    Written,
};

use crate::error::{PgError, is_fk_violation, is_unique_violation};
use crate::rows;
use crate::store::{
    BEGIN, BEGIN_WRITE, DEPENDS_ON_FKEY, GRAPH_LOCK, abandon, as_written, insert_audit, read_page,
    update_query,
};
use crate::{GRAPH_LOCK_KEY, PgStore};

/// The edges of one task, in one statement.
const DEPENDENCIES: &str = include_str!("../queries/dependencies.sql");

/// Whether a new edge would close a cycle of dependencies.
const DEPENDENCY_CYCLE: &str = include_str!("../queries/dependency_cycle.sql");

/// A page of an actor's ready queue, with its total.
const READY_TASKS: &str = include_str!("../queries/ready_tasks.sql");

/// Claim-next, step 1: locks the first ready task nobody else holds.
const CLAIM_NEXT: &str = include_str!("../queries/claim_next.sql");
/// Claim-next's pick among priorities the urgency does not rank.
const CLAIM_UNRANKED: &str = include_str!("../queries/claim_unranked.sql");

/// Claim-next, step 2: whether the locked task gained an unfinished dependency meanwhile.
const CLAIM_WAITING: &str = include_str!("../queries/claim_waiting.sql");

/// A heartbeat's compare-and-set renewal of a lease.
const EXTEND_LEASE: &str = include_str!("../queries/extend_lease.sql");

/// The leases that have run out, oldest first.
const EXPIRED_LEASES: &str = include_str!("../queries/expired_leases.sql");

/// The primary key of `task_dependencies`: one row per edge.
const EDGE_PKEY: &str = "task_dependencies_pkey";

/// How many locked candidates in a row claim-next leaves because they gained a dependency
/// between its snapshot and its lock, before it gives up. Each one takes a dependency write
/// that commits inside that window on that very task, so even one is rare.
const MAX_CLAIM_SKIPS: usize = 16;

/// Binds the ready rule and the caller to `$1..$8` of `claim_next.sql` and `ready_tasks.sql`:
/// the statuses and priorities come from `rule`, spelled by taskflow-core, never here.
fn bind_ready<'q>(
    query: Query<'q, Postgres, PgArguments>,
    rule: &ReadyRule,
    actor_id: &'q str,
    project: Option<&'q str>,
) -> Query<'q, Postgres, PgArguments> {
    let [first, second, third, fourth] = rule.urgency;
    query
        .bind(rule.ready.as_str())
        .bind(rule.finished.as_str())
        .bind(actor_id)
        .bind(project)
        .bind(first.as_str())
        .bind(second.as_str())
        .bind(third.as_str())
        .bind(fourth.as_str())
}

/// Rolls back a transaction that must write nothing. A failed rollback is only logged: no
/// COMMIT was sent, so the server discards the transaction when the connection goes.
async fn discard(tx: Transaction<'static, Postgres>) {
    if let Err(err) = tx.rollback().await {
        tracing::debug!(%err, "rolling back an abandoned claim failed");
    }
}

/// Reads one row of `dependencies.sql` into `deps`.
fn push_edge(deps: &mut Dependencies, row: &PgRow) -> Result<(), PgError> {
    let outgoing: bool = row.try_get("outgoing")?;
    let id: i64 = row.try_get("id")?;
    if outgoing {
        let status: String = row.try_get("status")?;
        let status = status.parse::<TaskStatus>().map_err(|_| PgError::Corrupt {
            column: "status",
            message: format!("unknown value {status:?}"),
        })?;
        deps.depends_on.push((id, status));
    } else {
        deps.dependents.push(id);
    }
    Ok(())
}

impl PgStore {
    async fn try_dependencies(&self, task_id: i64) -> Result<Dependencies, PgError> {
        let found = sqlx::query(DEPENDENCIES)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await?;
        let mut deps = Dependencies::default();
        for row in &found {
            push_edge(&mut deps, row)?;
        }
        Ok(deps)
    }

    async fn try_write_dependency(&self, write: &DependencyWrite) -> Result<Written<()>, PgError> {
        let task = &write.task;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;

        // An edge added concurrently with the opposite one (`A on B`, `B on A`) touches
        // different rows, so no row lock orders the two; the graph lock does, across
        // connections and server processes (`queries/graph_lock.sql`). Taken before the
        // task's row lock, as every graph write takes them. Removing an edge cannot close a
        // cycle and takes no lock.
        if let EdgeChange::Add { .. } = write.change {
            sqlx::query(GRAPH_LOCK)
                .bind(GRAPH_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
        }

        // The version first: the compare-and-set of the task itself (`queries/update_task.sql`).
        // From here the task's row is locked until this transaction ends.
        let updated = update_query(
            task,
            write.expected_version,
            write.expected_lease_expires_at,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else {
            tracing::debug!(
                id = task.id,
                expected = write.expected_version,
                "dependency write lost: version moved or task gone"
            );
            return Ok(abandon(tx, Written::Stale).await);
        };
        let written = as_written(task, updated.try_get("created_at")?);

        match write.change {
            EdgeChange::Add { depends_on } => {
                // Each check is a statement of its own, after the graph lock: it sees every
                // edge and task committed before the lock was granted.
                let (target_exists, edge_exists): (bool, bool) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $2), \
                            EXISTS (SELECT 1 FROM task_dependencies \
                                    WHERE task_id = $1 AND depends_on = $2)",
                )
                .bind(task.id)
                .bind(depends_on)
                .fetch_one(&mut *tx)
                .await?;
                if !target_exists {
                    let refused = Conflict::DependencyMissing { depends_on };
                    return Ok(abandon(tx, Written::Refused(refused)).await);
                }
                if edge_exists {
                    let refused = Conflict::DependencyExists { depends_on };
                    return Ok(abandon(tx, Written::Refused(refused)).await);
                }
                let cycle: bool = sqlx::query_scalar(DEPENDENCY_CYCLE)
                    .bind(task.id)
                    .bind(depends_on)
                    .fetch_one(&mut *tx)
                    .await?;
                if cycle {
                    tracing::debug!(task = task.id, depends_on, "dependency refused: cycle");
                    let refused = Conflict::DependencyCycle { depends_on };
                    return Ok(abandon(tx, Written::Refused(refused)).await);
                }
                // The foreign key's check key-share locks the target, so a target that exists
                // now stays until this transaction ends; one deleted meanwhile fails it.
                let inserted = sqlx::query(
                    "INSERT INTO task_dependencies (task_id, depends_on) VALUES ($1, $2)",
                )
                .bind(task.id)
                .bind(depends_on)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(err) if is_fk_violation(&err, DEPENDS_ON_FKEY) => {
                        let refused = Conflict::DependencyMissing { depends_on };
                        return Ok(abandon(tx, Written::Refused(refused)).await);
                    }
                    Err(err) if is_unique_violation(&err, EDGE_PKEY) => {
                        let refused = Conflict::DependencyExists { depends_on };
                        return Ok(abandon(tx, Written::Refused(refused)).await);
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            EdgeChange::Remove { depends_on } => {
                let removed = sqlx::query(
                    "DELETE FROM task_dependencies WHERE task_id = $1 AND depends_on = $2",
                )
                .bind(task.id)
                .bind(depends_on)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if removed == 0 {
                    let refused = Conflict::NoSuchDependency { depends_on };
                    return Ok(abandon(tx, Written::Refused(refused)).await);
                }
            }
        }

        insert_audit(&mut tx, task.id, &write.audit, Some(&written)).await?;
        tx.commit().await?;
        Ok(Written::Done(()))
    }

    async fn try_ready_tasks(
        &self,
        actor_id: &str,
        filter: &ReadyFilter,
        rule: &ReadyRule,
    ) -> Result<Page<Task>, PgError> {
        let found = bind_ready(
            sqlx::query(READY_TASKS),
            rule,
            actor_id,
            filter.project.as_deref(),
        )
        .bind(i64::from(filter.paging.limit()))
        .bind(filter.paging.offset())
        .fetch_all(&self.pool)
        .await?;
        read_page(&found, rows::task)
    }

    /// Claim-next in one transaction: lock a candidate (`claim_next.sql`), re-check its
    /// dependencies (`claim_waiting.sql`), decide, write. Errors of the decision are the
    /// lifecycle's and are returned as they are.
    async fn try_claim_next(&self, claim: &Claim) -> Result<Option<Task>> {
        let rule = &claim.rule;
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(PgError::from)?;

        // Candidates locked by this transaction and found waiting: left out of the next pick.
        // (A new pick would not return them anyway, since its fresh snapshot sees their new
        // edge; excluding them makes the loop's progress obvious.)
        let mut skipped: Vec<i64> = Vec::new();
        // The ranks to look in, most urgent first (a priority named twice is looked at once),
        // then the priorities the urgency does not rank, if any.
        let mut ranks: Vec<Option<i32>> = Vec::with_capacity(5);
        for (i, priority) in rule.urgency.iter().enumerate() {
            if !rule.urgency[..i].contains(priority) {
                ranks.push(Some(i32::try_from(i + 1).unwrap_or(i32::MAX)));
            }
        }
        if Priority::ALL.iter().any(|p| !rule.urgency.contains(p)) {
            ranks.push(None);
        }
        let picked = loop {
            let mut row = None;
            for rank in &ranks {
                let query = match rank {
                    Some(rank) => bind_ready(
                        sqlx::query(CLAIM_NEXT),
                        rule,
                        &claim.actor.id,
                        claim.project.as_deref(),
                    )
                    .bind(skipped.clone())
                    .bind(*rank),
                    None => bind_ready(
                        sqlx::query(CLAIM_UNRANKED),
                        rule,
                        &claim.actor.id,
                        claim.project.as_deref(),
                    )
                    .bind(skipped.clone()),
                };
                row = query
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(PgError::from)?;
                if row.is_some() {
                    break;
                }
            }
            let Some(row) = row else {
                discard(tx).await;
                return Ok(None);
            };
            let candidate = rows::task(&row)?;
            let waiting: bool = sqlx::query_scalar(CLAIM_WAITING)
                .bind(candidate.id)
                .bind(rule.finished.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(PgError::from)?;
            if !waiting {
                break candidate;
            }
            tracing::debug!(
                id = candidate.id,
                "claim skipped a task that gained a dependency while being claimed"
            );
            skipped.push(candidate.id);
            if skipped.len() >= MAX_CLAIM_SKIPS {
                discard(tx).await;
                return Err(PgError::ClaimContended(skipped.len()).into());
            }
        };

        let transition = match (claim.decide)(&picked) {
            Ok(transition) => transition,
            Err(err) => {
                discard(tx).await;
                return Err(err);
            }
        };
        if transition.task.id != picked.id {
            discard(tx).await;
            return Err(PgError::ClaimMismatch {
                picked: picked.id,
                decided: transition.task.id,
            }
            .into());
        }

        // This transaction holds the row lock, so the version cannot have moved: the
        // compare-and-set is a second guard, not a race anyone can lose.
        let updated = update_query(&transition.task, picked.version, picked.lease_expires_at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(PgError::from)?;
        let Some(updated) = updated else {
            discard(tx).await;
            return Err(PgError::ClaimLost(picked.id).into());
        };
        let claimed = as_written(
            &transition.task,
            updated.try_get("created_at").map_err(PgError::from)?,
        );
        // The claimed task as written is both the outcome a claim with a key stores (in this
        // transaction) and what the claimer gets back.
        insert_audit(&mut tx, picked.id, &transition.audit, Some(&claimed)).await?;
        tx.commit().await.map_err(PgError::from)?;
        Ok(Some(claimed))
    }

    async fn try_extend_lease(&self, write: &LeaseWrite) -> Result<Written<()>, PgError> {
        // A transaction of its own for one statement, so that it runs READ COMMITTED whatever
        // the server's default (`queries/extend_lease.sql` relies on it).
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let updated = sqlx::query(EXTEND_LEASE)
            .bind(write.id)
            .bind(write.expected_version)
            .bind(write.lease_expires_at)
            .bind(write.lease_seconds)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated == 0 {
            return Ok(abandon(tx, Written::Stale).await);
        }
        tx.commit().await?;
        Ok(Written::Done(()))
    }

    async fn try_expired_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>, PgError> {
        let found = sqlx::query(EXPIRED_LEASES)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::task).collect()
    }
}

#[async_trait]
impl QueueStore for PgStore {
    async fn dependencies(&self, task_id: i64) -> Result<Dependencies> {
        Ok(self.try_dependencies(task_id).await?)
    }

    async fn write_dependency(&self, write: &DependencyWrite) -> Result<Written<()>> {
        Ok(self.try_write_dependency(write).await?)
    }

    async fn ready_tasks(
        &self,
        actor_id: &str,
        filter: &ReadyFilter,
        rule: &ReadyRule,
    ) -> Result<Page<Task>> {
        Ok(self.try_ready_tasks(actor_id, filter, rule).await?)
    }

    async fn claim_next(&self, claim: &Claim) -> Result<Option<Task>> {
        self.try_claim_next(claim).await
    }

    async fn extend_lease(&self, write: &LeaseWrite) -> Result<Written<()>> {
        Ok(self.try_extend_lease(write).await?)
    }

    async fn expired_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
        Ok(self.try_expired_leases(now, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    /// The lines between `-- ready:begin` and `-- ready:end`, with indentation dropped.
    fn ready_predicate(sql: &str) -> Vec<&str> {
        sql.lines()
            .map(str::trim)
            .skip_while(|line| *line != "-- ready:begin")
            .take_while(|line| *line != "-- ready:end")
            .collect()
    }

    /// Claim-next and the ready queue select the same tasks: their predicates are the same
    /// text.
    #[test]
    fn claim_next_and_the_ready_queue_share_one_predicate() {
        let claim = ready_predicate(super::CLAIM_NEXT);
        let ready = ready_predicate(super::READY_TASKS);
        assert!(claim.len() > 5, "{claim:?}");
        assert_eq!(claim, ready);
        let unranked = ready_predicate(super::CLAIM_UNRANKED);
        assert_eq!(unranked, ready);
        let order = "CASE t.priority WHEN $5 THEN 0 WHEN $6 THEN 1 WHEN $7 THEN 2 WHEN $8 THEN 3 \
                     ELSE 4 END";
        assert!(super::READY_TASKS.contains(order));
        // Claim-next looks in one rank at a time, in id order; the rank's priority is $5..$8
        // indexed by $10, and the last resort takes what the urgency leaves unranked.
        assert!(super::CLAIM_NEXT.contains("t.priority = (ARRAY[$5, $6, $7, $8]::TEXT[])[$10]"));
        assert!(
            super::CLAIM_UNRANKED.contains("t.priority <> ALL (ARRAY[$5, $6, $7, $8]::TEXT[])")
        );
    }
}
