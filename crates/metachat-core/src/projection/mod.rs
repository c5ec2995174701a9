//! Projections turn the global log into read models. A [`ProjectionRunner`]
//! catches up from the projection's checkpoint, then follows the log live,
//! committing each batch of writes together with the checkpoint. A
//! [`BusProjectionRunner`] feeds the same projections from an event bus
//! instead (a service that owns no copy of the store's log).

mod bus;

pub use bus::{BusProjectionRunner, APPLIED_PREFIX};

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::read_model::{Commit, DocExpect, Document, ReadModelStore, WriteOp};
use crate::store::{self, EventReader};

/// Folds envelopes into read models.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Unique name; the key of its checkpoint.
    fn name(&self) -> &str;

    /// Collections it owns: a rebuild clears them.
    fn collections(&self) -> Vec<String>;

    /// Applies one event. Writes go into `tx`, which also serves reads that
    /// see the batch's earlier writes. Events it does not care about are
    /// ignored by returning `Ok(())`.
    async fn apply(&self, event: &Envelope, tx: &mut ProjectionTx<'_>) -> Result<()>;
}

/// Pending writes of one batch, readable before they are committed.
pub struct ProjectionTx<'a> {
    store: &'a dyn ReadModelStore,
    /// By collection, then key (so a lookup by `&str` allocates nothing).
    pending: HashMap<String, HashMap<String, Pending>>,
    commit: Commit,
}

/// A document as this batch left it. Its version is the stored version plus
/// the puts of this batch, or the puts alone once the batch deleted it.
#[derive(Debug, Clone, Default)]
struct Pending {
    /// The put in the commit's ops that holds its value; `None` when the
    /// batch deleted it since.
    value: Option<usize>,
    puts: u64,
    deleted: bool,
    /// The version stored before this batch, once read: a projection that
    /// reads a document back after each write reads the store once.
    base: OnceLock<u64>,
}

impl fmt::Debug for ProjectionTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionTx")
            .field("ops", &self.commit.ops.len())
            .finish()
    }
}

impl<'a> ProjectionTx<'a> {
    /// An empty transaction over `store`.
    pub fn new(store: &'a dyn ReadModelStore) -> Self {
        ProjectionTx {
            store,
            pending: HashMap::new(),
            commit: Commit::default(),
        }
    }

    /// The document as this batch left it, else as stored.
    pub async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        match self.pending_doc(collection, key) {
            Some(p) => self.resolve(collection, key, p).await,
            None => self.store.get(collection, key).await,
        }
    }

    fn pending_doc(&self, collection: &str, key: &str) -> Option<&Pending> {
        self.pending.get(collection)?.get(key)
    }

    /// The pending state of a document, created untouched if new, given
    /// to `f`.
    fn touch(&mut self, collection: &str, key: &str, f: impl FnOnce(&mut Pending)) {
        let docs = match self.pending.get_mut(collection) {
            Some(docs) => docs,
            None => self.pending.entry(collection.to_owned()).or_default(),
        };
        match docs.get_mut(key) {
            Some(p) => f(p),
            None => f(docs.entry(key.to_owned()).or_default()),
        }
    }

    async fn resolve(&self, collection: &str, key: &str, p: &Pending) -> Result<Option<Document>> {
        let Some(WriteOp::Put { value, .. }) = p.value.and_then(|i| self.commit.ops.get(i)) else {
            return Ok(None);
        };
        let base = if p.deleted {
            0
        } else if let Some(base) = p.base.get() {
            *base
        } else {
            let base = self
                .store
                .get(collection, key)
                .await?
                .map_or(0, |d| d.version);
            let _ = p.base.set(base);
            base
        };
        Ok(Some(Document {
            value: value.clone(),
            version: base + p.puts,
        }))
    }

    /// Gets and decodes a JSON document.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<T>> {
        self.get(collection, key)
            .await?
            .map(|d| d.json())
            .transpose()
    }

    /// Up to `limit` documents of `collection` whose key starts with
    /// `prefix`, after `after` (exclusive), in ascending key order, as this
    /// batch left them (pending puts included, pending deletes excluded).
    pub async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let in_range = |k: &str| k.starts_with(prefix) && after.is_none_or(|a| k > a);
        let mut merged = std::collections::BTreeMap::new();
        for (k, p) in self.pending.get(collection).into_iter().flatten() {
            if in_range(k) {
                if let Some(d) = self.resolve(collection, k, p).await? {
                    merged.insert(k.clone(), d);
                }
            }
        }
        // Read stored pages until `limit` stored documents that this batch
        // did not touch are in hand: then the first `limit` merged keys are
        // all known.
        let mut cursor = after.map(str::to_owned);
        let mut untouched = 0;
        loop {
            let page = self
                .store
                .scan_prefix(collection, prefix, cursor.as_deref(), limit)
                .await?;
            let exhausted = page.len() < limit;
            for (k, d) in page {
                cursor = Some(k.clone());
                if self.pending_doc(collection, &k).is_none() {
                    untouched += 1;
                    merged.insert(k, d);
                }
            }
            if exhausted || untouched >= limit {
                break;
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// Puts a document.
    pub fn put(&mut self, collection: &str, key: &str, value: Vec<u8>) {
        let op = self.commit.ops.len();
        self.touch(collection, key, |p| {
            p.value = Some(op);
            p.puts += 1;
        });
        self.commit.ops.push(WriteOp::Put {
            collection: collection.to_owned(),
            key: key.to_owned(),
            value,
            expect: DocExpect::Any,
        });
    }

    /// Puts a document encoded as JSON.
    pub fn put_json<T: Serialize>(&mut self, collection: &str, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Encode {
            source: Box::new(e),
        })?;
        self.put(collection, key, bytes);
        Ok(())
    }

    /// Deletes a document.
    pub fn delete(&mut self, collection: &str, key: &str) {
        self.touch(collection, key, |p| {
            *p = Pending {
                deleted: true,
                ..Pending::default()
            }
        });
        self.commit.ops.push(WriteOp::Delete {
            collection: collection.to_owned(),
            key: key.to_owned(),
            expect: DocExpect::Any,
        });
    }

    fn into_commit(self, checkpoint: (String, u64)) -> Commit {
        let mut c = self.commit;
        c.checkpoint = Some(checkpoint);
        c
    }
}

/// Keeps a follower of the log running in a long-lived process: calls `run`
/// with a fresh `shutdown()` future; when it fails, logs the error as
/// `name`'s, waits `restart_after` and calls it again (it resumes from its
/// own checkpoint), until `shutdown` completes. Returns what the run that
/// stopped returned (its next position), or `None` when the shutdown came
/// while waiting to restart.
pub async fn supervise<S, SF, R, RF>(
    name: &str,
    shutdown: S,
    restart_after: Duration,
    run: R,
) -> Option<u64>
where
    S: Fn() -> SF,
    SF: Future<Output = ()>,
    R: Fn(SF) -> RF,
    RF: Future<Output = Result<u64>>,
{
    loop {
        match run(shutdown()).await {
            Ok(next) => {
                tracing::info!(%name, next, "stopped");
                return Some(next);
            }
            Err(e) => {
                tracing::error!(%name, error = %e, ?restart_after, "failed; restarting");
                tokio::select! {
                    _ = shutdown() => return None,
                    _ = tokio::time::sleep(restart_after) => {}
                }
            }
        }
        if shutdown().now_or_never().is_some() {
            return None;
        }
    }
}

/// Runs one projection over a store's global log.
pub struct ProjectionRunner<S, R, P> {
    store: S,
    read_models: R,
    projection: P,
    batch: usize,
    /// Pause after a batch smaller than `batch` ([`with_linger`](Self::with_linger)).
    linger: Duration,
    /// The checkpoint's name: the projection's, or (one runner per
    /// partition) `{name}@{partition}`.
    checkpoint: String,
}

impl<S, R, P: Projection> fmt::Debug for ProjectionRunner<S, R, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("projection", &self.projection.name())
            .field("checkpoint", &self.checkpoint)
            .field("batch", &self.batch)
            .field("linger", &self.linger)
            .finish()
    }
}

impl<S, R, P> ProjectionRunner<S, R, P>
where
    S: EventReader + Clone + Unpin + 'static,
    R: ReadModelStore,
    P: Projection,
{
    /// A runner committing at most 512 events per batch.
    pub fn new(store: S, read_models: R, projection: P) -> Self {
        ProjectionRunner {
            checkpoint: projection.name().to_owned(),
            store,
            read_models,
            projection,
            batch: 512,
            linger: Duration::ZERO,
        }
    }

    /// A runner for one partition of a partitioned log (`store` being that
    /// partition's [`store::Partition`] view): its checkpoint is named
    /// `{projection}@{partition}`, so one runner per partition each resumes
    /// from its own. The projection's collections are shared: keep the
    /// documents a projection writes keyed by what the partition key
    /// groups (a stream's, a user's), so two partitions' runners never
    /// write the same document.
    pub fn for_partition(store: S, partition: u32, read_models: R, projection: P) -> Self {
        let checkpoint = format!("{}@{partition}", projection.name());
        ProjectionRunner {
            checkpoint,
            ..Self::new(store, read_models, projection)
        }
    }

    /// Events per commit (at least 1).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// After committing a batch smaller than the batch size, wait this long
    /// before taking the next (default zero: each event is handled as soon
    /// as it is visible). Under a steady flow of small appends, this trades
    /// up to `linger` of lag for fewer, larger commits, each of which is a
    /// read-model write of its own.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The next position this projection will process.
    pub async fn checkpoint(&self) -> Result<u64> {
        Ok(self
            .read_models
            .checkpoint(&self.checkpoint)
            .await?
            .unwrap_or(0))
    }

    /// Processes everything up to the store's current head; returns the new checkpoint.
    pub async fn catch_up(&self) -> Result<u64> {
        let next = self.checkpoint().await?;
        store::catch_up(&self.store, next, self.batch, self).await
    }

    /// Clears the projection's collections and checkpoint, then catches up from 0.
    ///
    /// With one runner per partition the collections are shared: rebuild
    /// every partition's runner one after another and *then* catch each up
    /// again (a later rebuild clears what an earlier one wrote).
    pub async fn rebuild(&self) -> Result<u64> {
        for c in self.projection.collections() {
            self.read_models.clear_collection(&c).await?;
        }
        self.read_models.reset_checkpoint(&self.checkpoint).await?;
        self.catch_up().await
    }

    /// Catches up, then follows the log until `shutdown` completes; commits
    /// what it handled before returning the checkpoint.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<u64> {
        let next = self.checkpoint().await?;
        store::follow(&self.store, next, self.batch, shutdown, self).await
    }

    /// [`run`](Self::run) under [`supervise`]: after an error it logs it,
    /// waits `restart_after` and runs again from the stored checkpoint, until
    /// `shutdown` completes. `shutdown` makes a fresh future for each run
    /// (e.g. a `wait_for` on a watch channel). Returns the checkpoint of the
    /// run that stopped, or `None` when the shutdown came while it waited to
    /// restart.
    pub async fn run_supervised<F, Fut>(&self, shutdown: F, restart_after: Duration) -> Option<u64>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = ()> + Send,
    {
        supervise(&self.checkpoint, shutdown, restart_after, |stop| {
            self.run(stop)
        })
        .await
    }

    async fn apply_batch(&self, events: &[Envelope]) -> Result<u64> {
        let mut tx = ProjectionTx::new(&self.read_models);
        for e in events {
            self.projection
                .apply(e, &mut tx)
                .await
                .map_err(|source| Error::Projection {
                    projection: self.projection.name().to_owned(),
                    position: e.position,
                    source: Box::new(source),
                })?;
        }
        let next = events.last().map_or(0, |e| e.position + 1);
        let name = self.checkpoint.clone();
        self.read_models
            .commit(tx.into_commit((name, next)))
            .await?;
        Ok(next)
    }
}

#[async_trait]
impl<S, R, P> store::LogSink for ProjectionRunner<S, R, P>
where
    S: EventReader + Clone + Unpin + 'static,
    R: ReadModelStore,
    P: Projection,
{
    async fn apply(&self, events: &[Envelope]) -> Result<u64> {
        let next = self.apply_batch(events).await?;
        if events.len() < self.batch && !self.linger.is_zero() {
            tokio::time::sleep(self.linger).await;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryReadModels;
    use crate::read_model::ReadModelStoreExt;

    #[tokio::test]
    async fn pending_versions_follow_the_store() {
        let store = InMemoryReadModels::new();
        for _ in 0..5 {
            store.put_json("c", "k", &1, DocExpect::Any).await.unwrap();
        }
        let mut tx = ProjectionTx::new(&store);
        tx.put_json("c", "k", &2).unwrap();
        assert_eq!(tx.get("c", "k").await.unwrap().unwrap().version, 6);
        tx.put_json("c", "k", &3).unwrap();
        let scanned = tx.scan_prefix("c", "", None, 10).await.unwrap();
        assert_eq!(scanned[0].1.version, 7);
        tx.delete("c", "k");
        assert!(tx.get("c", "k").await.unwrap().is_none());
        tx.put_json("c", "k", &4).unwrap();
        assert_eq!(tx.get("c", "k").await.unwrap().unwrap().version, 1);

        // The committed versions agree with what the batch reported.
        let mut tx = ProjectionTx::new(&store);
        tx.put_json("c", "k", &5).unwrap();
        let reported = tx.get("c", "k").await.unwrap().unwrap().version;
        store.commit(tx.into_commit(("p".into(), 0))).await.unwrap();
        assert_eq!(
            store.get("c", "k").await.unwrap().unwrap().version,
            reported
        );
    }

    /// One step of a batch: a put of a value, a delete, or a read back.
    #[derive(Debug, Clone)]
    enum Step {
        Put(usize, usize, u8),
        Delete(usize, usize),
        Get(usize, usize),
        Scan(usize),
    }

    const COLLECTIONS: [&str; 2] = ["c", "d"];
    const KEYS: [&str; 3] = ["a", "ab", "b"];

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0..2usize, 0..3usize, any::<u8>()).prop_map(|(c, k, v)| Step::Put(c, k, v)),
            (0..2usize, 0..3usize).prop_map(|(c, k)| Step::Delete(c, k)),
            (0..2usize, 0..3usize).prop_map(|(c, k)| Step::Get(c, k)),
            (0..2usize).prop_map(Step::Scan),
        ]
    }

    proptest::proptest! {
        /// Whatever a batch does, its reads see the model (stored version
        /// plus its puts, or its puts alone after a delete; the last value
        /// put), and the store holds the same once it is committed.
        #[test]
        fn a_batch_reads_and_commits_what_the_model_says(
            stored in proptest::collection::vec(0..4u64, 6),
            steps in proptest::collection::vec(step(), 0..24),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let store = InMemoryReadModels::new();
                // (collection, key) -> (value, version), as the model says.
                let mut model = std::collections::BTreeMap::new();
                for (i, &n) in stored.iter().enumerate() {
                    let (c, k) = (COLLECTIONS[i / 3], KEYS[i % 3]);
                    for _ in 0..n {
                        store.put_json(c, k, &0, DocExpect::Any).await.unwrap();
                    }
                    if n > 0 {
                        model.insert((c, k), (b"0".to_vec(), n));
                    }
                }
                let mut tx = ProjectionTx::new(&store);
                let mut deleted = std::collections::BTreeSet::new();
                for s in &steps {
                    match *s {
                        Step::Put(c, k, v) => {
                            let id = (COLLECTIONS[c], KEYS[k]);
                            tx.put(id.0, id.1, vec![v]);
                            let version = match model.get(&id) {
                                Some((_, version)) => version + 1,
                                None => 1,
                            };
                            model.insert(id, (vec![v], version));
                        }
                        Step::Delete(c, k) => {
                            let id = (COLLECTIONS[c], KEYS[k]);
                            tx.delete(id.0, id.1);
                            model.remove(&id);
                            deleted.insert(id);
                        }
                        Step::Get(c, k) => {
                            let id = (COLLECTIONS[c], KEYS[k]);
                            let got = tx.get(id.0, id.1).await.unwrap();
                            let want = model.get(&id).cloned();
                            assert_eq!(got.map(|d| (d.value, d.version)), want, "{id:?}");
                        }
                        Step::Scan(c) => {
                            let got = tx.scan_prefix(COLLECTIONS[c], "a", None, 10).await.unwrap();
                            let want: Vec<_> = model
                                .iter()
                                .filter(|((mc, mk), _)| *mc == COLLECTIONS[c] && mk.starts_with('a'))
                                .map(|((_, k), d)| (k.to_string(), d.clone()))
                                .collect();
                            let got: Vec<_> =
                                got.into_iter().map(|(k, d)| (k, (d.value, d.version))).collect();
                            assert_eq!(got, want);
                        }
                    }
                }
                store.commit(tx.into_commit(("p".into(), 0))).await.unwrap();
                for c in COLLECTIONS {
                    for k in KEYS {
                        let got = store.get(c, k).await.unwrap().map(|d| (d.value, d.version));
                        assert_eq!(got, model.get(&(c, k)).cloned(), "{c}/{k} committed");
                    }
                }
            });
        }
    }

    /// Fails on its first `fail` calls, then counts the events it saw.
    struct Flaky {
        fail: std::sync::atomic::AtomicUsize,
        calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl Projection for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn collections(&self) -> Vec<String> {
            vec!["flaky".into()]
        }
        async fn apply(&self, event: &Envelope, tx: &mut ProjectionTx<'_>) -> Result<()> {
            use std::sync::atomic::Ordering::SeqCst;
            self.calls.fetch_add(1, SeqCst);
            if self
                .fail
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(Error::backend("transient"));
            }
            tx.put_json("flaky", &event.position.to_string(), &1)
        }
    }

    /// `Flaky` wrote a document for each of positions `0..n`.
    async fn assert_applied(read_models: &impl ReadModelStore, n: u64) {
        for p in 0..n {
            let doc = read_models.get("flaky", &p.to_string()).await.unwrap();
            assert!(doc.is_some(), "position {p} not applied");
        }
    }

    #[tokio::test]
    async fn a_supervised_run_restarts_after_an_error_and_stops_on_shutdown() {
        use crate::memory::InMemoryEventStore;
        use crate::progress::{NotifyingReadModels, Progress};
        use crate::store::{EventAppender, ExpectedVersion};
        use std::sync::Arc;

        let store = Arc::new(InMemoryEventStore::new());
        let stream = crate::event::StreamId::new("s-1").unwrap();
        let events = (0..3)
            .map(|i| crate::event::NewEvent::new("E", format!("{i}").into_bytes()))
            .collect();
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .unwrap();
        let progress = Progress::new([("flaky".to_owned(), 0)]);
        let read_models =
            NotifyingReadModels::new(Arc::new(InMemoryReadModels::new()), progress.clone());
        let runner = Arc::new(ProjectionRunner::new(
            store,
            read_models.clone(),
            Flaky {
                fail: 2.into(),
                calls: 0.into(),
            },
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = {
            let runner = runner.clone();
            tokio::spawn(async move {
                runner
                    .run_supervised(
                        || {
                            let mut rx = stopped.clone();
                            async move {
                                let _ = rx.wait_for(|s| *s).await;
                            }
                        },
                        Duration::from_millis(1),
                    )
                    .await
            })
        };
        // Two failed runs, then every event applied and checkpointed.
        progress
            .wait_for(&["flaky"], Some(2), Duration::from_secs(30))
            .await
            .unwrap();
        stop.send(true).unwrap();
        assert_eq!(task.await.unwrap(), Some(3));
        let calls = runner
            .projection()
            .calls
            .load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(calls, 5, "two failures of event 0, then events 0, 1, 2");
        assert_eq!(read_models.checkpoint("flaky").await.unwrap(), Some(3));
        assert_applied(&read_models, 3).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lingering_runner_still_applies_every_event_of_a_trickle() {
        use crate::memory::InMemoryEventStore;
        use crate::progress::{NotifyingReadModels, Progress};
        use crate::store::{EventAppender, ExpectedVersion};
        use std::sync::Arc;

        let store = Arc::new(InMemoryEventStore::new());
        let progress = Progress::new([("flaky".to_owned(), 0)]);
        let read_models =
            NotifyingReadModels::new(Arc::new(InMemoryReadModels::new()), progress.clone());
        let runner = Arc::new(
            ProjectionRunner::new(
                store.clone(),
                read_models.clone(),
                Flaky {
                    fail: 0.into(),
                    calls: 0.into(),
                },
            )
            .with_linger(Duration::from_millis(20)),
        );
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = {
            let runner = runner.clone();
            tokio::spawn(async move {
                runner
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            })
        };
        // One event at a time, each appended while the runner may be
        // lingering after the last: every one is applied, none twice.
        let stream = crate::event::StreamId::new("s-1").unwrap();
        for i in 0..12u64 {
            let expected = if i == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(i - 1)
            };
            let e = crate::event::NewEvent::new("E", i.to_string().into_bytes());
            store.append(&stream, expected, vec![e]).await.unwrap();
            if i % 4 == 0 {
                progress
                    .wait_for(&["flaky"], Some(i), Duration::from_secs(30))
                    .await
                    .unwrap();
            }
        }
        progress
            .wait_for(&["flaky"], Some(11), Duration::from_secs(30))
            .await
            .unwrap();
        stop.send(true).unwrap();
        assert_eq!(task.await.unwrap().unwrap(), 12);
        let calls = runner
            .projection()
            .calls
            .load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(calls, 12);
        assert_applied(&read_models, 12).await;
    }
}
