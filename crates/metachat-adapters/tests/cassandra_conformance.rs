//! The shared event-store and read-model conformance suites on a real
//! Cassandra node (`CASSANDRA_NODES`; start one with `scripts/cassandra start`).
//!
//! Without `CASSANDRA_NODES`, outside CI, the binary prints `SKIPPED: …` and
//! exits successfully before any check runs (the suites' macros have no skip
//! hook, so the factory ends the process); in CI it fails.

mod cassandra_support;

use metachat_adapters::cassandra::{CassandraEventStore, CassandraReadModels};

/// An event store in a fresh namespace.
async fn store() -> CassandraEventStore {
    cassandra_support::event_store(&cassandra_support::nodes_or_exit()).await
}

/// Read models in a fresh namespace.
async fn read_models() -> CassandraReadModels {
    cassandra_support::read_models(&cassandra_support::nodes_or_exit()).await
}

metachat_conformance::event_store_suite!(store);
metachat_conformance::read_model_suite!(read_models);
