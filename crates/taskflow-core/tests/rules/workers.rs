//! The worker registry: registration is admin only, and it decides who is an agent.

use taskflow_core::model::{ActorType, WorkerType};

use super::*;

/// A registered agent's changes are recorded with `actor_type` agent; everyone else is human.
#[tokio::test]
async fn worker_registration_makes_agent() -> TestResult {
    let f = flow();
    let w = f
        .put_worker(&root(), "claude", WorkerType::Agent, Some("Claude".into()))
        .await?;
    assert_eq!(w.worker_type, WorkerType::Agent);
    assert_eq!(w.name.as_deref(), Some("Claude"));
    let agent = Identity::user("claude");
    let actor = f.actor(&agent).await?;
    assert_eq!(actor.actor_type, ActorType::Agent);
    assert!(!actor.admin);
    let t = f.create_task(&agent, NewTask::titled("t")).await?;
    f.start(&agent, t.id, None).await?;
    expect_forbidden(
        f.complete(&alice(), t.id, None).await,
        Permission::Complete,
        "Only the assignee or an admin can complete this task",
    );
    let rows = audit(&f, t.id).await?;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.actor_type == ActorType::Agent));
    assert!(rows.iter().all(|r| r.actor_id == "claude"));
    assert_eq!(f.actor(&alice()).await?.actor_type, ActorType::Human);
    Ok(())
}

/// Re-registering replaces type and name (an omitted name clears it) and keeps `created_at`.
#[tokio::test]
async fn worker_reregistration_replaces_and_keeps_created_at() -> TestResult {
    let f = flow();
    let first = f
        .put_worker(&root(), "w1", WorkerType::Agent, Some("Bot".into()))
        .await?;
    let second = f.put_worker(&root(), "w1", WorkerType::Human, None).await?;
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.worker_type, WorkerType::Human);
    assert_eq!(second.name, None);
    assert_eq!(f.get_worker(&alice(), "w1").await?, second);
    assert_eq!(f.list_workers(&alice()).await?.len(), 1);
    Ok(())
}

/// Only admins register workers, and ids must not be blank.
#[tokio::test]
async fn worker_registration_is_admin_only() -> TestResult {
    let f = flow();
    expect_forbidden(
        f.put_worker(&alice(), "alice", WorkerType::Agent, None)
            .await,
        Permission::RegisterWorker,
        "Admin role required",
    );
    expect_validation(
        f.put_worker(&root(), "  ", WorkerType::Agent, None).await,
        "id",
    );
    assert!(f.list_workers(&alice()).await?.is_empty());
    assert_eq!(f.actor(&alice()).await?.actor_type, ActorType::Human);
    Ok(())
}

/// Workers are listed by id; a missing one is `Worker not found`.
#[tokio::test]
async fn workers_listing_and_lookup() -> TestResult {
    let f = flow();
    for id in ["zeta", "alpha", "mid"] {
        f.put_worker(&root(), id, WorkerType::Agent, None).await?;
    }
    let ids: Vec<_> = f
        .list_workers(&alice())
        .await?
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["alpha", "mid", "zeta"]);
    let e = refused(f.get_worker(&alice(), "nobody").await);
    assert!(
        matches!(&e, Error::NotFound { kind: Entity::Worker, id } if id == "nobody"),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "Worker not found");
    Ok(())
}
