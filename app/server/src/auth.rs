//! Passwords (argon2id, off the async threads) and bearer tokens (32 random
//! bytes, stored only as their SHA-256, with an expiry; cached in memory).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use base64::Engine;
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore, ReadModelStoreExt, WriteOp};
use metachat_domain::UserId;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::limits::HashGate;
use crate::state::AppState;

/// Read-model collection of sessions, keyed by the token's SHA-256 (hex).
const SESSIONS: &str = "server_sessions";
/// Read-model collection `{user_id}/{token hash}` → `{}`: a user's sessions.
const SESSIONS_BY_USER: &str = "server_sessions_by_user";
/// The most sessions revoked per page on erasure, or swept per page.
const PAGE: usize = 256;
/// Expired sessions deleted by the sweep.
pub(crate) const SESSIONS_PURGED: &str = "metachat_sessions_purged_total";

/// Hashes `password` with argon2id (default parameters), here and now.
fn hash_now(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(ApiError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

/// Verifies `password` against a PHC `hash`, here and now. A hash that
/// does not parse verifies nothing.
fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Hashes `password` with argon2id on a blocking thread, once `gate` has
/// a slot (else 503 `busy`).
pub(crate) async fn hash_password(gate: &HashGate, password: String) -> Result<String, ApiError> {
    gate.run(move || hash_now(&password)).await?
}

/// Verifies `password` against a PHC `hash` on a blocking thread, once
/// `gate` has a slot (else 503 `busy`).
pub(crate) async fn verify_password(
    gate: &HashGate,
    password: String,
    hash: String,
) -> Result<bool, ApiError> {
    gate.run(move || verify_now(&password, &hash)).await
}

/// A stored session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Session {
    user_id: UserId,
    /// Seconds since the Unix epoch.
    expires_at: u64,
}

/// A freshly issued token.
#[derive(Debug)]
pub(crate) struct Issued {
    /// The bearer token (shown once, never stored).
    pub(crate) token: String,
    /// Expiry, seconds since the Unix epoch.
    pub(crate) expires_at: u64,
}

/// Bearer tokens over a read-model store, with an in-memory cache of the
/// sessions seen.
pub(crate) struct Tokens<R> {
    store: R,
    ttl: Duration,
    cache: RwLock<HashMap<[u8; 32], Session>>,
}

impl<R> std::fmt::Debug for Tokens<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("ttl", &self.ttl)
            .field("cached", &self.cache.read().len())
            .finish()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8; 32]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl<R: ReadModelStore> Tokens<R> {
    /// Tokens valid for `ttl`, stored in `store`.
    pub(crate) fn new(store: R, ttl: Duration) -> Self {
        Tokens {
            store,
            ttl,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Issues a token for `user_id`, stored durably before it is returned.
    pub(crate) async fn issue(&self, user_id: UserId) -> Result<Issued, ApiError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(ApiError::internal)?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let hash = digest(&token);
        let key = hex(&hash);
        let session = Session {
            user_id,
            expires_at: now_secs().saturating_add(self.ttl.as_secs()),
        };
        let mut commit = Commit::default();
        commit
            .put_json(SESSIONS, &key, &session, DocExpect::Any)
            .map_err(ApiError::internal)?;
        commit
            .put_json(
                SESSIONS_BY_USER,
                &format!("{user_id}/{key}"),
                &serde_json::json!({}),
                DocExpect::Any,
            )
            .map_err(ApiError::internal)?;
        self.store.commit(commit).await.map_err(ApiError::store)?;
        self.cache.write().insert(hash, session);
        Ok(Issued {
            token,
            expires_at: session.expires_at,
        })
    }

    /// The user a token belongs to, if it is known, unexpired and not
    /// revoked. Returns the token's hash too (to revoke it).
    pub(crate) async fn check(&self, token: &str) -> Result<(UserId, [u8; 32]), ApiError> {
        let hash = digest(token);
        let cached = self.cache.read().get(&hash).copied();
        let session = match cached {
            Some(s) => s,
            None => {
                let Some((s, _)) = self
                    .store
                    .get_json::<Session>(SESSIONS, &hex(&hash))
                    .await
                    .map_err(ApiError::store)?
                else {
                    return Err(ApiError::Unauthorized);
                };
                self.cache.write().insert(hash, s);
                s
            }
        };
        if session.expires_at <= now_secs() {
            self.cache.write().remove(&hash);
            return Err(ApiError::Unauthorized);
        }
        Ok((session.user_id, hash))
    }

    /// Revokes one token.
    pub(crate) async fn revoke(&self, user_id: UserId, hash: &[u8; 32]) -> Result<(), ApiError> {
        let key = hex(hash);
        let commit = Commit {
            ops: vec![
                WriteOp::Delete {
                    collection: SESSIONS.into(),
                    key: key.clone(),
                    expect: DocExpect::Any,
                },
                WriteOp::Delete {
                    collection: SESSIONS_BY_USER.into(),
                    key: format!("{user_id}/{key}"),
                    expect: DocExpect::Any,
                },
            ],
            checkpoint: None,
        };
        self.cache.write().remove(hash);
        self.store.commit(commit).await.map_err(ApiError::store)
    }

    /// Revokes every token of `user_id`.
    pub(crate) async fn revoke_all(&self, user_id: UserId) -> Result<(), ApiError> {
        self.cache.write().retain(|_, s| s.user_id != user_id);
        let prefix = format!("{user_id}/");
        loop {
            let page = self
                .store
                .scan_prefix(SESSIONS_BY_USER, &prefix, None, PAGE)
                .await
                .map_err(ApiError::store)?;
            if page.is_empty() {
                break;
            }
            let mut commit = Commit::default();
            for (key, _) in page {
                if let Some(hash) = key.strip_prefix(&prefix) {
                    commit.ops.push(WriteOp::Delete {
                        collection: SESSIONS.into(),
                        key: hash.to_owned(),
                        expect: DocExpect::Any,
                    });
                }
                commit.ops.push(WriteOp::Delete {
                    collection: SESSIONS_BY_USER.into(),
                    key,
                    expect: DocExpect::Any,
                });
            }
            self.store.commit(commit).await.map_err(ApiError::store)?;
        }
        // A request that read a session from the store during the scan
        // could have cached it again.
        self.cache.write().retain(|_, s| s.user_id != user_id);
        Ok(())
    }

    /// Deletes every expired session from both collections (and the
    /// cache); returns how many. A session that does not decode is
    /// deleted too: nothing can use it.
    pub(crate) async fn purge_expired(&self) -> Result<usize, ApiError> {
        let now = now_secs();
        self.cache.write().retain(|_, s| s.expires_at > now);
        let mut purged = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .scan_prefix(SESSIONS, "", after.as_deref(), PAGE)
                .await
                .map_err(ApiError::store)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            let full = page.len() == PAGE;
            let mut commit = Commit::default();
            for (key, doc) in page {
                let session = doc.json::<Session>().ok();
                if session.is_some_and(|s| s.expires_at > now) {
                    continue;
                }
                if let Some(s) = session {
                    commit.ops.push(WriteOp::Delete {
                        collection: SESSIONS_BY_USER.into(),
                        key: format!("{}/{key}", s.user_id),
                        expect: DocExpect::Any,
                    });
                }
                commit.ops.push(WriteOp::Delete {
                    collection: SESSIONS.into(),
                    key,
                    expect: DocExpect::Any,
                });
                purged += 1;
            }
            if !commit.ops.is_empty() {
                self.store.commit(commit).await.map_err(ApiError::store)?;
            }
            if !full {
                break;
            }
        }
        metrics::counter!(SESSIONS_PURGED).increment(purged as u64);
        Ok(purged)
    }
}

/// The authenticated caller of a route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthUser {
    /// Who.
    pub(crate) user_id: UserId,
    /// The SHA-256 of the bearer token used.
    pub(crate) token_hash: [u8; 32],
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 256 {
            return Err(ApiError::Unauthorized);
        }
        let (user_id, token_hash) = state.inner.tokens.check(token).await?;
        Ok(AuthUser {
            user_id,
            token_hash,
        })
    }
}

/// A hash that no password verifies against quickly: the work a login
/// with an unknown email does, so its timing matches a wrong password.
pub(crate) async fn dummy_hash() -> Result<Arc<str>, ApiError> {
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(ApiError::internal)?;
    let password = base64::engine::general_purpose::STANDARD.encode(random);
    let hash = tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(ApiError::internal)??;
    Ok(hash.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metachat_core::memory::InMemoryReadModels;

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let gate = HashGate::new(2, Duration::from_secs(60));
        let h = hash_password(&gate, "correct horse".into())
            .await
            .expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&gate, "correct horse".into(), h.clone())
            .await
            .expect("verify"));
        assert!(!verify_password(&gate, "wrong horse".into(), h)
            .await
            .expect("verify"));
        assert!(!verify_password(&gate, "x".into(), "not a hash".into())
            .await
            .expect("verify"));
    }

    #[tokio::test]
    async fn the_sweep_deletes_expired_sessions_only() {
        let store = Arc::new(InMemoryReadModels::new());
        let (a, b) = (UserId::new(), UserId::new());
        let live = Tokens::new(store.clone(), Duration::from_secs(3_600));
        let kept = live.issue(a).await.expect("issue");
        let dead = Tokens::new(store.clone(), Duration::ZERO);
        for _ in 0..(PAGE + 3) {
            dead.issue(b).await.expect("issue");
        }
        dead.issue(a).await.expect("issue");
        let count = |c: &'static str| {
            let store = store.clone();
            async move {
                store
                    .scan_prefix(c, "", None, 10_000)
                    .await
                    .expect("scan")
                    .len()
            }
        };
        assert_eq!(count(SESSIONS).await, PAGE + 5);
        assert_eq!(count(SESSIONS_BY_USER).await, PAGE + 5);

        let purged = live.purge_expired().await.expect("sweep");
        assert_eq!(purged, PAGE + 4, "every expired session, over pages");
        assert_eq!(count(SESSIONS).await, 1);
        let by_user = store
            .scan_prefix(SESSIONS_BY_USER, "", None, 10)
            .await
            .expect("scan");
        assert_eq!(by_user.len(), 1);
        assert!(by_user[0].0.starts_with(&format!("{a}/")));
        assert_eq!(live.check(&kept.token).await.expect("kept").0, a);
        assert_eq!(live.purge_expired().await.expect("again"), 0);
    }

    #[tokio::test]
    async fn tokens_are_checked_revoked_and_expire() {
        let store = Arc::new(InMemoryReadModels::new());
        let tokens = Tokens::new(store.clone(), Duration::from_secs(60));
        let (a, b) = (UserId::new(), UserId::new());
        let ta = tokens.issue(a).await.expect("issue");
        let ta2 = tokens.issue(a).await.expect("issue");
        let tb = tokens.issue(b).await.expect("issue");
        assert_eq!(ta.token.len(), 43);
        assert_eq!(tokens.check(&ta.token).await.expect("valid").0, a);
        assert!(tokens.check("nope").await.is_err());

        // A fresh cache reads the stored sessions (a restart).
        let fresh = Tokens::new(store.clone(), Duration::from_secs(60));
        assert_eq!(fresh.check(&tb.token).await.expect("valid").0, b);

        let (_, hash) = tokens.check(&ta.token).await.expect("valid");
        tokens.revoke(a, &hash).await.expect("revoke");
        assert!(tokens.check(&ta.token).await.is_err());
        assert!(tokens.check(&ta2.token).await.is_ok());
        tokens.revoke_all(a).await.expect("revoke all");
        assert!(tokens.check(&ta2.token).await.is_err());
        assert!(fresh.check(&ta2.token).await.is_err());
        assert!(tokens.check(&tb.token).await.is_ok());

        let expired = Tokens::new(store, Duration::ZERO);
        let t = expired.issue(a).await.expect("issue");
        assert!(expired.check(&t.token).await.is_err());
    }
}
