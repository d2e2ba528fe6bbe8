//! The work queue operations of [`TaskFlow`]: dependencies, the ready queue, claim-next,
//! heartbeats, release and the lease sweep. They need a store with the work queue capability
//! ([`crate::QueueStore`]); on any other store they answer [`Error::Unsupported`].

use std::sync::Arc;

use serde_json::json;

use crate::error::Result;
use crate::idempotency::{Rendered, encode};
use crate::lifecycle::{self, READY};
use crate::model::{
    AuditAction, AuditDraft, DependencyView, Expect, Identity, Page, ReadyFilter, Task, Timestamp,
    now,
};
use crate::operation::Outcome;
use crate::service::{MAX_ATTEMPTS, Recording, TaskFlow, refusal, stored, view};
use crate::store::{Claim, Conflict, DependencyWrite, EdgeChange, LeaseWrite, Written};
use crate::validate;

/// How many expired leases one sweep step reads at a time.
const SWEEP_BATCH: u32 = 100;

impl TaskFlow {
    /// A task's dependencies: what it depends on, what depends on it, and what it is still
    /// waiting on (the dependencies not completed yet). Ids ascending.
    pub async fn dependencies(&self, who: &Identity, id: i64) -> Result<DependencyView> {
        let queue = self.queue("dependencies")?;
        self.get_task(who, id).await?;
        Ok(view(id, &queue.dependencies(id).await?))
    }

    /// Makes task `id` depend on `depends_on`: it cannot start until `depends_on` is completed.
    /// A change of task `id` (version + 1, a `dependency_added` row); an edge that exists
    /// changes nothing. Refuses a missing target and a self edge or cycle with a 422 on
    /// `depends_on` (the cycle is checked inside the write, so two concurrent opposite edges
    /// never both succeed). Anyone may add or remove dependencies, as they may edit fields.
    pub async fn add_dependency(
        &self,
        who: &Identity,
        id: i64,
        depends_on: i64,
        expect: impl Into<Expect>,
    ) -> Result<DependencyView> {
        self.edge(
            who,
            id,
            EdgeChange::Add { depends_on },
            &expect.into(),
            None,
        )
        .await
    }

    /// Makes task `id` stop depending on `depends_on` (version + 1, a `dependency_removed` row).
    /// `Dependency not found` when there is no such edge.
    pub async fn remove_dependency(
        &self,
        who: &Identity,
        id: i64,
        depends_on: i64,
        expect: impl Into<Expect>,
    ) -> Result<()> {
        self.edge(
            who,
            id,
            EdgeChange::Remove { depends_on },
            &expect.into(),
            None,
        )
        .await
        .map(drop)
    }

    /// Adds or removes an edge. With an idempotency record, the outcome stored with the change
    /// is the dependency view after it (adding) or `Deleted` (removing).
    pub(crate) async fn edge(
        &self,
        who: &Identity,
        id: i64,
        change: EdgeChange,
        expect: &Expect,
        rec: Option<&Recording>,
    ) -> Result<DependencyView> {
        let queue = self.queue("dependencies")?;
        let actor = self.actor(who).await?;
        let (depends_on, action) = match change {
            EdgeChange::Add { depends_on } => (depends_on, AuditAction::DependencyAdded),
            EdgeChange::Remove { depends_on } => (depends_on, AuditAction::DependencyRemoved),
        };
        for _ in 0..MAX_ATTEMPTS {
            let task = self.read_for_write(id, expect).await?;
            let deps = queue.dependencies(id).await?;
            let exists = deps.depends_on.iter().any(|(d, _)| *d == depends_on);
            match change {
                EdgeChange::Add { .. } if depends_on == id => {
                    return Err(refusal(Conflict::DependencyCycle { depends_on }));
                }
                EdgeChange::Add { .. } if exists => {
                    expect.version.check(&task)?;
                    return Ok(view(id, &deps));
                }
                EdgeChange::Remove { .. } if !exists => {
                    return Err(refusal(Conflict::NoSuchDependency { depends_on }));
                }
                _ => {}
            }
            expect.version.check(&task)?;
            // With a recording, the answer is the view stored with the change (so that a replay
            // gives the same); without, the view read back after it.
            let (outcome, answer) = match rec {
                None => (None, None),
                Some(r) => {
                    let after = match change {
                        EdgeChange::Add { .. } => self.view_with(id, &deps, depends_on).await?,
                        EdgeChange::Remove { .. } => DependencyView::default(),
                    };
                    let recorded = match change {
                        EdgeChange::Add { .. } => Outcome::Dependencies(after.clone()),
                        EdgeChange::Remove { .. } => Outcome::Deleted,
                    };
                    let outcome = r.record(Rendered::Ready(encode(&Ok(recorded))?));
                    (Some(outcome), Some(after))
                }
            };
            let at = now();
            let mut next = task.clone();
            next.version += 1;
            next.updated_at = at;
            let write = DependencyWrite {
                audit: AuditDraft {
                    project_slug: next.project_slug.clone(),
                    actor_id: actor.id.clone(),
                    actor_type: actor.actor_type,
                    action,
                    context: Some(json!({ "depends_on": depends_on })),
                    timestamp: at,
                    outcome,
                },
                task: next,
                expected_version: task.version,
                expected_lease_expires_at: task.lease_expires_at,
                change,
            };
            match queue.write_dependency(&write).await? {
                Written::Done(()) => {
                    stored(rec);
                    self.committed();
                    return match answer {
                        Some(view) => Ok(view),
                        None => Ok(view(id, &queue.dependencies(id).await?)),
                    };
                }
                // A concurrent writer added the same edge first: no change after all.
                Written::Refused(Conflict::DependencyExists { .. }) => {
                    return Ok(view(id, &queue.dependencies(id).await?));
                }
                Written::Refused(conflict) => return Err(refusal(conflict)),
                Written::Stale => continue,
            }
        }
        Err(self.gave_up(id).await)
    }

    /// The view of task `id`'s dependencies once the edge to `depends_on` is added to `deps`.
    async fn view_with(
        &self,
        id: i64,
        deps: &crate::store::Dependencies,
        depends_on: i64,
    ) -> Result<DependencyView> {
        let mut after = deps.clone();
        if let Some(target) = self.store.get_task(depends_on).await? {
            after.depends_on.push((depends_on, target.status));
            after.depends_on.sort_unstable_by_key(|(d, _)| *d);
        }
        Ok(view(id, &after))
    }

    /// The tasks ready for the caller: `pending`, unassigned or assigned to them, with every
    /// dependency completed; most urgent first (critical, high, medium, low), then by id; with
    /// the total count.
    pub async fn ready_tasks(&self, who: &Identity, filter: &ReadyFilter) -> Result<Page<Task>> {
        let queue = self.queue("the ready queue")?;
        validate::optional_text("project", filter.project.as_deref())?;
        queue.ready_tasks(&who.id, filter, &READY).await
    }

    /// Claim-next: takes the first task of the caller's ready queue and starts it for them in
    /// one atomic step (`in_progress`, assigned to the caller, a new fence, a lease of
    /// `lease_seconds` or the default). `None` when nothing is ready. Of concurrent claims, each
    /// task goes to at most one caller and no caller gets two.
    pub async fn claim_next(
        &self,
        who: &Identity,
        project: Option<String>,
        lease_seconds: Option<i64>,
    ) -> Result<Option<Task>> {
        self.claim(who, project, lease_seconds, None).await
    }

    pub(crate) async fn claim(
        &self,
        who: &Identity,
        project: Option<String>,
        lease_seconds: Option<i64>,
        rec: Option<&Recording>,
    ) -> Result<Option<Task>> {
        let queue = self.queue("claim-next")?;
        validate::optional_text("project", project.as_deref())?;
        let lease = match lease_seconds {
            Some(seconds) => validate::lease_seconds(seconds)?,
            None => self.default_lease_seconds,
        };
        let actor = self.actor(who).await?;
        let decider = actor.clone();
        let outcome = rec.map(|r| r.record(Rendered::Claimed));
        let claim = Claim {
            actor,
            project,
            rule: READY,
            decide: Arc::new(move |task: &Task| {
                let mut transition = lifecycle::claim(task, &decider, lease, now())?;
                transition.audit.outcome = outcome.clone();
                Ok(transition)
            }),
        };
        let claimed = queue.claim_next(&claim).await?;
        if claimed.is_some() {
            stored(rec);
            self.committed();
        }
        Ok(claimed)
    }

    /// Extends the caller's lease on task `id` to now + `lease_seconds` (default: the length it
    /// was granted with). Not a change: no version bump, no audit row. `Lease lost` when the
    /// named fence is not the task's; `Task has no lease` when there is none.
    pub async fn heartbeat(
        &self,
        who: &Identity,
        id: i64,
        lease_seconds: Option<i64>,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        let expect = expect.into();
        let queue = self.queue("heartbeats")?;
        let actor = self.actor(who).await?;
        for _ in 0..MAX_ATTEMPTS {
            let task = self.read_for_write(id, &expect).await?;
            let (until, seconds) = lifecycle::heartbeat(&task, &actor, lease_seconds, now())?;
            expect.version.check(&task)?;
            let write = LeaseWrite {
                id,
                expected_version: task.version,
                lease_expires_at: until,
                lease_seconds: seconds,
            };
            if let Written::Done(()) = queue.extend_lease(&write).await? {
                return Ok(Task {
                    lease_expires_at: Some(until),
                    lease_seconds: Some(seconds),
                    ..task
                });
            }
        }
        Err(self.gave_up(id).await)
    }

    /// Reclaims every lease that has run out: each such task goes back to `pending`,
    /// unassigned, with one `lease_expired` row by `taskflow` (type `system`). Returns how
    /// many it reclaimed. Safe to run from several processes at once: each expired lease is
    /// reclaimed exactly once (a compare-and-set per task).
    pub async fn sweep_expired_leases(&self) -> Result<usize> {
        self.sweep_expired_leases_at(now()).await
    }

    /// [`TaskFlow::sweep_expired_leases`] as if the time were `at`.
    pub async fn sweep_expired_leases_at(&self, at: Timestamp) -> Result<usize> {
        let queue = self.queue("leases")?;
        let mut reclaimed = 0;
        loop {
            let expired = queue.expired_leases(at, SWEEP_BATCH).await?;
            let mut progressed = false;
            for task in &expired {
                let Some(transition) = lifecycle::expire(task, at) else {
                    continue;
                };
                let write = crate::store::TaskWrite {
                    task: transition.task,
                    expected_version: task.version,
                    expected_lease_expires_at: task.lease_expires_at,
                    audit: transition.audit,
                    invariants: Vec::new(),
                };
                // Stale: another sweeper got there first, or the holder wrote or renewed the
                // lease meanwhile (the write names the lease it saw).
                if let Written::Done(()) = self.store.update_task(&write).await? {
                    reclaimed += 1;
                    self.committed();
                    progressed = true;
                }
            }
            if expired.len() < SWEEP_BATCH as usize || !progressed {
                return Ok(reclaimed);
            }
        }
    }
}
