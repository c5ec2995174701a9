//! The roles one server process plays (`--roles`): the seed's services are
//! the same binary with different roles.
//!
//! | role | routes | background work | read models |
//! |---|---|---|---|
//! | `user` | `/v1/users`, `/v1/sessions…`, `/v1/me` | the user directory; the key sweep | sessions, directory |
//! | `diary` | `/v1/entries…`, `/v1/mood/timeline` | diary and mood timelines | timelines |
//! | `mood` | none | the mood worker (a Kafka consumer-group member) | entries' creation dates (shared by the group's workers) |
//! | `matching` | `/v1/matches` | the matching index and a directory of names | matching, directory |
//! | `relay` | none | the outbox relay: the event log to Kafka | the relay's checkpoint |
//!
//! `all` (the default) is the embedded server: every role in one process,
//! every follower reading the store's log directly, no bus needed. Any
//! other set is a *distributed* process: its followers read Kafka (the
//! relay, in some process, publishes the log), its read models live in a
//! namespace of its own, and it learns of other services' events only
//! from the bus.
//!
//! What the services still share, and why:
//! - **The event store**: one Cassandra log; each service writes only its
//!   own streams (`user-`/`email-`/`session-`, `entry-`, `mood-`) and
//!   only the relay reads the log as a whole.
//! - **The key vault** (the `data_keys` table): a personal value is sealed
//!   with its owner's key wherever it is stored, and erasure must destroy
//!   that key in one place for every service at once; the vault is
//!   infrastructure like a KMS, not a service's read model.
//!
//! **Several matching instances** each answer for every user: each keeps a
//! whole replica of the index (its own read-model namespace,
//! `{ns}_matching_{instance}`, and its own consumer groups, so each reads
//! every mood and profile event). The choice over one shared read model:
//! a query never leaves the process (the index is in memory, searched in
//! place), instances are independent (one can be rebuilt from the topics
//! by starting it on a fresh namespace while the others serve), and the
//! gateway may send any query to any instance. The cost: every instance
//! stores and applies every event (memory and work grow with the
//! instances, not shared), and each instance's answers lag by its own
//! consumer lag (`metachat_kafka_consumer_lag_records` in its `/metrics`).
//!
//! The mood worker keeps the creation date of each entry it saw created
//! (an edit's mood counts for that day) in its own read models instead of
//! reading the diary's streams; only an entry created before a worker kept
//! dates is looked up in its stream, once.

use std::fmt;
use std::str::FromStr;

/// One role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Role {
    /// Registration, sessions, profile, erasure; issues tokens.
    User,
    /// Diary entries and the mood timeline.
    Diary,
    /// The mood-analysis worker.
    Mood,
    /// Matching.
    Matching,
    /// The outbox relay to Kafka.
    Relay,
}

impl Role {
    /// Every role, in a fixed order.
    pub(crate) const ALL: [Role; 5] = [
        Role::User,
        Role::Diary,
        Role::Mood,
        Role::Matching,
        Role::Relay,
    ];

    /// Its name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Diary => "diary",
            Role::Mood => "mood",
            Role::Matching => "matching",
            Role::Relay => "relay",
        }
    }
}

/// The roles of a process: `all`, or a set of distributed roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoleSet {
    bits: u8,
    embedded: bool,
}

impl RoleSet {
    /// `all`: the embedded server.
    pub(crate) const EMBEDDED: RoleSet = RoleSet {
        bits: 0b1_1111,
        embedded: true,
    };

    /// Whether this is `all`, the embedded server (followers read the log).
    pub(crate) fn is_embedded(self) -> bool {
        self.embedded
    }

    /// Whether the process plays `role`.
    pub(crate) fn has(self, role: Role) -> bool {
        self.bits & (1 << role as u8) != 0
    }

    /// The roles, in [`Role::ALL`] order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.has(*r))
    }

    /// Whether it serves any HTTP API route (else only `/healthz`,
    /// `/readyz`, `/openapi.json`).
    pub(crate) fn serves_api(self) -> bool {
        self.has(Role::User) || self.has(Role::Diary) || self.has(Role::Matching)
    }
}

impl Default for RoleSet {
    fn default() -> Self {
        RoleSet::EMBEDDED
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.embedded {
            return f.write_str("all");
        }
        let names: Vec<&str> = self.iter().map(Role::name).collect();
        f.write_str(&names.join(","))
    }
}

/// Why a `--roles` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RolesError {
    /// Nothing named.
    #[error("no role named: give `all` or some of user, diary, mood, matching, relay")]
    Empty,
    /// An unknown name.
    #[error("unknown role `{0}`: expected all, user, diary, mood, matching or relay")]
    Unknown(String),
    /// `all` with others.
    #[error("`all` already includes every role: give it alone")]
    AllWithOthers,
}

impl FromStr for RoleSet {
    type Err = RolesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let names: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(RolesError::Empty);
        }
        if names.iter().any(|n| n.eq_ignore_ascii_case("all")) {
            return if names.len() == 1 {
                Ok(RoleSet::EMBEDDED)
            } else {
                Err(RolesError::AllWithOthers)
            };
        }
        let mut bits = 0u8;
        for name in names {
            let role = Role::ALL
                .into_iter()
                .find(|r| r.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| RolesError::Unknown(name.to_owned()))?;
            bits |= 1 << role as u8;
        }
        Ok(RoleSet {
            bits,
            embedded: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_parse() {
        let all: RoleSet = "all".parse().expect("all");
        assert!(all.is_embedded());
        assert!(Role::ALL.iter().all(|r| all.has(*r)));
        let some: RoleSet = " diary , mood ".parse().expect("two roles");
        assert!(!some.is_embedded());
        assert_eq!(some.iter().collect::<Vec<_>>(), [Role::Diary, Role::Mood]);
        assert_eq!(some.to_string(), "diary,mood");
        assert!(some.serves_api());
        assert!(!"mood,relay".parse::<RoleSet>().expect("valid").serves_api());
        // Every role named one by one is still distributed, not `all`.
        let five: RoleSet = "user,diary,mood,matching,relay".parse().expect("valid");
        assert!(!five.is_embedded());
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert_eq!("".parse::<RoleSet>(), Err(RolesError::Empty));
        assert_eq!(" , ".parse::<RoleSet>(), Err(RolesError::Empty));
        assert_eq!(
            "diary,gateway".parse::<RoleSet>(),
            Err(RolesError::Unknown("gateway".into()))
        );
        assert_eq!(
            "all,mood".parse::<RoleSet>(),
            Err(RolesError::AllWithOthers)
        );
    }

    proptest! {
        #[test]
        fn display_parses_back(bits in 1u8..32) {
            let set = RoleSet { bits, embedded: false };
            let again: RoleSet = set.to_string().parse().expect("parses");
            prop_assert_eq!(again, set);
        }
    }
}
