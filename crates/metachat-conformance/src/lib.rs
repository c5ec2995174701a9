//! # metachat-conformance
//!
//! One conformance suite for every MetaChat backend: each
//! [`EventStore`](metachat_core::store::EventStore),
//! [`ReadModelStore`](metachat_core::read_model::ReadModelStore) and
//! [`EventBus`](metachat_core::bus::EventBus) implementation runs it from its
//! own tests, the way sqlx's drivers run `sqlx-test` and tower's services run
//! `tower-test`.
//!
//! It also holds [`testing::AggregateTest`], the given/when/then harness
//! for aggregates' own tests.
//!
//! The public API is three macros, each of which expands to a module holding
//! one `#[test]` per check (so a failure names the check that failed):
//!
//! | macro | module it creates | factory returns |
//! |---|---|---|
//! | [`event_store_suite!`] | `event_store_conformance` | `S: EventStore + Clone + Unpin + Send + Sync + 'static` |
//! | [`read_model_suite!`] | `read_model_conformance` | `R: ReadModelStore + Clone + Send + Sync + 'static` |
//! | [`event_bus_suite!`] | `event_bus_conformance` | `B: EventBus + Clone + Send + Sync + 'static` |
//! | [`partitioned_log_suite!`] | `partitioned_log_conformance` | a store whose log is split into partitions |
//!
//! The factory is a path to an `async fn() -> T` that returns a **fresh, empty**
//! instance on every call. Each test runs on its own multi-threaded tokio
//! runtime with two workers (what `#[tokio::test(flavor = "multi_thread",
//! worker_threads = 2)]` gives), under a generous hang guard, so a caller needs
//! only this crate as a dev-dependency (plus whatever its factory uses).
//!
//! Every check is also a public `async fn` in the modules below, which can be
//! called directly. A backend's `tests/conformance.rs` looks like this (with
//! its own store in place of the in-memory one):
//!
//! ```
//! use std::sync::Arc;
//! use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
//!
//! /// A fresh, empty store for each check.
//! async fn store() -> Arc<InMemoryEventStore> {
//!     Arc::new(InMemoryEventStore::new())
//! }
//!
//! // In a test target: `mod event_store_conformance` with one #[test] per check.
//! metachat_conformance::event_store_suite!(store);
//!
//! fn main() {
//!     // The same checks, called directly.
//!     let rt = tokio::runtime::Builder::new_multi_thread()
//!         .worker_threads(2)
//!         .enable_all()
//!         .build()
//!         .unwrap();
//!     rt.block_on(async {
//!         metachat_conformance::store::check_expected_version_absent_stream(store().await).await;
//!         let s = store().await;
//!         metachat_conformance::subscription::check_resume_from_checkpoint(s.clone(), vec![s]).await;
//!         let read_models = Arc::new(InMemoryReadModels::new());
//!         metachat_conformance::read_model::check_get_put_delete(read_models).await;
//!     });
//! }
//! ```
//!
//! # Checks
//!
//! - [`order`]: the log order the store declares: total (checked in the
//!   store suite) or per partition (the [`partitioned_log_suite!`]).
//! - [`store`]: expected-version semantics, idempotent re-append, order,
//!   positions, reads, envelope round trip, limits and bad input.
//! - [`subscription`]: catch-up-then-live with concurrent writers, resume from a
//!   checkpoint, racing appenders on one stream.
//! - [`projection`]: the [`ProjectionRunner`](metachat_core::projection::ProjectionRunner)
//!   over a store and a read-model store (run in both the store and the
//!   read-model suites).
//! - [`model`]: a proptest model check of the store against a reference model.
//!   `METACHAT_PROPTEST_CASES` overrides its number of cases (default 64).
//! - [`read_model`]: documents, versions, conditions, atomic commits,
//!   checkpoints, prefix scans.
//! - [`bus`]: ordering, consumer groups, acknowledgement, redelivery, the
//!   outbox [`Relay`](metachat_core::relay::Relay) and the
//!   [`Deduplicator`](metachat_core::relay::Deduplicator).
//!
//! Checks panic with a message naming what differed, like `assert!`.
//!
//! # Writing a factory
//!
//! Return a new instance that shares nothing with earlier ones: a durable
//! store opens a new temporary directory (the instance must keep it alive,
//! since the factory returns only the store), a networked bus or database a
//! new namespace. The bus checks also name their topics and groups randomly.
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | (none) | | |
#![forbid(unsafe_code)]

pub mod bus;
pub mod fixture;
pub mod model;
pub mod order;
pub mod projection;
pub mod read_model;
pub mod store;
pub mod subscription;
pub mod testing;

#[doc(hidden)]
pub mod __private {
    //! What the macros' expansions need; not a public API.
    use std::future::Future;
    use std::sync::Arc;
    use std::time::Duration;

    pub use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};

    /// Longest one check may run before it is reported as hung.
    const HANG_GUARD: Duration = Duration::from_secs(300);

    /// Runs one check on a fresh two-worker multi-threaded runtime.
    pub fn run<F: Future<Output = ()>>(name: &str, check: F) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("conformance: cannot build a tokio runtime");
        rt.block_on(async {
            if tokio::time::timeout(HANG_GUARD, check).await.is_err() {
                panic!("conformance check `{name}` did not finish within {HANG_GUARD:?} (hung?)");
            }
        });
    }

    /// Peers that are clones of the store.
    pub async fn clone_peer<S: Clone>(store: &S) -> S {
        store.clone()
    }

    /// A fresh in-memory event store.
    pub fn memory_store() -> Arc<InMemoryEventStore> {
        Arc::new(InMemoryEventStore::new())
    }

    /// Fresh in-memory read models.
    pub fn memory_read_models() -> Arc<InMemoryReadModels> {
        Arc::new(InMemoryReadModels::new())
    }
}

/// Expands to one `#[test]` per listed check, each running
/// `$call.await` through [`__private::run`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($( $name:ident => $call:expr ),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::__private::run(stringify!($name), async { $call.await });
            }
        )*
    };
}

/// Runs the event-store conformance suite against a factory.
///
/// `$factory` is a path (resolvable from the invoking module) to an
/// `async fn() -> S` returning a fresh, empty store, where
/// `S: EventStore + Clone + Unpin + Send + Sync + 'static`.
///
/// Expands to `mod event_store_conformance { … }` holding one `#[test]` per
/// check of [`store`], [`subscription`], [`projection`] (with in-memory read
/// models) and [`model`]; each test builds a two-worker multi-threaded tokio
/// runtime, calls the factory and awaits the check.
///
/// With `peer = $peer`, `$peer` is a path to an `async fn(&S) -> S` that
/// opens *another instance on the same data* (a second connection to the
/// same namespace): the concurrency checks then append through several
/// instances, as several processes would. Without it, the peers are clones.
#[macro_export]
macro_rules! event_store_suite {
    ($factory:path) => {
        $crate::event_store_suite!($factory, peer = $crate::__private::clone_peer);
    };
    ($factory:path, peer = $peer:path) => {
        #[allow(unused_imports)]
        mod event_store_conformance {
            use super::*;
            $crate::__conformance_tests! {
                expected_version_absent_stream =>
                    $crate::store::check_expected_version_absent_stream($factory().await),
                expected_version_present_stream =>
                    $crate::store::check_expected_version_present_stream($factory().await),
                idempotent_reappend =>
                    $crate::store::check_idempotent_reappend($factory().await),
                partial_reappend_refused =>
                    $crate::store::check_partial_reappend_refused($factory().await),
                duplicate_event_id_in_other_stream =>
                    $crate::store::check_duplicate_event_id_in_other_stream($factory().await),
                per_stream_order_and_gap_free_positions =>
                    $crate::store::check_per_stream_order_and_gap_free_positions($factory().await),
                read_stream_forward =>
                    $crate::store::check_read_stream_forward($factory().await),
                read_stream_backward =>
                    $crate::store::check_read_stream_backward($factory().await),
                read_all_from_any_position =>
                    $crate::store::check_read_all_from_any_position($factory().await),
                envelope_round_trip =>
                    $crate::store::check_envelope_round_trip($factory().await),
                stream_version_and_next_position =>
                    $crate::store::check_stream_version_and_next_position($factory().await),
                empty_batch_refused =>
                    $crate::store::check_empty_batch_refused($factory().await),
                oversized_event_refused =>
                    $crate::store::check_oversized_event_refused($factory().await),
                batch_too_large_refused =>
                    $crate::store::check_batch_too_large_refused($factory().await),
                invalid_event_type_refused =>
                    $crate::store::check_invalid_event_type_refused($factory().await),
                duplicate_id_in_batch_refused =>
                    $crate::store::check_duplicate_id_in_batch_refused($factory().await),
                catch_up_then_live_under_concurrent_appends =>
                    async {
                        let store = $factory().await;
                        let peers = vec![$peer(&store).await, $peer(&store).await];
                        $crate::subscription::check_catch_up_then_live_under_concurrent_appends(
                            store, peers,
                        ).await
                    },
                resume_from_checkpoint =>
                    async {
                        let store = $factory().await;
                        let peers = vec![$peer(&store).await, $peer(&store).await];
                        $crate::subscription::check_resume_from_checkpoint(store, peers).await
                    },
                concurrent_exact_appends_one_stream =>
                    async {
                        let store = $factory().await;
                        let peers = vec![$peer(&store).await, $peer(&store).await];
                        $crate::subscription::check_concurrent_exact_appends_one_stream(
                            store, peers,
                        ).await
                    },
                concurrent_same_id_appends_once =>
                    async {
                        let store = $factory().await;
                        let peers = vec![$peer(&store).await, $peer(&store).await];
                        $crate::subscription::check_concurrent_same_id_appends_once(
                            store, peers,
                        ).await
                    },
                log_order =>
                    $crate::order::check_total_order_capability($factory().await),
                projection_catch_up_equals_fold =>
                    $crate::projection::check_catch_up_equals_fold(
                        $factory().await,
                        $crate::__private::memory_read_models(),
                    ),
                projection_rebuild_from_zero =>
                    $crate::projection::check_rebuild_from_zero(
                        $factory().await,
                        $crate::__private::memory_read_models(),
                    ),
                projection_resume_from_checkpoint =>
                    $crate::projection::check_resume_from_checkpoint(
                        $factory().await,
                        $crate::__private::memory_read_models(),
                    ),
                projection_live_run =>
                    $crate::projection::check_live_run(
                        $factory().await,
                        $crate::__private::memory_read_models(),
                    ),
                model_check_against_reference =>
                    $crate::model::check_against_reference($factory().await),
            }
        }
    };
}

/// Runs the checks of a partitioned log ([`order`]) against a factory of
/// stores that declare
/// [`LogOrder::Partitioned`](metachat_core::store::LogOrder::Partitioned).
///
/// `$factory` returns a fresh, empty store (`S: EventStore + Clone + Unpin +
/// Send + Sync + 'static`); `$peer` (an `async fn(&S) -> S`) opens another
/// instance on the same data. Expands to `mod partitioned_log_conformance`.
/// A store runs the [`event_store_suite!`] on one partition's
/// [`Partition`](metachat_core::store::Partition) view as well.
#[macro_export]
macro_rules! partitioned_log_suite {
    ($factory:path, peer = $peer:path) => {
        #[allow(unused_imports)]
        mod partitioned_log_conformance {
            use super::*;
            $crate::__conformance_tests! {
                partitions_hold_every_event_in_order =>
                    async {
                        let store = $factory().await;
                        let peers = vec![$peer(&store).await, $peer(&store).await];
                        $crate::order::check_partitions_hold_every_event_in_order(store, peers)
                            .await
                    },
                concurrent_writers_across_instances =>
                    async {
                        let store = $factory().await;
                        let peers = vec![$peer(&store).await, $peer(&store).await];
                        $crate::order::check_concurrent_writers_across_instances(store, peers)
                            .await
                    },
                per_partition_followers =>
                    async {
                        let store = $factory().await;
                        let peers = vec![$peer(&store).await, $peer(&store).await];
                        $crate::order::check_per_partition_followers(
                            store, peers, $crate::__private::memory_read_models(),
                        ).await
                    },
            }
        }
    };
}

/// Runs the read-model conformance suite against a factory.
///
/// `$factory` is a path (resolvable from the invoking module) to an
/// `async fn() -> R` returning fresh, empty read models, where
/// `R: ReadModelStore + Clone + Send + Sync + 'static`.
///
/// Expands to `mod read_model_conformance { … }` holding one `#[test]` per
/// check of [`read_model`] and of [`projection`] (over an in-memory event
/// store); each test builds a two-worker multi-threaded tokio runtime, calls
/// the factory and awaits the check.
#[macro_export]
macro_rules! read_model_suite {
    ($factory:path) => {
        #[allow(unused_imports)]
        mod read_model_conformance {
            use super::*;
            $crate::__conformance_tests! {
                get_put_delete =>
                    $crate::read_model::check_get_put_delete($factory().await),
                versions_start_at_one_and_increase =>
                    $crate::read_model::check_versions_start_at_one_and_increase(
                        $factory().await,
                    ),
                doc_expect_success =>
                    $crate::read_model::check_doc_expect_success($factory().await),
                doc_expect_conflicts =>
                    $crate::read_model::check_doc_expect_conflicts($factory().await),
                failed_commit_applies_nothing =>
                    $crate::read_model::check_failed_commit_applies_nothing($factory().await),
                checkpoint_stored_with_commit =>
                    $crate::read_model::check_checkpoint_stored_with_commit($factory().await),
                scan_prefix_order_paging_limits =>
                    $crate::read_model::check_scan_prefix_order_paging_limits($factory().await),
                collection_isolation =>
                    $crate::read_model::check_collection_isolation($factory().await),
                clear_collection =>
                    $crate::read_model::check_clear_collection($factory().await),
                reset_checkpoint =>
                    $crate::read_model::check_reset_checkpoint($factory().await),
                projection_catch_up_equals_fold =>
                    $crate::projection::check_catch_up_equals_fold(
                        $crate::__private::memory_store(),
                        $factory().await,
                    ),
                projection_rebuild_from_zero =>
                    $crate::projection::check_rebuild_from_zero(
                        $crate::__private::memory_store(),
                        $factory().await,
                    ),
                projection_resume_from_checkpoint =>
                    $crate::projection::check_resume_from_checkpoint(
                        $crate::__private::memory_store(),
                        $factory().await,
                    ),
                projection_live_run =>
                    $crate::projection::check_live_run(
                        $crate::__private::memory_store(),
                        $factory().await,
                    ),
            }
        }
    };
}

/// Runs the event-bus conformance suite against a factory.
///
/// `$factory` is a path (resolvable from the invoking module) to an
/// `async fn() -> B` returning a fresh bus, where
/// `B: EventBus + Clone + Send + Sync + 'static`. Checks use topic and group
/// names with a random suffix, so a bus on a shared broker works too.
///
/// Expands to `mod event_bus_conformance { … }` holding one `#[test]` per
/// check of [`bus`]; each test builds a two-worker multi-threaded tokio
/// runtime, calls the factory and awaits the check.
#[macro_export]
macro_rules! event_bus_suite {
    ($factory:path) => {
        #[allow(unused_imports)]
        mod event_bus_conformance {
            use super::*;
            $crate::__conformance_tests! {
                publish_then_subscribe_in_order =>
                    $crate::bus::check_publish_then_subscribe_in_order($factory().await),
                two_groups_each_get_everything =>
                    $crate::bus::check_two_groups_each_get_everything($factory().await),
                ack_advances_group =>
                    $crate::bus::check_ack_advances_group($factory().await),
                unacked_redelivered =>
                    $crate::bus::check_unacked_redelivered($factory().await),
                per_key_order_interleaved =>
                    $crate::bus::check_per_key_order_interleaved($factory().await),
                relay_publishes_once_and_resumes =>
                    $crate::bus::check_relay_publishes_once_and_resumes($factory().await),
                deduplicator_single_effect =>
                    $crate::bus::check_deduplicator_single_effect($factory().await),
                subscribe_topics =>
                    $crate::bus::check_subscribe_topics($factory().await),
                broadcast_reaches_every_partition =>
                    $crate::bus::check_broadcast_reaches_every_partition($factory().await),
            }
        }
    };
}
