//! Passwords (argon2id, off the async threads), sessions and bearer tokens.
//!
//! A login opens a *session* (kept by the `user` role in its read models,
//! keyed by a random session id) and returns two tokens: a short-lived
//! access token, signed ([`crate::token`]) and checked by every role
//! without a call, and a refresh token (`{session id}.{32 random bytes}`,
//! stored only as a SHA-256) that `POST /v1/sessions/refresh` trades for a
//! new pair. Logout and erasure end sessions: the `user` role deletes them
//! (its own checks refuse them at once) and records the revocation as an
//! event, which the other roles learn from the bus ([`Revocations`]).

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
use crate::revocations::Revocations;
use crate::state::{AppState, ReadModels};
use crate::token::{now_secs, TokenClaims, TokenSigner, TokenVerifier, MAX_TOKEN_LEN};
use uuid::Uuid;

/// Read-model collection of sessions, keyed by the session id.
const SESSIONS: &str = "server_sessions";
/// Read-model collection `{user_id}/{session id}` → `{}`: a user's sessions.
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

/// A stored session: what a refresh token and the user role's token check
/// look up, keyed by the session id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user_id: UserId,
    /// The SHA-256 (hex) of the refresh token's secret part.
    refresh_hash: String,
    /// When the session ends (its refresh token's expiry), seconds since
    /// the Unix epoch.
    expires_at: u64,
}

/// A freshly issued pair of tokens.
#[derive(Debug)]
pub(crate) struct Issued {
    /// The access token (`Authorization: Bearer …`), shown once.
    pub(crate) token: String,
    /// Its expiry, seconds since the Unix epoch.
    pub(crate) expires_at: u64,
    /// The refresh token (`POST /v1/sessions/refresh`), shown once, stored
    /// only as a hash.
    pub(crate) refresh_token: String,
    /// The session's end, seconds since the Unix epoch.
    pub(crate) refresh_expires_at: u64,
    /// Whose session.
    pub(crate) user_id: UserId,
}

/// Sessions of the `user` role over a read-model store: signs access
/// tokens, keeps the sessions (for refresh and for its own exact checks),
/// revokes them. Caches the sessions it has seen.
pub(crate) struct Tokens<R> {
    store: R,
    signer: Arc<TokenSigner>,
    ttl: Duration,
    refresh_ttl: Duration,
    cache: RwLock<HashMap<Uuid, Session>>,
}

impl<R> std::fmt::Debug for Tokens<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("ttl", &self.ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("cached", &self.cache.read().len())
            .finish()
    }
}

fn digest(secret: &str) -> String {
    use std::fmt::Write;
    let bytes: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `{session id}.{secret}`: a refresh token names its session.
fn split_refresh(token: &str) -> Option<(Uuid, &str)> {
    let (sid, secret) = token.split_once('.')?;
    if secret.len() != 43 {
        return None;
    }
    Some((sid.parse().ok()?, secret))
}

impl<R: ReadModelStore> Tokens<R> {
    /// Sessions stored in `store`, access tokens signed by `signer`, valid
    /// for `ttl`; sessions (refresh tokens) last `refresh_ttl`.
    pub(crate) fn new(
        store: R,
        signer: Arc<TokenSigner>,
        ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        Tokens {
            store,
            signer,
            ttl,
            refresh_ttl,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// How long an access token lasts.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The verifier of the tokens signed here.
    pub(crate) fn verifier(&self) -> &TokenVerifier {
        self.signer.verifier()
    }

    fn new_refresh(session_id: Uuid) -> Result<(String, String), ApiError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(ApiError::internal)?;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let hash = digest(&secret);
        Ok((format!("{session_id}.{secret}"), hash))
    }

    /// Opens a session for `user_id`, stored durably before its tokens are
    /// returned.
    pub(crate) async fn issue(&self, user_id: UserId) -> Result<Issued, ApiError> {
        let session_id = Uuid::new_v4();
        let (refresh_token, refresh_hash) = Self::new_refresh(session_id)?;
        let session = Session {
            user_id,
            refresh_hash,
            expires_at: now_secs().saturating_add(self.refresh_ttl.as_secs()),
        };
        let key = session_id.to_string();
        let mut commit = Commit::default();
        commit
            .put_json(SESSIONS, &key, &session, DocExpect::Absent)
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
        let refresh_expires_at = session.expires_at;
        self.cache.write().insert(session_id, session);
        self.sign(user_id, session_id, refresh_token, refresh_expires_at)
    }

    fn sign(
        &self,
        user_id: UserId,
        session_id: Uuid,
        refresh_token: String,
        refresh_expires_at: u64,
    ) -> Result<Issued, ApiError> {
        // An access token never outlives its session.
        let left = refresh_expires_at.saturating_sub(now_secs());
        let ttl = self.ttl.min(Duration::from_secs(left));
        let (token, expires_at) = self.signer.sign(user_id, session_id, ttl)?;
        Ok(Issued {
            token,
            expires_at,
            refresh_token,
            refresh_expires_at,
            user_id,
        })
    }

    /// A new access token (and a new refresh token: the one given is used
    /// up) for the session `refresh_token` names, if it is live.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<Issued, ApiError> {
        let (session_id, secret) =
            split_refresh(refresh_token).ok_or(ApiError::InvalidRefreshToken)?;
        let key = session_id.to_string();
        let Some((session, version)) = self
            .store
            .get_json::<Session>(SESSIONS, &key)
            .await
            .map_err(ApiError::store)?
        else {
            return Err(ApiError::InvalidRefreshToken);
        };
        let presented = digest(secret);
        let same: bool = presented
            .as_bytes()
            .iter()
            .zip(session.refresh_hash.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
            && presented.len() == session.refresh_hash.len();
        if !same || session.expires_at <= now_secs() {
            return Err(ApiError::InvalidRefreshToken);
        }
        let (next_token, next_hash) = Self::new_refresh(session_id)?;
        let rotated = Session {
            refresh_hash: next_hash,
            ..session
        };
        let mut commit = Commit::default();
        commit
            .put_json(SESSIONS, &key, &rotated, DocExpect::Version(version))
            .map_err(ApiError::internal)?;
        // A concurrent refresh with the same token, or a logout, changed
        // the session first: this one loses.
        self.store.commit(commit).await.map_err(|e| match e {
            metachat_core::Error::DocumentConflict { .. } => ApiError::InvalidRefreshToken,
            other => ApiError::store(other),
        })?;
        let (user_id, expires_at) = (rotated.user_id, rotated.expires_at);
        self.cache.write().insert(session_id, rotated);
        self.sign(user_id, session_id, next_token, expires_at)
    }

    /// The caller a token names, if its signature is ours, it is valid now
    /// and its session is live (not logged out, not erased, not expired).
    pub(crate) async fn check(&self, token: &str) -> Result<AuthUser, ApiError> {
        let claims = self.verifier().verify(token)?;
        let cached = self.cache.read().get(&claims.session_id).cloned();
        let session = match cached {
            Some(s) => s,
            None => {
                let Some((s, _)) = self
                    .store
                    .get_json::<Session>(SESSIONS, &claims.session_id.to_string())
                    .await
                    .map_err(ApiError::store)?
                else {
                    return Err(ApiError::Unauthorized);
                };
                self.cache.write().insert(claims.session_id, s.clone());
                s
            }
        };
        if session.user_id != claims.user_id || session.expires_at <= now_secs() {
            return Err(ApiError::Unauthorized);
        }
        Ok(AuthUser::from(claims))
    }

    /// Ends one session of `user_id` (its tokens are refused from now on).
    pub(crate) async fn revoke(&self, user_id: UserId, session_id: Uuid) -> Result<(), ApiError> {
        let key = session_id.to_string();
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
        self.cache.write().remove(&session_id);
        self.store.commit(commit).await.map_err(ApiError::store)
    }

    /// Ends every session of `user_id`.
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
                if let Some(sid) = key.strip_prefix(&prefix) {
                    commit.ops.push(WriteOp::Delete {
                        collection: SESSIONS.into(),
                        key: sid.to_owned(),
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
                if session.as_ref().is_some_and(|s| s.expires_at > now) {
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

/// How a process decides whether a bearer token is good.
#[derive(Debug)]
pub(crate) enum Authenticator {
    /// The `user` role: the signature, and the session in its own store
    /// (exact: a logout is refused at once).
    Sessions(Arc<Tokens<ReadModels>>),
    /// Every other role: the signature with the public key, and the
    /// revocations (logouts, erasures) it learnt from the bus, brought up
    /// to date with the bus before each check.
    Remote {
        /// The public key.
        verifier: TokenVerifier,
        /// What was revoked.
        revocations: Arc<Revocations>,
    },
}

impl Authenticator {
    /// The caller `token` names, if it is good.
    pub(crate) async fn check(&self, token: &str) -> Result<AuthUser, ApiError> {
        match self {
            Authenticator::Sessions(tokens) => tokens.check(token).await,
            Authenticator::Remote {
                verifier,
                revocations,
            } => {
                let claims = verifier.verify(token)?;
                revocations.check(&claims).await?;
                Ok(AuthUser::from(claims))
            }
        }
    }
}

/// The authenticated caller of a route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthUser {
    /// Who.
    pub(crate) user_id: UserId,
    /// The session of the token used.
    pub(crate) session_id: Uuid,
}

impl From<TokenClaims> for AuthUser {
    fn from(c: TokenClaims) -> Self {
        AuthUser {
            user_id: c.user_id,
            session_id: c.session_id,
        }
    }
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
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > MAX_TOKEN_LEN
        {
            return Err(ApiError::Unauthorized);
        }
        state.inner.auth.check(token).await
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

    fn tokens(
        store: &Arc<InMemoryReadModels>,
        ttl: u64,
        session: u64,
    ) -> Tokens<Arc<InMemoryReadModels>> {
        static SIGNER: std::sync::OnceLock<Arc<TokenSigner>> = std::sync::OnceLock::new();
        let signer = SIGNER
            .get_or_init(|| Arc::new(TokenSigner::generate()))
            .clone();
        Tokens::new(
            store.clone(),
            signer,
            Duration::from_secs(ttl),
            Duration::from_secs(session),
        )
    }

    #[tokio::test]
    async fn the_sweep_deletes_expired_sessions_only() {
        let store = Arc::new(InMemoryReadModels::new());
        let (a, b) = (UserId::new(), UserId::new());
        let live = tokens(&store, 60, 3_600);
        let kept = live.issue(a).await.expect("issue");
        let dead = tokens(&store, 60, 0);
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
        assert_eq!(live.check(&kept.token).await.expect("kept").user_id, a);
        assert_eq!(live.purge_expired().await.expect("again"), 0);
    }

    #[tokio::test]
    async fn sessions_are_checked_revoked_and_expire() {
        let store = Arc::new(InMemoryReadModels::new());
        let tokens_a = tokens(&store, 60, 3_600);
        let (a, b) = (UserId::new(), UserId::new());
        let ta = tokens_a.issue(a).await.expect("issue");
        let ta2 = tokens_a.issue(a).await.expect("issue");
        let tb = tokens_a.issue(b).await.expect("issue");
        assert!(ta.token.starts_with("v4.public."));
        let who = tokens_a.check(&ta.token).await.expect("valid");
        assert_eq!(who.user_id, a);
        assert!(tokens_a.check("nope").await.is_err());

        // A fresh cache reads the stored sessions (a restart).
        let fresh = tokens(&store, 60, 3_600);
        assert_eq!(fresh.check(&tb.token).await.expect("valid").user_id, b);

        tokens_a.revoke(a, who.session_id).await.expect("revoke");
        assert!(tokens_a.check(&ta.token).await.is_err());
        assert!(fresh.check(&ta.token).await.is_err());
        assert!(tokens_a.check(&ta2.token).await.is_ok());
        tokens_a.revoke_all(a).await.expect("revoke all");
        assert!(tokens_a.check(&ta2.token).await.is_err());
        assert!(fresh.check(&ta2.token).await.is_err());
        assert!(tokens_a.check(&tb.token).await.is_ok());

        // A session that ended refuses its still-signed tokens.
        let ended = tokens(&store, 60, 0);
        let t = ended.issue(a).await.expect("issue");
        assert!(ended.check(&t.token).await.is_err());
    }

    #[tokio::test]
    async fn a_refresh_token_is_used_once_and_dies_with_its_session() {
        let store = Arc::new(InMemoryReadModels::new());
        let t = tokens(&store, 60, 3_600);
        let user = UserId::new();
        let first = t.issue(user).await.expect("issue");
        let second = t.refresh(&first.refresh_token).await.expect("refresh");
        assert_eq!(second.user_id, user);
        assert_ne!(second.refresh_token, first.refresh_token);
        let s1 = t
            .check(&first.token)
            .await
            .expect("the old access token lives on");
        let s2 = t.check(&second.token).await.expect("the new one works");
        assert_eq!(s1.session_id, s2.session_id, "one session");
        // Used up: the old refresh token is refused, the new one works once.
        assert!(matches!(
            t.refresh(&first.refresh_token).await,
            Err(ApiError::InvalidRefreshToken)
        ));
        let third = t.refresh(&second.refresh_token).await.expect("refresh");
        // Junk and tampered tokens.
        for junk in [
            "",
            "x",
            "not-a-uuid.secret",
            &format!("{}.short", s1.session_id),
        ] {
            assert!(
                matches!(t.refresh(junk).await, Err(ApiError::InvalidRefreshToken)),
                "{junk:?}"
            );
        }
        let mut forged = third.refresh_token.clone();
        forged.pop();
        forged.push('A');
        if forged != third.refresh_token {
            assert!(t.refresh(&forged).await.is_err());
        }
        // Logout ends the session: its refresh token too.
        t.revoke(user, s1.session_id).await.expect("revoke");
        assert!(matches!(
            t.refresh(&third.refresh_token).await,
            Err(ApiError::InvalidRefreshToken)
        ));
        assert!(t.check(&third.token).await.is_err());
    }
}
