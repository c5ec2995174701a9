//! One consumer-group member: offsets tracked per partition, committed only
//! up to the first delivery not yet acknowledged, and committed synchronously
//! when partitions are revoked (a rebalance, or the member closing).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use metachat_core::bus::Acknowledge;
use metachat_core::{Error, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::error::map;

/// Where a delivery came from: topic, partition, offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

#[derive(Debug, Default)]
struct Partition {
    /// Changes with each assignment, so acks of an earlier one are ignored.
    generation: u64,
    /// Delivered, not yet acknowledged.
    outstanding: BTreeSet<i64>,
    /// One past the highest offset delivered in this assignment.
    next: Option<i64>,
    /// The highest offset this member asked to commit in this assignment
    /// (asynchronously: the commit may not have landed yet).
    committed: i64,
    /// Where the group resumed this partition for this member: the first
    /// offset delivered in this assignment.
    resumed_at: i64,
}

impl Partition {
    /// The offset to commit: the first outstanding delivery, else one past
    /// the last delivered.
    fn committable(&self) -> Option<i64> {
        self.outstanding.first().copied().or(self.next)
    }
}

/// Offsets of the partitions this member holds now.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    parts: HashMap<(String, i32), Partition>,
    generations: u64,
}

impl Tracker {
    fn assign(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            self.generations += 1;
            self.parts.insert(
                (e.topic().to_owned(), e.partition()),
                Partition {
                    generation: self.generations,
                    committed: -1,
                    resumed_at: -1,
                    ..Default::default()
                },
            );
        }
    }

    /// Removes the revoked partitions; returns the offsets to commit for them:
    /// every partition where this assignment moved past where the group
    /// resumed, including offsets already asked for asynchronously, which
    /// may not have landed before the member leaves.
    fn revoke(&mut self, tpl: &TopicPartitionList) -> TopicPartitionList {
        let mut out = TopicPartitionList::new();
        for e in tpl.elements() {
            if let Some(p) = self.parts.remove(&(e.topic().to_owned(), e.partition())) {
                if let Some(o) = p.committable().filter(|&o| o > p.resumed_at) {
                    // Adding a partition to a fresh list cannot fail for a valid offset.
                    let _ = out.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
                }
            }
        }
        out
    }

    /// Records a delivery; `None` if the partition is not assigned to this member.
    pub(crate) fn delivered(&mut self, o: &Origin) -> Option<u64> {
        let p = self.parts.get_mut(&(o.topic.clone(), o.partition))?;
        if p.next.is_none() {
            // The group resumes here already: no commit needed to stay here.
            p.committed = p.committed.max(o.offset);
            p.resumed_at = o.offset;
        }
        p.outstanding.insert(o.offset);
        p.next = Some(p.next.map_or(o.offset + 1, |n| n.max(o.offset + 1)));
        Some(p.generation)
    }

    /// Records an acknowledgement; returns the new offset to commit, if it moved.
    pub(crate) fn acked(&mut self, o: &Origin, generation: u64) -> Option<i64> {
        let p = self.parts.get_mut(&(o.topic.clone(), o.partition))?;
        if p.generation != generation || !p.outstanding.remove(&o.offset) {
            return None;
        }
        let c = p.committable()?;
        if c > p.committed {
            p.committed = c;
            Some(c)
        } else {
            None
        }
    }
}

/// The consumer's context: keeps the [`Tracker`] in step with the assignment.
#[derive(Debug, Default)]
pub(crate) struct MemberContext {
    tracker: Mutex<Tracker>,
    /// Whether the consumer lost every broker (see [`super::orphan`]).
    pub(crate) orphan: super::orphan::Orphan,
}

impl MemberContext {
    pub(crate) fn tracker(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for MemberContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.orphan.observe(statistics);
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Commit what was handled before the partitions go to another member.
            let offsets = self.tracker().revoke(tpl);
            if offsets.count() > 0 {
                if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                    tracing::warn!(error = %e, "kafka: commit on revoke failed; records will be redelivered");
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.tracker().assign(tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(error = %e, "kafka: offset commit failed; records may be redelivered");
        }
    }
}

/// The consumer type of a member.
pub(crate) type MemberConsumer = rdkafka::consumer::StreamConsumer<MemberContext>;

/// Acknowledges one delivery: commits up to the first unacknowledged one.
#[derive(Debug)]
pub(crate) struct KafkaAck {
    pub(crate) consumer: Weak<MemberConsumer>,
    pub(crate) origin: Origin,
    pub(crate) generation: u64,
}

impl KafkaAck {
    pub(crate) fn new(consumer: &Arc<MemberConsumer>, origin: Origin, generation: u64) -> Self {
        KafkaAck {
            consumer: Arc::downgrade(consumer),
            origin,
            generation,
        }
    }

    /// Acknowledges now (no await needed).
    pub(crate) fn ack_now(&self) -> Result<()> {
        // The member is gone (closed): its partitions went back to the group,
        // which redelivers what it had not committed.
        let consumer = self.consumer.upgrade().ok_or(Error::Closed)?;
        let mut tracker = consumer.context().tracker();
        if let Some(offset) = tracker.acked(&self.origin, self.generation) {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(
                &self.origin.topic,
                self.origin.partition,
                Offset::Offset(offset),
            )
            .map_err(|e| map("commit", e))?;
            // Asynchronous: the revoke/close path commits synchronously.
            consumer
                .commit(&tpl, CommitMode::Async)
                .map_err(|e| map("commit", e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Acknowledge for KafkaAck {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.ack_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(offset: i64) -> Origin {
        Origin {
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }

    fn assigned() -> Tracker {
        let mut t = Tracker::default();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("t", 0);
        t.assign(&tpl);
        t
    }

    #[test]
    fn commits_only_up_to_the_first_gap() {
        let mut t = assigned();
        let g: Vec<u64> = (10..14)
            .map(|o| t.delivered(&origin(o)).expect("assigned"))
            .collect();
        assert_eq!(t.acked(&origin(11), g[1]), None, "10 is still outstanding");
        assert_eq!(t.acked(&origin(10), g[0]), Some(12));
        assert_eq!(t.acked(&origin(13), g[3]), None, "12 is still outstanding");
        assert_eq!(t.acked(&origin(12), g[2]), Some(14));
        assert_eq!(t.acked(&origin(12), g[2]), None, "a second ack is a no-op");
    }

    #[test]
    fn revoke_returns_the_committable_offset_and_forgets_the_partition() {
        let mut t = assigned();
        let g = t.delivered(&origin(0)).expect("assigned");
        t.delivered(&origin(1));
        t.delivered(&origin(2));
        assert_eq!(t.acked(&origin(0), g), Some(1));
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("t", 0);
        let out = t.revoke(&tpl);
        let e = out.elements();
        // Offset 1 was asked for asynchronously; it is committed again,
        // synchronously, in case that commit had not landed.
        assert_eq!(e.len(), 1, "{out:?}");
        assert_eq!(e[0].offset(), Offset::Offset(1));
        assert_eq!(t.acked(&origin(1), g), None, "revoked: acks are ignored");
        assert_eq!(t.delivered(&origin(3)), None, "not assigned any more");
    }

    #[test]
    fn a_revoke_with_nothing_acknowledged_commits_nothing() {
        let mut t = assigned();
        t.delivered(&origin(7));
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("t", 0);
        assert_eq!(t.revoke(&tpl).count(), 0, "the group resumes at 7 already");
    }

    #[test]
    fn acks_of_an_earlier_assignment_are_ignored() {
        let mut t = assigned();
        let old = t.delivered(&origin(5)).expect("assigned");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("t", 0);
        t.revoke(&tpl);
        t.assign(&tpl);
        let new = t.delivered(&origin(5)).expect("assigned again");
        assert_ne!(old, new);
        assert_eq!(t.acked(&origin(5), old), None);
        assert_eq!(t.acked(&origin(5), new), Some(6));
    }
}
