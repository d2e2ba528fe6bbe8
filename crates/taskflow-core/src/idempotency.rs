//! Idempotency keys: a retried write never acts twice.
//!
//! A caller names a write with a key of its choosing ([`IdempotencyKey`]); taskflow keeps the
//! outcome of the first request with that key (its result, or its refusal) for a while, and
//! answers a repeat with the stored outcome instead of running it again. The outcome of a write
//! that changes something is stored **in the same transaction as the change** (it rides on the
//! change's audit row, [`crate::model::AuditDraft::outcome`]), so a crash can never leave a
//! change without its record or a record without its change.
//!
//! How a request goes ([`crate::TaskFlow::execute_once`]):
//!
//! 1. The key is *reserved* for the caller with the request's fingerprint, in a transaction of
//!    its own. A key already reserved by a request with another fingerprint is refused (422
//!    `Idempotency-Key: reused with a different request`); one whose first request is still
//!    running is refused too ([`crate::Error::IdempotencyInProgress`]); one whose first request
//!    finished is answered with the stored outcome. A reservation whose request died (a killed process)
//!    lapses after [`RESERVATION_TIMEOUT`], so it cannot block the key forever.
//! 2. The request runs. A change stores the outcome with itself. An outcome with no change (a
//!    refusal such as 400, 403, 404, 409 or 412, or a write that changed nothing) is stored
//!    afterwards. An error that is not the caller's doing, or a validation error (HTTP 422),
//!    is not stored: the reservation is dropped, and a retry runs again.
//! 3. Records are kept for the time-to-live ([`crate::TaskFlow::with_idempotency_ttl`],
//!    default [`DEFAULT_TTL`]) and then purged ([`crate::TaskFlow::purge_idempotency_records`]).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::Task;
use crate::operation::Outcome;

/// How long a reservation holds its key without an outcome before another request may take it
/// over: the request that made it is presumed dead.
pub const RESERVATION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an outcome is kept by default (the server's `IDEMPOTENCY_TTL_SECONDS`): a day.
pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// A caller's name for one write: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a key: 1 to 255 visible ASCII characters (`!` to `~`), else a 422 on
    /// `Idempotency-Key`.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        let visible = key.bytes().all(|b| b.is_ascii_graphic());
        if visible && (1..=MAX_KEY_LEN).contains(&key.len()) {
            Ok(IdempotencyKey(key))
        } else {
            Err(Error::validation(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ))
        }
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = Error;

    fn try_from(key: String) -> Result<Self> {
        IdempotencyKey::new(key)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> Self {
        key.0
    }
}

/// A write's idempotency: the caller's key, and a fingerprint of the request it names. The
/// same key with another fingerprint is a different request, and is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent {
    /// The caller's key.
    pub key: IdempotencyKey,
    /// What the request was, as a digest ([`fingerprint`]).
    pub fingerprint: String,
}

impl Idempotent {
    /// The idempotency of `command` under `key`: its fingerprint is a digest of the command
    /// (what the library, MCP and the CLI use; the HTTP API uses the request's method, path,
    /// query and body instead).
    pub fn for_command(key: IdempotencyKey, command: &crate::Command) -> Result<Self> {
        let json = serde_json::to_vec(command).map_err(Error::backend)?;
        Ok(Idempotent {
            key,
            fingerprint: fingerprint(&[b"command", &json]),
        })
    }
}

/// A SHA-256 digest (hex) of `parts`, each length-prefixed so that no two different lists of
/// parts give the same input.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a stored outcome is: the operation's result, or its refusal.
pub type Recorded = std::result::Result<Outcome, Error>;

/// Encodes an outcome for storage. Only outcomes that are stored ([`Error::is_recorded`])
/// encode; the others are an error.
pub fn encode(outcome: &Recorded) -> Result<String> {
    let json = match outcome {
        Ok(outcome) => RecordedRef::Ok(outcome),
        Err(error) => RecordedRef::Err(error),
    };
    serde_json::to_string(&json).map_err(Error::backend)
}

/// Decodes a stored outcome.
pub fn decode(stored: &str) -> Result<Recorded> {
    let json: RecordedOwned = serde_json::from_str(stored).map_err(Error::backend)?;
    Ok(match json {
        RecordedOwned::Ok(outcome) => Ok(outcome),
        RecordedOwned::Err(error) => Err(error),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum RecordedRef<'a> {
    Ok(&'a Outcome),
    Err(&'a Error),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RecordedOwned {
    Ok(Outcome),
    Err(Error),
}

/// The record of the request behind a change, stored by the store with the change's audit row
/// (in the same transaction): the caller's key and the outcome. For a change whose result the
/// store decides (a new task's id, the task claim-next took), the outcome is made from the task
/// as written ([`OutcomeRecord::render`]).
#[derive(Clone)]
pub struct OutcomeRecord {
    /// Whose key (the caller's id).
    pub caller: String,
    /// The key.
    pub key: String,
    /// The request's fingerprint.
    pub fingerprint: String,
    /// When the record may be purged.
    pub expires_at: crate::model::Timestamp,
    /// The outcome, or how to make it from the task as written.
    pub outcome: Rendered,
}

/// An outcome to store: ready, or made from the task the store wrote.
#[derive(Clone)]
pub enum Rendered {
    /// The encoded outcome.
    Ready(String),
    /// `Ok(Outcome::Task(task))`, of the task as written.
    Task,
    /// `Ok(Outcome::Claimed(Some(task)))`, of the task as written.
    Claimed,
}

impl OutcomeRecord {
    /// The encoded outcome, given the task as the store wrote it (if the write wrote one).
    pub fn render(&self, written: Option<&Task>) -> Result<String> {
        match (&self.outcome, written) {
            (Rendered::Ready(json), _) => Ok(json.clone()),
            (Rendered::Task, Some(task)) => encode(&Ok(Outcome::Task(task.clone()))),
            (Rendered::Claimed, Some(task)) => encode(&Ok(Outcome::Claimed(Some(task.clone())))),
            (_, None) => Err(Error::backend(
                "an outcome of a task needs the task written",
            )),
        }
    }
}

impl fmt::Debug for OutcomeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutcomeRecord")
            .field("caller", &self.caller)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PartialEq for OutcomeRecord {
    fn eq(&self, other: &Self) -> bool {
        self.caller == other.caller && self.key == other.key
    }
}

impl Eq for OutcomeRecord {}

/// What a reservation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is the caller's for this request now: run it.
    Reserved,
    /// A request with this key and fingerprint finished: its encoded outcome.
    Replay(String),
    /// A request with this key is still running.
    InProgress,
    /// The key names a different request.
    Mismatch,
}

/// A reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    /// Whose key (the caller's id).
    pub caller: String,
    /// The key.
    pub key: String,
    /// The request's fingerprint.
    pub fingerprint: String,
    /// Now.
    pub now: crate::model::Timestamp,
    /// A reservation made before this, still without an outcome, is abandoned and may be taken
    /// over.
    pub stale_before: crate::model::Timestamp,
    /// When a new record may be purged.
    pub expires_at: crate::model::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii() {
        assert!(IdempotencyKey::new("retry-1:ab_CD.ef~").is_ok());
        assert!(IdempotencyKey::new("x".repeat(255)).is_ok());
        for bad in ["", " ", "a b", "é", "tab\t", &"x".repeat(256)] {
            assert_eq!(
                IdempotencyKey::new(bad).unwrap_err().to_string(),
                "Idempotency-Key: must be 1 to 255 visible ASCII characters",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fingerprints_tell_parts_apart() {
        assert_eq!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"ab", b"c"]));
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[]).len(), 64);
    }

    #[test]
    fn outcomes_round_trip() {
        let refused: Recorded = Err(Error::VersionMismatch { current: 4 });
        let back = decode(&encode(&refused).unwrap()).unwrap();
        assert_eq!(
            back.unwrap_err().to_string(),
            "Version mismatch: task is at version 4"
        );
        let done: Recorded = Ok(Outcome::Deleted);
        assert_eq!(
            decode(&encode(&done).unwrap()).unwrap().unwrap(),
            Outcome::Deleted
        );
    }
}
