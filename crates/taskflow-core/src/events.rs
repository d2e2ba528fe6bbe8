//! The audit trail as a live feed: every change, in order, as it commits.
//!
//! [`TaskFlow::subscribe`] returns a [`Subscription`]: a cursor over the audit trail that first
//! replays the rows after a given id and then follows new ones, one [`Event`] per row. It is
//! lossless and ordered: events come in audit-id order, none is skipped and none repeats, also
//! across a resume from the last id a client saw (`Last-Event-ID`).
//!
//! # How it stays lossless
//!
//! Ids are assigned when a row is written, but rows may commit out of id order (two Postgres
//! transactions take ids 10 and 11, and 11 commits first). A reader that moved its cursor past
//! 11 would never see 10. So a store reports a *horizon* ([`Store::audit_horizon`]): an id such
//! that every row up to it has committed or never will. A subscription reads only up to the
//! horizon ([`Store::audit_after`]), so once it has passed an id, nothing can appear behind it.
//!
//! # How it stays live, and cheap
//!
//! Each [`TaskFlow`] (and its clones) shares one follower task, started by the first
//! subscription. It asks the store for the horizon when a write goes through this service (at
//! most every [`MIN_GAP`]), and every poll interval ([`TaskFlow::with_event_poll`]) to see
//! writes made by other processes on the same database. It publishes the horizon on a watch
//! channel; it does no work while nobody subscribes.
//!
//! # Slow subscribers
//!
//! A subscription pulls: it reads the store only when its consumer asks for the next event,
//! and holds at most one batch ([`BATCH`]) of rows. A slow consumer therefore never slows
//! writers and never makes anything grow: it falls behind and catches up from the store, in
//! order, when it reads again.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::error::{Error, Result};
use crate::model::{AuditEntry, Identity, Task};
use crate::service::TaskFlow;
use crate::store::Store;
use crate::validate;

/// How many audit rows a subscription reads from the store at once.
pub const BATCH: u32 = 256;

/// The shortest time between two horizon reads of one follower: a burst of writes costs one
/// read per gap, not one per write.
pub const MIN_GAP: Duration = Duration::from_millis(20);

/// How often a follower reads the horizon when nothing was written through its service, to
/// see writes made by other processes: the server's `EVENTS_POLL_MS`.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// Which audit rows a feed reads ([`Store::audit_after`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    /// Only rows about this task.
    pub task_id: Option<i64>,
    /// Only rows whose `project_slug` (the task's project after the change) is this.
    pub project: Option<String>,
}

/// Where a subscription starts and what it follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Start after this audit id (the last one the client saw); `0` replays from the start.
    pub after: i64,
    /// Which rows.
    pub feed: FeedFilter,
}

/// One change: an audit row and the task it is about, as the task is when the event is read
/// (`None` once the task was deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The audit row; its id is the event's id.
    pub audit: AuditEntry,
    /// The task now, or `None` if it no longer exists.
    pub task: Option<Task>,
}

/// The follower shared by a [`TaskFlow`] and its clones.
pub(crate) struct Feed {
    /// The latest horizon read from the store.
    horizon: watch::Sender<i64>,
    /// Set by writes through this service: read the horizon now.
    poke: Notify,
    /// The follower task, once a subscription started it.
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// How often to read the horizon with no local write.
    poll_every: Duration,
}

impl Feed {
    pub(crate) fn new(poll_every: Duration) -> Self {
        Feed {
            horizon: watch::Sender::new(0),
            poke: Notify::new(),
            follower: std::sync::Mutex::new(None),
            poll_every,
        }
    }

    /// A write went through: let the follower read the horizon.
    pub(crate) fn poke(&self) {
        self.poke.notify_one();
    }

    /// Raises the published horizon to `h` if it is higher.
    fn publish(&self, h: i64) {
        self.horizon.send_if_modified(|current| {
            let higher = h > *current;
            if higher {
                *current = h;
            }
            higher
        });
    }
}

/// The follower: reads the horizon when poked or every poll interval, while anyone subscribes.
/// Ends when the service it belongs to is gone. A failed read is retried at the next tick; the
/// subscribers' own reads report the store's errors.
async fn follow(feed: Weak<Feed>, store: Weak<dyn Store>) {
    loop {
        let Some(f) = feed.upgrade() else { return };
        let _ = tokio::time::timeout(f.poll_every, f.poke.notified()).await;
        if f.horizon.receiver_count() > 0 {
            let Some(store) = store.upgrade() else { return };
            if let Ok(h) = store.audit_horizon().await {
                f.publish(h);
            }
        }
        drop(f);
        tokio::time::sleep(MIN_GAP).await;
    }
}

impl TaskFlow {
    /// How often the event follower looks for writes made by other processes on the same
    /// database (default [`DEFAULT_POLL`]); writes through this service are seen at once.
    pub fn with_event_poll(mut self, every: Duration) -> Self {
        self.feed = Arc::new(Feed::new(every));
        self
    }

    /// Follows the audit trail from `filter.after` on: every row after it that matches the
    /// filter, oldest first, then every new one as it commits ([`crate::events`]).
    ///
    /// Refuses a negative `after` and a project with a NUL character.
    pub async fn subscribe(&self, _who: &Identity, filter: EventFilter) -> Result<Subscription> {
        if filter.after < 0 {
            return Err(Error::validation(
                "after",
                "must be an audit id (0 or more)",
            ));
        }
        validate::optional_text("project", filter.feed.project.as_deref())?;
        let feed = Arc::clone(&self.feed);
        let horizon = feed.horizon.subscribe();
        {
            // (Re)start the follower: the first subscription starts it, and one made on another
            // runtime after the first runtime ended (tests do that) starts it again.
            let mut follower = feed.follower.lock().unwrap_or_else(|e| e.into_inner());
            if follower.as_ref().is_none_or(|task| task.is_finished()) {
                *follower = Some(tokio::spawn(follow(
                    Arc::downgrade(&feed),
                    Arc::downgrade(&self.store),
                )));
            }
        }
        // Read the horizon now, so the replay does not wait for the follower's next tick.
        feed.publish(self.store.audit_horizon().await?);
        Ok(Subscription {
            flow: self.clone(),
            filter: filter.feed,
            position: filter.after,
            horizon,
            pending: VecDeque::new(),
        })
    }

    /// Tells the event follower that a write went through this service.
    pub(crate) fn committed(&self) {
        self.feed.poke();
    }
}

/// A cursor over the audit trail ([`TaskFlow::subscribe`]).
pub struct Subscription {
    flow: TaskFlow,
    filter: FeedFilter,
    /// Every row up to this id has been read from the store (matching or not).
    position: i64,
    horizon: watch::Receiver<i64>,
    /// Rows read and not handed out yet, oldest first.
    pending: VecDeque<AuditEntry>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("filter", &self.filter)
            .field("position", &self.position)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next event: at once if one is committed after the last, else when one commits.
    /// Cancel-safe: dropping the future loses nothing. An error (the store is unreachable)
    /// loses nothing either: the next call reads from where this one stopped.
    pub async fn next(&mut self) -> Result<Event> {
        loop {
            if let Some(audit) = self.pending.front() {
                let task = self.flow.store.get_task(audit.task_id).await?;
                let audit = self.pending.pop_front().expect("a front row");
                return Ok(Event { audit, task });
            }
            let horizon = *self.horizon.borrow_and_update();
            if horizon > self.position {
                let rows = self
                    .flow
                    .store
                    .audit_after(self.position, horizon, &self.filter, BATCH)
                    .await?;
                self.position = match rows.last() {
                    Some(last) if rows.len() >= BATCH as usize => last.id,
                    _ => horizon,
                };
                self.pending.extend(rows);
                continue;
            }
            if self.horizon.changed().await.is_err() {
                // The sender lives in the service this subscription holds: never reached.
                return Err(Error::Backend("the event follower stopped".into()));
            }
        }
    }
}
