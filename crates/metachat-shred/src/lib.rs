//! # metachat-shred
//!
//! Crypto-shredding for an immutable event log: personal values are sealed
//! with a per-subject [`DataKey`] (XChaCha20-Poly1305, bound to their place
//! by associated data), the keys live in a [`KeyVault`], never in the log,
//! and erasing a subject destroys its key: every value it sealed, in the
//! log, in read models and in backups, is unreadable from then on.
//!
//! The vault keeps keys in a [`KeyStore`]: [`DirKeys`] (one file per key,
//! removed for real on erasure) or any
//! [`ReadModelStore`](metachat_core::read_model::ReadModelStore) (where the
//! old key may survive in the store's history for a while: see [`keys`]).
//!
//! A *subject* is whoever the data is about, named by a UUID (MetaChat uses
//! the user id). Depend on this crate to keep personal data in events; it
//! knows no application and has no cargo features.
//!
//! ```
//! use metachat_core::memory::InMemoryReadModels;
//! use metachat_shred::{open_text, seal, KeyVault, ShredError};
//! use uuid::Uuid;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let vault = KeyVault::new(InMemoryReadModels::new());
//! let anna = Uuid::new_v4();
//! let key = vault.get_or_create(anna).await?;
//! let sealed = seal(&key, b"entry/1/text", b"dear diary")?;
//! assert_eq!(open_text(&key, b"entry/1/text", &sealed)?, "dear diary");
//!
//! vault.shred(anna).await?; // erasure: the key is gone for good
//! assert!(vault.get(anna).await?.is_none());
//! assert!(matches!(vault.get_or_create(anna).await, Err(ShredError::Shredded { .. })));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod dir_keys;
pub mod keys;
mod seal;
pub mod vault;

pub use dir_keys::DirKeys;
pub use keys::{KeyState, KeyStore, DATA_KEYS, SWEEP_CHECKPOINT};
pub use seal::{
    open, open_json, open_text, seal, seal_json, DataKey, Sealed, ShredError, KEY_LEN, NONCE_LEN,
    TAG_LEN,
};
pub use vault::KeyVault;
