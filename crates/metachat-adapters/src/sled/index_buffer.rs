//! [`IndexBuffer`]: the event index entries of groups already durable in
//! the log but not yet in sled.
//!
//! Under [`Durability::Sync`](super::Durability::Sync) the writer puts a
//! group's entries (its batch location, one run per stream) here once the
//! log's `fdatasync` has returned, and the checkpointer moves them into sled
//! in a few large atomic batches a second (sled pays two writes of its I/O
//! buffer per `apply_batch`, and about a microsecond of CPU per insert: on
//! the writer's thread that was half its time per group). Readers look here
//! first, then in sled: an entry leaves the buffer only after sled has it,
//! so a reader that missed it here finds it there.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use metachat_core::Result;

use super::segment::Location;

/// Index entries (key → value, as sled would hold them).
pub(crate) type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// What a drain moves into sled: the entries, and how far the index is
/// then complete (next position, the log's end there).
struct Taken {
    entries: Arc<Entries>,
    mark: Option<(u64, Location)>,
}

#[derive(Default)]
struct Inner {
    /// Entries added since the last checkpoint began.
    fresh: Entries,
    /// Where `fresh` reaches.
    mark: Option<(u64, Location)>,
    /// Entries the running drain is moving into sled.
    moving: Option<Arc<Entries>>,
    /// Where `moving` reaches.
    moving_mark: Option<(u64, Location)>,
    /// How far the entries in sled reach.
    in_sled: Option<(u64, Location)>,
}

/// See the [module docs](self).
#[derive(Default)]
pub(crate) struct IndexBuffer {
    inner: RwLock<Inner>,
    /// Held through a [`drain`](Self::drain): one at a time.
    draining: Mutex<()>,
}

impl IndexBuffer {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one group's entries; the index is then complete up to position
    /// `next`, the log ending at `end`. Returns how many entries wait.
    pub(crate) fn add(
        &self,
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
        next: u64,
        end: Location,
    ) -> usize {
        let mut inner = self.write();
        inner.fresh.extend(entries);
        inner.mark = Some((next, end));
        inner.fresh.len()
    }

    /// Moves what was added so far into sled with `insert`, one drain at a
    /// time; the entries stay visible here until `insert` has returned. If
    /// `insert` fails, they stay here for the next drain.
    pub(crate) fn drain(&self, insert: impl FnOnce(&Entries) -> Result<()>) -> Result<()> {
        let _one = self.draining.lock().unwrap_or_else(|p| p.into_inner());
        let Some(taken) = self.take() else {
            return Ok(());
        };
        match insert(&taken.entries) {
            Ok(()) => {
                self.moved();
                Ok(())
            }
            Err(e) => {
                self.restore(taken);
                Err(e)
            }
        }
    }

    /// What was added so far, kept visible to readers until
    /// [`moved`](Self::moved); `None` if nothing was added since.
    fn take(&self) -> Option<Taken> {
        let mut inner = self.write();
        if inner.fresh.is_empty() && inner.mark.is_none() {
            return None;
        }
        let entries = Arc::new(std::mem::take(&mut inner.fresh));
        inner.moving = Some(entries.clone());
        inner.moving_mark = inner.mark;
        Some(Taken {
            entries,
            mark: inner.mark.take(),
        })
    }

    /// The taken entries are in sled: readers find them there now.
    fn moved(&self) {
        let mut inner = self.write();
        inner.moving = None;
        if let Some(m) = inner.moving_mark.take() {
            inner.in_sled = Some(m);
        }
    }

    /// How far the index entries in sled reach (next position, the log's
    /// end there), as far as drains put them there: `None` before the first.
    pub(crate) fn in_sled(&self) -> Option<(u64, Location)> {
        self.read().in_sled
    }

    /// The taken entries could not be moved: they go back, and the next
    /// checkpoint tries again.
    fn restore(&self, taken: Taken) {
        let mut inner = self.write();
        inner.moving = None;
        inner.moving_mark = None;
        let entries = Arc::try_unwrap(taken.entries).unwrap_or_else(|a| (*a).clone());
        for (k, v) in entries {
            inner.fresh.entry(k).or_insert(v);
        }
        if inner.mark.is_none() {
            inner.mark = taken.mark;
        }
    }

    /// The value at `key`, if buffered.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let inner = self.read();
        inner
            .fresh
            .get(key)
            .or_else(|| inner.moving.as_ref().and_then(|m| m.get(key)))
            .cloned()
    }

    /// The buffered entries with keys in `lo..=hi`, in key order (reversed
    /// with `rev`), at most `limit` of them: the first ones in that order.
    pub(crate) fn range(
        &self,
        lo: &[u8],
        hi: &[u8],
        rev: bool,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        if lo > hi || limit == 0 {
            return Vec::new();
        }
        let bounds = (Bound::Included(lo), Bound::Included(hi));
        let inner = self.read();
        let copy = |m: &Entries| -> Vec<(Vec<u8>, Vec<u8>)> {
            let pair = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
            let found = m.range::<[u8], _>(bounds);
            if rev {
                found.rev().take(limit).map(pair).collect()
            } else {
                found.take(limit).map(pair).collect()
            }
        };
        let mut out = copy(&inner.fresh);
        if let Some(moving) = &inner.moving {
            let older = copy(moving);
            if !older.is_empty() {
                // Keys are never in both (a key is written once), but a
                // merge by key keeps the order whatever happens.
                out.extend(older);
                out.sort_by(|a, b| if rev { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
                out.dedup_by(|a, b| a.0 == b.0);
                out.truncate(limit);
            }
        }
        out
    }

    /// Entries waiting (fresh and moving).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let inner = self.read();
        inner.fresh.len() + inner.moving.as_ref().map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: u8) -> (Vec<u8>, Vec<u8>) {
        (vec![k], vec![k, k])
    }

    fn end(offset: u64) -> Location {
        Location { segment: 0, offset }
    }

    #[test]
    fn entries_stay_visible_while_they_move() {
        let buf = IndexBuffer::default();
        assert_eq!(buf.add([kv(1), kv(3)], 2, end(10)), 2);
        let taken = buf.take().expect("something to move");
        assert_eq!(taken.mark, Some((2, end(10))));
        assert_eq!(taken.entries.len(), 2);
        buf.add([kv(2)], 3, end(20));
        assert_eq!(buf.range(&[0], &[9], true, 2), vec![kv(3), kv(2)]);
        assert_eq!(
            buf.range(&[0], &[9], false, usize::MAX),
            vec![kv(1), kv(2), kv(3)]
        );
        assert_eq!(buf.get(&[3]), Some(vec![3, 3]));
        buf.moved();
        assert_eq!(buf.range(&[0], &[9], false, usize::MAX), vec![kv(2)]);
        assert_eq!(buf.get(&[3]), None);
        assert_eq!(buf.len(), 1);
        assert_eq!(buf.in_sled(), Some((2, end(10))));
    }

    #[test]
    fn a_failed_move_puts_the_entries_back() {
        let buf = IndexBuffer::default();
        buf.add([kv(1)], 1, end(10));
        let taken = buf.take().expect("something to move");
        buf.restore(taken);
        let again = buf.take().expect("the entries came back");
        assert_eq!(again.mark, Some((1, end(10))));
        assert_eq!(again.entries.len(), 1);
        buf.moved();
        assert!(buf.take().is_none());
    }

    #[test]
    fn a_drain_returns_the_mark_and_keeps_entries_after_a_failure() {
        let buf = IndexBuffer::default();
        buf.add([kv(1)], 1, end(10));
        let failed = buf.drain(|_| Err(metachat_core::Error::Closed));
        assert!(failed.is_err());
        assert_eq!(buf.get(&[1]), Some(vec![1, 1]));
        assert_eq!(buf.in_sled(), None);
        let mut seen = 0;
        let drained = buf.drain(|e| {
            seen = e.len();
            Ok(())
        });
        assert!(drained.is_ok());
        assert_eq!(seen, 1);
        assert_eq!(buf.len(), 0);
        assert_eq!(buf.in_sled(), Some((1, end(10))));
        let mut called = false;
        assert!(buf
            .drain(|_| {
                called = true;
                Ok(())
            })
            .is_ok());
        assert!(!called, "nothing added since the last drain");
    }

    #[test]
    fn a_range_is_inclusive_and_empty_when_reversed() {
        let buf = IndexBuffer::default();
        buf.add([kv(1), kv(2), kv(3)], 3, end(10));
        assert_eq!(buf.range(&[2], &[3], false, usize::MAX), vec![kv(2), kv(3)]);
        assert_eq!(buf.range(&[0], &[9], true, 2), vec![kv(3), kv(2)]);
        assert_eq!(buf.range(&[0], &[9], false, 1), vec![kv(1)]);
        assert!(buf.range(&[3], &[2], false, usize::MAX).is_empty());
    }
}
