//! The backends the server runs on, chosen at start by configuration
//! (`--store`, `--read-models`, `--bus`), not by a rebuild: the rest of the
//! server sees only the toolkit's contracts, as trait objects.
//!
//! | setting | `sled` (default) | `cassandra` / `kafka` |
//! |---|---|---|
//! | `--store` | the embedded log in `--data-dir` | `CassandraEventStore` (`CASSANDRA_*`) |
//! | `--read-models` | the same sled database | `CassandraReadModels` (`CASSANDRA_*`) |
//! | `--bus` | `none`: no bus | `kafka`: the outbox relay publishes every event (`KAFKA_*`) |
//!
//! When both the store and the read models are on one backend they share one
//! database (sled) or one session (Cassandra).

use std::sync::Arc;

use anyhow::Context;
use metachat_adapters::cassandra::{CassandraConfig, CassandraDatabase, CassandraKeyStore};
use metachat_adapters::kafka::{KafkaConfig, KafkaEventBus};
use metachat_adapters::sled::{SledConfig, SledDatabase};
use metachat_core::bus::EventBus;
use metachat_core::read_model::ReadModelStore;
use metachat_core::store::EventStore;

use crate::config::{BusChoice, Config, DurabilityChoice, StoreChoice};

/// The event store, whatever the backend.
pub(crate) type DynStore = Arc<dyn EventStore>;
/// The read-model store, whatever the backend.
pub(crate) type DynReadModels = Arc<dyn ReadModelStore>;
/// The event bus, whatever the backend.
pub(crate) type DynBus = Arc<dyn EventBus>;

/// The opened backends.
pub(crate) struct Backends {
    /// The event store.
    pub(crate) store: DynStore,
    /// The read models (and the projections' checkpoints, the sessions).
    pub(crate) read_models: DynReadModels,
    /// The data keys' table, with Cassandra read models.
    pub(crate) cassandra_keys: Option<CassandraKeyStore>,
    /// The bus the relay publishes to, when one is configured.
    pub(crate) bus: Option<(DynBus, String)>,
    /// The same bus as Kafka (watermarks, deliveries with their offsets).
    pub(crate) kafka: Option<KafkaEventBus>,
    /// The sled database, when one is open: flushed by [`Backends::close`].
    sled: Option<SledDatabase>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("sled", &self.sled.is_some())
            .field("bus", &self.bus.as_ref().map(|(_, prefix)| prefix))
            .finish_non_exhaustive()
    }
}

impl Backends {
    /// Opens what `config` names: the sled database in the data directory
    /// when the store or the read models are on sled, one Cassandra session
    /// (from `CASSANDRA_NODES` and the other `CASSANDRA_*` variables) when
    /// either is on Cassandra, and a Kafka client (from `KAFKA_BROKERS` and
    /// the other `KAFKA_*` variables) with `--bus kafka`.
    pub(crate) async fn open(config: &Config) -> anyhow::Result<Self> {
        if !config.roles.is_embedded() {
            anyhow::ensure!(
                config.store == StoreChoice::Cassandra
                    && config.read_models == StoreChoice::Cassandra
                    && config.bus == BusChoice::Kafka,
                "--roles {}: a distributed process needs --store cassandra, --read-models \
                 cassandra and --bus kafka (the services share the event store and talk \
                 through Kafka); use --roles all for the embedded server",
                config.roles
            );
        }
        let uses = |choice| config.store == choice || config.read_models == choice;
        let sled = if uses(StoreChoice::Sled) {
            let db = SledDatabase::open(
                SledConfig::new(&config.data_dir).durability(config.durability()),
            )
            .with_context(|| {
                format!("opening the sled database in {}", config.data_dir.display())
            })?;
            Some(db)
        } else {
            if config.durability == DurabilityChoice::Periodic {
                tracing::warn!(
                    "--durability periodic applies to sled only; the Cassandra backends \
                     acknowledge writes at their configured consistency"
                );
            }
            None
        };
        let cassandra = if uses(StoreChoice::Cassandra) {
            let cassandra_config = CassandraConfig::from_env()
                .and_then(|b| b.build())
                .context("configuring Cassandra (CASSANDRA_NODES, CASSANDRA_KEYSPACE, ...)")?;
            // The server's followers (projections, the mood worker, the
            // relay) read one total order; the partitioned log comes with
            // the distributed roles.
            anyhow::ensure!(
                cassandra_config.partitions() == 1,
                "CASSANDRA_PARTITIONS={}: this server reads one total order of events; \
                 run it on a one-partition namespace (CASSANDRA_PARTITIONS=1, the default)",
                cassandra_config.partitions()
            );
            let db = CassandraDatabase::connect(&cassandra_config)
                .await
                .with_context(|| {
                    format!("connecting to Cassandra at {:?}", cassandra_config.nodes())
                })?;
            tracing::info!(
                nodes = ?cassandra_config.nodes(),
                keyspace = cassandra_config.keyspace(),
                namespace = cassandra_config.namespace(),
                "connected to Cassandra"
            );
            Some(db)
        } else {
            None
        };
        let store: DynStore = match config.store {
            StoreChoice::Sled => Arc::new(opened(sled.as_ref())?.event_store()),
            StoreChoice::Cassandra => Arc::new(opened(cassandra.as_ref())?.event_store()),
        };
        let read_models: DynReadModels = match config.read_models {
            StoreChoice::Sled => Arc::new(opened(sled.as_ref())?.read_models()),
            StoreChoice::Cassandra if config.roles.is_embedded() => {
                Arc::new(opened(cassandra.as_ref())?.read_models())
            }
            StoreChoice::Cassandra => {
                // A distributed process's read models are its own: a
                // namespace no other service reads.
                let db = opened(cassandra.as_ref())?;
                let ns = config.read_model_namespace_for(db.read_models().namespace());
                let own = db
                    .read_models()
                    .in_namespace(&ns)
                    .with_context(|| format!("the read-model namespace {ns:?}"))?;
                tracing::info!(namespace = %ns, "read models in a namespace of this process's own");
                Arc::new(own)
            }
        };
        let cassandra_keys = match config.read_models {
            StoreChoice::Sled => None,
            StoreChoice::Cassandra => Some(opened(cassandra.as_ref())?.key_store()),
        };
        let kafka = match config.bus {
            BusChoice::None => None,
            BusChoice::Kafka => {
                let mut kafka_config = KafkaConfig::from_env()
                    .context("configuring Kafka (KAFKA_BROKERS, KAFKA_TOPIC_PREFIX, ...)")?;
                if !config.roles.is_embedded() {
                    kafka_config = kafka_config.client_id(format!(
                        "metachat-{}-{}",
                        config.roles.to_string().replace(',', "-"),
                        config.instance
                    ));
                }
                let bus = KafkaEventBus::new(
                    kafka_config
                        .build()
                        .context("configuring Kafka (KAFKA_BROKERS, KAFKA_TOPIC_PREFIX, ...)")?,
                )
                .context("connecting to Kafka")?;
                tracing::info!(topic_prefix = %bus.config().topic_prefix(), "Kafka configured");
                Some(bus)
            }
        };
        let bus = kafka.as_ref().map(|k| {
            (
                Arc::new(k.clone()) as DynBus,
                k.config().topic_prefix().to_owned(),
            )
        });
        Ok(Backends {
            store,
            read_models,
            cassandra_keys,
            bus,
            kafka,
            sled,
        })
    }

    /// Makes what was written durable before the process exits (sled's
    /// final flush; the Cassandra and Kafka clients acknowledged every write
    /// already).
    pub(crate) async fn close(&self) -> metachat_core::Result<()> {
        if let Some(db) = &self.sled {
            db.event_store().close().await?;
        }
        Ok(())
    }
}

/// The database opened for a chosen backend (opened above whenever chosen).
fn opened<T>(db: Option<&T>) -> anyhow::Result<&T> {
    db.context("a chosen backend was not opened")
}
