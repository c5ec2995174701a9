//! # metachat-core
//!
//! The model and the contracts of MetaChat's event-sourcing toolkit:
//! [`event::Envelope`]s, the [`store::EventStore`] (an appender and a reader),
//! the [`bus::EventBus`], [`read_model::ReadModelStore`]s and their
//! checkpoints, [`aggregate::Aggregate`]s with a [`aggregate::Repository`],
//! [`projection::Projection`]s with a runner (and a supervised restart
//! loop), read-your-writes [`progress`], the [`codec`] with upcasters,
//! the [`relay::Relay`] (outbox), the [`analysis`] traits, and [`memory`]
//! implementations of every contract.
//!
//! Depend on this crate to write domain code or a new backend; it knows no
//! application (MetaChat's own domain lives beside the toolkit, in `app/`). Applications
//! usually depend on the `metachat` facade instead, which re-exports this
//! crate and the adapters. It does no I/O of its own.
//!
//! It has no cargo features. The given/when/then harness for aggregates is
//! in `metachat-conformance`, beside the backends' conformance suite.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aggregate;
pub mod analysis;
pub mod bus;
pub mod codec;
pub mod error;
pub mod event;
pub mod memory;
pub mod progress;
pub mod projection;
pub mod read_model;
pub mod relay;
pub mod store;

pub use error::{Error, Result};
