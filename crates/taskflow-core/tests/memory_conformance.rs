//! The store conformance suite (`taskflow_core::testkit`) against `MemoryStore`: the in-memory
//! store keeps the same contract as the SQLite and Postgres stores.

use std::sync::Arc;

use taskflow_core::MemoryStore;
use taskflow_core::testkit::Fixture;

async fn fresh_store() -> Fixture {
    Fixture::new(Arc::new(MemoryStore::new()))
}

taskflow_core::store_conformance_tests!(fresh_store);
