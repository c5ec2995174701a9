//! # metachat-shred
//!
//! Crypto-shredding for an immutable event log: personal values are sealed
//! with a per-subject [`DataKey`] (XChaCha20-Poly1305, bound to their place
//! by associated data), the keys live in a [`KeyVault`] over any
//! [`ReadModelStore`](metachat_core::read_model::ReadModelStore), never in
//! the log, and erasing a subject destroys its key: every value it sealed, in
//! the log, in read models and in backups, is unreadable from then on.
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

mod seal;
pub mod vault;

pub use seal::{open, open_text, seal, DataKey, Sealed, ShredError, KEY_LEN, NONCE_LEN, TAG_LEN};
pub use vault::{KeyState, KeyVault, DATA_KEYS, SWEEP_CHECKPOINT};
