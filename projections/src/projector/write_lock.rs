//! On SQLite one writer at a time holds the file; another writer that finds
//! it taken sleeps in SQLite's busy handler (1, 2, 5, 10, ... ms) before it
//! tries again, which under concurrent score posts makes most of the tail
//! latency. This process's writers of the log and of the read tables queue
//! here instead, in memory, and go as soon as the file is free. Writers in
//! other processes still meet the busy handler, as before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::db::Db;

/// The queue of this process's writers to one SQLite file.
pub type WriteLock = Arc<tokio::sync::Mutex<()>>;

/// The queue for `db`'s file; `None` on PostgreSQL, where writers do not
/// exclude each other.
pub fn sqlite_write_lock(db: &Db) -> Option<WriteLock> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, WriteLock>>> = OnceLock::new();
    let Db::Sqlite(pool) = db else { return None };
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    Some(locks.entry(file).or_default().clone())
}

/// Waits for this writer's turn at `writers`; on PostgreSQL (`None`) there
/// is nothing to wait for. The turn lasts as long as the guard.
pub async fn turn(writers: Option<&WriteLock>) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    match writers {
        Some(w) => Some(w.lock().await),
        None => None,
    }
}
