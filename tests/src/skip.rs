//! Skips that are seen, and waits on events instead of sleeps.
//!
//! A test that cannot run calls [`skip_or_fail`]: it says why on the
//! process's real stderr (libtest captures `println!`/`eprintln!` of a
//! passing test and shows nothing), records the skip in
//! `$POOLDESK_SKIP_LOG` for the closing summary of `contrib/test.sh`, and
//! with `CI=true` panics instead: in CI a suite that cannot run fails.
//!
//! Std only, so crates that cannot depend on this one (the TUI's and the
//! protocol's tests) include the file with `#[path]`.

#![allow(dead_code)] // included piecemeal with `#[path]` by other crates

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Records that `suite` cannot run because of `why`; panics under
/// `CI=true`. The caller returns from its test right after.
pub fn skip_or_fail(suite: &str, why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{suite}: {why}; CI=true, so this fails instead of skipping");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {suite}: {why}");
    if let Some(log) = std::env::var_os("POOLDESK_SKIP_LOG") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("cannot append to POOLDESK_SKIP_LOG {log:?}: {e}"));
        writeln!(file, "{suite}: {why}").expect("write POOLDESK_SKIP_LOG");
    }
}

/// True when running as root; otherwise records the skip of a root-only
/// `suite` (CI runs as root, so there it is never skipped).
pub fn root_or_skip(suite: &str, needs: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc_geteuid() } == 0 {
        return true;
    }
    skip_or_fail(
        suite,
        &format!("needs root ({needs}); it runs in CI, which runs as root"),
    );
    false
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// The program `name` on `PATH`, if any.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// `Some(path)` of `program`, or `None` after [`skip_or_fail`] saying it is
/// missing and which package brings it.
pub fn tool_or_skip(suite: &str, program: &str, package: &str) -> Option<std::path::PathBuf> {
    let found = which(program);
    if found.is_none() {
        skip_or_fail(
            suite,
            &format!(
                "{program} is not installed (apt-get install {package}; contrib/test.sh installs it)"
            ),
        );
    }
    found
}

/// Polls `check` until it returns `Some`, at most `timeout`; panics naming
/// `what` when the deadline passes. Deadlines are generous: the outcome is
/// asserted, never the time it took.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
