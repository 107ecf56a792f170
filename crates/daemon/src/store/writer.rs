//! The writer thread: the only code that writes to the ledger file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{Msg, StorageFault, StoreError, WriteError};
use crate::hashrate::WorkRollup;
use crate::ledger::LedgerState;
use crate::metrics::StoreMetrics;

/// What a job may touch: the write connection (inside the batch's
/// transaction), the time, and the batch accumulators of the modules that
/// roll up per-batch work (ledger credits, hashrate minutes).
pub struct WriteCtx<'a> {
    pub conn: &'a Connection,
    /// Wall clock when the job started, Unix seconds.
    pub now_s: i64,
    pub(crate) state: &'a mut BatchState,
}

/// State the writer keeps across batches (caches) and within one batch
/// (rolled-up credits and work, applied once per batch).
pub struct BatchState {
    pub(crate) ledger: LedgerState,
    pub(crate) work: WorkRollup,
}

impl BatchState {
    pub fn load(conn: &Connection) -> rusqlite::Result<BatchState> {
        Ok(BatchState {
            ledger: LedgerState::load(conn)?,
            work: WorkRollup::default(),
        })
    }

    /// Applies rolled-up credits and work. Called before any job that runs
    /// in a savepoint (so it sees true balances and its rollback cannot
    /// undo others' credits) and before commit.
    pub(crate) fn flush(&mut self, conn: &Connection, now_s: i64) -> rusqlite::Result<()> {
        self.ledger.flush(conn, now_s)?;
        self.work.flush(conn)?;
        Ok(())
    }

    /// The rollup group credits accrued now will land in.
    pub(crate) fn ledger_group(&self) -> i64 {
        self.ledger.group()
    }

    /// Adds work to this batch's per-minute roll-up.
    pub(crate) fn work_add(&mut self, miner_id: &str, worker_name: &str, minute: i64, work: u128) {
        self.work.add(miner_id, worker_name, minute, work);
    }

    fn rollback(&mut self) {
        self.ledger.rollback();
        self.work.clear();
    }

    fn committed(&mut self) -> CommitInfo {
        CommitInfo {
            balances: self.ledger.committed(),
        }
    }
}

/// What a batch learned at commit, shared by all its callers.
#[derive(Debug, Default)]
pub struct CommitInfo {
    /// Balance (msat) after the batch's rolled-up credits, by account id.
    pub balances: HashMap<i64, i64>,
}

type Completion = Box<dyn FnOnce(Result<&Arc<CommitInfo>, &StoreError>) + Send>;

enum Ran {
    Done(Completion),
    Refused(Completion),
    Fault(String, Completion),
}

type RunFn = Box<dyn FnOnce(&mut WriteCtx<'_>) -> Ran + Send>;

pub(crate) struct Job {
    savepoint: bool,
    run: RunFn,
}

pub(crate) type Reply<T, E> = oneshot::Receiver<Result<(T, Arc<CommitInfo>), WriteError<E>>>;

impl Job {
    pub(crate) fn new<T, E, F>(savepoint: bool, f: F) -> (Job, Reply<T, E>)
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: StorageFault + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: RunFn = Box::new(move |ctx| match f(ctx) {
            Ok(value) => Ran::Done(Box::new(move |outcome| {
                let _ = tx.send(match outcome {
                    Ok(info) => Ok((value, info.clone())),
                    Err(e) => Err(WriteError::Store(e.clone())),
                });
            })),
            Err(e) => match e.storage_fault() {
                Some(fault) => Ran::Fault(
                    fault,
                    Box::new(move |outcome| {
                        let err = match outcome {
                            Err(e) => e.clone(),
                            Ok(_) => StoreError::Unavailable("storage fault".into()),
                        };
                        let _ = tx.send(Err(WriteError::Store(err)));
                    }),
                ),
                None => Ran::Refused(Box::new(move |outcome| {
                    // A refusal is reported only if the batch committed:
                    // if it failed, the refusal may rest on rolled-back
                    // state, and the caller must simply retry.
                    let _ = tx.send(match outcome {
                        Ok(_) => Err(WriteError::Rejected(e)),
                        Err(se) => Err(WriteError::Store(se.clone())),
                    });
                })),
            },
        });
        (Job { savepoint, run }, rx)
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn(
    conn: Connection,
    path: PathBuf,
    state: BatchState,
    rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    metrics: StoreMetrics,
    faulted: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    durability: super::Durability,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let stop_checkpointer = Arc::new(AtomicBool::new(false));
    let wal_path = WalFile::new(&path).wal_path;
    let checkpointer = spawn_checkpointer(path.clone(), stop_checkpointer.clone())?;
    let (syncer, syncer_handle) = match durability {
        super::Durability::Full => (None, None),
        super::Durability::Pipelined => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Synced>(SYNC_QUEUE);
            let handle = spawn_syncer(path, rx, metrics.clone())?;
            (Some(tx), Some(handle))
        }
    };
    std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || {
            let mut writer = Writer {
                conn,
                state,
                metrics,
                faulted,
                commits,
                syncer,
                wal_path,
                wal_checked: Instant::now(),
            };
            writer.run(rx, max_batch);
            // Every commit handed to the syncer is made durable and answered
            // before the writer finishes.
            writer.syncer = None;
            if let Some(handle) = syncer_handle {
                let _ = handle.join();
            }
            stop_checkpointer.store(true, Ordering::Release);
            let _ = checkpointer.join();
            // A clean shutdown leaves no WAL behind.
            if let Err(e) = writer
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            {
                tracing::warn!(error = %e, "final checkpoint failed");
            }
        })
}

struct Writer {
    conn: Connection,
    state: BatchState,
    metrics: StoreMetrics,
    faulted: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    /// Pipelined durability: committed batches go here to be fsynced and
    /// only then answered. `None`: SQLite syncs at COMMIT (FULL).
    syncer: Option<std::sync::mpsc::SyncSender<Synced>>,
    /// The ledger's `-wal` file and when its size was last looked at
    /// (see [`Writer::bound_wal`]).
    wal_path: PathBuf,
    wal_checked: Instant,
}

/// WAL size past which the writer finishes a checkpoint itself; also the
/// `journal_size_limit` the file is truncated back to when SQLite restarts
/// it (4× SQLite's own autocheckpoint size of 1000 pages).
pub(crate) const WAL_LIMIT_BYTES: u64 = 16 * 1024 * 1024;
/// How often the writer looks at the WAL's size (one `stat`).
const WAL_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Committed batches the syncer makes durable before answering.
const SYNC_QUEUE: usize = 1024;

struct Synced {
    completions: Vec<Completion>,
    info: Arc<CommitInfo>,
    jobs: usize,
    started: Instant,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Msg>, max_batch: usize) {
        let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
        loop {
            let mut shutdown = None;
            match rx.blocking_recv() {
                Some(Msg::Job(job)) => jobs.push(job),
                Some(Msg::Shutdown(done)) => shutdown = Some(done),
                None => return,
            }
            // Take whatever else is already queued: this is the group.
            while shutdown.is_none() && jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(Msg::Job(job)) => jobs.push(job),
                    Ok(Msg::Shutdown(done)) => shutdown = Some(done),
                    Err(_) => break,
                }
            }
            if !jobs.is_empty() {
                self.run_batch(std::mem::take(&mut jobs));
            }
            self.bound_wal();
            if let Some(done) = shutdown {
                // Anything sent after the shutdown message is refused by
                // `closed`; drain stragglers that raced it.
                while let Ok(msg) = rx.try_recv() {
                    if let Msg::Job(job) = msg {
                        jobs.push(job);
                    }
                }
                if !jobs.is_empty() {
                    self.run_batch(std::mem::take(&mut jobs));
                }
                let _ = done.send(());
                return;
            }
        }
    }

    fn run_batch(&mut self, jobs: Vec<Job>) {
        let started = Instant::now();
        let size = jobs.len();
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            self.fail(Vec::new(), e.to_string());
            return;
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(size);
        let mut poison: Option<String> = None;
        for job in jobs {
            if poison.is_some() {
                // Never run: dropping it tells its caller the batch failed.
                drop(job);
                continue;
            }
            let now_s = crate::clock::now_s();
            if job.savepoint {
                if let Err(e) = self.state.flush(&self.conn, now_s) {
                    poison = Some(e.to_string());
                    continue;
                }
                if let Err(e) = self.conn.execute_batch("SAVEPOINT job") {
                    poison = Some(e.to_string());
                    continue;
                }
            }
            self.state.ledger.job_started();
            let mut ctx = WriteCtx {
                conn: &self.conn,
                now_s,
                state: &mut self.state,
            };
            match (job.run)(&mut ctx) {
                Ran::Done(done) => {
                    if job.savepoint
                        && let Err(e) = self.conn.execute_batch("RELEASE job")
                    {
                        poison = Some(e.to_string());
                    }
                    self.state.ledger.job_finished();
                    completions.push(done);
                }
                Ran::Refused(done) => {
                    if job.savepoint
                        && let Err(e) = self.conn.execute_batch("ROLLBACK TO job; RELEASE job")
                    {
                        poison = Some(e.to_string());
                    }
                    self.state.ledger.job_rolled_back();
                    completions.push(done);
                }
                Ran::Fault(fault, done) => {
                    poison = Some(fault);
                    completions.push(done);
                }
            }
        }
        if poison.is_none()
            && let Err(e) = self.state.flush(&self.conn, crate::clock::now_s())
        {
            poison = Some(e.to_string());
        }
        if let Some(reason) = poison {
            self.fail(completions, reason);
            return;
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            self.fail(completions, e.to_string());
            return;
        }
        let info = Arc::new(self.state.committed());
        self.faulted.store(false, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        match &self.syncer {
            Some(syncer) => {
                // Answered by the syncer after fdatasync; the writer goes on
                // with the next batch meanwhile.
                let synced = Synced {
                    completions,
                    info,
                    jobs: size,
                    started,
                };
                if let Err(unsent) = syncer.send(synced) {
                    // The syncer is gone (it aborts the process on an fsync
                    // error, so this is shutdown): sync here instead.
                    let synced = unsent.0;
                    let _ = self
                        .conn
                        .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()));
                    for done in synced.completions {
                        done(Ok(&synced.info));
                    }
                }
            }
            None => {
                self.metrics.observe_commit(size, started.elapsed());
                for done in completions {
                    done(Ok(&info));
                }
            }
        }
    }

    /// Keeps the WAL bounded under steady load. SQLite restarts the WAL
    /// from its beginning only when a write transaction starts with every
    /// frame already copied back; the background checkpointer copies while
    /// the writer keeps appending, so under continuous traffic that moment
    /// never came and the file grew without bound (80 MB in 20 s at 400
    /// reports/s) — and on a filling disk the WAL is what hits ENOSPC
    /// first, and keeps the space after the disk is freed. Past
    /// [`WAL_LIMIT_BYTES`], between two batches (no frame can be appended
    /// meanwhile), the writer finishes the checkpoint itself: the
    /// background thread has copied all but the last moment's frames, so
    /// this is short. The next transaction restarts the WAL and
    /// `journal_size_limit` truncates it back to the limit.
    fn bound_wal(&mut self) {
        if self.wal_checked.elapsed() < WAL_CHECK_EVERY {
            return;
        }
        self.wal_checked = Instant::now();
        let Ok(meta) = std::fs::metadata(&self.wal_path) else {
            return;
        };
        if meta.len() <= WAL_LIMIT_BYTES {
            return;
        }
        let outcome = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
        match outcome {
            Ok((busy, wal_frames, copied)) => tracing::debug!(
                wal_bytes = meta.len(),
                busy,
                wal_frames,
                copied,
                "writer caught up the checkpoint"
            ),
            Err(e) => tracing::debug!(error = %e, "writer checkpoint"),
        }
    }

    fn fail(&mut self, completions: Vec<Completion>, reason: String) {
        // The transaction may already be gone (SQLite rolls back by itself
        // on some errors such as SQLITE_FULL): ignore "no transaction".
        let _ = self.conn.execute_batch("ROLLBACK");
        self.state.rollback();
        self.faulted.store(true, Ordering::Relaxed);
        self.metrics.observe_failed_commit();
        tracing::error!(reason = %reason, jobs = completions.len(), "group commit failed; nothing in it was acknowledged");
        let err = StoreError::Unavailable(reason);
        for done in completions {
            done(Err(&err));
        }
    }
}

/// The syncer: makes committed WAL frames durable with one `fdatasync` for
/// everything committed so far, then answers those callers. Commits are
/// made with `synchronous=NORMAL` (SQLite writes the WAL frames with
/// `write(2)` at COMMIT but does not sync), so an acknowledgement still
/// means "on disk", exactly as with `synchronous=FULL`; the gain is that the
/// writer executes the next batch while the disk flushes this one.
///
/// An fsync error aborts the process: after a failed fsync the kernel may
/// have dropped the dirty pages, and carrying on would acknowledge writes
/// that are not on disk (the lesson of PostgreSQL's "fsyncgate"). A restart
/// recovers from the WAL; nothing unacknowledged was promised.
fn spawn_syncer(
    db_path: PathBuf,
    rx: std::sync::mpsc::Receiver<Synced>,
    metrics: StoreMetrics,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("ledger-sync".into()).spawn(move || {
        let mut wal = WalFile::new(&db_path);
        while let Ok(first) = rx.recv() {
            let mut pending = vec![first];
            while let Ok(more) = rx.try_recv() {
                pending.push(more);
            }
            if let Err(e) = wal.sync() {
                tracing::error!(error = %e, "fdatasync of the ledger WAL failed; aborting so nothing unsynced is ever acknowledged");
                std::process::abort();
            }
            for synced in pending {
                metrics.observe_commit(synced.jobs, synced.started.elapsed());
                for done in synced.completions {
                    done(Ok(&synced.info));
                }
            }
        }
    })
}

/// The `-wal` file of the ledger, reopened if SQLite replaced it.
struct WalFile {
    db_path: PathBuf,
    wal_path: PathBuf,
    file: Option<std::fs::File>,
}

impl WalFile {
    fn new(db_path: &std::path::Path) -> WalFile {
        let mut wal_path = db_path.as_os_str().to_owned();
        wal_path.push("-wal");
        WalFile {
            db_path: db_path.to_path_buf(),
            wal_path: PathBuf::from(wal_path),
            file: None,
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let current = match std::fs::metadata(&self.wal_path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // No WAL: everything was checkpointed into the database file.
                self.file = None;
                return std::fs::File::open(&self.db_path)?.sync_all();
            }
            Err(e) => return Err(e),
        };
        let stale = match &self.file {
            Some(file) => file.metadata()?.ino() != current.ino(),
            None => true,
        };
        if stale {
            self.file = Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.wal_path)?,
            );
        }
        self.file.as_ref().expect("just opened").sync_data()
    }
}

/// Passive checkpoints on a connection of their own, so commits never pay
/// for them. Passive checkpoints never block the writer.
fn spawn_checkpointer(
    path: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ledger-checkpoint".into())
        .spawn(move || {
            let conn = match Connection::open(&path) {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::error!(error = %e, "checkpointer cannot open the ledger");
                    return;
                }
            };
            let _ = conn.busy_timeout(Duration::from_millis(100));
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(250));
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "passive checkpoint");
                }
            }
        })
}

#[cfg(test)]
mod tests;
