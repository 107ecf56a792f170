//! The ledger store: one SQLite file, one writer thread, a small read pool.
//!
//! Writes are closures sent over a bounded channel to the writer thread,
//! which folds whatever is queued into one transaction — a **group commit**:
//! many requests, one `COMMIT`, one fsync of the WAL (`synchronous=FULL`).
//! A caller is answered only after the commit that contains its write is
//! durable; if the commit fails, every caller in the batch is told so and
//! nothing of theirs is kept.
//!
//! Each job normally runs in its own `SAVEPOINT`, so a job refused by its
//! module (insufficient funds, duplicate key…) rolls back alone and the rest
//! of the batch commits. "Fast" jobs skip the savepoint; they promise to
//! refuse before writing anything (see [`Store::write_fast`]).
//!
//! A storage fault inside a job (I/O error, disk full) poisons the batch:
//! it is rolled back and every caller gets [`StoreError::Unavailable`].

mod backup;
mod migrations;
mod reader;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use backup::backup_to;
pub use migrations::MIGRATIONS;
pub use writer::{BatchState, CommitInfo, WriteCtx};

use crate::metrics::StoreMetrics;

/// Why a write or read could not be done. Never carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not commit (disk full, I/O error, locked…).
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// The store is shutting down.
    #[error("ledger is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Result of a write: refused by the module, or not done at all.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    #[error(transparent)]
    Rejected(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Module errors tell the writer which of their variants are storage faults
/// (poison the batch) as opposed to refusals (roll back this job only).
pub trait StorageFault {
    fn storage_fault(&self) -> Option<String>;
}

impl StorageFault for rusqlite::Error {
    fn storage_fault(&self) -> Option<String> {
        Some(self.to_string())
    }
}

/// How an acknowledged commit is made durable. Both answer a caller only
/// once its commit is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: SQLite fsyncs the WAL inside every COMMIT; the
    /// writer waits for it.
    Full,
    /// `synchronous=NORMAL` plus our own `fdatasync` of the WAL on a second
    /// thread before answering: the writer executes the next group while
    /// the disk flushes the previous one (see writer.rs, `spawn_syncer`).
    Pipelined,
}

/// Tunables, from `[store]` in the config.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub read_connections: usize,
    pub write_queue: usize,
    pub max_batch: usize,
    pub durability: Durability,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            read_connections: 4,
            write_queue: 65536,
            max_batch: 4096,
            durability: Durability::Pipelined,
        }
    }
}

pub(crate) enum Msg {
    Job(writer::Job),
    /// Drain everything queued before this, commit, and stop.
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, cloneable handle to the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    tx: mpsc::Sender<Msg>,
    readers: reader::ReadPool,
    closed: AtomicBool,
    /// Last commit failed (cleared by the next successful one): lets
    /// health checks and ingest answer 503 at once.
    faulted: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Applies the pragmas every connection needs. Explicit, never library
/// defaults, for anything that decides durability.
pub(crate) fn configure(
    conn: &Connection,
    writer: bool,
    durability: Durability,
) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // FULL: the WAL is fsynced at every commit, so an acknowledged write
    // survives power loss, not only a process crash. Pipelined: NORMAL on
    // the writer, and the syncer thread fsyncs the WAL before any caller is
    // answered — the same promise, without stalling the writer.
    let synchronous = match (writer, durability) {
        (true, Durability::Pipelined) => "NORMAL",
        _ => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    if writer {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::InvalidQuery);
        }
        // Checkpoints run on their own thread (see writer.rs) so a commit
        // never waits for one.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // After a burst the WAL shrinks back when SQLite restarts it,
        // instead of keeping its high-water size on disk for good.
        conn.pragma_update(None, "journal_size_limit", writer::WAL_LIMIT_BYTES as i64)?;
        conn.pragma_update(None, "cache_size", -65536)?;
    } else {
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", -16384)?;
    }
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the ledger at `path`, applies migrations,
    /// and starts the writer thread.
    pub fn open(path: &Path, opts: StoreOptions, metrics: StoreMetrics) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        configure(&conn, true, opts.durability)?;
        migrations::apply(&conn)?;
        let state = BatchState::load(&conn)?;
        let readers = reader::ReadPool::open(path, opts.read_connections)?;
        let (tx, rx) = mpsc::channel(opts.write_queue);
        let faulted = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let handle = writer::spawn(
            conn,
            path.to_path_buf(),
            state,
            rx,
            opts.max_batch,
            metrics,
            faulted.clone(),
            commits.clone(),
            opts.durability,
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                tx,
                readers,
                closed: AtomicBool::new(false),
                faulted,
                commits,
                writer: std::sync::Mutex::new(Some(handle)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// True when the last commit failed and none has succeeded since.
    pub fn is_faulted(&self) -> bool {
        self.inner.faulted.load(Ordering::Relaxed)
    }

    /// Group commits done since start.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Runs `f` in its own savepoint inside the next group commit and
    /// returns its value once that commit is durable.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, WriteError<E>>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: StorageFault + Send + 'static,
    {
        self.submit(true, f).await.map(|(value, _)| value)
    }

    /// Like [`Store::write`] but without a savepoint, for hot paths. The
    /// closure must return a refusal only before its first write; an error
    /// after a write must be a storage fault (which poisons the batch).
    /// Also returns what the batch learned at commit (e.g. balances after
    /// rolled-up credits).
    pub async fn write_fast<T, E, F>(&self, f: F) -> Result<(T, Arc<CommitInfo>), WriteError<E>>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: StorageFault + Send + 'static,
    {
        self.submit(false, f).await
    }

    /// Blocking variant of [`Store::write`] for threads outside the runtime.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, WriteError<E>>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: StorageFault + Send + 'static,
    {
        let (job, rx) = writer::Job::new(true, f);
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(WriteError::Store(StoreError::Closed));
        }
        self.inner
            .tx
            .blocking_send(Msg::Job(job))
            .map_err(|_| WriteError::Store(StoreError::Closed))?;
        match rx.blocking_recv() {
            Ok(result) => result.map(|(value, _)| value),
            Err(_) => Err(WriteError::Store(StoreError::Closed)),
        }
    }

    /// Test hook: queues a fast job at once (from a thread outside the
    /// runtime) and returns its reply, so a test can put many jobs in one
    /// group commit deterministically (behind a job that waits for it).
    #[cfg(test)]
    pub(crate) fn queue_fast_blocking<T, E, F>(&self, f: F) -> writer::Reply<T, E>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: StorageFault + Send + 'static,
    {
        let (job, rx) = writer::Job::new(false, f);
        self.inner
            .tx
            .blocking_send(Msg::Job(job))
            .unwrap_or_else(|_| panic!("store closed"));
        rx
    }

    async fn submit<T, E, F>(
        &self,
        savepoint: bool,
        f: F,
    ) -> Result<(T, Arc<CommitInfo>), WriteError<E>>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: StorageFault + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(WriteError::Store(StoreError::Closed));
        }
        let (job, rx) = writer::Job::new(savepoint, f);
        self.inner
            .tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| WriteError::Store(StoreError::Closed))?;
        match rx.await {
            Ok(result) => result,
            // The writer dropped the job without running it: the batch it
            // was in failed before reaching it, or the store closed.
            Err(_) => Err(WriteError::Store(StoreError::Unavailable(
                "write abandoned by a failed batch".into(),
            ))),
        }
    }

    /// Runs `f` on a pooled read connection (its own snapshot of the last
    /// commit) on the blocking thread pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.readers.run(f).await
    }

    /// Like [`Store::read`] with a module error type.
    pub async fn read_with<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.inner.readers.run_with(f).await
    }

    /// Blocking read for code outside the runtime (CLI, benches).
    pub fn read_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T>,
    {
        self.inner.readers.run_blocking(f)
    }

    /// Stops accepting writes, commits everything already queued, runs a
    /// final checkpoint and joins the writer. Idempotent.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (done_tx, done_rx) = oneshot::channel();
        if self.inner.tx.send(Msg::Shutdown(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
        let handle = self.inner.writer.lock().expect("writer handle").take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// Blocking variant of [`Store::close`].
    pub fn close_blocking(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (done_tx, done_rx) = oneshot::channel();
        if self.inner.tx.blocking_send(Msg::Shutdown(done_tx)).is_ok() {
            let _ = done_rx.blocking_recv();
        }
        if let Some(handle) = self.inner.writer.lock().expect("writer handle").take() {
            let _ = handle.join();
        }
    }
}

/// Opens a plain read-only connection (for `pooldeskd verify` and tools
/// that run beside a live daemon; WAL lets them read while it writes).
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    anyhow::ensure!(path.exists(), "no ledger at {}", path.display());
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}
