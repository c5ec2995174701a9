//! The server's secrets: where the users' data keys live ([`Keys`]) and the
//! blind-index key that hides email addresses ([`blind_index_key`]).
//!
//! | read models | data keys | what erasure leaves |
//! |---|---|---|
//! | `sled` | one file per key in `<data-dir>/keys` ([`DirKeys`]) | nothing under the data directory: the file is overwritten, removed and its directory synced |
//! | `cassandra` | rows of the `data_keys` table ([`CassandraKeyStore`]) | the old key in SSTables until a compaction after the table's `gc_grace_seconds` (one day), and in any snapshot or backup until it expires |
//!
//! The blind-index key comes from `METACHAT_INDEX_KEY` (64 hex digits) when
//! set, else from `--index-key-file` (default `<data-dir>/index.key`,
//! created with mode 0600 on first start). Every process serving the same
//! users must use the same key; whoever holds it can test a guessed
//! address against the reservation streams, so keep it apart from the data
//! in production (a secret mounted as a file).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use async_trait::async_trait;
use metachat_core::error::Result;
use metachat_domain::{BlindIndexKey, DataKey, DirKeys, KeyState, KeyStore};
use uuid::Uuid;

use metachat_adapters::cassandra::CassandraKeyStore;

use crate::backend::Backends;
use crate::config::{Config, StoreChoice};

/// Environment variable holding the blind-index key as 64 hex digits.
pub(crate) const INDEX_KEY_ENV: &str = "METACHAT_INDEX_KEY";

/// Where the data keys are kept (see the [module docs](self)).
#[derive(Clone)]
pub(crate) enum Keys {
    /// One file per key (with sled read models).
    Dir(DirKeys),
    /// The `data_keys` table (with Cassandra read models).
    Cassandra(CassandraKeyStore),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Dir(k) => f.debug_tuple("Dir").field(k).finish(),
            Keys::Cassandra(k) => f.debug_tuple("Cassandra").field(k).finish(),
        }
    }
}

impl Keys {
    /// The key store `config` calls for.
    pub(crate) fn open(config: &Config, backends: &Backends) -> anyhow::Result<Self> {
        match config.read_models {
            StoreChoice::Sled => {
                let dir = config.data_dir.join("keys");
                let keys = DirKeys::open(&dir)
                    .with_context(|| format!("opening the key directory {}", dir.display()))?;
                Ok(Keys::Dir(keys))
            }
            StoreChoice::Cassandra => {
                let keys = backends
                    .cassandra_keys
                    .clone()
                    .context("Cassandra read models without a Cassandra key store")?;
                tracing::info!(
                    "data keys in Cassandra's data_keys table: an erased user's key survives \
                     in SSTables until a compaction after gc_grace_seconds (one day)"
                );
                Ok(Keys::Cassandra(keys))
            }
        }
    }
}

#[async_trait]
impl KeyStore for Keys {
    async fn load(&self, subject: Uuid) -> Result<KeyState> {
        match self {
            Keys::Dir(k) => k.load(subject).await,
            Keys::Cassandra(k) => k.load(subject).await,
        }
    }

    async fn create(&self, subject: Uuid, key: &DataKey) -> Result<KeyState> {
        match self {
            Keys::Dir(k) => k.create(subject, key).await,
            Keys::Cassandra(k) => k.create(subject, key).await,
        }
    }

    async fn shred(&self, subjects: &[Uuid], sweep_next: Option<u64>) -> Result<()> {
        match self {
            Keys::Dir(k) => k.shred(subjects, sweep_next).await,
            Keys::Cassandra(k) => k.shred(subjects, sweep_next).await,
        }
    }

    async fn sweep_checkpoint(&self) -> Result<Option<u64>> {
        match self {
            Keys::Dir(k) => k.sweep_checkpoint().await,
            Keys::Cassandra(k) => k.sweep_checkpoint().await,
        }
    }
}

fn parse_hex_key(text: &str) -> Option<BlindIndexKey> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(BlindIndexKey::from_bytes(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The blind-index key: from [`INDEX_KEY_ENV`], else read from `file`, else
/// made and written to `file` (mode 0600).
pub(crate) fn blind_index_key(file: &Path) -> anyhow::Result<BlindIndexKey> {
    if let Ok(text) = std::env::var(INDEX_KEY_ENV) {
        return parse_hex_key(&text)
            .with_context(|| format!("{INDEX_KEY_ENV} must be 64 hex digits (32 bytes)"));
    }
    match std::fs::read_to_string(file) {
        Ok(text) => parse_hex_key(&text).with_context(|| {
            format!(
                "the blind-index key file {} must hold 64 hex digits",
                file.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = BlindIndexKey::generate();
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options
                .open(file)
                .with_context(|| format!("creating the blind-index key file {}", file.display()))?;
            f.write_all(hex(key.as_bytes()).as_bytes())?;
            f.sync_all()?;
            tracing::warn!(
                file = %file.display(),
                "made a new blind-index key; keep it (and give the same one to every process) \
                 or registered addresses can no longer be found"
            );
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sub/index.key");
        let made = blind_index_key(&file).expect("made");
        assert_eq!(blind_index_key(&file).expect("read"), made);
        std::fs::write(&file, "not hex").expect("write");
        assert!(blind_index_key(&file).is_err());
    }

    #[test]
    fn hex_keys_parse_strictly() {
        let k = parse_hex_key(&"ab".repeat(32)).expect("valid");
        assert_eq!(k.as_bytes(), &[0xab; 32]);
        assert!(parse_hex_key(&"ab".repeat(31)).is_none());
        assert!(parse_hex_key(&"zz".repeat(32)).is_none());
        assert!(parse_hex_key(&"é".repeat(32)).is_none());
    }
}
