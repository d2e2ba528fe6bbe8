//! taskflow's store conformance suite (`taskflow_core::testkit`) against `PgStore` on a real
//! PostgreSQL server, one fresh database per case.
//!
//! Run via `scripts/with-postgres cargo test -p taskflow-store-pg`. Without
//! `TASKFLOW_TEST_PG_URL` every case prints `SKIPPED: …` and passes, except under `CI=true`,
//! where every case fails.

// `fresh_store` returns `Option<Fixture>`: `None` (after printing why) skips the case.
taskflow_core::store_conformance_tests!(taskflow_store_pg::test_support::fresh_store);
