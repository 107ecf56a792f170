//! The single writer against a real SQLite file: what it promises is group
//! commit in submission order, a refused job rolled back alone (its own
//! `SAVEPOINT`), an answer only after the commit that holds the write, and
//! a storage fault that poisons the whole group (nothing kept, every caller
//! told, the store marked faulted until the next good commit).
//!
//! Jobs are queued straight onto the writer's channel (`queue`), and a
//! *gate* job that blocks the writer thread makes the groups deterministic:
//! everything queued while the gate holds becomes the next group, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;

use super::{Job, Reply, WriteCtx};
use crate::metrics::StoreMetrics;
use crate::store::{Durability, Msg, StorageFault, Store, StoreError, StoreOptions, WriteError};

/// A module error: a refusal (rolls back its job only) or a storage fault
/// (poisons the group).
#[derive(Debug, PartialEq)]
enum JobError {
    Refused(&'static str),
    Fault(String),
}

impl StorageFault for JobError {
    fn storage_fault(&self) -> Option<String> {
        match self {
            JobError::Refused(_) => None,
            JobError::Fault(reason) => Some(reason.clone()),
        }
    }
}

impl From<rusqlite::Error> for JobError {
    fn from(e: rusqlite::Error) -> Self {
        JobError::Fault(e.to_string())
    }
}

/// A store on a file of its own, closed (its threads joined) before its
/// directory goes, also when a test fails: the syncer aborts the process
/// if the WAL it must sync disappears.
struct Open {
    store: Store,
    dir: tempfile::TempDir,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.store.close_blocking();
    }
}

fn open(durability: Durability) -> Open {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("ledger.sqlite"),
        StoreOptions {
            durability,
            ..StoreOptions::default()
        },
        StoreMetrics::new(),
    )
    .unwrap();
    store
        .write_blocking(|ctx| {
            ctx.conn.execute_batch(
                "CREATE TABLE scratch (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
            )
        })
        .unwrap();
    Open { store, dir }
}

/// Queues a job on the writer's channel (from a plain thread) and returns
/// its reply channel.
fn queue<T, F>(store: &Store, savepoint: bool, f: F) -> Reply<T, JobError>
where
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, JobError> + Send + 'static,
    T: Send + 'static,
{
    let (job, rx) = Job::new(savepoint, f);
    store
        .inner
        .tx
        .blocking_send(Msg::Job(job))
        .unwrap_or_else(|_| panic!("store closed"));
    rx
}

/// Holds the writer thread inside a job of its own group until the
/// returned sender is used; returns once the writer is inside it.
fn gate(store: &Store) -> (std_mpsc::Sender<()>, Reply<(), JobError>) {
    let (started_tx, started_rx) = std_mpsc::channel::<()>();
    let (release_tx, release_rx) = std_mpsc::channel::<()>();
    let reply = queue(store, false, move |_ctx| {
        started_tx.send(()).unwrap();
        release_rx.recv().ok();
        Ok(())
    });
    started_rx.recv().unwrap();
    (release_tx, reply)
}

fn insert(ctx: &WriteCtx<'_>, name: &str) -> Result<i64, JobError> {
    ctx.conn
        .execute("INSERT INTO scratch (name) VALUES (?1)", [name])?;
    Ok(ctx.conn.last_insert_rowid())
}

fn names(store: &Store) -> Vec<String> {
    store
        .read_blocking(|c| {
            c.prepare("SELECT name FROM scratch ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .unwrap()
}

fn answer<T>(reply: Reply<T, JobError>) -> Result<T, WriteError<JobError>> {
    reply
        .blocking_recv()
        .expect("answered")
        .map(|(value, _)| value)
}

#[test]
fn a_group_commits_once_with_its_jobs_in_submission_order() {
    let db = open(Durability::Full);
    let store = &db.store;
    let commits_before = store.commits();
    let (release, held) = gate(store);
    let replies: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|name| queue(store, true, move |ctx| insert(ctx, name)))
        .collect();
    release.send(()).unwrap();
    answer(held).unwrap();
    let ids: Vec<i64> = replies.into_iter().map(|r| answer(r).unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(names(store), ["a", "b", "c", "d"]);
    // The gate's group and the four jobs' group: two commits, not five.
    assert_eq!(store.commits(), commits_before + 2);
    assert!(!store.is_faulted());
}

#[test]
fn a_refused_job_rolls_back_alone_and_its_group_commits() {
    let db = open(Durability::Full);
    let store = &db.store;
    let (release, held) = gate(store);
    let first = queue(store, true, |ctx| insert(ctx, "first"));
    let refused = queue(store, true, |ctx| {
        insert(ctx, "refused-1")?;
        insert(ctx, "refused-2")?;
        Err::<i64, _>(JobError::Refused("over the limit"))
    });
    let last = queue(store, true, |ctx| insert(ctx, "last"));
    release.send(()).unwrap();
    answer(held).unwrap();
    assert!(answer(first).is_ok());
    assert!(matches!(
        answer(refused),
        Err(WriteError::Rejected(JobError::Refused("over the limit")))
    ));
    assert!(answer(last).is_ok());
    assert_eq!(names(store), ["first", "last"]);
    assert!(!store.is_faulted());
}

#[test]
fn a_fast_job_refused_before_writing_leaves_its_group_alone() {
    let db = open(Durability::Full);
    let store = &db.store;
    let (release, held) = gate(store);
    let first = queue(store, false, |ctx| insert(ctx, "first"));
    let refused = queue(store, false, |_ctx| {
        Err::<i64, _>(JobError::Refused("checked before writing"))
    });
    let last = queue(store, false, |ctx| insert(ctx, "last"));
    release.send(()).unwrap();
    answer(held).unwrap();
    assert!(answer(first).is_ok());
    assert!(matches!(
        answer(refused),
        Err(WriteError::Rejected(JobError::Refused(_)))
    ));
    assert!(answer(last).is_ok());
    assert_eq!(names(store), ["first", "last"]);
}

#[test]
fn the_answer_comes_only_after_the_commit_that_holds_the_write() {
    let db = open(Durability::Pipelined);
    let store = &db.store;
    let (release_gate, held) = gate(store);
    let (ran_tx, ran_rx) = std_mpsc::channel::<()>();
    let mut written = queue(store, true, move |ctx| {
        let id = insert(ctx, "written")?;
        ran_tx.send(()).unwrap();
        Ok(id)
    });
    // A second job of the same group holds the writer before COMMIT.
    let (inside_tx, inside_rx) = std_mpsc::channel::<()>();
    let (release_tx, release_rx) = std_mpsc::channel::<()>();
    let blocker = queue(store, true, move |_ctx| {
        inside_tx.send(()).unwrap();
        release_rx.recv().ok();
        Ok(())
    });
    release_gate.send(()).unwrap();
    answer(held).unwrap();
    inside_rx.recv().unwrap();
    ran_rx
        .try_recv()
        .expect("the job queued first ran first, in the same group");
    // The write is done, its transaction is not committed: no answer yet,
    // and no reader sees it.
    assert!(matches!(
        written.try_recv(),
        Err(tokio::sync::oneshot::error::TryRecvError::Empty)
    ));
    assert!(names(store).is_empty());
    release_tx.send(()).unwrap();
    answer(blocker).unwrap();
    answer(written).unwrap();
    assert_eq!(names(store), ["written"]);
}

#[test]
fn a_storage_fault_poisons_the_whole_group_and_the_next_commit_clears_it() {
    let db = open(Durability::Full);
    let store = &db.store;
    let (release, held) = gate(store);
    let ok = queue(store, true, |ctx| insert(ctx, "ok"));
    let refused = queue(store, true, |_ctx| {
        Err::<i64, _>(JobError::Refused("would be refused"))
    });
    let fault = queue(store, true, |ctx| {
        insert(ctx, "faulting")?;
        Err::<i64, _>(JobError::Fault("disk I/O error".into()))
    });
    let after_ran = Arc::new(AtomicBool::new(false));
    let flag = after_ran.clone();
    let after = queue(store, true, move |ctx| {
        flag.store(true, Ordering::SeqCst);
        insert(ctx, "after")
    });
    release.send(()).unwrap();
    answer(held).unwrap();
    let unavailable = |r: Result<i64, WriteError<JobError>>| match r {
        Err(WriteError::Store(StoreError::Unavailable(reason))) => reason,
        other => panic!("expected unavailable, got {other:?}"),
    };
    assert_eq!(unavailable(answer(ok)), "disk I/O error");
    // A refusal in a failed group may rest on rolled-back state: the caller
    // is told to retry, not that it was refused.
    assert_eq!(unavailable(answer(refused)), "disk I/O error");
    assert_eq!(unavailable(answer(fault)), "disk I/O error");
    // Jobs after the fault never run; their callers hear of it.
    assert!(after.blocking_recv().is_err());
    assert!(!after_ran.load(Ordering::SeqCst));
    assert!(names(store).is_empty());
    assert!(store.is_faulted());
    // The next good commit clears the flag.
    store
        .write_blocking(|ctx| insert(ctx, "later").map(|_| ()))
        .unwrap();
    assert_eq!(names(store), ["later"]);
    assert!(!store.is_faulted());
}

#[test]
fn a_full_disk_poisons_the_group_and_the_store_recovers_once_space_returns() {
    let db = open(Durability::Pipelined);
    let store = &db.store;
    let (release, held) = gate(store);
    let small = queue(store, true, |ctx| insert(ctx, "small"));
    // The database may not grow by a page: a large row is SQLITE_FULL,
    // a storage fault from SQLite itself.
    let big = queue(store, true, |ctx| {
        let pages: i64 = ctx.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        ctx.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        ctx.conn.execute(
            "INSERT INTO scratch (name) VALUES (hex(zeroblob(200000)))",
            [],
        )?;
        Ok(ctx.conn.last_insert_rowid())
    });
    release.send(()).unwrap();
    answer(held).unwrap();
    for reply in [small, big] {
        match answer(reply) {
            Err(WriteError::Store(StoreError::Unavailable(reason))) => {
                assert!(reason.contains("full"), "{reason}")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
    assert!(store.is_faulted());
    assert!(names(store).is_empty());
    // Space returns; the same writer commits again.
    store
        .write_blocking(|ctx| {
            ctx.conn
                .query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))?;
            insert(ctx, "after").map(|_| ())
        })
        .unwrap();
    assert_eq!(names(store), ["after"]);
    assert!(!store.is_faulted());
}

#[test]
fn each_durability_mode_sets_the_writer_pragma_it_documents() {
    for (durability, synchronous) in [(Durability::Full, 2), (Durability::Pipelined, 1)] {
        let db = open(durability);
        let store = &db.store;
        let seen: i64 = store
            .write_blocking(|ctx| {
                ctx.conn
                    .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
            })
            .unwrap();
        // FULL = 2: SQLite syncs at COMMIT. NORMAL = 1: the syncer thread
        // fdatasyncs the WAL before anyone is answered.
        assert_eq!(seen, synchronous, "{durability:?}");
        let journal: String = store
            .write_blocking(|ctx| ctx.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(journal, "wal");
    }
}

#[test]
fn acknowledged_writes_are_in_the_file_after_close_in_both_modes_and_no_wal_is_left() {
    for durability in [Durability::Full, Durability::Pipelined] {
        let db = open(durability);
        let (dir, store) = (&db.dir, &db.store);
        for name in ["one", "two", "three"] {
            store
                .write_blocking(move |ctx| insert(ctx, name).map(|_| ()))
                .unwrap();
        }
        store.close_blocking();
        // The final checkpoint moved everything into the database file.
        let wal = dir.path().join("ledger.sqlite-wal");
        let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal_len, 0, "{durability:?}: WAL left behind");
        let conn = rusqlite::Connection::open(dir.path().join("ledger.sqlite")).unwrap();
        let rows: Vec<String> = conn
            .prepare("SELECT name FROM scratch ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, ["one", "two", "three"], "{durability:?}");
    }
}

#[test]
fn close_commits_what_was_queued_before_it_and_refuses_what_comes_after() {
    let db = open(Durability::Pipelined);
    let store = &db.store;
    let (release, held) = gate(store);
    let queued = queue(store, true, |ctx| insert(ctx, "queued"));
    let closer = {
        let store = store.clone();
        std::thread::spawn(move || store.close_blocking())
    };
    // Wait until the shutdown message is queued behind the job, so both
    // are taken in one drain by the writer.
    let tx = &store.inner.tx;
    while tx.max_capacity() - tx.capacity() < 2 {
        std::thread::yield_now();
    }
    release.send(()).unwrap();
    answer(held).unwrap();
    closer.join().unwrap();
    answer(queued).unwrap();
    assert!(matches!(
        store.write_blocking(|ctx| insert(ctx, "late").map(|_| ())),
        Err(WriteError::Store(StoreError::Closed))
    ));
    assert_eq!(names(store), ["queued"]);
}
