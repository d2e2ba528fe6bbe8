//! [`TaskFlow::execute`]: a [`Command`] runs the operation it names, with the same result, the
//! same refusals and the same audit rows as the method; and a `Command` survives JSON.

use serde_json::json;
use taskflow_core::lifecycle::Action;
use taskflow_core::model::{
    Actor, ActorType, AuditFilter, Page, Paging, Precondition, Priority, TaskFilter, TaskPatch,
    Timestamp, WorkerType,
};
use taskflow_core::{Command, Outcome};

use super::*;

/// Two runs differ in their timestamps and in nothing else: set them all to one instant.
fn settle(outcome: Outcome) -> Outcome {
    let t0 = Timestamp::default();
    let task = |mut t: Task| {
        t.created_at = t0;
        t.updated_at = t0;
        t
    };
    let row = |mut r: AuditEntry| {
        r.timestamp = t0;
        r
    };
    match outcome {
        Outcome::Task(t) => Outcome::Task(task(t)),
        Outcome::Tasks(p) => Outcome::Tasks(Page {
            items: p.items.into_iter().map(task).collect(),
            total: p.total,
        }),
        Outcome::Audit(rows) => Outcome::Audit(rows.into_iter().map(row).collect()),
        Outcome::AuditPage(p) => Outcome::AuditPage(Page {
            items: p.items.into_iter().map(row).collect(),
            total: p.total,
        }),
        Outcome::Worker(mut w) => {
            w.created_at = t0;
            Outcome::Worker(w)
        }
        Outcome::Workers(ws) => Outcome::Workers(
            ws.into_iter()
                .map(|mut w| {
                    w.created_at = t0;
                    w
                })
                .collect(),
        ),
        other => other,
    }
}

fn claude() -> Identity {
    Identity::user("claude")
}

fn new_task() -> NewTask {
    NewTask {
        project_slug: Some("docs".into()),
        priority: Some(Priority::High),
        description: Some("the whole manual".into()),
        ..NewTask::titled(" Write the manual ")
    }
}

fn patch() -> TaskPatch {
    TaskPatch {
        title: Some("Write the manual, again".into()),
        priority: Some(Priority::Critical),
        description: Some(None),
        ..TaskPatch::default()
    }
}

fn listing() -> Result<TaskFilter> {
    Ok(TaskFilter {
        project: Some("docs".into()),
        paging: Paging::new(Some(10), Some(0))?,
        ..TaskFilter::default()
    })
}

fn audit_listing() -> Result<AuditFilter> {
    Ok(AuditFilter {
        actor_id: Some("claude".into()),
        paging: Paging::new(Some(3), Some(1))?,
        ..AuditFilter::default()
    })
}

/// The whole life of a task through the methods, one outcome per call.
async fn by_methods(f: &TaskFlow) -> Result<Vec<Outcome>> {
    let (admin, agent, a) = (root(), claude(), alice());
    let mut out = vec![
        Outcome::Worker(
            f.put_worker(&admin, "claude", WorkerType::Agent, Some("Claude".into()))
                .await?,
        ),
        Outcome::Actor(f.actor(&agent).await?),
        Outcome::Actor(f.actor(&admin).await?),
    ];
    let t = f.create_task(&a, new_task()).await?;
    let id = t.id;
    out.push(Outcome::Task(t));
    out.push(Outcome::Task(f.start(&agent, id, Some(1)).await?));
    out.push(Outcome::Task(
        f.update_task(&agent, id, &patch(), Precondition::OneOf(vec![2, 9]))
            .await?,
    ));
    out.push(Outcome::Task(
        f.progress(&agent, id, 40, Some("halfway".into()), None)
            .await?,
    ));
    out.push(Outcome::Task(
        f.block(&agent, id, Some("waiting".into()), None).await?,
    ));
    out.push(Outcome::Task(f.unblock(&agent, id, None).await?));
    out.push(Outcome::Task(f.submit_for_review(&agent, id, None).await?));
    out.push(Outcome::Task(f.request_changes(&a, id, None).await?));
    out.push(Outcome::Task(f.complete(&agent, id, None).await?));
    out.push(Outcome::Task(f.get_task(&a, id).await?));
    out.push(Outcome::Tasks(f.list_tasks(&a, &listing()?).await?));
    out.push(Outcome::Audit(f.task_audit(&a, id).await?));
    out.push(Outcome::AuditPage(
        f.list_audit(&a, &audit_listing()?).await?,
    ));
    f.delete_task(&admin, id, Some(9)).await?;
    out.push(Outcome::Deleted);
    out.push(Outcome::Audit(f.task_audit(&a, id).await?));
    out.push(Outcome::AuditPage(
        f.list_audit(&a, &AuditFilter::default()).await?,
    ));
    out.push(Outcome::Worker(f.get_worker(&a, "claude").await?));
    out.push(Outcome::Workers(f.list_workers(&a).await?));
    Ok(out)
}

/// The same life through `execute`.
async fn by_commands(f: &TaskFlow) -> Result<Vec<Outcome>> {
    let (admin, agent, a) = (root(), claude(), alice());
    let mut out = Vec::new();
    let opening = [
        (
            admin.clone(),
            Command::PutWorker {
                id: "claude".into(),
                worker_type: WorkerType::Agent,
                name: Some("Claude".into()),
            },
        ),
        (agent.clone(), Command::Whoami),
        (admin.clone(), Command::Whoami),
        (a.clone(), Command::CreateTask { task: new_task() }),
    ];
    for (who, command) in opening {
        out.push(f.execute(&who, command).await?);
    }
    let Some(Outcome::Task(created)) = out.last() else {
        panic!("create answered {:?}", out.last());
    };
    let id = created.id;
    let act = |action, precondition| Command::Act {
        id,
        action,
        precondition,
        fence: None,
    };
    let rest = [
        (
            agent.clone(),
            act(
                Action::Start {
                    lease_seconds: None,
                },
                Precondition::Version(1),
            ),
        ),
        (
            agent.clone(),
            Command::UpdateTask {
                id,
                patch: patch(),
                precondition: Precondition::OneOf(vec![2, 9]),
                fence: None,
            },
        ),
        (
            agent.clone(),
            act(
                Action::Progress {
                    percent: 40,
                    note: Some("halfway".into()),
                },
                Precondition::Any,
            ),
        ),
        (
            agent.clone(),
            act(
                Action::Block {
                    reason: Some("waiting".into()),
                },
                Precondition::Any,
            ),
        ),
        (agent.clone(), act(Action::Unblock, Precondition::Any)),
        (
            agent.clone(),
            act(Action::SubmitForReview, Precondition::Any),
        ),
        (a.clone(), act(Action::RequestChanges, Precondition::Any)),
        (agent.clone(), act(Action::Complete, Precondition::Any)),
        (a.clone(), Command::GetTask { id }),
        (a.clone(), Command::ListTasks { filter: listing()? }),
        (a.clone(), Command::TaskAudit { id }),
        (
            a.clone(),
            Command::ListAudit {
                filter: audit_listing()?,
            },
        ),
        (
            admin.clone(),
            Command::DeleteTask {
                id,
                precondition: Precondition::Version(9),
            },
        ),
        (a.clone(), Command::TaskAudit { id }),
        (
            a.clone(),
            Command::ListAudit {
                filter: AuditFilter::default(),
            },
        ),
        (
            a.clone(),
            Command::GetWorker {
                id: "claude".into(),
            },
        ),
        (a.clone(), Command::ListWorkers),
    ];
    for (who, command) in rest {
        out.push(f.execute(&who, command).await?);
    }
    Ok(out)
}

/// Every operation through `execute` answers what its method answers, and leaves the same
/// audit trail, step by step, on two fresh stores.
#[tokio::test]
async fn execute_matches_the_methods() -> TestResult {
    let by_method = by_methods(&flow()).await?;
    let by_command = by_commands(&flow()).await?;
    assert_eq!(by_method.len(), by_command.len());
    for (step, (m, c)) in by_method.into_iter().zip(by_command).enumerate() {
        assert_eq!(settle(m), settle(c), "step {step}");
    }
    Ok(())
}

/// create → act start → update → task audit → delete, all through `execute`, with the rows and
/// contexts the lifecycle writes.
#[tokio::test]
async fn execute_create_start_update_audit_delete() -> TestResult {
    let f = flow();
    let (a, admin) = (alice(), root());
    let Outcome::Task(t) = f
        .execute(&a, Command::CreateTask { task: new_task() })
        .await?
    else {
        panic!("create answers a task");
    };
    assert_eq!(t.title, "Write the manual");
    assert_eq!((t.status, t.version), (TaskStatus::Pending, 1));
    assert_eq!(f.get_task(&a, t.id).await?, t);

    let start = Command::Act {
        id: t.id,
        action: Action::Start {
            lease_seconds: None,
        },
        precondition: Precondition::Version(1),
        fence: None,
    };
    let Outcome::Task(started) = f.execute(&bob(), start).await? else {
        panic!("a move answers a task");
    };
    assert_eq!(started.status, TaskStatus::InProgress);
    assert_eq!(started.assigned_to.as_deref(), Some("bob"));
    assert_eq!(started.version, 2);

    let update = Command::UpdateTask {
        id: t.id,
        patch: patch(),
        precondition: Precondition::Any,
        fence: None,
    };
    let Outcome::Task(updated) = f.execute(&bob(), update).await? else {
        panic!("an update answers a task");
    };
    assert_eq!(updated.priority, Priority::Critical);
    assert_eq!(updated.description, None);
    assert_eq!(updated.version, 3);
    assert_eq!(f.get_task(&a, t.id).await?, updated);

    let Outcome::Audit(rows) = f.execute(&a, Command::TaskAudit { id: t.id }).await? else {
        panic!("task audit answers rows");
    };
    assert_eq!(rows, f.task_audit(&a, t.id).await?);
    assert_eq!(
        rows.iter().map(|r| r.action).collect::<Vec<_>>(),
        [
            AuditAction::Created,
            AuditAction::Started,
            AuditAction::Updated
        ]
    );
    assert_eq!(rows[1].actor_id, "bob");
    assert_eq!(rows[1].context, None);
    assert_eq!(
        rows[2].context,
        Some(json!({
            "title": "Write the manual, again",
            "priority": "critical",
            "description": null,
        }))
    );

    let delete = Command::DeleteTask {
        id: t.id,
        precondition: Precondition::OneOf(vec![3]),
    };
    assert!(delete.is_write());
    assert!(!Command::TaskAudit { id: t.id }.is_write());
    assert_eq!(f.execute(&admin, delete).await?, Outcome::Deleted);
    expect_task_not_found(f.execute(&a, Command::GetTask { id: t.id }).await, t.id);
    let Outcome::Audit(rows) = f.execute(&a, Command::TaskAudit { id: t.id }).await? else {
        panic!("task audit answers rows");
    };
    assert_eq!(rows.len(), 4, "the rows outlive the task");
    assert_eq!(rows[3].action, AuditAction::Deleted);
    assert_eq!(rows[3].actor_id, "root");
    assert_eq!(
        rows[3].context,
        Some(json!({"title": "Write the manual, again"}))
    );
    Ok(())
}

/// `Whoami` resolves the caller through the worker registry; `ListTasks` filters and pages as
/// `list_tasks` does.
#[tokio::test]
async fn execute_whoami_and_list_tasks() -> TestResult {
    let f = flow();
    f.execute(
        &root(),
        Command::PutWorker {
            id: "claude".into(),
            worker_type: WorkerType::Agent,
            name: None,
        },
    )
    .await?;
    for (who, expected) in [
        (
            alice(),
            Actor {
                id: "alice".into(),
                actor_type: ActorType::Human,
                admin: false,
            },
        ),
        (
            claude(),
            Actor {
                id: "claude".into(),
                actor_type: ActorType::Agent,
                admin: false,
            },
        ),
        (
            root(),
            Actor {
                id: "root".into(),
                actor_type: ActorType::Human,
                admin: true,
            },
        ),
    ] {
        assert_eq!(
            f.execute(&who, Command::Whoami).await?,
            Outcome::Actor(expected.clone())
        );
        assert_eq!(f.actor(&who).await?, expected);
    }

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(task(&f, &format!("t{i}")).await?.id);
    }
    f.start(&claude(), ids[1], None).await?;
    f.start(&claude(), ids[3], None).await?;
    let Outcome::Tasks(all) = f
        .execute(
            &alice(),
            Command::ListTasks {
                filter: TaskFilter::default(),
            },
        )
        .await?
    else {
        panic!("a listing answers tasks");
    };
    assert_eq!(all.total, 5);
    assert_eq!(all.items.iter().map(|t| t.id).collect::<Vec<_>>(), ids);

    let mine = TaskFilter {
        assigned_to: Some("claude".into()),
        paging: Paging::new(Some(1), Some(1))?,
        ..TaskFilter::default()
    };
    let page = f
        .execute(
            &alice(),
            Command::ListTasks {
                filter: mine.clone(),
            },
        )
        .await?;
    assert_eq!(page, Outcome::Tasks(f.list_tasks(&alice(), &mine).await?));
    let Outcome::Tasks(page) = page else {
        panic!("a listing answers tasks");
    };
    assert_eq!(page.total, 2);
    assert_eq!(
        page.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ids[3]]
    );
    Ok(())
}

/// Through `execute`, a refusal is the same error as through the method (same variant, same
/// data, same text), and writes nothing.
#[tokio::test]
async fn execute_refuses_as_the_methods_do() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    let (a, id) = (alice(), t.id);
    let pairs = [
        (
            refused(f.start(&a, id, None).await),
            refused(
                f.execute(
                    &a,
                    Command::Act {
                        id,
                        action: Action::Start {
                            lease_seconds: None,
                        },
                        precondition: Precondition::Any,
                        fence: None,
                    },
                )
                .await,
            ),
        ),
        (
            refused(f.complete(&bob(), id, None).await),
            refused(
                f.execute(
                    &bob(),
                    Command::Act {
                        id,
                        action: Action::Complete,
                        precondition: Precondition::Any,
                        fence: None,
                    },
                )
                .await,
            ),
        ),
        (
            refused(f.progress(&a, id, 101, None, None).await),
            refused(
                f.execute(
                    &a,
                    Command::Act {
                        id,
                        action: Action::Progress {
                            percent: 101,
                            note: None,
                        },
                        precondition: Precondition::Any,
                        fence: None,
                    },
                )
                .await,
            ),
        ),
        (
            refused(
                f.update_task(&a, id, &patch(), Precondition::OneOf(vec![1]))
                    .await,
            ),
            refused(
                f.execute(
                    &a,
                    Command::UpdateTask {
                        id,
                        patch: patch(),
                        precondition: Precondition::OneOf(vec![1]),
                        fence: None,
                    },
                )
                .await,
            ),
        ),
        (
            refused(f.delete_task(&a, id, None).await),
            refused(
                f.execute(
                    &a,
                    Command::DeleteTask {
                        id,
                        precondition: Precondition::Any,
                    },
                )
                .await,
            ),
        ),
        (
            refused(f.get_task(&a, 999).await),
            refused(f.execute(&a, Command::GetTask { id: 999 }).await),
        ),
        (
            refused(f.task_audit(&a, 0).await),
            refused(f.execute(&a, Command::TaskAudit { id: 0 }).await),
        ),
        (
            refused(f.put_worker(&a, "w", WorkerType::Agent, None).await),
            refused(
                f.execute(
                    &a,
                    Command::PutWorker {
                        id: "w".into(),
                        worker_type: WorkerType::Agent,
                        name: None,
                    },
                )
                .await,
            ),
        ),
        (
            refused(f.get_worker(&a, "nobody").await),
            refused(
                f.execute(
                    &a,
                    Command::GetWorker {
                        id: "nobody".into(),
                    },
                )
                .await,
            ),
        ),
    ];
    for (by_method, by_command) in &pairs {
        assert_eq!(format!("{by_method:?}"), format!("{by_command:?}"));
        assert_eq!(by_method.to_string(), by_command.to_string());
    }
    let by_command: Vec<&Error> = pairs.iter().map(|(_, c)| c).collect();
    assert!(matches!(
        by_command[0],
        Error::InvalidTransition {
            action: Move::Start,
            from: TaskStatus::InProgress
        }
    ));
    assert_eq!(
        by_command[0].to_string(),
        "Cannot start task with status 'in_progress'"
    );
    assert!(matches!(
        by_command[1],
        Error::Forbidden {
            action: Permission::Complete
        }
    ));
    assert!(matches!(by_command[2], Error::Validation { field, .. } if field == "percent"));
    assert!(matches!(
        by_command[3],
        Error::VersionMismatch { current: 2 }
    ));
    assert!(matches!(
        by_command[4],
        Error::Forbidden {
            action: Permission::Delete
        }
    ));
    assert!(matches!(by_command[5], Error::NotFound { kind: Entity::Task, id } if id == "999"));
    assert!(matches!(by_command[6], Error::NotFound { kind: Entity::Task, id } if id == "0"));
    assert!(matches!(
        by_command[7],
        Error::Forbidden {
            action: Permission::RegisterWorker
        }
    ));
    assert!(
        matches!(by_command[8], Error::NotFound { kind: Entity::Worker, id } if id == "nobody")
    );
    assert_eq!(f.get_task(&a, id).await?, t, "nothing was written");
    assert_eq!(
        actions(&f, id).await?,
        [AuditAction::Created, AuditAction::Started]
    );
    assert!(f.list_workers(&a).await?.is_empty());
    Ok(())
}

/// Every `Command` survives `serde_json`: `from_str(to_string(c)) == c`. So do the outcomes
/// `execute` answers.
#[tokio::test]
async fn command_round_trips_through_serde_json() -> TestResult {
    let everything = TaskPatch {
        title: Some("t".into()),
        description: Some(Some("d".into())),
        status: Some(TaskStatus::Review),
        priority: Some(Priority::Low),
        progress_percent: Some(30),
        assigned_to: Some(Some("bob".into())),
        project_slug: Some(Some("p".into())),
        parent_id: Some(Some(4)),
    };
    let clears = TaskPatch {
        description: Some(None),
        assigned_to: Some(None),
        project_slug: Some(None),
        parent_id: Some(None),
        ..TaskPatch::default()
    };
    let mut commands = vec![
        Command::CreateTask {
            task: NewTask::titled("plain"),
        },
        Command::CreateTask {
            task: NewTask {
                description: Some("d".into()),
                status: Some(TaskStatus::Blocked),
                priority: Some(Priority::Critical),
                progress_percent: Some(10),
                assigned_to: Some("bob".into()),
                project_slug: Some("p".into()),
                parent_id: Some(3),
                ..NewTask::titled("full")
            },
        },
        Command::GetTask { id: 7 },
        Command::ListTasks {
            filter: TaskFilter::default(),
        },
        Command::ListTasks {
            filter: TaskFilter {
                status: Some(TaskStatus::InProgress),
                assigned_to: Some("bob".into()),
                project: Some("p".into()),
                priority: Some(Priority::High),
                parent_id: Some(2),
                paging: Paging::new(Some(100), Some(40))?,
            },
        },
        Command::UpdateTask {
            id: 7,
            patch: TaskPatch::default(),
            precondition: Precondition::Any,
            fence: None,
        },
        Command::UpdateTask {
            id: 7,
            patch: everything,
            precondition: Precondition::Version(3),
            fence: None,
        },
        Command::UpdateTask {
            id: 7,
            patch: clears,
            precondition: Precondition::OneOf(vec![3, 4]),
            fence: None,
        },
        Command::DeleteTask {
            id: 7,
            precondition: Precondition::OneOf(vec![]),
        },
        Command::TaskAudit { id: 7 },
        Command::ListAudit {
            filter: AuditFilter::default(),
        },
        Command::ListAudit {
            filter: AuditFilter {
                task_id: Some(7),
                actor_id: Some("bob".into()),
                action: Some("started".into()),
                project: Some("p".into()),
                paging: Paging::new(Some(1), Some(2))?,
            },
        },
        Command::PutWorker {
            id: "claude".into(),
            worker_type: WorkerType::Agent,
            name: Some("Claude".into()),
        },
        Command::PutWorker {
            id: "ann".into(),
            worker_type: WorkerType::Human,
            name: None,
        },
        Command::GetWorker {
            id: "claude".into(),
        },
        Command::ListWorkers,
        Command::Whoami,
    ];
    let moves = [
        Action::Start {
            lease_seconds: None,
        },
        Action::Progress {
            percent: 40,
            note: Some("note".into()),
        },
        Action::Progress {
            percent: 0,
            note: None,
        },
        Action::SubmitForReview,
        Action::RequestChanges,
        Action::Complete,
        Action::Block {
            reason: Some("why".into()),
        },
        Action::Block { reason: None },
        Action::Unblock,
        Action::Release,
        Action::Start {
            lease_seconds: Some(60),
        },
    ];
    for (i, action) in moves.into_iter().enumerate() {
        commands.push(Command::Act {
            id: 7,
            action,
            precondition: [
                Precondition::Any,
                Precondition::Version(2),
                Precondition::OneOf(vec![1, 2]),
            ][i % 3]
                .clone(),
            fence: (i % 2 == 0).then_some(i as i64),
        });
    }
    for command in commands {
        let text = serde_json::to_string(&command)?;
        let back: Command = serde_json::from_str(&text)?;
        assert_eq!(back, command, "{text}");
    }

    for outcome in by_commands(&flow()).await? {
        let text = serde_json::to_string(&outcome)?;
        let back: Outcome = serde_json::from_str(&text)?;
        assert_eq!(back, outcome, "{text}");
    }
    Ok(())
}

/// A front-end may send a `Command` as JSON written by hand: an absent precondition is `Any`,
/// an absent filter is the default, and paging in a filter is checked as `Paging::new` checks
/// it.
#[tokio::test]
async fn command_reads_hand_written_json() -> TestResult {
    let read = |v: serde_json::Value| serde_json::from_value::<Command>(v);
    assert_eq!(
        read(json!({"op": "act", "id": 3, "action": {"move": "start"}}))?,
        Command::Act {
            id: 3,
            action: Action::Start {
                lease_seconds: None
            },
            precondition: Precondition::Any,
            fence: None,
        }
    );
    assert_eq!(
        read(json!({
            "op": "act",
            "id": 3,
            "action": {"move": "progress", "percent": 40},
            "precondition": {"one_of": [1, 2]},
        }))?,
        Command::Act {
            id: 3,
            action: Action::Progress {
                percent: 40,
                note: None,
            },
            precondition: Precondition::OneOf(vec![1, 2]),
            fence: None,
        }
    );
    assert_eq!(
        read(json!({"op": "delete_task", "id": 3, "precondition": {"version": 2}}))?,
        Command::DeleteTask {
            id: 3,
            precondition: Precondition::Version(2),
        }
    );
    assert_eq!(
        read(json!({"op": "list_tasks"}))?,
        Command::ListTasks {
            filter: TaskFilter::default(),
        }
    );
    assert_eq!(read(json!({"op": "whoami"}))?, Command::Whoami);
    assert_eq!(
        read(json!({"op": "list_tasks", "filter": {"status": "review", "limit": 5}}))?,
        Command::ListTasks {
            filter: TaskFilter {
                status: Some(TaskStatus::Review),
                paging: Paging::new(Some(5), None)?,
                ..TaskFilter::default()
            },
        }
    );
    for (bad, text) in [
        (
            json!({"op": "list_tasks", "filter": {"limit": 0}}),
            "limit: must be between 1 and 100",
        ),
        (
            json!({"op": "list_audit", "filter": {"limit": 101}}),
            "limit: must be between 1 and 100",
        ),
        (
            json!({"op": "list_audit", "filter": {"offset": -3}}),
            "offset: must be 0 or more",
        ),
    ] {
        let e = read(bad.clone()).expect_err("bad paging is refused");
        assert!(e.to_string().contains(text), "{bad}: {e}");
    }
    Ok(())
}
