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
//!
//! An EventStoreDB backend is planned, not built.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "sled")]
#[cfg_attr(docsrs, doc(cfg(feature = "sled")))]
pub mod sled;

#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod kafka;

#[cfg(feature = "cassandra")]
#[cfg_attr(docsrs, doc(cfg(feature = "cassandra")))]
pub mod cassandra;
