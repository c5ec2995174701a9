//! Read-your-writes: how far each projection has caught up, as
//! `tokio::sync::watch` channels fed by the read-model store itself.
//!
//! [`NotifyingReadModels`] wraps a store and publishes a projection's
//! checkpoint right after the commit that stored it, so a reader woken by the
//! channel sees that commit's documents. A request handler that appended at
//! position `p` waits with [`Progress::wait_for`] until the projections it
//! reads have applied `p`, and then reads its own write.
//!
//! ```
//! use std::time::Duration;
//! use metachat_core::memory::InMemoryReadModels;
//! use metachat_core::progress::{NotifyingReadModels, Progress};
//! use metachat_core::read_model::{Commit, ReadModelStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> metachat_core::Result<()> {
//! let progress = Progress::new([("timeline".to_owned(), 0)]);
//! let read_models = NotifyingReadModels::new(InMemoryReadModels::new(), progress.clone());
//! // A projection runner over `read_models` commits its batch and checkpoint...
//! read_models
//!     .commit(Commit { ops: vec![], checkpoint: Some(("timeline".into(), 8)) })
//!     .await?;
//! // ...and a reader that wrote at position 7 sees it applied at once.
//! let applied = progress.wait_for(&["timeline"], Some(7), Duration::from_secs(1)).await;
//! assert_eq!(applied.ok(), Some(7));
//! // A position no projection reached is a typed "not caught up".
//! let late = progress.wait_for(&["timeline"], Some(9), Duration::ZERO).await;
//! assert_eq!(late.err().map(|e| e.position), Some(7));
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::Result;
use crate::read_model::{Commit, Document, ReadModelCapabilities, ReadModelStore};

/// The projections did not apply the asked position within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("projections have not caught up; last position applied by all: {position}")]
pub struct NotCaughtUp {
    /// The last position every asked projection has applied.
    pub position: u64,
}

/// The projections' checkpoints (the next position each will read). Cheap to
/// clone: clones share the channels.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    channels: Arc<HashMap<String, watch::Sender<u64>>>,
}

impl Progress {
    /// Channels for `names`, starting at their stored checkpoints.
    pub fn new(start: impl IntoIterator<Item = (String, u64)>) -> Self {
        let channels = start
            .into_iter()
            .map(|(name, next)| (name, watch::Sender::new(next)))
            .collect();
        Progress {
            channels: Arc::new(channels),
        }
    }

    /// The names of the tracked projections.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    /// The next position `name` will read (0 when unknown).
    pub fn next(&self, name: &str) -> u64 {
        self.channels.get(name).map_or(0, |c| *c.borrow())
    }

    fn publish(&self, name: &str, next: u64) {
        if let Some(c) = self.channels.get(name) {
            c.send_if_modified(|v| {
                let moved = next > *v;
                if moved {
                    *v = next;
                }
                moved
            });
        }
    }

    /// Waits until every projection in `names` has applied position
    /// `min_position` (its checkpoint is past it), at most `wait`. Returns
    /// the last position applied by all of them (see [`reported`]); with
    /// `min_position` `None`, that position at once. Names not tracked here
    /// are not waited for.
    ///
    /// # Errors
    /// [`NotCaughtUp`] when the wait ran out first.
    pub async fn wait_for(
        &self,
        names: &[&str],
        min_position: Option<u64>,
        wait: Duration,
    ) -> std::result::Result<u64, NotCaughtUp> {
        if let Some(min) = min_position {
            let target = min.saturating_add(1);
            let deadline = tokio::time::Instant::now() + wait;
            for name in names {
                let Some(c) = self.channels.get(*name) else {
                    continue;
                };
                let mut rx = c.subscribe();
                let reached =
                    tokio::time::timeout_at(deadline, rx.wait_for(|next| *next >= target)).await;
                if !matches!(reached, Ok(Ok(_))) {
                    return Err(NotCaughtUp {
                        position: self.position(names),
                    });
                }
            }
        }
        Ok(self.position(names))
    }

    /// The last position applied by every projection in `names`.
    pub fn position(&self, names: &[&str]) -> u64 {
        reported(names.iter().map(|n| self.next(n)).min().unwrap_or(0))
    }
}

/// A checkpoint (next position to read) as the position answered to
/// clients: the last position applied, 0 before the first.
pub fn reported(next: u64) -> u64 {
    next.saturating_sub(1)
}

/// A read-model store that publishes each committed checkpoint to a
/// [`Progress`].
#[derive(Debug, Clone)]
pub struct NotifyingReadModels<R> {
    inner: R,
    progress: Progress,
}

impl<R> NotifyingReadModels<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, progress: Progress) -> Self {
        NotifyingReadModels { inner, progress }
    }
}

#[async_trait]
impl<R: ReadModelStore> ReadModelStore for NotifyingReadModels<R> {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        self.inner.get(collection, key).await
    }

    async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        self.inner
            .scan_prefix(collection, prefix, after, limit)
            .await
    }

    async fn commit(&self, commit: Commit) -> Result<()> {
        let checkpoint = commit.checkpoint.clone();
        self.inner.commit(commit).await?;
        if let Some((name, next)) = checkpoint {
            self.progress.publish(&name, next);
        }
        Ok(())
    }

    async fn checkpoint(&self, projection: &str) -> Result<Option<u64>> {
        self.inner.checkpoint(projection).await
    }

    async fn clear_collection(&self, collection: &str) -> Result<()> {
        self.inner.clear_collection(collection).await
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<()> {
        self.inner.reset_checkpoint(projection).await
    }

    fn capabilities(&self) -> ReadModelCapabilities {
        self.inner.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryReadModels;

    #[tokio::test]
    async fn a_commit_wakes_the_waiting_reader() {
        let progress = Progress::new([("p".to_owned(), 0)]);
        let store = NotifyingReadModels::new(InMemoryReadModels::new(), progress.clone());
        let waiter = {
            let progress = progress.clone();
            tokio::spawn(async move {
                progress
                    .wait_for(&["p"], Some(4), Duration::from_secs(30))
                    .await
            })
        };
        store
            .commit(Commit {
                ops: vec![],
                checkpoint: Some(("p".into(), 5)),
            })
            .await
            .expect("commit");
        let got = waiter.await.expect("join").expect("caught up");
        assert_eq!(got, 4);
        assert_eq!(store.checkpoint("p").await.expect("checkpoint"), Some(5));
    }

    #[tokio::test]
    async fn a_position_never_reached_is_not_caught_up() {
        let progress = Progress::new([("p".to_owned(), 3)]);
        let err = progress
            .wait_for(&["p"], Some(10), Duration::from_millis(1))
            .await
            .err();
        assert_eq!(err, Some(NotCaughtUp { position: 2 }));
        assert_eq!(
            progress
                .wait_for(&["p"], Some(2), Duration::ZERO)
                .await
                .ok(),
            Some(2)
        );
    }
}
