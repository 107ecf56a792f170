//! A small pool of read-only connections. Each read sees the last commit
//! (WAL snapshot) and never blocks the writer.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::StoreError;

pub(crate) struct ReadPool {
    connections: Arc<Mutex<Vec<Connection>>>,
    /// One permit per connection: waiting happens here, asynchronously,
    /// instead of on a blocking thread.
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub(crate) fn open(path: &Path, size: usize) -> anyhow::Result<ReadPool> {
        let mut connections = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            super::configure(&conn, false, super::Durability::Full)?;
            connections.push(conn);
        }
        Ok(ReadPool {
            connections: Arc::new(Mutex::new(connections)),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_with(move |conn| f(conn).map_err(StoreError::from))
            .await
    }

    pub(crate) async fn run_with<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| E::from(StoreError::Closed))?;
        let connections = self.connections.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = connections
                .lock()
                .expect("read pool lock")
                .pop()
                .expect("a permit guarantees a connection");
            let result = f(&conn);
            connections.lock().expect("read pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| E::from(StoreError::Unavailable(format!("read task failed: {e}"))))?
    }

    pub(crate) fn run_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T>,
    {
        let conn = loop {
            if let Some(conn) = self.connections.lock().expect("read pool lock").pop() {
                break conn;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let result = f(&conn);
        self.connections.lock().expect("read pool lock").push(conn);
        result.map_err(StoreError::from)
    }
}
