//! The work queue's rules: release and heartbeat policy, lease lengths, fencing order,
//! dependency edges through the service, claim defaults, and a store without the capability.

use std::sync::Arc;

use async_trait::async_trait;
use taskflow_core::lifecycle::{Action, Move};
use taskflow_core::model::{
    AuditAction, AuditDraft, AuditEntry, AuditFilter, Expect, Page, Task, TaskDraft, TaskFilter,
    TaskStatus, Worker, WorkerType,
};
use taskflow_core::{
    Command, Entity, Error, MemoryStore, Outcome, Permission, Store, TaskFlow, TaskWrite, Written,
};

use super::{TestResult, alice, bob, flow, root, task, task_in};

fn leased(seconds: i64) -> Action {
    Action::Start {
        lease_seconds: Some(seconds),
    }
}

#[tokio::test]
async fn release_belongs_to_the_assignee_or_an_admin() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    match f.release(&bob(), t.id, None).await {
        Err(
            e @ Error::Forbidden {
                action: Permission::Release,
            },
        ) => assert_eq!(
            e.to_string(),
            "Only the assignee or an admin can release this task"
        ),
        other => panic!("expected 403, got {other:?}"),
    }
    let released = f.release(&root(), t.id, None).await?;
    assert_eq!(released.status, TaskStatus::Pending);
    assert_eq!(released.assigned_to, None);
    match f.release(&alice(), t.id, None).await {
        Err(
            e @ Error::InvalidTransition {
                action: Move::Release,
                ..
            },
        ) => assert_eq!(e.to_string(), "Cannot release task with status 'pending'"),
        other => panic!("expected 400, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn lease_lengths_are_checked_everywhere() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    let text = "lease_seconds: must be between 10 and 86400";
    for bad in [9, 86_401, 0, -5] {
        let start = f.act(&alice(), t.id, leased(bad), None).await;
        assert_eq!(start.unwrap_err().to_string(), text);
        let claim = f.claim_next(&alice(), None, Some(bad)).await;
        assert_eq!(claim.unwrap_err().to_string(), text);
        let default = TaskFlow::new(Arc::new(MemoryStore::new())).with_default_lease(bad);
        assert_eq!(default.map(drop).unwrap_err().to_string(), text);
    }
    let started = f.act(&alice(), t.id, leased(10), None).await?;
    assert_eq!(started.lease_seconds, Some(10));
    let beat = f.heartbeat(&alice(), t.id, Some(5), None).await;
    assert_eq!(beat.unwrap_err().to_string(), text);
    assert_eq!(f.task_audit(&alice(), t.id).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn heartbeats_need_a_lease_and_its_holder() -> TestResult {
    let f = flow();
    let held = task_in(&f, TaskStatus::InProgress).await?;
    assert!(matches!(
        f.heartbeat(&alice(), held.id, None, None).await,
        Err(Error::NoLease)
    ));
    let pending = task(&f, "p").await?;
    assert_eq!(
        f.heartbeat(&alice(), pending.id, None, None)
            .await
            .unwrap_err()
            .to_string(),
        "Task has no lease"
    );
    let t = task(&f, "leased").await?;
    f.act(&alice(), t.id, leased(60), None).await?;
    assert!(matches!(
        f.heartbeat(&bob(), t.id, None, None).await,
        Err(Error::Forbidden {
            action: Permission::Heartbeat
        })
    ));
    assert!(f.heartbeat(&root(), t.id, None, None).await.is_ok());
    assert!(matches!(
        f.heartbeat(&alice(), 9999, None, None).await,
        Err(Error::NotFound {
            kind: Entity::Task,
            ..
        })
    ));
    Ok(())
}

#[tokio::test]
async fn the_fence_is_checked_after_404_and_before_the_lifecycle() -> TestResult {
    let f = flow();
    let done = task_in(&f, TaskStatus::Completed).await?;
    assert_eq!(done.fence, 1);
    let stale = Expect::fence(Some(7));
    // The lifecycle would refuse with 400; the fence comes first.
    match f.start(&alice(), done.id, stale.clone()).await {
        Err(Error::LeaseLost { current_fence: 1 }) => {}
        other => panic!("expected Lease lost, got {other:?}"),
    }
    // A policy refusal (403) comes after the fence too.
    match f.release(&bob(), done.id, stale.clone()).await {
        Err(e @ Error::LeaseLost { .. }) => {
            assert_eq!(e.to_string(), "Lease lost: task is at fence 1");
        }
        other => panic!("expected Lease lost, got {other:?}"),
    }
    assert!(matches!(
        f.start(&alice(), 9999, stale).await,
        Err(Error::NotFound { .. })
    ));
    // The right fence passes on to the lifecycle.
    assert!(matches!(
        f.start(&alice(), done.id, Expect::fence(Some(1))).await,
        Err(Error::InvalidTransition { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn dependency_edges_through_the_service() -> TestResult {
    let f = flow();
    let a = task(&f, "a").await?;
    let b = task(&f, "b").await?;
    let view = f.add_dependency(&alice(), a.id, b.id, None).await?;
    assert_eq!(
        (view.depends_on.clone(), view.waiting_on.clone()),
        (vec![b.id], vec![b.id])
    );
    let a1 = f.get_task(&alice(), a.id).await?;
    assert_eq!(a1.version, 2);
    // Again: no change, no version, no audit row.
    assert_eq!(f.add_dependency(&alice(), a.id, b.id, None).await?, view);
    assert_eq!(f.get_task(&alice(), a.id).await?.version, 2);
    assert_eq!(f.task_audit(&alice(), a.id).await?.len(), 2);

    for (on, text) in [
        (a.id, "depends_on: would create a cycle".to_owned()),
        (404, "depends_on: task 404 not found".to_owned()),
    ] {
        let err = f
            .add_dependency(&alice(), a.id, on, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Validation { .. }), "{err:?}");
        assert_eq!(err.to_string(), text);
    }
    let err = f
        .add_dependency(&alice(), b.id, a.id, None)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "depends_on: would create a cycle");
    match f.remove_dependency(&alice(), a.id, 404, None).await {
        Err(
            e @ Error::NotFound {
                kind: Entity::Dependency,
                ..
            },
        ) => assert_eq!(e.to_string(), "Dependency not found"),
        other => panic!("expected 404, got {other:?}"),
    }
    assert!(matches!(
        f.dependencies(&alice(), 9999).await,
        Err(Error::NotFound {
            kind: Entity::Task,
            ..
        })
    ));
    // Deleting b is refused while a depends on it (after policy and version).
    assert!(matches!(
        f.delete_task(&root(), b.id, None).await,
        Err(Error::HasDependents)
    ));
    assert_eq!(
        Error::HasDependents.to_string(),
        "Task has dependents",
        "the wire text"
    );
    f.remove_dependency(&alice(), a.id, b.id, None).await?;
    let rows = f.task_audit(&alice(), a.id).await?;
    assert_eq!(
        rows.iter().map(|r| r.action).collect::<Vec<_>>(),
        [
            AuditAction::Created,
            AuditAction::DependencyAdded,
            AuditAction::DependencyRemoved
        ]
    );
    f.delete_task(&root(), b.id, None).await?;
    Ok(())
}

#[tokio::test]
async fn claims_default_to_the_configured_lease_and_can_run_through_execute() -> TestResult {
    let f = flow().with_default_lease(120)?;
    task(&f, "t").await?;
    let claim = Command::ClaimNext {
        project: None,
        lease_seconds: None,
    };
    let Outcome::Claimed(Some(t)) = f.execute(&alice(), claim).await? else {
        panic!("a claim");
    };
    assert_eq!(t.lease_seconds, Some(120));
    let beat = f
        .execute(
            &alice(),
            Command::Heartbeat {
                id: t.id,
                lease_seconds: None,
                fence: Some(t.fence),
            },
        )
        .await?;
    assert!(matches!(beat, Outcome::Task(ref b) if b.version == t.version));
    let nothing = f
        .execute(
            &alice(),
            Command::ClaimNext {
                project: None,
                lease_seconds: None,
            },
        )
        .await?;
    assert_eq!(nothing, Outcome::Claimed(None));
    let deps = f
        .execute(&alice(), Command::Dependencies { id: t.id })
        .await?;
    assert!(matches!(deps, Outcome::Dependencies(ref v) if v.task_id == t.id));
    Ok(())
}

#[tokio::test]
async fn the_system_actor_id_is_reserved() -> TestResult {
    let f = flow();
    let err = f
        .put_worker(&root(), "taskflow", WorkerType::Agent, None)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "id: is reserved for taskflow itself");
    Ok(())
}

/// A store with no work queue: the base contract only.
struct NoQueue(MemoryStore);

#[async_trait]
impl Store for NoQueue {
    async fn insert_task(
        &self,
        t: &TaskDraft,
        a: &AuditDraft,
    ) -> taskflow_core::Result<Written<Task>> {
        self.0.insert_task(t, a).await
    }
    async fn get_task(&self, id: i64) -> taskflow_core::Result<Option<Task>> {
        self.0.get_task(id).await
    }
    async fn list_tasks(&self, f: &TaskFilter) -> taskflow_core::Result<Page<Task>> {
        self.0.list_tasks(f).await
    }
    async fn update_task(&self, w: &TaskWrite) -> taskflow_core::Result<Written<()>> {
        self.0.update_task(w).await
    }
    async fn delete_task(
        &self,
        id: i64,
        v: i64,
        a: &AuditDraft,
    ) -> taskflow_core::Result<Written<()>> {
        self.0.delete_task(id, v, a).await
    }
    async fn list_audit(&self, f: &AuditFilter) -> taskflow_core::Result<Page<AuditEntry>> {
        self.0.list_audit(f).await
    }
    async fn task_audit(&self, id: i64) -> taskflow_core::Result<Vec<AuditEntry>> {
        self.0.task_audit(id).await
    }
    async fn audit_horizon(&self) -> taskflow_core::Result<i64> {
        self.0.audit_horizon().await
    }
    async fn audit_after(
        &self,
        after: i64,
        upto: i64,
        filter: &taskflow_core::events::FeedFilter,
        limit: u32,
    ) -> taskflow_core::Result<Vec<AuditEntry>> {
        self.0.audit_after(after, upto, filter, limit).await
    }
    async fn put_worker(&self, w: &Worker) -> taskflow_core::Result<Worker> {
        self.0.put_worker(w).await
    }
    async fn get_worker(&self, id: &str) -> taskflow_core::Result<Option<Worker>> {
        self.0.get_worker(id).await
    }
    async fn list_workers(&self) -> taskflow_core::Result<Vec<Worker>> {
        self.0.list_workers().await
    }
    async fn ping(&self) -> taskflow_core::Result<()> {
        self.0.ping().await
    }
}

#[tokio::test]
async fn a_store_without_the_work_queue_says_so() -> TestResult {
    let f = TaskFlow::new(Arc::new(NoQueue(MemoryStore::new())));
    let t = task(&f, "t").await?;
    // The base lifecycle works, and a start has no dependencies to wait on.
    assert_eq!(f.start(&alice(), t.id, None).await?.fence, 1);
    let err = f.claim_next(&alice(), None, None).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }));
    assert_eq!(err.to_string(), "This store does not support claim-next");
    assert!(matches!(
        f.dependencies(&alice(), t.id).await,
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        f.sweep_expired_leases().await,
        Err(Error::Unsupported { .. })
    ));
    Ok(())
}
