//! Task listings through the service: filters, paging, totals, and the checks on paging.

use serde_json::json;
use taskflow_core::model::{AuditFilter, Paging, Priority, TaskFilter};

use super::*;

/// The ids of a listing, which must hold every match (no paging in play).
async fn ids(f: &TaskFlow, filter: TaskFilter) -> Result<Vec<i64>> {
    let page = f.list_tasks(&alice(), &filter).await?;
    assert_eq!(page.total as usize, page.items.len());
    Ok(page.items.into_iter().map(|t| t.id).collect())
}

/// Each filter narrows the listing, and filters combine. In core, `parent_id` 0 names a task 0,
/// which has no subtasks.
#[tokio::test]
async fn list_filters() -> TestResult {
    let f = flow();
    let a = alice();
    let parent = task(&f, "parent").await?;
    let mk = |title: &str, project: &str, priority: Priority, parent_id: Option<i64>| NewTask {
        project_slug: Some(project.into()),
        priority: Some(priority),
        parent_id,
        ..NewTask::titled(title)
    };
    let t1 = f
        .create_task(&a, mk("t1", "web", Priority::High, Some(parent.id)))
        .await?;
    let t2 = f
        .create_task(&a, mk("t2", "web", Priority::Low, None))
        .await?;
    let t3 = f
        .create_task(&a, mk("t3", "api", Priority::High, Some(parent.id)))
        .await?;
    f.start(&bob(), t2.id, None).await?;
    f.start(&a, t3.id, None).await?;

    let all = TaskFilter::default();
    assert_eq!(
        ids(&f, all.clone()).await?,
        [parent.id, t1.id, t2.id, t3.id]
    );
    let by_status = TaskFilter {
        status: Some(TaskStatus::InProgress),
        ..all.clone()
    };
    assert_eq!(ids(&f, by_status).await?, [t2.id, t3.id]);
    let by_assignee = TaskFilter {
        assigned_to: Some("bob".into()),
        ..all.clone()
    };
    assert_eq!(ids(&f, by_assignee).await?, [t2.id]);
    let by_project = TaskFilter {
        project: Some("web".into()),
        ..all.clone()
    };
    assert_eq!(ids(&f, by_project).await?, [t1.id, t2.id]);
    let by_priority = TaskFilter {
        priority: Some(Priority::High),
        ..all.clone()
    };
    assert_eq!(ids(&f, by_priority).await?, [t1.id, t3.id]);
    let by_parent = TaskFilter {
        parent_id: Some(parent.id),
        ..all.clone()
    };
    assert_eq!(ids(&f, by_parent).await?, [t1.id, t3.id]);
    let parent_zero = TaskFilter {
        parent_id: Some(0),
        ..all.clone()
    };
    assert!(
        ids(&f, parent_zero).await?.is_empty(),
        "in core, parent_id 0 is a filter that matches nothing"
    );
    let combined = TaskFilter {
        project: Some("web".into()),
        priority: Some(Priority::High),
        status: Some(TaskStatus::Pending),
        ..all.clone()
    };
    assert_eq!(ids(&f, combined).await?, [t1.id]);
    let none = TaskFilter {
        status: Some(TaskStatus::Completed),
        ..all
    };
    assert!(ids(&f, none).await?.is_empty());
    Ok(())
}

/// Pages are ordered by id, and the total ignores limit and offset.
#[tokio::test]
async fn list_pagination_and_totals() -> TestResult {
    let f = flow();
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(task(&f, &format!("t{i}")).await?.id);
    }
    let page = |limit, offset| -> Result<TaskFilter> {
        Ok(TaskFilter {
            paging: Paging::new(Some(limit), Some(offset))?,
            ..TaskFilter::default()
        })
    };
    let p1 = f.list_tasks(&alice(), &page(3, 0)?).await?;
    let p3 = f.list_tasks(&alice(), &page(3, 6)?).await?;
    let past = f.list_tasks(&alice(), &page(3, 100)?).await?;
    assert_eq!(p1.total, 7);
    assert_eq!(
        p1.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        created[..3]
    );
    assert_eq!(
        p3.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        created[6..]
    );
    assert_eq!(p3.total, 7);
    assert!(past.items.is_empty());
    assert_eq!(past.total, 7);
    Ok(())
}

/// Limit must be 1..=100 and offset 0 or more. The check lives in `Paging::new`, so a filter
/// cannot even hold bad paging: filters read from JSON are refused with the same messages, and
/// the bounds themselves list fine through the service.
#[tokio::test]
async fn list_checks_limit_and_offset() -> TestResult {
    let f = flow();
    for limit in [0, 101, -1, i64::MAX] {
        let e = expect_validation(Paging::new(Some(limit), None), "limit");
        assert_eq!(e.to_string(), "limit: must be between 1 and 100");
    }
    for offset in [-1, i64::MIN] {
        let e = expect_validation(Paging::new(None, Some(offset)), "offset");
        assert_eq!(e.to_string(), "offset: must be 0 or more");
    }
    assert_eq!(Paging::new(None, None)?, Paging::default());
    assert_eq!(Paging::default().limit(), 50);
    assert_eq!(Paging::default().offset(), 0);

    for (bad, text) in [
        (json!({"limit": 0}), "limit: must be between 1 and 100"),
        (json!({"limit": 101}), "limit: must be between 1 and 100"),
        (json!({"offset": -1}), "offset: must be 0 or more"),
    ] {
        let e = serde_json::from_value::<TaskFilter>(bad.clone())
            .expect_err("a task filter with bad paging");
        assert!(e.to_string().contains(text), "{bad}: {e}");
        let e = serde_json::from_value::<AuditFilter>(bad.clone())
            .expect_err("an audit filter with bad paging");
        assert!(e.to_string().contains(text), "{bad}: {e}");
    }
    let read: TaskFilter = serde_json::from_value(json!({"limit": 100, "offset": 5}))?;
    assert_eq!(read.paging, Paging::new(Some(100), Some(5))?);
    let read: TaskFilter = serde_json::from_value(json!({}))?;
    assert_eq!(read, TaskFilter::default());

    for i in 0..3 {
        task(&f, &format!("t{i}")).await?;
    }
    for (limit, expected) in [(1, 1), (100, 3)] {
        let filter = TaskFilter {
            paging: Paging::new(Some(limit), None)?,
            ..TaskFilter::default()
        };
        let page = f.list_tasks(&alice(), &filter).await?;
        assert_eq!((page.items.len(), page.total), (expected, 3));
        let filter = AuditFilter {
            paging: Paging::new(Some(limit), None)?,
            ..AuditFilter::default()
        };
        let page = f.list_audit(&alice(), &filter).await?;
        assert_eq!((page.items.len(), page.total), (expected, 3));
    }
    Ok(())
}
