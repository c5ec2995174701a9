use crate::error::{Error, Result};
use crate::event::NewEvent;

/// Size limits every store enforces before it writes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest event: payload + type name + metadata, in bytes. Default 1 MiB.
    pub max_event_bytes: usize,
    /// Most events in one append. Default 10,000.
    pub max_batch_len: usize,
    /// Longest event type name, in bytes. Default 128.
    pub max_event_type_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 1 << 20,
            max_batch_len: 10_000,
            max_event_type_len: 128,
        }
    }
}

impl Limits {
    /// Checks a batch against the limits; the stream id was checked when it was built.
    pub fn check(&self, events: &[NewEvent]) -> Result<()> {
        if events.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if events.len() > self.max_batch_len {
            return Err(Error::BatchTooLarge {
                len: events.len(),
                limit: self.max_batch_len,
            });
        }
        for e in events {
            if e.event_type.is_empty() || e.event_type.len() > self.max_event_type_len {
                return Err(Error::InvalidEventType {
                    reason: format!(
                        "length {} not in 1..={}",
                        e.event_type.len(),
                        self.max_event_type_len
                    ),
                });
            }
            if e.event_type.chars().any(char::is_control) {
                return Err(Error::InvalidEventType {
                    reason: "contains a control character".into(),
                });
            }
            let size = e.encoded_len();
            if size > self.max_event_bytes {
                return Err(Error::EventTooLarge {
                    size,
                    limit: self.max_event_bytes,
                });
            }
        }
        // One event id twice in the same batch would make idempotency ambiguous.
        let mut ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::DuplicateInBatch { event_id: w[0].0 });
        }
        Ok(())
    }
}
