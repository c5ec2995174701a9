//! The position index: dense global positions `0, 1, 2, …` of a namespace
//! mapped to EventStoreDB `$all` positions, and event ids to dense
//! positions. It is rebuilt in every process from `$all` (a server-side
//! filtered read), so every process derives the same numbering.

use std::collections::HashMap;

use kurrentdb::Position;
use metachat_core::{Error, Result};
use uuid::Uuid;

/// Dense position `p` is the `p`-th event (0-based) of the namespace in
/// `$all` order, system-typed events left out.
#[derive(Debug, Default)]
pub(crate) struct PositionIndex {
    /// `$all` position of each dense position, ascending.
    positions: Vec<Position>,
    /// Dense position of each event id (its first occurrence).
    ids: HashMap<Uuid, u64>,
    /// Every event of the namespace at or before this `$all` position is
    /// indexed: a scan may resume after it instead of after the last event.
    scanned_to: Option<Position>,
}

/// Where a read of the namespace's events resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// From the start of `$all`.
    Start,
    /// After this `$all` position (exclusive).
    After(Position),
}

impl PositionIndex {
    /// Events indexed: the next dense position.
    pub(crate) fn len(&self) -> u64 {
        self.positions.len() as u64
    }

    /// Where the events from dense position `from` on start in `$all`
    /// (exclusive), or `None` when `from` is past what is indexed.
    pub(crate) fn resume_before(&self, from: u64) -> Option<Resume> {
        match from {
            0 => Some(Resume::Start),
            _ if from <= self.len() => Some(Resume::After(self.positions[index(from - 1)])),
            _ => None,
        }
    }

    /// Where a scan for events not yet indexed resumes, and the dense
    /// position its first event gets.
    pub(crate) fn scan_point(&self) -> (Resume, u64) {
        let last = self.positions.last().copied();
        let after = match (last, self.scanned_to) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        (after.map_or(Resume::Start, Resume::After), self.len())
    }

    /// Records that every namespace event up to `position` is indexed.
    pub(crate) fn mark_scanned(&mut self, position: Position) {
        if self.scanned_to.is_none_or(|s| s < position) {
            self.scanned_to = Some(position);
        }
    }

    /// The dense position of the event at `$all` position `position`:
    /// `Ok(Some(p))`, `Ok(None)` when it lies past the last indexed event,
    /// an error when it lies inside the indexed range but is not indexed.
    pub(crate) fn dense_of(&self, position: Position) -> Result<Option<u64>> {
        match self.positions.binary_search(&position) {
            Ok(i) => Ok(Some(i as u64)),
            Err(i) if i == self.positions.len() => Ok(None),
            Err(_) => Err(Error::Corrupted {
                location: format!("$all position {position}"),
                reason: "an event of the namespace that the position index never saw \
                         (written below the indexed head?)"
                    .into(),
            }),
        }
    }

    /// The dense position of an event id, if indexed.
    pub(crate) fn find(&self, id: &Uuid) -> Option<u64> {
        self.ids.get(id).copied()
    }

    /// Merges consecutive events of the namespace, read from `$all`, whose
    /// first has dense position `first`: indexes those past the end and
    /// checks that those already indexed sit where the index has them.
    ///
    /// A mismatch means the namespace's events in `$all` changed under the
    /// index (a scavenge removed events of deleted streams): positions
    /// handed out before no longer name the same events.
    pub(crate) fn merge(
        &mut self,
        first: u64,
        events: impl IntoIterator<Item = (Position, Uuid)>,
    ) -> Result<()> {
        for (p, (position, id)) in (first..).zip(events) {
            match p.cmp(&self.len()) {
                std::cmp::Ordering::Less => {
                    let known = self.positions[index(p)];
                    if known != position {
                        return Err(renumbered(p, known, position));
                    }
                }
                std::cmp::Ordering::Equal => {
                    if let Some(&last) = self.positions.last() {
                        if position <= last {
                            return Err(renumbered(p, last, position));
                        }
                    }
                    self.positions.push(position);
                    self.ids.entry(id).or_insert(p);
                }
                std::cmp::Ordering::Greater => {
                    return Err(Error::Corrupted {
                        location: format!("global position {p}"),
                        reason: format!(
                            "a read placed an event past the indexed end {} (internal error)",
                            self.len()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

fn renumbered(p: u64, known: Position, got: Position) -> Error {
    Error::Corrupted {
        location: format!("global position {p}"),
        reason: format!(
            "the index has $all position {known}, a read found {got}: the namespace's events \
             in $all changed (a scavenge after a stream deletion?); positions handed out \
             before no longer hold"
        ),
    }
}

/// A dense position as a vector index (positions are bounded by memory).
fn index(p: u64) -> usize {
    usize::try_from(p).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pos(n: u64) -> Position {
        Position {
            commit: n,
            prepare: n,
        }
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn positions_are_ordinals_in_all_order() {
        let mut ix = PositionIndex::default();
        assert_eq!(ix.scan_point(), (Resume::Start, 0));
        assert_eq!(ix.resume_before(0), Some(Resume::Start));
        assert_eq!(ix.resume_before(1), None);
        ix.merge(0, [(pos(100), id(1)), (pos(250), id(2))]).unwrap();
        ix.merge(2, [(pos(251), id(3))]).unwrap();
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.dense_of(pos(250)).unwrap(), Some(1));
        assert_eq!(ix.dense_of(pos(999)).unwrap(), None, "past the head");
        assert!(matches!(
            ix.dense_of(pos(101)),
            Err(Error::Corrupted { .. })
        ));
        assert_eq!(ix.find(&id(3)), Some(2));
        assert_eq!(ix.find(&id(9)), None);
        assert_eq!(ix.resume_before(1), Some(Resume::After(pos(100))));
        assert_eq!(ix.resume_before(3), Some(Resume::After(pos(251))));
        assert_eq!(ix.resume_before(4), None);
        assert_eq!(ix.scan_point(), (Resume::After(pos(251)), 3));
    }

    #[test]
    fn a_scan_resumes_after_what_was_scanned() {
        let mut ix = PositionIndex::default();
        ix.mark_scanned(pos(40));
        assert_eq!(ix.scan_point(), (Resume::After(pos(40)), 0));
        ix.merge(0, [(pos(50), id(1))]).unwrap();
        assert_eq!(ix.scan_point(), (Resume::After(pos(50)), 1));
        ix.mark_scanned(pos(70));
        ix.mark_scanned(pos(60));
        assert_eq!(ix.scan_point(), (Resume::After(pos(70)), 1));
    }

    #[test]
    fn overlapping_reads_agree_and_a_renumbering_is_reported() {
        let mut ix = PositionIndex::default();
        ix.merge(0, [(pos(1), id(1)), (pos(2), id(2))]).unwrap();
        // A second reader saw the same events, then one more.
        ix.merge(1, [(pos(2), id(2)), (pos(3), id(3))]).unwrap();
        assert_eq!(ix.len(), 3);
        // After a scavenge, a fresh read numbers differently.
        let e = ix.merge(1, [(pos(3), id(3))]).unwrap_err();
        assert!(matches!(e, Error::Corrupted { .. }), "{e:?}");
        // A read cannot skip past the end.
        assert!(ix.merge(5, [(pos(9), id(9))]).is_err());
        // Nor go back in $all.
        assert!(ix.merge(3, [(pos(2), id(8))]).is_err());
    }

    #[test]
    fn an_id_keeps_its_first_position() {
        let mut ix = PositionIndex::default();
        ix.merge(0, [(pos(1), id(7)), (pos(2), id(7))]).unwrap();
        assert_eq!(ix.find(&id(7)), Some(0));
    }

    proptest! {
        /// However the namespace's events are split into reads (from any
        /// indexed point, overlapping or not), the index ends up the same:
        /// dense positions are a function of $all alone.
        #[test]
        fn any_split_of_reads_gives_the_same_index(
            gaps in proptest::collection::vec(1u64..50, 1..60),
            cuts in proptest::collection::vec((any::<prop::sample::Index>(), 1usize..10), 1..20),
        ) {
            let log: Vec<(Position, Uuid)> = gaps
                .iter()
                .scan(0u64, |at, g| { *at += g; Some(*at) })
                .enumerate()
                .map(|(i, p)| (pos(p), id(i as u128)))
                .collect();
            let mut ix = PositionIndex::default();
            for (start, len) in cuts {
                let from = start.index(index(ix.len()) + 1);
                let page: Vec<_> = log.iter().skip(from).take(len).copied().collect();
                ix.merge(from as u64, page).unwrap();
            }
            let (_, next) = ix.scan_point();
            let rest: Vec<_> = log.iter().skip(index(next)).copied().collect();
            ix.merge(next, rest).unwrap();
            prop_assert_eq!(ix.len(), log.len() as u64);
            for (i, (p, u)) in log.iter().enumerate() {
                prop_assert_eq!(ix.dense_of(*p).unwrap(), Some(i as u64));
                prop_assert_eq!(ix.find(u), Some(i as u64));
            }
        }
    }
}
