//! Online backup: a consistent copy of the ledger while the daemon writes.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::Backup;

/// Copies the ledger at `source` to `target` with SQLite's backup API in a
/// single step (one read transaction, so the copy is one consistent
/// snapshot even while the daemon keeps committing), writes it to a
/// temporary file first and renames it into place after an fsync, so
/// `target` is either absent or complete.
pub fn backup_to(source: &Path, target: &Path) -> anyhow::Result<()> {
    let src = super::open_read_only(source)?;
    let tmp = target.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    {
        let mut dst = Connection::open(&tmp)?;
        let backup = Backup::new(&src, &mut dst)?;
        // -1: all pages in one step, inside one read transaction. Busy or
        // locked (a checkpoint at that instant) is retried, bounded.
        let mut attempts = 0;
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => continue,
                _ if attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => anyhow::bail!("the ledger stayed busy during the backup: {other:?}"),
            }
        }
        drop(backup);
        // The copy is a standalone file: no WAL to carry around.
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        let check: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        anyhow::ensure!(
            check == "ok",
            "backup copy failed its integrity check: {check}"
        );
    }
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, target)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
