//! What keeps the server standing under abuse: the gate in front of the
//! password hashing ([`HashGate`]), failed-login throttling per account and
//! per client ([`LoginThrottle`]) and the per-client registration quota
//! ([`RegisterQuota`]). Each refuses with a typed [`ApiError`] that carries
//! `Retry-After`; none does work (or takes memory) in proportion to an
//! attacker's requests.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::error::ApiError;

/// Requests refused by a limit, by `limit` (`hash_busy`, `login`,
/// `register`).
pub(crate) const REFUSED: &str = "metachat_limit_refusals_total";

/// The most accounts, and the most clients, whose failed logins are
/// remembered; past it the oldest records are dropped first.
pub(crate) const THROTTLE_CAPACITY: usize = 65_536;

/// Seconds to tell a client to wait: `d` rounded up, at least 1.
pub(crate) fn retry_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// Every limit, built from the configuration; one per process.
#[derive(Debug)]
pub(crate) struct Limits {
    /// The gate in front of argon2.
    pub(crate) hashing: HashGate,
    /// Failed-login throttling.
    pub(crate) login: LoginThrottle,
    /// The registration quota.
    pub(crate) register: RegisterQuota,
}

impl Limits {
    /// The limits `config` asks for.
    pub(crate) fn new(config: &Config) -> Self {
        let backoff = Duration::from_millis(config.login_backoff_ms);
        let lockout = Duration::from_secs(config.login_lockout_secs);
        Limits {
            hashing: HashGate::new(
                config.hash_concurrency(),
                Duration::from_millis(config.hash_wait_ms),
            ),
            login: LoginThrottle::new(
                Policy::new(config.login_account_max_failures, backoff, lockout),
                Policy::new(config.login_client_max_failures, backoff, lockout),
                THROTTLE_CAPACITY,
            ),
            register: RegisterQuota::new(config.register_per_minute, config.register_burst),
        }
    }

    /// Forgets what no longer limits anyone (run by the periodic sweep).
    pub(crate) fn sweep(&self) {
        self.login.prune(Instant::now());
        self.register.prune();
    }
}

/// At most `permits` password hashes or verifications run at once (argon2
/// takes ~19 MiB and a core each); a request that cannot start one within
/// `wait` is refused with 503 `busy`.
#[derive(Debug)]
pub(crate) struct HashGate {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl HashGate {
    /// A gate of `permits` (at least 1) slots, waiting at most `wait`.
    pub(crate) fn new(permits: usize, wait: Duration) -> Self {
        HashGate {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            wait,
        }
    }

    /// Runs `work` on a blocking thread once a slot is free, or refuses
    /// with [`ApiError::Busy`] when none frees up within the wait.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let acquire = self.permits.clone().acquire_owned();
        let permit = match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(closed)) => return Err(ApiError::internal(closed)),
            Err(_elapsed) => {
                metrics::counter!(REFUSED, "limit" => "hash_busy").increment(1);
                return Err(ApiError::Busy {
                    retry_after_secs: retry_secs(self.wait),
                });
            }
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(ApiError::internal)
    }
}

/// How failed logins of one key (an account or a client) are throttled:
/// the first half of `max_failures` cost nothing, each further failure
/// doubles a wait that starts at `backoff`, and `max_failures` lock the
/// key out for `lockout`. A key's record is forgotten `lockout` after its
/// last failure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    max_failures: u32,
    free: u32,
    backoff: Duration,
    lockout: Duration,
}

impl Policy {
    /// A policy locking out at `max_failures` (at least 1).
    pub(crate) fn new(max_failures: u32, backoff: Duration, lockout: Duration) -> Self {
        let max_failures = max_failures.max(1);
        Policy {
            max_failures,
            free: max_failures / 2,
            backoff,
            lockout,
        }
    }

    /// How long after its last failure a key with `failures` is refused.
    fn delay(&self, failures: u32) -> Duration {
        if failures >= self.max_failures {
            self.lockout
        } else if failures <= self.free {
            Duration::ZERO
        } else {
            let doublings = (failures - self.free - 1).min(31);
            self.backoff
                .saturating_mul(1 << doublings)
                .min(self.lockout)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Failure records of one kind of key, at most `capacity` of them.
#[derive(Debug)]
struct Tracker<K> {
    policy: Policy,
    capacity: usize,
    records: Mutex<HashMap<K, Record>>,
}

impl<K: Hash + Eq + Clone> Tracker<K> {
    fn new(policy: Policy, capacity: usize) -> Self {
        Tracker {
            policy,
            capacity: capacity.max(1),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// How much longer `key` is refused, if it is.
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let records = self.records.lock();
        let r = records.get(key)?;
        let until = r.last + self.policy.delay(r.failures);
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Counts one failure of `key`.
    fn fail(&self, key: &K, now: Instant) {
        let mut records = self.records.lock();
        let forgotten = |r: &Record| now.saturating_duration_since(r.last) >= self.policy.lockout;
        if !records.contains_key(key) && records.len() >= self.capacity {
            records.retain(|_, r| !forgotten(r));
            if records.len() >= self.capacity {
                evict_oldest(&mut records, self.capacity / 8 + 1);
            }
        }
        let r = records.entry(key.clone()).or_insert(Record {
            failures: 0,
            last: now,
        });
        if forgotten(r) {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
    }

    /// Takes back one failure of `key` (an attempt that was counted before
    /// it was decided, and then not decided).
    fn undo(&self, key: &K) {
        let mut records = self.records.lock();
        if let Some(r) = records.get_mut(key) {
            r.failures = r.failures.saturating_sub(1);
            if r.failures == 0 {
                records.remove(key);
            }
        }
    }

    /// Forgets `key`.
    fn clear(&self, key: &K) {
        self.records.lock().remove(key);
    }

    /// Forgets every record older than the lockout.
    fn prune(&self, now: Instant) {
        self.records
            .lock()
            .retain(|_, r| now.saturating_duration_since(r.last) < self.policy.lockout);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.lock().len()
    }
}

/// Removes the `n` records whose last failure is the oldest.
fn evict_oldest<K: Hash + Eq + Clone>(records: &mut HashMap<K, Record>, n: usize) {
    let mut ages: Vec<(Instant, K)> = records.iter().map(|(k, r)| (r.last, k.clone())).collect();
    let n = n.min(ages.len());
    if n == 0 {
        return;
    }
    ages.select_nth_unstable_by_key(n - 1, |(last, _)| *last);
    for (_, key) in ages.into_iter().take(n) {
        records.remove(&key);
    }
}

/// The key of an account in the throttle: the SHA-256 of the address as
/// given to login, normalised (trimmed, lowercase) like registration does;
/// fixed-size whatever was sent.
pub(crate) fn account_key(email: &str) -> [u8; 32] {
    let normal = match metachat_domain::Email::parse(email) {
        Ok(e) => e.as_str().to_owned(),
        Err(_) => email.trim().to_lowercase(),
    };
    Sha256::digest(normal.as_bytes()).into()
}

/// The key of a client in the throttle and the quota: an IPv4 address (an
/// IPv4-mapped IPv6 one included) as it is, an IPv6 address by its /64
/// (one host usually holds a whole /64, and could rotate through it).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// Failed logins counted per account and per client address; while either
/// is refused, every login for it is answered 429 before any password is
/// checked, the right password included.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    accounts: Tracker<[u8; 32]>,
    clients: Tracker<IpAddr>,
}

impl LoginThrottle {
    /// Throttling by `account` and `client` policies, remembering at most
    /// `capacity` keys of each kind.
    pub(crate) fn new(account: Policy, client: Policy, capacity: usize) -> Self {
        LoginThrottle {
            accounts: Tracker::new(account, capacity),
            clients: Tracker::new(client, capacity),
        }
    }

    /// Starts a login attempt for `account` from `client`, or refuses it
    /// with 429 while either is throttled. The attempt counts as a failure
    /// of the account at once (so concurrent guesses see each other) until
    /// [`Attempt::succeeded`] clears it.
    pub(crate) fn begin(&self, account: [u8; 32], client: IpAddr) -> Result<Attempt<'_>, ApiError> {
        let client = client_key(client);
        let now = Instant::now();
        let wait = [
            self.accounts.blocked(&account, now),
            self.clients.blocked(&client, now),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            metrics::counter!(REFUSED, "limit" => "login").increment(1);
            return Err(ApiError::RateLimited {
                retry_after_secs: retry_secs(wait),
            });
        }
        self.accounts.fail(&account, now);
        Ok(Attempt {
            throttle: self,
            account,
            client,
            decided: false,
        })
    }

    fn prune(&self, now: Instant) {
        self.accounts.prune(now);
        self.clients.prune(now);
    }
}

/// A login attempt under way; dropped undecided (an error before the
/// password was checked), it does not count.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: [u8; 32],
    client: IpAddr,
    decided: bool,
}

impl Attempt<'_> {
    /// The password was right: the account's failures are forgotten (the
    /// client's are not: one valid account must not launder guesses at
    /// others).
    pub(crate) fn succeeded(mut self) {
        self.decided = true;
        self.throttle.accounts.clear(&self.account);
    }

    /// The password was wrong (or the account unknown): counts for the
    /// client too.
    pub(crate) fn failed(mut self) {
        self.decided = true;
        self.throttle.clients.fail(&self.client, Instant::now());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.decided {
            self.throttle.accounts.undo(&self.account);
        }
    }
}

/// Registrations per client address: a GCRA quota of `per_minute`
/// replenished evenly, with bursts of up to `burst`.
#[derive(Debug)]
pub(crate) struct RegisterQuota {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    clock: DefaultClock,
}

impl RegisterQuota {
    /// `per_minute` registrations, bursts of `burst` (both at least 1).
    pub(crate) fn new(per_minute: u32, burst: u32) -> Self {
        let one = NonZeroU32::MIN;
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(one))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(one));
        RegisterQuota {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one registration from `client`'s quota, or refuses with 429.
    pub(crate) fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        self.limiter
            .check_key(&client_key(client))
            .map_err(|not_until| {
                metrics::counter!(REFUSED, "limit" => "register").increment(1);
                ApiError::RateLimited {
                    retry_after_secs: retry_secs(not_until.wait_time_from(self.clock.now())),
                }
            })
    }

    /// Forgets clients whose quota is full again.
    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_secs(Duration::from_secs(900)), 900);
    }

    #[test]
    fn the_policy_is_free_then_doubles_then_locks_out() {
        let p = Policy::new(6, Duration::from_secs(1), MIN);
        let delays: Vec<u64> = (0..=7).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 0, 1, 2, 60, 60]);
        // The backoff never exceeds the lockout.
        let p = Policy::new(100, Duration::from_secs(1), MIN);
        assert_eq!(p.delay(99), MIN);
    }

    #[test]
    fn a_locked_account_refuses_even_the_right_password() {
        let t = LoginThrottle::new(
            Policy::new(3, Duration::ZERO, MIN),
            Policy::new(1_000, Duration::ZERO, MIN),
            16,
        );
        let acct = account_key("Ada@Example.com");
        assert_eq!(acct, account_key("  ada@example.COM "), "normalised");
        for _ in 0..3 {
            t.begin(acct, ip(1)).expect("not yet locked").failed();
        }
        for _ in 0..50 {
            let e = t.begin(acct, ip(2)).expect_err("locked out");
            assert!(
                matches!(e, ApiError::RateLimited { retry_after_secs } if (1..=60).contains(&retry_after_secs)),
                "{e:?}"
            );
        }
        // Another account is not affected.
        let other = account_key("bob@example.com");
        t.begin(other, ip(1)).expect("bob").succeeded();
    }

    #[test]
    fn success_forgets_the_account_and_an_undecided_attempt_does_not_count() {
        let t = LoginThrottle::new(
            Policy::new(2, Duration::ZERO, MIN),
            Policy::new(1_000, Duration::ZERO, MIN),
            16,
        );
        let acct = account_key("ada@example.com");
        t.begin(acct, ip(1)).expect("first").failed();
        t.begin(acct, ip(1)).expect("second").succeeded();
        t.begin(acct, ip(1)).expect("forgotten").failed();
        drop(t.begin(acct, ip(1)).expect("undecided"));
        drop(t.begin(acct, ip(1)).expect("undecided again"));
        t.begin(acct, ip(1)).expect("still one failure").failed();
        assert!(t.begin(acct, ip(1)).is_err(), "two failures lock");
    }

    #[test]
    fn concurrent_attempts_count_before_they_are_decided() {
        let t = LoginThrottle::new(
            Policy::new(3, Duration::ZERO, MIN),
            Policy::new(1_000, Duration::ZERO, MIN),
            16,
        );
        let acct = account_key("ada@example.com");
        let held: Vec<_> = (0..3).map(|_| t.begin(acct, ip(1)).expect("in")).collect();
        assert!(t.begin(acct, ip(1)).is_err(), "three under way lock");
        drop(held);
        assert!(t.begin(acct, ip(1)).is_ok(), "undecided ones are undone");
    }

    #[test]
    fn a_client_guessing_across_accounts_is_throttled() {
        let t = LoginThrottle::new(
            Policy::new(1_000, Duration::ZERO, MIN),
            Policy::new(4, Duration::ZERO, MIN),
            16,
        );
        for i in 0..4 {
            let acct = account_key(&format!("u{i}@example.com"));
            t.begin(acct, ip(1)).expect("under the limit").failed();
        }
        let fresh = account_key("fresh@example.com");
        assert!(t.begin(fresh, ip(1)).is_err(), "the client is locked out");
        t.begin(fresh, ip(2)).expect("another client").succeeded();
    }

    #[test]
    fn records_are_bounded_and_forgotten() {
        let p = Policy::new(5, Duration::ZERO, MIN);
        let tracker = Tracker::new(p, 64);
        let start = Instant::now();
        for i in 0..10_000u32 {
            tracker.fail(&i, start + Duration::from_millis(u64::from(i)));
        }
        assert!(tracker.len() <= 64, "{} records", tracker.len());
        // The newest survive eviction.
        assert!(tracker.records.lock().contains_key(&9_999));
        tracker.prune(start + Duration::from_secs(3_600));
        assert_eq!(tracker.len(), 0);
        // A record older than the lockout starts over.
        let t = Tracker::new(Policy::new(2, Duration::ZERO, MIN), 8);
        t.fail(&1u8, start);
        t.fail(&1u8, start + MIN * 2);
        assert!(t.blocked(&1u8, start + MIN * 2).is_none());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("v6");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("mapped");
        assert_eq!(client_key(mapped), ip(1));
        assert_eq!(client_key(ip(7)), ip(7));
        let q = RegisterQuota::new(1, 1);
        q.check(a).expect("first");
        assert!(q.check(b).is_err(), "the same /64");
        q.check(c).expect("another /64");
    }

    #[test]
    fn the_registration_quota_is_per_client() {
        let q = RegisterQuota::new(1, 2);
        q.check(ip(1)).expect("1");
        q.check(ip(1)).expect("2");
        let e = q.check(ip(1)).expect_err("burst used up");
        assert!(
            matches!(e, ApiError::RateLimited { retry_after_secs } if (1..=60).contains(&retry_after_secs)),
            "{e:?}"
        );
        q.check(ip(2)).expect("another client");
    }

    #[tokio::test]
    async fn the_hash_gate_refuses_past_its_wait() {
        let gate = Arc::new(HashGate::new(1, Duration::from_millis(10)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let held = tokio::spawn(async move {
            g.run(move || {
                let _ = rx.recv();
            })
            .await
        });
        // Wait until the one slot is taken.
        while gate.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let e = gate.run(|| ()).await.expect_err("no slot");
        assert!(matches!(e, ApiError::Busy { .. }), "{e:?}");
        tx.send(()).expect("release");
        held.await.expect("join").expect("ran");
        gate.run(|| ()).await.expect("a slot again");
    }
}
