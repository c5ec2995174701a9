//! Versioned schema migrations: the keyspace, then numbered steps recorded in
//! `schema_migrations`. Every step is idempotent DDL (`IF NOT EXISTS`), so two
//! processes migrating at once both end at the same schema; a step is
//! recorded after it ran, and a recorded step is never run again.

use scylla::client::session::Session;

use super::config::CassandraConfig;
use super::error;
use metachat_core::Result;

/// One migration: its number, what it does, and its statements (`{ks}`
/// stands for the keyspace).
struct Migration {
    version: i32,
    description: &'static str,
    statements: &'static [&'static str],
}

/// Every migration, in order. Never edit a released one: add a new step.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description:
            "read models: documents by (namespace, collection), key; projection checkpoints",
        statements: &[
            "CREATE TABLE IF NOT EXISTS {ks}.documents (ns text, collection text, key text, \
             value blob, version bigint, PRIMARY KEY ((ns, collection), key))",
            "CREATE TABLE IF NOT EXISTS {ks}.checkpoints (ns text, projection text, \
             next_position bigint, PRIMARY KEY ((ns), projection))",
        ],
    },
    Migration {
        version: 2,
        description:
            "event store: log head and stream heads, events by stream, global log, event ids",
        statements: &[
            "CREATE TABLE IF NOT EXISTS {ks}.log_heads (ns text, stream text, version bigint, \
             next_position bigint static, committed bigint static, pending blob static, \
             PRIMARY KEY ((ns), stream))",
            "CREATE TABLE IF NOT EXISTS {ks}.stream_events (ns text, stream text, version bigint, \
             position bigint, record blob, PRIMARY KEY ((ns, stream), version))",
            "CREATE TABLE IF NOT EXISTS {ks}.global_log (ns text, bucket bigint, position bigint, \
             record blob, PRIMARY KEY ((ns, bucket), position))",
            "CREATE TABLE IF NOT EXISTS {ks}.event_ids (ns text, event_id uuid, stream text, \
             version bigint, position bigint, PRIMARY KEY ((ns, event_id)))",
        ],
    },
    Migration {
        version: 3,
        description: "data keys: one row per subject, tombstones collected after one day",
        statements: &[
            "CREATE TABLE IF NOT EXISTS {ks}.data_keys (ns text, subject uuid, key blob, \
             shredded boolean, PRIMARY KEY ((ns, subject))) WITH gc_grace_seconds = 86400",
        ],
    },
    Migration {
        version: 4,
        description: "event store: the number of partitions of each namespace's log",
        statements: &[
            "CREATE TABLE IF NOT EXISTS {ks}.log_layout (ns text PRIMARY KEY, partitions int)",
        ],
    },
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 4;

/// Creates the keyspace (if allowed) and runs every migration not yet recorded.
pub(crate) async fn migrate(session: &Session, config: &CassandraConfig) -> Result<()> {
    let ks = &config.keyspace;
    if config.create_keyspace {
        let ddl = format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
            config.replication.cql()
        );
        session
            .query_unpaged(ddl, ())
            .await
            .map_err(|e| error::execution("create keyspace", e))?;
    }
    session
        .query_unpaged(
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, \
                 description text, applied_at timestamp)"
            ),
            (),
        )
        .await
        .map_err(|e| error::execution("migrate", e))?;
    session
        .await_schema_agreement()
        .await
        .map_err(error::schema)?;
    let applied = session
        .query_unpaged(format!("SELECT version FROM {ks}.schema_migrations"), ())
        .await
        .map_err(|e| error::execution("migrate", e))?
        .into_rows_result()
        .map_err(|e| error::shape("migrate", e))?
        .rows::<(i32,)>()
        .map_err(|e| error::shape("migrate", e))?
        .map(|r| r.map(|(v,)| v))
        .collect::<Result<Vec<i32>, _>>()
        .map_err(|e| error::shape("migrate", e))?;
    for m in MIGRATIONS {
        if applied.contains(&m.version) {
            continue;
        }
        tracing::info!(keyspace = %ks, version = m.version, "cassandra: migrating: {}", m.description);
        for s in m.statements {
            session
                .query_unpaged(s.replace("{ks}", ks), ())
                .await
                .map_err(|e| error::execution("migrate", e))?;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(error::schema)?;
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.schema_migrations (version, description, applied_at) \
                     VALUES (?, ?, toTimestamp(now()))"
                ),
                (m.version, m.description),
            )
            .await
            .map_err(|e| error::execution("migrate", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
        assert!(MIGRATIONS
            .iter()
            .flat_map(|m| m.statements)
            .all(|s| s.contains("IF NOT EXISTS")));
    }
}
