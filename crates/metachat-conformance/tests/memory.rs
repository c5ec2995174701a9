//! The conformance suite run against the in-memory store, read models and bus
//! of `metachat-core`.

use std::sync::Arc;

use metachat_core::memory::{InMemoryEventBus, InMemoryEventStore, InMemoryReadModels};

/// A fresh in-memory event store.
async fn store() -> Arc<InMemoryEventStore> {
    Arc::new(InMemoryEventStore::new())
}

/// Fresh in-memory read models.
async fn read_models() -> Arc<InMemoryReadModels> {
    Arc::new(InMemoryReadModels::new())
}

/// A fresh in-memory bus.
async fn bus() -> InMemoryEventBus {
    InMemoryEventBus::new()
}

metachat_conformance::event_store_suite!(store);
metachat_conformance::read_model_suite!(read_models);
metachat_conformance::event_bus_suite!(bus);
