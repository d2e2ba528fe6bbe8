//! `GET /api/events`: the audit trail as Server-Sent Events, live and resumable
//! ([`taskflow_core::events`] does the work; this is its wire form).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use poem::web::sse::Event as SseEvent;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::EventStream;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi};
use taskflow_core::TaskFlow;
use taskflow_core::events::{Event, EventFilter, FeedFilter};
use tokio::sync::watch;

use crate::api::Tag;
use crate::auth::BearerAuth;
use crate::dto::{AuditDto, NullableObject, TaskDto};
use crate::error::ApiError;

/// How often an idle stream sends a comment line, so that proxies keep it open (the server's
/// `EVENTS_KEEPALIVE_SECONDS`).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One change: `audit`, the audit row (its id is the event's `id:`, its action the event's
/// `event:`), and `task`, the task as it is when the event is sent (null once it was deleted).
#[derive(Debug, Clone, Object)]
#[oai(rename = "Event")]
pub struct EventDto {
    // Plain comments: a field doc would wrap the reference in `allOf`, which client
    // generators handle badly (see the struct's doc for what the fields are).
    #[allow(missing_docs)]
    pub audit: AuditDto,
    #[allow(missing_docs)]
    pub task: NullableObject<TaskDto>,
}

impl From<Event> for EventDto {
    fn from(e: Event) -> Self {
        EventDto {
            audit: e.audit.into(),
            task: NullableObject(e.task.map(Into::into)),
        }
    }
}

/// The event stream.
#[derive(ApiResponse)]
pub enum EventsResponse {
    /// `text/event-stream`: one event per audit row (`id:` the audit id, `event:` the action,
    /// `data:` an `Event` object), oldest first, then live; a `:` comment line every 15 s
    /// while idle.
    #[oai(status = 200)]
    Ok(EventStream<BoxStream<'static, EventDto>>),
}

/// The events endpoint: the service, the keep-alive interval, and the server's shutdown, which
/// ends every open stream so that a stopping server does not wait for its subscribers.
pub struct EventsApi {
    flow: TaskFlow,
    keep_alive: Duration,
    closing: Option<watch::Receiver<bool>>,
}

impl EventsApi {
    /// Streams of `flow`'s audit trail, with a comment every `keep_alive`; they end when
    /// `closing` turns `true` (never, with `None`).
    pub fn new(
        flow: TaskFlow,
        keep_alive: Duration,
        closing: Option<watch::Receiver<bool>>,
    ) -> Self {
        EventsApi {
            flow,
            keep_alive,
            closing,
        }
    }
}

#[OpenApi]
impl EventsApi {
    /// Live events
    ///
    /// The audit trail as Server-Sent Events: every row after `Last-Event-ID` (or `after`)
    /// first, then each new one as it commits, with no gap and no duplicate, including rows
    /// written through other server processes on the same database. Reconnect with the last
    /// `id:` received as `Last-Event-ID` to resume. A slow reader falls behind and catches up;
    /// it never slows writers.
    #[oai(
        path = "/api/events",
        method = "get",
        tag = "Tag::Audit",
        operation_id = "streamEvents"
    )]
    async fn events(
        &self,
        auth: BearerAuth,
        /// Resume after this audit id (default 0: from the start of the trail).
        /// `Last-Event-ID` wins when both are sent.
        after: Query<Option<i64>>,
        /// Only rows about this task.
        task_id: Query<Option<i64>>,
        /// Only rows in this project (the task's project after the change).
        project: Query<Option<String>>,
        /// The last event id received, sent by a reconnecting client.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<i64>>,
    ) -> Result<EventsResponse, ApiError> {
        let filter = EventFilter {
            after: last_event_id.0.or(after.0).unwrap_or(0),
            feed: FeedFilter {
                task_id: task_id.0,
                project: project.0,
            },
        };
        let subscription = self.flow.subscribe(&auth.identity(), filter).await?;
        let events = futures::stream::unfold(subscription, |mut sub| async move {
            match sub.next().await {
                Ok(event) => Some((EventDto::from(event), sub)),
                Err(err) => {
                    // The client reconnects with its Last-Event-ID and loses nothing.
                    tracing::warn!(error = %err, "event stream ended: the store failed");
                    None
                }
            }
        });
        let events = match self.closing.clone() {
            Some(mut closing) => events
                .take_until(async move {
                    let _ = closing.wait_for(|closing| *closing).await;
                })
                .boxed(),
            None => events.boxed(),
        };
        Ok(EventsResponse::Ok(
            EventStream::new(events)
                .keep_alive(self.keep_alive)
                .to_event(|e: EventDto| {
                    SseEvent::message(e.to_json_string())
                        .id(e.audit.id.to_string())
                        .event_type(e.audit.action.clone())
                }),
        ))
    }
}
