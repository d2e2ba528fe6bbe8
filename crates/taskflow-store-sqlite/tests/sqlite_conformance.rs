//! The taskflow conformance suite against `SqliteStore`, on a fresh database file per case and
//! again on `:memory:`.

mod file {
    use std::sync::Arc;

    use taskflow_core::testkit::Fixture;
    use taskflow_store_sqlite::SqliteStore;

    async fn fresh_store() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("conformance.db"))
            .await
            .expect("open SQLite file");
        Fixture::with_guard(Arc::new(store), dir)
    }

    taskflow_core::store_conformance_tests!(fresh_store);
}

mod memory {
    use std::sync::Arc;

    use taskflow_core::testkit::Fixture;
    use taskflow_store_sqlite::SqliteStore;

    async fn fresh_store() -> Fixture {
        let store = SqliteStore::open_in_memory().await.expect("open :memory:");
        Fixture::new(Arc::new(store))
    }

    taskflow_core::store_conformance_tests!(fresh_store);
}
