//! # metachat-adapters
//!
//! Backends for the contracts of `metachat-core`, one module per backend,
//! each behind its cargo feature.
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sled` | yes | [`sled::SledEventStore`], [`sled::SledReadModels`]: embedded, durable |
//! | `kafka` | no | [`kafka::KafkaEventBus`]: the event bus on Apache Kafka (rdkafka, librdkafka built from source) |
//! | `cassandra` | no | [`cassandra::CassandraDatabase`] with [`cassandra::CassandraReadModels`] and [`cassandra::CassandraEventStore`]: read models and an event store on Apache Cassandra (scylla driver) |
//! | `eventstoredb` | no | [`eventstoredb::EventStoreDbEventStore`]: an event store on EventStoreDB / KurrentDB (the `kurrentdb` gRPC client) |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The table above links into every backend; docs built with only some
// features leave the others' links dangling. The all-features build (CI)
// still denies broken links.
#![cfg_attr(
    not(all(
        feature = "sled",
        feature = "kafka",
        feature = "cassandra",
        feature = "eventstoredb"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "sled")]
#[cfg_attr(docsrs, doc(cfg(feature = "sled")))]
pub mod sled;

#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod kafka;

#[cfg(feature = "cassandra")]
#[cfg_attr(docsrs, doc(cfg(feature = "cassandra")))]
pub mod cassandra;

#[cfg(feature = "eventstoredb")]
#[cfg_attr(docsrs, doc(cfg(feature = "eventstoredb")))]
pub mod eventstoredb;
