//! Access tokens: PASETO `v4.public` (Ed25519 signatures, the `pasetors`
//! crate), signed by the process that runs the `user` role and verified by
//! every role with the public key alone, without a call to the user
//! service.
//!
//! A token's claims: `iss` = `metachat`, `sub` = the user id, `sid` = the
//! session id (what logout revokes), `iat`/`nbf`/`exp` (RFC 3339). The
//! claims are signed, not encrypted: nothing personal goes in them.
//!
//! Keys are PASERK strings in files: the secret key (`k4.secret.…`,
//! `--token-key-file`, made with mode 0600 on the user role's first start
//! if missing) and its public key (`k4.public.…`, written next to it as
//! `<file>.pub`), which is all the other roles get
//! (`--token-public-key-file`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use metachat_domain::UserId;
use pasetors::claims::{Claims, ClaimsValidationRules};
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::paserk::FormatAsPaserk;
use pasetors::token::UntrustedToken;
use pasetors::version4::V4;
use pasetors::{public, Public};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

/// The `iss` claim of every token.
const ISSUER: &str = "metachat";
/// The claim holding the session id.
const SESSION_CLAIM: &str = "sid";
/// The longest token accepted for verification (a MetaChat token is about
/// 330 characters).
pub(crate) const MAX_TOKEN_LEN: usize = 1_024;

/// What a verified token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenClaims {
    /// Whose token.
    pub(crate) user_id: UserId,
    /// The session it belongs to.
    pub(crate) session_id: Uuid,
    /// Seconds since the Unix epoch.
    pub(crate) expires_at: u64,
}

/// Tokens whose signature was checked, kept for the next request with the
/// same token: an Ed25519 verification costs about 60 µs, most of a
/// request's work (`scripts/loadtest`, benches/README.md).
const VERIFIED_CAPACITY: u64 = 16_384;
/// How long a checked token is remembered (its expiry is checked on every use).
const VERIFIED_FOR: Duration = Duration::from_secs(600);

/// Checks tokens with the public key.
#[derive(Clone)]
pub(crate) struct TokenVerifier {
    public: AsymmetricPublicKey<V4>,
    /// The claims of tokens already verified, by the SHA-256 of the token
    /// (the tokens themselves are not kept). Only good tokens go in; a
    /// clone shares it.
    verified: moka::sync::Cache<[u8; 32], TokenClaims>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

/// Signs tokens with the secret key (the `user` role).
pub(crate) struct TokenSigner {
    secret: AsymmetricSecretKey<V4>,
    verifier: TokenVerifier,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` since the Unix epoch as RFC 3339 UTC, to the second.
pub(crate) fn rfc3339(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl TokenVerifier {
    fn new(public: AsymmetricPublicKey<V4>) -> Self {
        TokenVerifier {
            public,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_FOR)
                .build(),
        }
    }

    /// The claims of `token` if its signature is ours and it is valid now
    /// (any failure is `401 unauthorized`, and says no more). A token seen
    /// before is not verified again, only checked for expiry.
    pub(crate) fn verify(&self, token: &str) -> Result<TokenClaims, ApiError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::Unauthorized);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&key) {
            if claims.expires_at > now_secs() {
                return Ok(claims);
            }
            self.verified.invalidate(&key);
            return Err(ApiError::Unauthorized);
        }
        let claims = self.verify_signature(token)?;
        self.verified.insert(key, claims);
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<TokenClaims, ApiError> {
        let untrusted =
            UntrustedToken::<Public, V4>::try_from(token).map_err(|_| ApiError::Unauthorized)?;
        let mut rules = ClaimsValidationRules::new();
        rules.validate_issuer_with(ISSUER);
        let trusted = public::verify(&self.public, &untrusted, &rules, None, None)
            .map_err(|_| ApiError::Unauthorized)?;
        let claims = trusted.payload_claims().ok_or(ApiError::Unauthorized)?;
        let text = |name: &str| {
            claims
                .get_claim(name)
                .and_then(|v| v.as_str())
                .ok_or(ApiError::Unauthorized)
        };
        let user_id = text("sub")?
            .parse::<Uuid>()
            .map(UserId::from)
            .map_err(|_| ApiError::Unauthorized)?;
        let session_id = text(SESSION_CLAIM)?
            .parse::<Uuid>()
            .map_err(|_| ApiError::Unauthorized)?;
        let expires_at = chrono::DateTime::parse_from_rfc3339(text("exp")?)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp()).ok())
            .ok_or(ApiError::Unauthorized)?;
        Ok(TokenClaims {
            user_id,
            session_id,
            expires_at,
        })
    }

    /// The public key as PASERK (`k4.public.…`).
    pub(crate) fn paserk(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = self.public.fmt(&mut out);
        out
    }
}

impl TokenSigner {
    /// A signer with a fresh key pair (tests).
    #[cfg(test)]
    pub(crate) fn generate() -> Self {
        let pair = AsymmetricKeyPair::<V4>::generate().expect("a key pair");
        TokenSigner {
            secret: pair.secret,
            verifier: TokenVerifier::new(pair.public),
        }
    }

    /// A token for `user`'s `session`, valid for `ttl` from now; and its
    /// expiry (seconds since the Unix epoch).
    pub(crate) fn sign(
        &self,
        user: UserId,
        session: Uuid,
        ttl: Duration,
    ) -> Result<(String, u64), ApiError> {
        let expires_at = now_secs().saturating_add(ttl.as_secs());
        let mut claims = Claims::new().map_err(ApiError::internal)?;
        claims.issuer(ISSUER).map_err(ApiError::internal)?;
        claims
            .subject(&user.to_string())
            .map_err(ApiError::internal)?;
        claims
            .add_additional(SESSION_CLAIM, session.to_string())
            .map_err(ApiError::internal)?;
        claims
            .expiration(&rfc3339(expires_at))
            .map_err(ApiError::internal)?;
        let token = public::sign(&self.secret, &claims, None, None).map_err(ApiError::internal)?;
        Ok((token, expires_at))
    }

    /// The matching verifier.
    pub(crate) fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// `<file>.pub`: where the public key of the secret key in `file` is
/// written.
pub(crate) fn public_key_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The signing key in `file` (PASERK `k4.secret.…`), made (mode 0600) if
/// the file is missing; its public key is (re)written to `<file>.pub`.
pub(crate) fn load_signer(file: &Path) -> anyhow::Result<TokenSigner> {
    let secret = match std::fs::read_to_string(file) {
        Ok(text) => AsymmetricSecretKey::<V4>::try_from(text.trim()).map_err(|_| {
            anyhow::anyhow!(
                "the token key file {} must hold a PASERK k4.secret key",
                file.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pair = AsymmetricKeyPair::<V4>::generate()
                .map_err(|e| anyhow::anyhow!("generating a token key: {e}"))?;
            let mut text = String::new();
            pair.secret
                .fmt(&mut text)
                .map_err(|e| anyhow::anyhow!("formatting the token key: {e}"))?;
            write_new(file, &text, 0o600)
                .with_context(|| format!("creating the token key file {}", file.display()))?;
            tracing::warn!(
                file = %file.display(),
                "made a new token signing key: tokens signed with an earlier key are refused"
            );
            pair.secret
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let public = AsymmetricPublicKey::<V4>::try_from(&secret)
        .map_err(|e| anyhow::anyhow!("deriving the public token key: {e}"))?;
    let signer = TokenSigner {
        secret,
        verifier: TokenVerifier::new(public),
    };
    let pub_file = public_key_path(file);
    let text = signer.verifier.paserk();
    if std::fs::read_to_string(&pub_file)
        .ok()
        .as_deref()
        .map(str::trim)
        != Some(text.as_str())
    {
        let tmp = public_key_path(&pub_file);
        let _ = std::fs::remove_file(&tmp);
        write_new(&tmp, &text, 0o644)?;
        std::fs::rename(&tmp, &pub_file)
            .with_context(|| format!("writing {}", pub_file.display()))?;
    }
    Ok(signer)
}

/// The verifying key in `file` (PASERK `k4.public.…`).
pub(crate) fn load_verifier(file: &Path) -> anyhow::Result<TokenVerifier> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the token public key {}", file.display()))?;
    let public = AsymmetricPublicKey::<V4>::try_from(text.trim()).map_err(|_| {
        anyhow::anyhow!(
            "the token public key file {} must hold a PASERK k4.public key",
            file.display()
        )
    })?;
    Ok(TokenVerifier::new(public))
}

fn write_new(file: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(file)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_with_the_public_key_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token.key");
        let signer = load_signer(&file).expect("made");
        let verifier = load_verifier(&public_key_path(&file)).expect("public key");
        let (user, sid) = (UserId::new(), Uuid::new_v4());
        let (token, exp) = signer
            .sign(user, sid, Duration::from_secs(60))
            .expect("signed");
        assert!(token.starts_with("v4.public."));
        assert!(token.len() < MAX_TOKEN_LEN);
        let claims = verifier.verify(&token).expect("valid");
        assert_eq!(
            claims,
            TokenClaims {
                user_id: user,
                session_id: sid,
                expires_at: exp
            }
        );
        // The same key is read back; the file is not replaced.
        let again = load_signer(&file).expect("read back");
        assert!(again.verifier().verify(&token).is_ok());
    }

    #[test]
    fn forged_tampered_and_foreign_tokens_are_refused() {
        let ours = TokenSigner::generate();
        let theirs = TokenSigner::generate();
        let (token, _) = theirs
            .sign(UserId::new(), Uuid::new_v4(), Duration::from_secs(60))
            .expect("signed");
        assert!(ours.verifier().verify(&token).is_err(), "another key");
        let (token, _) = ours
            .sign(UserId::new(), Uuid::new_v4(), Duration::from_secs(60))
            .expect("signed");
        // The good token is remembered: a tampered copy still fails.
        assert!(ours.verifier().verify(&token).is_ok());
        let mut bytes = token.clone().into_bytes();
        let i = bytes.len() - 10;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(ours.verifier().verify(&tampered).is_err(), "tampered");
        for junk in [
            "",
            "v4.public.",
            "v4.local.abc",
            "Bearer x",
            &"a".repeat(2_000),
        ] {
            assert!(ours.verifier().verify(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let signer = TokenSigner::generate();
        let (token, exp) = signer
            .sign(UserId::new(), Uuid::new_v4(), Duration::from_secs(2))
            .expect("signed");
        let verifier = signer.verifier().clone();
        let claims = verifier.verify(&token).expect("valid");
        assert_eq!(claims.expires_at, exp);
        // A clone shares what was verified.
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert_eq!(signer.verifier().verified.get(&key), Some(claims));
        while now_secs() < exp {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(verifier.verify(&token).is_err(), "expired while remembered");
        assert_eq!(verifier.verified.get(&key), None, "forgotten once expired");
    }

    #[test]
    fn bad_key_files_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token.key");
        std::fs::write(&file, "k4.secret.nope").expect("write");
        assert!(load_signer(&file).is_err());
        assert!(load_verifier(&dir.path().join("missing.pub")).is_err());
        std::fs::write(&file, "k4.public.nope").expect("write");
        assert!(load_verifier(&file).is_err());
    }
}
