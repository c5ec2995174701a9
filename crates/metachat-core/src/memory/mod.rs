//! In-memory implementations of the store, bus and read-model contracts:
//! for tests, examples and single-process prototypes. Nothing survives a restart.

mod bus;
mod read_models;
mod store;

pub use bus::InMemoryEventBus;
pub use read_models::InMemoryReadModels;
#[cfg(test)]
pub(crate) use store::append_n;
pub use store::InMemoryEventStore;
