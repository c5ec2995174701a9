//! Read-model store checks: documents, versions, conditions, atomic commits,
//! checkpoints, prefix scans, collections. Each takes fresh, empty read models.

use metachat_core::read_model::{Commit, DocExpect, Document, ReadModelStore, WriteOp};
use metachat_core::Error;

use crate::fixture::{err, ok};

fn put(collection: &str, key: &str, value: &str, expect: DocExpect) -> WriteOp {
    WriteOp::Put {
        collection: collection.to_owned(),
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        expect,
    }
}

fn delete(collection: &str, key: &str, expect: DocExpect) -> WriteOp {
    WriteOp::Delete {
        collection: collection.to_owned(),
        key: key.to_owned(),
        expect,
    }
}

async fn apply<R: ReadModelStore>(rm: &R, ops: Vec<WriteOp>) -> metachat_core::Result<()> {
    rm.commit(Commit {
        ops,
        checkpoint: None,
    })
    .await
}

async fn get<R: ReadModelStore>(rm: &R, collection: &str, key: &str) -> Option<Document> {
    ok("get", rm.get(collection, key).await)
}

fn doc(value: &str, version: u64) -> Option<Document> {
    Some(Document {
        value: value.as_bytes().to_vec(),
        version,
    })
}

/// Asserts `e` is `DocumentConflict` with these fields.
#[track_caller]
fn assert_doc_conflict(
    what: &str,
    e: &Error,
    collection: &str,
    key: &str,
    expected: DocExpect,
    actual: Option<u64>,
) {
    match e {
        Error::DocumentConflict {
            collection: c,
            key: k,
            expected: x,
            actual: a,
        } => {
            assert_eq!(c, collection, "{what}: collection");
            assert_eq!(k, key, "{what}: key");
            assert_eq!(*x, expected, "{what}: expected");
            assert_eq!(*a, actual, "{what}: actual");
        }
        other => panic!("{what}: expected DocumentConflict, got {other:?}"),
    }
}

/// Get of an absent document is `None`; put, get, replace, delete; deleting an
/// absent document is fine; a deleted document starts again at version 1.
pub async fn check_get_put_delete<R: ReadModelStore>(rm: R) {
    assert_eq!(get(&rm, "docs", "a").await, None);
    ok(
        "put",
        apply(&rm, vec![put("docs", "a", "one", DocExpect::Any)]).await,
    );
    assert_eq!(get(&rm, "docs", "a").await, doc("one", 1));
    ok(
        "replace",
        apply(&rm, vec![put("docs", "a", "two", DocExpect::Any)]).await,
    );
    assert_eq!(get(&rm, "docs", "a").await, doc("two", 2));
    assert_eq!(get(&rm, "docs", "b").await, None, "other keys stay absent");
    ok(
        "delete",
        apply(&rm, vec![delete("docs", "a", DocExpect::Any)]).await,
    );
    assert_eq!(get(&rm, "docs", "a").await, None, "deleted");
    ok(
        "delete absent",
        apply(&rm, vec![delete("docs", "a", DocExpect::Any)]).await,
    );
    ok(
        "put again",
        apply(&rm, vec![put("docs", "a", "three", DocExpect::Absent)]).await,
    );
    assert_eq!(get(&rm, "docs", "a").await, doc("three", 1));
    ok(
        "empty value",
        apply(&rm, vec![put("docs", "empty", "", DocExpect::Any)]).await,
    );
    assert_eq!(get(&rm, "docs", "empty").await, doc("", 1));
    ok("an empty commit", rm.commit(Commit::default()).await);
}

/// Versions are 1 after the first put and grow by one per put, also for two
/// puts of one key in one commit (the later one wins).
pub async fn check_versions_start_at_one_and_increase<R: ReadModelStore>(rm: R) {
    for v in 1..=5u64 {
        ok(
            "put",
            apply(&rm, vec![put("v", "k", &format!("x{v}"), DocExpect::Any)]).await,
        );
        assert_eq!(get(&rm, "v", "k").await, doc(&format!("x{v}"), v));
    }
    ok(
        "two puts in one commit",
        apply(
            &rm,
            vec![
                put("v", "k", "first", DocExpect::Version(5)),
                put("v", "k", "second", DocExpect::Version(6)),
                put("v", "new", "n1", DocExpect::Absent),
                put("v", "new", "n2", DocExpect::Version(1)),
            ],
        )
        .await,
    );
    assert_eq!(get(&rm, "v", "k").await, doc("second", 7));
    assert_eq!(get(&rm, "v", "new").await, doc("n2", 2));
}

/// `Any`, `Absent` and `Version(n)` succeed when they hold, for puts and deletes.
pub async fn check_doc_expect_success<R: ReadModelStore>(rm: R) {
    ok(
        "Absent on absent",
        apply(&rm, vec![put("e", "k", "a", DocExpect::Absent)]).await,
    );
    ok(
        "Version(1) on v1",
        apply(&rm, vec![put("e", "k", "b", DocExpect::Version(1))]).await,
    );
    ok(
        "Any on v2",
        apply(&rm, vec![put("e", "k", "c", DocExpect::Any)]).await,
    );
    assert_eq!(get(&rm, "e", "k").await, doc("c", 3));
    ok(
        "delete Version(3) on v3",
        apply(&rm, vec![delete("e", "k", DocExpect::Version(3))]).await,
    );
    assert_eq!(get(&rm, "e", "k").await, None);
    ok(
        "delete Absent on absent",
        apply(&rm, vec![delete("e", "k", DocExpect::Absent)]).await,
    );
    ok(
        "put then delete then put in one commit",
        apply(
            &rm,
            vec![
                put("e", "k", "x", DocExpect::Absent),
                delete("e", "k", DocExpect::Version(1)),
                put("e", "k", "y", DocExpect::Absent),
            ],
        )
        .await,
    );
    assert_eq!(get(&rm, "e", "k").await, doc("y", 1));
}

/// Failing conditions are `DocumentConflict` naming the collection, key,
/// expectation and actual version; the document is unchanged.
pub async fn check_doc_expect_conflicts<R: ReadModelStore>(rm: R) {
    ok(
        "put",
        apply(&rm, vec![put("c", "k", "v1", DocExpect::Any)]).await,
    );
    let cases = [
        (
            "Absent on present",
            put("c", "k", "x", DocExpect::Absent),
            "k",
            DocExpect::Absent,
            Some(1),
        ),
        (
            "Version(5) on v1",
            put("c", "k", "x", DocExpect::Version(5)),
            "k",
            DocExpect::Version(5),
            Some(1),
        ),
        (
            "Version(0) on v1",
            put("c", "k", "x", DocExpect::Version(0)),
            "k",
            DocExpect::Version(0),
            Some(1),
        ),
        (
            "Version(1) on absent",
            put("c", "nope", "x", DocExpect::Version(1)),
            "nope",
            DocExpect::Version(1),
            None,
        ),
        (
            "delete Version(2) on v1",
            delete("c", "k", DocExpect::Version(2)),
            "k",
            DocExpect::Version(2),
            Some(1),
        ),
        (
            "delete Absent on present",
            delete("c", "k", DocExpect::Absent),
            "k",
            DocExpect::Absent,
            Some(1),
        ),
        (
            "delete Version(1) on absent",
            delete("c", "nope", DocExpect::Version(1)),
            "nope",
            DocExpect::Version(1),
            None,
        ),
    ];
    for (what, op, key, expected, actual) in cases {
        let e = err(what, apply(&rm, vec![op]).await);
        assert_doc_conflict(what, &e, "c", key, expected, actual);
        assert_eq!(
            get(&rm, "c", "k").await,
            doc("v1", 1),
            "{what}: document changed"
        );
        assert_eq!(
            get(&rm, "c", "nope").await,
            None,
            "{what}: document created"
        );
    }
}

/// On a backend with `atomic_commit`, a commit whose last op fails applies
/// none of its puts, deletes or checkpoint. (Skipped on other backends.)
pub async fn check_failed_commit_applies_nothing<R: ReadModelStore>(rm: R) {
    if !rm.capabilities().atomic_commit {
        return;
    }
    ok(
        "setup",
        rm.commit(Commit {
            ops: vec![
                put("t", "keep", "k1", DocExpect::Any),
                put("t", "gone", "g1", DocExpect::Any),
            ],
            checkpoint: Some(("p".into(), 3)),
        })
        .await,
    );
    let e = err(
        "a commit with a failing last op",
        rm.commit(Commit {
            ops: vec![
                put("t", "new", "n", DocExpect::Absent),
                put("t", "keep", "k2", DocExpect::Version(1)),
                delete("t", "gone", DocExpect::Any),
                put("u", "other", "o", DocExpect::Any),
                put("t", "keep", "k3", DocExpect::Version(1)),
            ],
            checkpoint: Some(("p".into(), 10)),
        })
        .await,
    );
    assert_doc_conflict(
        "failing last op",
        &e,
        "t",
        "keep",
        DocExpect::Version(1),
        Some(2),
    );
    assert_eq!(
        get(&rm, "t", "new").await,
        None,
        "a put of the failed commit applied"
    );
    assert_eq!(
        get(&rm, "t", "keep").await,
        doc("k1", 1),
        "a put of the failed commit applied"
    );
    assert_eq!(
        get(&rm, "t", "gone").await,
        doc("g1", 1),
        "a delete of the failed commit applied"
    );
    assert_eq!(
        get(&rm, "u", "other").await,
        None,
        "a put of the failed commit applied"
    );
    assert_eq!(
        ok("checkpoint", rm.checkpoint("p").await),
        Some(3),
        "the failed commit's checkpoint applied"
    );
}

/// A checkpoint committed with writes (or alone) is readable; a commit without
/// one leaves it; projections' checkpoints are independent.
pub async fn check_checkpoint_stored_with_commit<R: ReadModelStore>(rm: R) {
    assert_eq!(ok("checkpoint", rm.checkpoint("p").await), None);
    ok(
        "commit with checkpoint",
        rm.commit(Commit {
            ops: vec![put("cp", "k", "v", DocExpect::Any)],
            checkpoint: Some(("p".into(), 5)),
        })
        .await,
    );
    assert_eq!(ok("checkpoint", rm.checkpoint("p").await), Some(5));
    assert_eq!(get(&rm, "cp", "k").await, doc("v", 1));
    ok(
        "checkpoint alone",
        rm.commit(Commit {
            ops: Vec::new(),
            checkpoint: Some(("p".into(), 9)),
        })
        .await,
    );
    assert_eq!(ok("checkpoint", rm.checkpoint("p").await), Some(9));
    ok(
        "commit without checkpoint",
        apply(&rm, vec![put("cp", "k", "w", DocExpect::Any)]).await,
    );
    assert_eq!(ok("checkpoint", rm.checkpoint("p").await), Some(9));
    ok(
        "another projection",
        rm.commit(Commit {
            ops: Vec::new(),
            checkpoint: Some(("q".into(), 0)),
        })
        .await,
    );
    assert_eq!(ok("checkpoint q", rm.checkpoint("q").await), Some(0));
    assert_eq!(ok("checkpoint p", rm.checkpoint("p").await), Some(9));
    assert_eq!(ok("checkpoint r", rm.checkpoint("r").await), None);
    ok(
        "large checkpoint",
        rm.commit(Commit {
            ops: Vec::new(),
            checkpoint: Some(("big".into(), u64::MAX - 1)),
        })
        .await,
    );
    assert_eq!(
        ok("checkpoint big", rm.checkpoint("big").await),
        Some(u64::MAX - 1)
    );
}

/// Prefix scans return matching keys in ascending order, page with `after`
/// (exclusive, present or not) and honour limits.
pub async fn check_scan_prefix_order_paging_limits<R: ReadModelStore>(rm: R) {
    let keys = [
        "user-20", "user-1", "usr-1", "user-2", "u", "user-10", "userx", "user-", "v",
    ];
    let ops = keys
        .iter()
        .map(|k| put("scan", k, &format!("val-{k}"), DocExpect::Any))
        .chain([put("scan.other", "user-3", "elsewhere", DocExpect::Any)])
        .collect();
    ok("puts", apply(&rm, ops).await);
    let scan = |prefix: &'static str, after: Option<&'static str>, limit: usize| {
        let rm = &rm;
        async move {
            ok(
                "scan_prefix",
                rm.scan_prefix("scan", prefix, after, limit).await,
            )
            .into_iter()
            .map(|(k, d)| {
                assert_eq!(d.value, format!("val-{k}").into_bytes(), "value of {k}");
                k
            })
            .collect::<Vec<_>>()
        }
    };
    let users = vec!["user-", "user-1", "user-10", "user-2", "user-20"];
    assert_eq!(scan("user-", None, 100).await, users);
    let mut all: Vec<&str> = keys.to_vec();
    all.sort_unstable();
    assert_eq!(
        scan("", None, 100).await,
        all,
        "empty prefix: the whole collection"
    );
    assert_eq!(
        scan("user-", None, 0).await,
        Vec::<String>::new(),
        "limit 0"
    );
    assert_eq!(scan("user-", None, 2).await, vec!["user-", "user-1"]);
    assert_eq!(
        scan("user-", Some("user-1"), 2).await,
        vec!["user-10", "user-2"]
    );
    assert_eq!(
        scan("user-", Some("user-15"), 10).await,
        vec!["user-2", "user-20"],
        "after an absent key"
    );
    assert_eq!(
        scan("user-", Some("user-20"), 10).await,
        Vec::<String>::new()
    );
    assert_eq!(
        scan("user-", Some("a"), 10).await,
        users,
        "after a key before the prefix"
    );
    assert_eq!(
        scan("zzz", None, 10).await,
        Vec::<String>::new(),
        "no match"
    );
    assert_eq!(
        scan("user-3", None, 10).await,
        Vec::<String>::new(),
        "other collection excluded"
    );
    for limit in 1..=6 {
        let mut paged: Vec<String> = Vec::new();
        loop {
            let after = paged.last().cloned();
            let page = ok(
                "scan_prefix page",
                rm.scan_prefix("scan", "user", after.as_deref(), limit)
                    .await,
            );
            assert!(page.len() <= limit, "a page longer than its limit");
            if page.is_empty() {
                break;
            }
            paged.extend(page.into_iter().map(|(k, _)| k));
        }
        let want: Vec<&str> = all
            .iter()
            .copied()
            .filter(|k| k.starts_with("user"))
            .collect();
        assert_eq!(paged, want, "paging with limit {limit}");
    }
}

/// The same key in two collections (one named as the other's prefix) is two
/// documents with their own versions; scans and deletes stay in one collection.
pub async fn check_collection_isolation<R: ReadModelStore>(rm: R) {
    ok(
        "puts",
        apply(
            &rm,
            vec![
                put("iso", "k", "a", DocExpect::Absent),
                put("iso.x", "k", "b", DocExpect::Absent),
                put("iso.x", "k", "b2", DocExpect::Version(1)),
                put("isox", "k", "c", DocExpect::Absent),
            ],
        )
        .await,
    );
    assert_eq!(get(&rm, "iso", "k").await, doc("a", 1));
    assert_eq!(get(&rm, "iso.x", "k").await, doc("b2", 2));
    assert_eq!(get(&rm, "isox", "k").await, doc("c", 1));
    let scanned = ok("scan", rm.scan_prefix("iso", "", None, 100).await);
    assert_eq!(
        scanned.len(),
        1,
        "a scan leaked into another collection: {scanned:?}"
    );
    assert_eq!(
        scanned[0].1,
        Document {
            value: b"a".to_vec(),
            version: 1
        }
    );
    ok(
        "delete",
        apply(&rm, vec![delete("iso", "k", DocExpect::Version(1))]).await,
    );
    assert_eq!(get(&rm, "iso", "k").await, None);
    assert_eq!(
        get(&rm, "iso.x", "k").await,
        doc("b2", 2),
        "a delete crossed collections"
    );
}

/// `clear_collection` removes every document of one collection and nothing
/// else (other collections, prefix-sharing ones, checkpoints).
pub async fn check_clear_collection<R: ReadModelStore>(rm: R) {
    let mut ops: Vec<WriteOp> = (0..20)
        .map(|i| put("clear", &format!("k{i:02}"), "v", DocExpect::Any))
        .collect();
    ops.push(put("clear.more", "k00", "kept", DocExpect::Any));
    ops.push(put("other", "k00", "kept", DocExpect::Any));
    ok(
        "setup",
        rm.commit(Commit {
            ops,
            checkpoint: Some(("p".into(), 4)),
        })
        .await,
    );
    ok("clear_collection", rm.clear_collection("clear").await);
    assert!(ok("scan", rm.scan_prefix("clear", "", None, 100).await).is_empty());
    assert_eq!(get(&rm, "clear", "k05").await, None);
    assert_eq!(get(&rm, "clear.more", "k00").await, doc("kept", 1));
    assert_eq!(get(&rm, "other", "k00").await, doc("kept", 1));
    assert_eq!(ok("checkpoint", rm.checkpoint("p").await), Some(4));
    ok(
        "clear an empty collection",
        rm.clear_collection("never").await,
    );
    ok(
        "put after clear",
        apply(&rm, vec![put("clear", "k05", "w", DocExpect::Absent)]).await,
    );
    assert_eq!(get(&rm, "clear", "k05").await, doc("w", 1));
}

/// `reset_checkpoint` removes one projection's checkpoint, nothing else.
pub async fn check_reset_checkpoint<R: ReadModelStore>(rm: R) {
    for (name, pos) in [("p", 7u64), ("q", 8)] {
        ok(
            "set checkpoint",
            rm.commit(Commit {
                ops: vec![put("r", name, "v", DocExpect::Any)],
                checkpoint: Some((name.into(), pos)),
            })
            .await,
        );
    }
    ok("reset_checkpoint", rm.reset_checkpoint("p").await);
    assert_eq!(ok("checkpoint p", rm.checkpoint("p").await), None);
    assert_eq!(ok("checkpoint q", rm.checkpoint("q").await), Some(8));
    assert_eq!(get(&rm, "r", "p").await, doc("v", 1), "documents untouched");
    ok(
        "reset an absent checkpoint",
        rm.reset_checkpoint("never").await,
    );
    ok(
        "set again",
        rm.commit(Commit {
            ops: Vec::new(),
            checkpoint: Some(("p".into(), 2)),
        })
        .await,
    );
    assert_eq!(ok("checkpoint p", rm.checkpoint("p").await), Some(2));
}
