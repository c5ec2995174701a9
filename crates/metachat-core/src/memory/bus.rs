use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;

use crate::bus::{Acknowledge, Delivery, DeliveryStream, EventBus};
use crate::error::Result;
use crate::event::Envelope;

/// A bus in memory: each topic is one ordered log, each group an offset.
/// Several subscribers of one group each read from the group's committed
/// offset, so they may see the same events (at-least-once).
#[derive(Debug, Clone, Default)]
pub struct InMemoryEventBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    topics: Mutex<HashMap<String, Topic>>,
}

#[derive(Debug)]
struct Topic {
    log: Vec<Envelope>,
    len: watch::Sender<usize>,
    groups: HashMap<String, Group>,
}

#[derive(Debug, Default)]
struct Group {
    committed: usize,
    acked: BTreeSet<usize>,
}

impl InMemoryEventBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// The group's committed offset on `topic` (events before it are acknowledged).
    pub fn committed(&self, topic: &str, group: &str) -> usize {
        let topics = self.inner.lock();
        topics
            .get(topic)
            .and_then(|t| t.groups.get(group))
            .map_or(0, |g| g.committed)
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn topic_entry<'a>(topics: &'a mut HashMap<String, Topic>, name: &str) -> &'a mut Topic {
    topics.entry(name.to_owned()).or_insert_with(|| Topic {
        log: Vec::new(),
        len: watch::channel(0).0,
        groups: HashMap::new(),
    })
}

#[derive(Debug)]
struct Ack {
    inner: Arc<Inner>,
    topic: String,
    group: String,
    offset: usize,
}

#[async_trait]
impl Acknowledge for Ack {
    async fn ack(self: Box<Self>) -> Result<()> {
        let mut topics = self.inner.lock();
        let t = topic_entry(&mut topics, &self.topic);
        let g = t.groups.entry(self.group.clone()).or_default();
        if self.offset >= g.committed {
            g.acked.insert(self.offset);
            while g.acked.remove(&g.committed) {
                g.committed += 1;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventBus for InMemoryEventBus {
    async fn publish(&self, topic: &str, events: &[Envelope]) -> Result<()> {
        let mut topics = self.inner.lock();
        let t = topic_entry(&mut topics, topic);
        t.log.extend_from_slice(events);
        let len = t.log.len();
        t.len.send_replace(len);
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<DeliveryStream> {
        let (start, rx) = {
            let mut topics = self.inner.lock();
            let t = topic_entry(&mut topics, topic);
            let start = t.groups.entry(group.to_owned()).or_default().committed;
            (start, t.len.subscribe())
        };
        let state = (
            self.inner.clone(),
            topic.to_owned(),
            group.to_owned(),
            start,
            rx,
        );
        let stream =
            futures::stream::unfold(state, |(inner, topic, group, offset, mut rx)| async move {
                loop {
                    rx.borrow_and_update();
                    let next = {
                        let topics = inner.lock();
                        topics.get(&topic).and_then(|t| t.log.get(offset).cloned())
                    };
                    if let Some(envelope) = next {
                        let ack = Ack {
                            inner: inner.clone(),
                            topic: topic.clone(),
                            group: group.clone(),
                            offset,
                        };
                        let d = Delivery::new(envelope, topic.clone(), Box::new(ack));
                        return Some((Ok(d), (inner, topic, group, offset + 1, rx)));
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            });
        Ok(stream.boxed())
    }
}
