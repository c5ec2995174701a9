//! A given/when/then harness for aggregates.
//!
//! ```
//! # use metachat_core::aggregate::Aggregate;
//! # use metachat_core::codec::DomainEvent;
//! # use metachat_conformance::testing::AggregateTest;
//! # use serde::{Deserialize, Serialize};
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type", content = "data")]
//! enum Ev { Opened {} }
//! impl DomainEvent for Ev { fn event_types() -> &'static [&'static str] { &["Opened"] } }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("already open")]
//! struct AlreadyOpen;
//!
//! #[derive(Default)]
//! struct Door { open: bool }
//! impl Aggregate for Door {
//!     const KIND: &'static str = "door";
//!     type Event = Ev;
//!     type Command = ();
//!     type Error = AlreadyOpen;
//!     fn apply(&mut self, _: &Ev) { self.open = true; }
//!     fn handle(&self, _: &()) -> Result<Vec<Ev>, AlreadyOpen> {
//!         if self.open { Err(AlreadyOpen) } else { Ok(vec![Ev::Opened {}]) }
//!     }
//! }
//!
//! AggregateTest::<Door>::given_no_events().when(&()).then_expect(vec![Ev::Opened {}]);
//! AggregateTest::<Door>::given([Ev::Opened {}]).when(&()).then_error(|e| matches!(e, AlreadyOpen));
//! ```

use std::fmt::Debug;

use metachat_core::aggregate::Aggregate;

/// The "given" step: an aggregate with some history.
#[derive(Debug)]
pub struct AggregateTest<A> {
    state: A,
}

/// The "then" step: what the command produced.
#[derive(Debug)]
pub struct Outcome<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> AggregateTest<A> {
    /// An aggregate that has seen `events`.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut state = A::default();
        for e in events {
            state.apply(&e);
        }
        AggregateTest { state }
    }

    /// A new aggregate.
    pub fn given_no_events() -> Self {
        AggregateTest {
            state: A::default(),
        }
    }

    /// Handles `command`.
    pub fn when(self, command: &A::Command) -> Outcome<A> {
        Outcome {
            result: self.state.handle(command),
        }
    }
}

impl<A: Aggregate> Outcome<A>
where
    A::Event: Debug,
{
    /// Asserts the command produced exactly `expected`.
    #[track_caller]
    pub fn then_expect(self, expected: Vec<A::Event>)
    where
        A::Event: PartialEq,
    {
        match self.result {
            Ok(events) => assert_eq!(events, expected, "unexpected events"),
            Err(e) => panic!("expected events {expected:?}, got error: {e}"),
        }
    }

    /// Asserts the command failed with an error matching `pred`.
    #[track_caller]
    pub fn then_error(self, pred: impl FnOnce(&A::Error) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, got events {events:?}"),
            Err(e) => assert!(pred(&e), "unexpected error: {e:?}"),
        }
    }

    /// The raw result, for assertions the helpers do not cover.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
