//! # metachat-core
//!
//! The model and the contracts of MetaChat's event-sourcing toolkit:
//! [`event::Envelope`]s, the [`store::EventStore`] (an appender and a reader),
//! the [`bus::EventBus`], [`read_model::ReadModelStore`]s and their
//! checkpoints, [`aggregate::Aggregate`]s with a [`aggregate::Repository`],
//! [`projection::Projection`]s with a runner, the [`codec`] with upcasters,
//! the [`relay::Relay`] (outbox), the [`analysis`] traits, the MetaChat
//! [`domain`], and [`memory`] implementations of every contract.
//!
//! Depend on this crate to write domain code or a new backend. Applications
//! usually depend on the `metachat` facade instead, which re-exports this
//! crate and the adapters. It does no I/O of its own.
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `test-util` | no | the `testing` module: the given/when/then harness for aggregates |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aggregate;
pub mod analysis;
pub mod bus;
pub mod codec;
pub mod domain;
pub mod error;
pub mod event;
pub mod memory;
pub mod projection;
pub mod read_model;
pub mod relay;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;

pub use error::{Error, Result};
