//! Job store conformance: what every `JobStore` must do, written against
//! the trait (run here on the SQLite store): a job exists whole or not at
//! all, items are claimed once and recorded once, cancel / fail / expire
//! end what has not run, delete and retention remove, and a restart puts
//! back what a crash left; each on the SQLite store and on the NATS
//! JetStream one. Then the SQLite file's own failures: a directory, a
//! second holder, a file that is not a database.

use std::{path::PathBuf, sync::Arc, time::Duration};

use batchgate::jobs::{
    Begun, Done, Filter, JobState, JobStore, NewItem, NewJob, Outcome, StoreError,
    sqlite::{Limits, SqliteStore},
};

conformance!(
    a_job_is_stored_whole_or_not_at_all,
    items_are_claimed_once_and_recorded_once,
    cancel_fail_and_expire_end_what_has_not_run,
    delete_list_pages_and_retention,
    a_restart_puts_back_what_a_crash_left
);

/// Each conformance check as a test on the SQLite store and on the NATS
/// one (a real `nats-server`, skipped with a message where there is none).
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = super::scratch(stringify!($name));
                    super::$name(super::Reopen::Sqlite(dir)).await;
                }
            )*
        }
        mod nats_store {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(nats) = crate::nats::Nats::start() else {
                        return;
                    };
                    super::$name(super::Reopen::Nats(nats, stringify!($name))).await;
                }
            )*
        }
    };
}
use conformance;

/// How a check gets a store, and the same store again after a crash.
pub enum Reopen {
    Sqlite(PathBuf),
    Nats(crate::nats::Nats, &'static str),
}

impl Reopen {
    async fn open(&self) -> Arc<dyn JobStore> {
        match self {
            Self::Sqlite(dir) => open(dir),
            Self::Nats(nats, name) => nats.store(name, limits()).await,
        }
    }

    async fn reopen(&self) -> Arc<dyn JobStore> {
        match self {
            Self::Sqlite(dir) => reopen(dir).await,
            Self::Nats(nats, name) => nats.store(name, limits()).await,
        }
    }
}

pub fn limits() -> Limits {
    Limits {
        max_items_per_job: 1_000,
        max_job_bytes: 1 << 20,
        max_open_jobs: 10,
        max_store_bytes: 1 << 22,
    }
}

/// A fresh directory under the system's temp dir.
pub fn scratch(name: &str) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    let dir = std::env::temp_dir().join(format!(
        "batchgate-{name}-{}-{:x}",
        std::process::id(),
        h.finish()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open(dir: &std::path::Path) -> Arc<dyn JobStore> {
    Arc::new(SqliteStore::open(&dir.join("jobs.sqlite3"), limits()).expect("store opens"))
}

fn item(id: &str) -> NewItem {
    NewItem {
        custom_id: id.into(),
        payload: format!("p-{id}").into_bytes().into(),
        ..NewItem::default()
    }
}

fn header(queue: &str) -> NewJob {
    NewJob {
        queue: queue.into(),
        window: Duration::from_secs(3600),
        ..NewJob::default()
    }
}

/// A sealed job of `n` items.
async fn job_of(store: &dyn JobStore, n: usize) -> String {
    let Begun::New(id) = store.begin(header("q")).await.unwrap() else {
        panic!("new");
    };
    let items = (0..n).map(|i| item(&format!("c{i}"))).collect();
    store.append(&id, 0, items).await.unwrap();
    let job = store.seal(&id).await.unwrap();
    let expected = if n == 0 {
        JobState::Completed
    } else {
        JobState::Queued
    };
    assert_eq!(job.state, expected, "an empty job is done at once");
    assert_eq!(job.counts.total, n as u64);
    id
}

fn ok(seq: u64) -> Done {
    Done {
        seq,
        outcome: Outcome::Ok {
            payload: format!("r{seq}").into_bytes().into(),
            attributes: Default::default(),
        },
        batch_id: 7,
    }
}

async fn a_job_is_stored_whole_or_not_at_all(at: Reopen) {
    let store = at.open().await;
    let Begun::New(id) = store.begin(header("q")).await.unwrap() else {
        panic!("new");
    };
    // Uploading: not a job yet.
    assert!(matches!(store.get(&id).await, Err(StoreError::NotFound(_))));
    store
        .append(&id, 0, vec![item("a"), item("b")])
        .await
        .unwrap();
    let e = store
        .append(&id, 2, vec![item("c"), item("a")])
        .await
        .unwrap_err();
    assert_eq!(
        e,
        StoreError::BadItem {
            index: 3,
            custom_id: "a".into(),
            reason: "duplicate custom_id in the job".into()
        },
        "the first offending item is named"
    );
    store.abort(&id).await.unwrap();
    assert!(
        store
            .list(Filter {
                limit: 10,
                ..Filter::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    // Past the items limit: refused, naming the item.
    let Begun::New(id) = store.begin(header("q")).await.unwrap() else {
        panic!("new");
    };
    let many = (0..1_001).map(|i| item(&format!("m{i}"))).collect();
    let e = store.append(&id, 0, many).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Limit(m) if m.contains("item 1000") && m.contains("max_items_per_job")),
        "{e}"
    );
    store.abort(&id).await.unwrap();
    // Past the bytes limit.
    let Begun::New(id) = store.begin(header("q")).await.unwrap() else {
        panic!("new");
    };
    let big = NewItem {
        custom_id: "big".into(),
        payload: vec![0u8; 2 << 20].into(),
        ..NewItem::default()
    };
    assert!(matches!(
        store.append(&id, 0, vec![big]).await,
        Err(StoreError::Limit(_))
    ));
    store.abort(&id).await.unwrap();
    // An idempotency key gets the first job back.
    let keyed = NewJob {
        idempotency_key: Some("k1".into()),
        ..header("q")
    };
    let Begun::New(first) = store.begin(keyed.clone()).await.unwrap() else {
        panic!("new");
    };
    store.seal(&first).await.unwrap();
    let Begun::Existing(again) = store.begin(keyed).await.unwrap() else {
        panic!("the key's job");
    };
    assert_eq!(again.id, first);
    assert_eq!(
        again.state,
        JobState::Completed,
        "an empty job is done at once"
    );
}

async fn items_are_claimed_once_and_recorded_once(at: Reopen) {
    let store = at.open().await;
    let id = job_of(&*store, 5).await;
    let first = store.claim(&id, 3).await.unwrap();
    assert_eq!(first.iter().map(|c| c.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(first[1].item, item("c1"));
    assert_eq!(store.get(&id).await.unwrap().state, JobState::InProgress);
    let rest = store.claim(&id, 10).await.unwrap();
    assert_eq!(rest.len(), 2, "never the same item twice");
    assert!(store.claim(&id, 10).await.unwrap().is_empty());
    let failed = Done {
        seq: 1,
        outcome: Outcome::Err {
            code: 3,
            message: "bad".into(),
        },
        batch_id: 8,
    };
    let job = store.record(&id, vec![ok(0), failed, ok(0)]).await.unwrap();
    assert_eq!(
        (job.counts.succeeded, job.counts.failed),
        (1, 1),
        "a repeat is skipped"
    );
    let job = store.record(&id, vec![ok(2), ok(3), ok(4)]).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert!(job.ended_ms > 0);
    let results = store.results(&id, 0, 100, false).await.unwrap();
    let ids: Vec<_> = results.iter().map(|r| r.custom_id.as_str()).collect();
    assert_eq!(ids, ["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(
        results.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(results[0].batch_id, 7);
    let errors = store.results(&id, 0, 100, true).await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].outcome,
        Outcome::Err {
            code: 3,
            message: "bad".into()
        }
    );
    assert_eq!(
        store.results(&id, 3, 1, false).await.unwrap()[0].custom_id,
        "c3"
    );
}

async fn cancel_fail_and_expire_end_what_has_not_run(at: Reopen) {
    let store = at.open().await;
    // Cancel with one item running: cancelling until it is recorded.
    let id = job_of(&*store, 4).await;
    store.claim(&id, 1).await.unwrap();
    let job = store.cancel(&id).await.unwrap();
    assert_eq!(job.state, JobState::Cancelling);
    assert_eq!(job.counts.cancelled, 3);
    assert!(store.claim(&id, 10).await.unwrap().is_empty());
    let job = store.record(&id, vec![ok(0)]).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.counts.done(), 4);
    let results = store.results(&id, 0, 10, true).await.unwrap();
    assert!(
        results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Err { code: 1, .. }))
    );
    // Fail: the reason is kept.
    let id = job_of(&*store, 2).await;
    let job = store
        .fail(&id, 9, "queue \"q\" does not exist")
        .await
        .unwrap();
    assert_eq!((job.state, job.counts.failed), (JobState::Failed, 2));
    assert!(job.reason.contains("does not exist"));
    // Expire: past its window, items not run end DEADLINE_EXCEEDED.
    let id = job_of(&*store, 3).await;
    store.claim(&id, 1).await.unwrap();
    store.record(&id, vec![ok(0)]).await.unwrap();
    let created = store.get(&id).await.unwrap().expires_ms;
    assert!(
        store.expire(created - 1).await.unwrap().is_empty(),
        "not yet"
    );
    let expired = store.expire(created).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].state, JobState::Expired);
    assert_eq!(
        (expired[0].counts.succeeded, expired[0].counts.expired),
        (1, 2)
    );
    let listed = store
        .list(Filter {
            state: Some(JobState::Expired),
            limit: 10,
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

async fn delete_list_pages_and_retention(at: Reopen) {
    let store = at.open().await;
    let running = job_of(&*store, 1).await;
    assert!(
        matches!(store.delete(&running).await, Err(StoreError::State(_))),
        "cancel first"
    );
    let mut ids = vec![running.clone()];
    for _ in 0..4 {
        ids.push(job_of(&*store, 0).await);
    }
    // Pages of two, newest first, each after the last page's last job.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(Filter {
                before: before.clone(),
                limit: 2,
                ..Filter::default()
            })
            .await
            .unwrap();
        seen.extend(page.iter().map(|j| j.id.clone()));
        if page.len() < 2 {
            break;
        }
        before = page.last().map(|j| j.id.clone());
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    let ended = ids.iter().find(|i| **i != running).unwrap().clone();
    store.delete(&ended).await.unwrap();
    assert!(matches!(
        store.get(&ended).await,
        Err(StoreError::NotFound(_))
    ));
    // Retention: every ended job (3 left) goes; the open one stays.
    let purged = store.purge(u64::MAX / 2).await.unwrap();
    assert_eq!(purged, 3);
    assert_eq!(store.get(&running).await.unwrap().state, JobState::Queued);
    // The open-jobs limit (10) counts it: 9 more fit, the 11th does not.
    for _ in 0..9 {
        let Begun::New(_) = store.begin(header("q")).await.unwrap() else {
            panic!()
        };
    }
    assert!(matches!(
        store.begin(header("q")).await,
        Err(StoreError::Limit(_))
    ));
}

async fn a_restart_puts_back_what_a_crash_left(at: Reopen) {
    let (id, uploading) = {
        let store = at.open().await;
        let id = job_of(&*store, 4).await;
        store.claim(&id, 3).await.unwrap();
        store.record(&id, vec![ok(0)]).await.unwrap();
        let Begun::New(uploading) = store.begin(header("q")).await.unwrap() else {
            panic!()
        };
        store.append(&uploading, 0, vec![item("x")]).await.unwrap();
        (id, uploading)
        // Dropped without a word: the thread ends with the channel.
    };
    // The file's lock goes with the connection, once its thread ends.
    let store = at.reopen().await;
    let job = store.get(&id).await.unwrap();
    assert_eq!((job.state, job.counts.succeeded), (JobState::InProgress, 1));
    // NATS gives the items back once their ack_wait (1 s here) passes.
    let mut again = store.claim(&id, 10).await.unwrap();
    for _ in 0..50 {
        if again.len() == 3 || !matches!(at, Reopen::Nats(..)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        again.extend(store.claim(&id, 10).await.unwrap());
    }
    again.sort_by_key(|c| c.seq);
    assert_eq!(
        again.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [1, 2, 3],
        "claimed but not recorded: they run again"
    );
    assert!(matches!(
        store.get(&uploading).await,
        Err(StoreError::NotFound(_))
    ));
    if matches!(at, Reopen::Sqlite(_)) {
        // (Over NATS another replica may still be uploading it: an upload
        // never sealed goes after an hour, see the README.)
        assert!(
            matches!(
                store.append(&uploading, 0, vec![item("y")]).await,
                Err(StoreError::NotFound(_))
            ),
            "an upload never sealed is gone"
        );
    }
}

/// Opens the store again once the last one's thread let go of the file.
async fn reopen(dir: &std::path::Path) -> Arc<dyn JobStore> {
    for _ in 0..100 {
        if let Ok(store) = SqliteStore::open(&dir.join("jobs.sqlite3"), limits()) {
            return Arc::new(store);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the store never let go of its file");
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_says_which_file_and_why() {
    let dir = scratch("bad");
    // A directory where the file should be.
    let as_dir = dir.join("jobs.sqlite3");
    std::fs::create_dir_all(&as_dir).unwrap();
    let e = SqliteStore::open(&as_dir, limits()).unwrap_err();
    assert!(
        e.to_string().contains("jobs.sqlite3") && e.to_string().contains("directory"),
        "{e}"
    );
    // A second holder of one file.
    let path = dir.join("held.sqlite3");
    let _held = SqliteStore::open(&path, limits()).unwrap();
    let e = SqliteStore::open(&path, limits()).unwrap_err();
    assert!(
        e.to_string().contains("held.sqlite3") && e.to_string().contains("locked"),
        "{e}"
    );
    // Not a database.
    let junk = dir.join("junk.sqlite3");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let e = SqliteStore::open(&junk, limits()).unwrap_err();
    assert!(e.to_string().contains("junk.sqlite3"), "{e}");
}

#[tokio::test]
async fn calls_that_share_a_commit_fail_alone() {
    let dir = scratch("group");
    let store = open(&dir);
    let (Begun::New(bad), Begun::New(good)) = (
        store.begin(header("q")).await.unwrap(),
        store.begin(header("q")).await.unwrap(),
    ) else {
        panic!("new")
    };
    // Sent together, so the store's thread runs them in one transaction.
    let refused = store.append(&bad, 0, vec![item("a"), item("a")]);
    let stored = store.append(&good, 0, vec![item("a"), item("b")]);
    let (refused, stored) = tokio::join!(refused, stored);
    assert!(
        matches!(refused, Err(StoreError::BadItem { index: 1, .. })),
        "{refused:?}"
    );
    stored.unwrap();
    assert_eq!(store.seal(&good).await.unwrap().counts.total, 2);
    assert!(
        store.seal(&bad).await.is_ok(),
        "the refused call left nothing: an empty job"
    );
    assert_eq!(store.get(&bad).await.unwrap().counts.total, 0);
}

/// A full disk (the file capped at the pages it has): the write fails
/// naming the file, the store refuses every call until it can write
/// again, then starts as after a crash: what was in flight runs again and
/// each item keeps one result.
#[tokio::test]
async fn a_full_disk_stops_the_store_until_it_can_write_again() {
    let dir = scratch("full");
    let store = SqliteStore::open(&dir.join("jobs.sqlite3"), limits()).unwrap();
    let id = job_of(&store, 10).await;
    let first = store.claim(&id, 4).await.unwrap();
    let pages = store.cap_pages(1 << 30).await.unwrap();
    store.cap_pages(pages).await.unwrap();
    let big = |seq| Done {
        seq,
        outcome: Outcome::Ok {
            payload: vec![b'x'; 64 << 10].into(),
            attributes: Default::default(),
        },
        batch_id: 1,
    };
    let e = store
        .record(&id, first.iter().map(|c| big(c.seq)).collect())
        .await
        .unwrap_err();
    let said = e.to_string();
    assert!(
        said.contains("jobs.sqlite3") && said.contains("full"),
        "{said}"
    );
    // Stopped: every call is refused with the failure, reads too.
    let said = store.get(&id).await.unwrap_err().to_string();
    assert!(
        said.contains("jobs.sqlite3") && said.contains("stopped after a failed write"),
        "{said}"
    );
    // Room again: the store starts again at its next try (every second).
    store.cap_pages(1 << 30).await.unwrap();
    let mut job = None;
    for _ in 0..50 {
        if let Ok(j) = store.get(&id).await {
            job = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = job.expect("the store writes again");
    assert_eq!((job.state, job.counts.succeeded), (JobState::InProgress, 0));
    let again = store.claim(&id, 20).await.unwrap();
    assert_eq!(
        again.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>(),
        "what was in flight runs again, first"
    );
    store.record(&id, (0..4).map(ok).collect()).await.unwrap();
    let twice = store.record(&id, (0..4).map(ok).collect()).await.unwrap();
    assert_eq!(
        twice.counts.succeeded, 4,
        "an answer that comes twice is stored once"
    );
    let done = store.record(&id, (4..10).map(ok).collect()).await.unwrap();
    assert_eq!(
        (done.state, done.counts.succeeded),
        (JobState::Completed, 10)
    );
    let results = store.results(&id, 0, 100, false).await.unwrap();
    assert_eq!(results.len(), 10);
}

/// A NATS server whose JetStream storage is full: an upload past it is
/// refused as a limit with NATS's reason, and the store goes on for what
/// fits.
#[tokio::test]
async fn a_full_jetstream_refuses_the_upload_with_its_reason() {
    let Some(nats) = crate::nats::Nats::start_capped(1 << 20) else {
        return;
    };
    let store = nats.store("full", limits()).await;
    let Begun::New(id) = store.begin(header("q")).await.unwrap() else {
        panic!("new");
    };
    let big = |i: usize| NewItem {
        custom_id: format!("b{i}"),
        payload: vec![b'x'; 200 << 10].into(),
        ..NewItem::default()
    };
    let mut refused = None;
    for i in 0..5 {
        if let Err(e) = store.append(&id, i, vec![big(i as usize)]).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("1 MiB of storage holds fewer than five 270 KB items");
    assert!(
        matches!(&e, StoreError::Limit(m) if m.contains("NATS JetStream is full")),
        "{e}"
    );
    store.abort(&id).await.unwrap();
    // What fits still runs.
    let id = job_of(&*store, 3).await;
    let claimed = store.claim(&id, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let job = store.record(&id, vec![ok(0), ok(1), ok(2)]).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
}
