//! The worker registry as every write reads it: an identity's [`ActorType`], kept for a short
//! while so that a write does not read the `workers` table each time.
//!
//! Each write resolves its caller to an actor (agent, human) for the audit row. The registry
//! changes rarely (`PUT /api/workers`), and writes are frequent, so [`TaskFlow`] keeps what it
//! read for [`WORKER_TTL`]:
//! - a registration through this [`TaskFlow`] (or a clone) replaces the entry at once;
//! - a registration by another process (a second server on the same Postgres, the CLI on the
//!   same SQLite file) is seen within [`WORKER_TTL`];
//! - a read that started before a registration never stores its older answer (a generation
//!   counter guards the gap between reading the store and filling the cache).
//!
//! The type only labels audit rows; it grants no permission (roles come from the token).
//!
//! [`TaskFlow`]: crate::TaskFlow

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::model::ActorType;

/// How long an identity's actor type is kept before the registry is read again.
pub const WORKER_TTL: Duration = Duration::from_secs(5);

/// How many identities are kept; past it, expired entries go, then all of them.
const CAPACITY: usize = 10_000;

/// Identity → actor type, each entry with the instant it was read.
#[derive(Debug, Default)]
pub(crate) struct WorkerTypes {
    entries: RwLock<HashMap<String, (ActorType, Instant)>>,
    /// Bumped by every registration this process makes.
    generation: AtomicU64,
}

/// Where a cache fill starts: the generation at the moment the store read began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl WorkerTypes {
    /// The actor type of `id` if it was read less than [`WORKER_TTL`] ago.
    pub(crate) fn get(&self, id: &str) -> Option<ActorType> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Option<ActorType> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(id)
            .filter(|(_, read_at)| now.saturating_duration_since(*read_at) < WORKER_TTL)
            .map(|(actor_type, _)| *actor_type)
    }

    /// Taken before reading the store, handed back to [`WorkerTypes::fill`].
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Keeps what the store answered, unless a registration happened since `ticket` was taken
    /// (the answer may predate it).
    pub(crate) fn fill(&self, ticket: Ticket, id: &str, actor_type: ActorType) {
        self.fill_at(ticket, id, actor_type, Instant::now());
    }

    fn fill_at(&self, ticket: Ticket, id: &str, actor_type: ActorType, now: Instant) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that `registered` also takes: no registration can slip
        // between this check and the insert.
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(id) {
            entries.retain(|_, (_, read_at)| now.saturating_duration_since(*read_at) < WORKER_TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(id.to_owned(), (actor_type, now));
    }

    /// `id` was (re-)registered by this process: forget it, and refuse fills of reads that
    /// started before.
    pub(crate) fn registered(&self, id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_for_the_ttl() {
        let cache = WorkerTypes::default();
        let t0 = Instant::now();
        cache.fill_at(cache.ticket(), "bot", ActorType::Agent, t0);
        assert_eq!(cache.get_at("bot", t0), Some(ActorType::Agent));
        let late = t0 + WORKER_TTL - Duration::from_millis(1);
        assert_eq!(cache.get_at("bot", late), Some(ActorType::Agent));
        assert_eq!(cache.get_at("bot", t0 + WORKER_TTL), None);
        assert_eq!(cache.get_at("someone-else", t0), None);
    }

    #[test]
    fn a_registration_forgets_the_entry() {
        let cache = WorkerTypes::default();
        cache.fill(cache.ticket(), "bot", ActorType::Human);
        cache.registered("bot");
        assert_eq!(cache.get("bot"), None);
    }

    #[test]
    fn a_read_from_before_a_registration_is_not_kept() {
        let cache = WorkerTypes::default();
        let ticket = cache.ticket();
        // The store answered "human", then the worker was registered as an agent.
        cache.registered("bot");
        cache.fill(ticket, "bot", ActorType::Human);
        assert_eq!(cache.get("bot"), None);
        cache.fill(cache.ticket(), "bot", ActorType::Agent);
        assert_eq!(cache.get("bot"), Some(ActorType::Agent));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = WorkerTypes::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY {
            cache.fill_at(cache.ticket(), &format!("w{i}"), ActorType::Agent, t0);
        }
        assert_eq!(cache.len(), CAPACITY);
        // Full of live entries: the next one starts over.
        cache.fill_at(cache.ticket(), "one-more", ActorType::Agent, t0);
        assert_eq!(cache.len(), 1);
        for i in 0..CAPACITY - 1 {
            cache.fill_at(cache.ticket(), &format!("w{i}"), ActorType::Agent, t0);
        }
        // Full again, all but the newest expired: the expired ones go.
        let later = t0 + WORKER_TTL;
        cache.fill_at(cache.ticket(), "fresh", ActorType::Human, later);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get_at("fresh", later), Some(ActorType::Human));
    }
}
