//! Disk full under load, for real: the daemon's data dir on a 64 MiB
//! tmpfs, signed reports from several connections, and a filler file
//! written until the filesystem answers ENOSPC. (64 MiB, not less: under
//! steady load the WAL legitimately grows to about its 16 MiB bound before
//! SQLite restarts it, so a volume with less room than that is full for
//! the ledger even after the filler is gone.)
//!
//! While the disk is full the ledger cannot commit (SQLite answers
//! SQLITE_FULL when the WAL or, at checkpoint, the main file must grow);
//! the writer rolls the group commit back and every caller in it gets 503
//! `{"error":"unavailable"}`, `/healthz` turns 503 "degraded". Nothing
//! acknowledged may be lost and nothing refused may be kept. Once the
//! filler is deleted the daemon recovers by itself (the next commit clears
//! the fault). After a `kill -9` and a restart every acknowledged report is
//! there exactly once (posting it again is a 409 duplicate), every refused
//! one was never recorded (posting it again is accepted), balances are the
//! sum of what was acknowledged, and `pooldeskd verify` is clean.
//!
//! Needs root to mount the tmpfs: elsewhere skipped on stderr, and under
//! `CI=true` (which runs as root) a failure.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s};
use pooldesk_e2e::skip::{root_or_skip, skip_or_fail};
use serde_json::{Value, json};

const RATE_MSAT: i64 = 1000;
const CONNECTIONS: usize = 4;

/// A tmpfs mounted for the test; unmounted (lazily, so a straggling
/// process cannot keep it busy) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn cp_all(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success(), "copying {} failed", from.display());
}

/// Writes `path` until the filesystem is full (ENOSPC), in big then small
/// chunks, so not even a page is left. Returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let mut written = 0u64;
    for chunk in [256 * 1024, 4096, 512] {
        let buf = vec![0xa5u8; chunk];
        loop {
            match file.write(&buf) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
    }
    let _ = file.sync_all();
    written
}

#[derive(Clone)]
struct Sent {
    event_id: String,
    miner: String,
    body: Vec<u8>,
    credit_msat: i64,
}

#[derive(Default)]
struct Outcomes {
    acked: Vec<Sent>,
    refused: Vec<Sent>,
    /// Statuses other than 200 and 503, with their bodies.
    other: Vec<(u16, String)>,
    /// A sample 503 answer: (Retry-After, body).
    refusal: Option<(Option<String>, Value)>,
}

fn sign(secret: &str, body: &[u8]) -> String {
    pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), body)
}

/// Starts `CONNECTIONS` report loops; they run until `stop`.
fn start_load(
    d: &Daemon,
    outcomes: Arc<Mutex<Outcomes>>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CONNECTIONS)
        .map(|conn| {
            let url = format!("{}/api/report_share", d.url);
            let secret = d.report_secret.clone();
            let outcomes = outcomes.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let miner = format!("df-m{}", n % 4);
                    let shares = 1 + (n % 5) as i64;
                    let event_id = format!("df-c{conn}-{n}");
                    let body = serde_json::to_vec(&json!({
                        "miner_id": miner, "worker_name": format!("w{conn}"), "shares": shares,
                        "event_id": event_id, "ts": now_s()
                    }))
                    .unwrap();
                    let sent = Sent {
                        event_id,
                        miner,
                        credit_msat: shares * RATE_MSAT,
                        body: body.clone(),
                    };
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-report-sig", sign(&secret, &body))
                        .body(body)
                        .send()
                        .await;
                    let Ok(response) = response else {
                        // A transport error: we cannot know, and the final
                        // check (re-post) does not rely on it either way.
                        continue;
                    };
                    let status = response.status().as_u16();
                    let retry = response
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap_or("").to_string());
                    let answer: Value = response.json().await.unwrap_or(Value::Null);
                    {
                        let mut o = outcomes.lock().unwrap();
                        match status {
                            200 => o.acked.push(sent),
                            503 => {
                                if o.refusal.is_none() {
                                    o.refusal = Some((retry, answer));
                                }
                                o.refused.push(sent);
                            }
                            _ => o.other.push((status, answer.to_string())),
                        }
                    }
                    // Bounded rate: a few hundred reports a second in all.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect()
}

async fn healthz(d: &Daemon) -> (u16, Value) {
    d.get("/healthz").await
}

/// Polls until `check` holds; panics with `what` and the log after `timeout`.
async fn wait_until<F, Fut>(d: &Daemon, what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}:\n{}",
            d.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts each report again (already signed), a few at a time; returns the
/// statuses by event id.
async fn repost(d: &Daemon, reports: &[Sent]) -> HashMap<String, (u16, Value)> {
    let results = Arc::new(Mutex::new(HashMap::new()));
    let chunks: Vec<Vec<Sent>> = reports
        .chunks(reports.len().div_ceil(8).max(1))
        .map(<[Sent]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let url = format!("{}/api/report_share", d.url);
        let secret = d.report_secret.clone();
        let results = results.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for sent in chunk {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-report-sig", sign(&secret, &sent.body))
                    .body(sent.body.clone())
                    .send()
                    .await
                    .expect("re-post");
                let status = r.status().as_u16();
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                results
                    .lock()
                    .unwrap()
                    .insert(sent.event_id.clone(), (status, answer));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(results).unwrap().into_inner().unwrap()
}

fn sums(reports: &[Sent]) -> BTreeMap<String, i64> {
    let mut by_miner = BTreeMap::new();
    for r in reports {
        *by_miner.entry(r.miner.clone()).or_insert(0) += r.credit_msat;
    }
    by_miner
}

/// Rows of `share_reports` per event id (read-only, beside the daemon).
fn stored_event_ids(d: &Daemon) -> HashMap<String, i64> {
    let conn = rusqlite::Connection::open_with_flags(
        d.data_dir.join("ledger.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the ledger");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn
        .prepare("SELECT event_id, COUNT(*) FROM share_reports GROUP BY event_id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_refuses_with_503_loses_nothing_acknowledged_and_recovers_by_itself() {
    if !root_or_skip("ops_disk_full", "mounting a small tmpfs for the data dir") {
        return;
    }
    let started = Instant::now();
    let mut d = Daemon::start(DaemonOptions::default()).await;
    // Move the (fresh) data dir onto a small filesystem of its own.
    assert!(
        d.terminate(Duration::from_secs(60))
            .is_some_and(|s| s.success())
    );
    let saved = tempfile::tempdir().unwrap();
    cp_all(&d.data_dir, saved.path());
    let mount = match Tmpfs::mount(&d.data_dir, "64m") {
        Ok(mount) => mount,
        Err(e) => {
            skip_or_fail(
                "ops_disk_full",
                &format!("cannot mount a tmpfs on the data dir: {e}"),
            );
            return;
        }
    };
    cp_all(saved.path(), &d.data_dir);
    d.start_again().await;

    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&d, outcomes.clone(), stop.clone());
    wait_until(
        &d,
        "first acknowledged reports",
        Duration::from_secs(30),
        || {
            let n = outcomes.lock().unwrap().acked.len();
            async move { n >= 100 }
        },
    )
    .await;

    // Fill the filesystem under the load.
    let filler = d.data_dir.join("filler");
    let filler_path = filler.clone();
    let filled = tokio::task::spawn_blocking(move || fill(&filler_path))
        .await
        .unwrap();
    println!("filled the tmpfs with {filled} bytes");
    let acked_at_full = outcomes.lock().unwrap().acked.len();

    // The ledger runs out of room: refusals, and /healthz says so.
    let saw_degraded = std::cell::Cell::new(false);
    wait_until(
        &d,
        "503 refusals and a degraded /healthz",
        Duration::from_secs(120),
        || {
            let refused = outcomes.lock().unwrap().refused.len();
            let (d, saw) = (&d, &saw_degraded);
            async move {
                if !saw.get() {
                    let (status, body) = healthz(d).await;
                    if status == 503 {
                        assert_eq!(body["status"], "degraded", "{body}");
                        assert_eq!(body["ledger"], "unavailable", "{body}");
                        saw.set(true);
                    }
                }
                saw.get() && refused >= 20
            }
        },
    )
    .await;
    let (retry, answer) = outcomes.lock().unwrap().refusal.clone().unwrap();
    assert_eq!(answer["error"], "unavailable", "{answer}");
    assert!(retry.is_some(), "503 without Retry-After");
    let msg = answer["message"].as_str().unwrap_or("");
    assert!(
        !msg.contains("disk") && !msg.contains(&d.data_dir.display().to_string()),
        "the refusal should not expose storage details: {msg}"
    );

    // Free the space: the daemon recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let freed_at = outcomes.lock().unwrap().acked.len();
    wait_until(
        &d,
        "recovery (200s again, /healthz ok)",
        Duration::from_secs(60),
        || {
            let acked = outcomes.lock().unwrap().acked.len();
            let d = &d;
            async move { acked >= freed_at + 100 && healthz(d).await.0 == 200 }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let o = std::mem::take(&mut *outcomes.lock().unwrap());
    println!(
        "acknowledged {} ({} before the disk filled), refused with 503: {}, other: {}",
        o.acked.len(),
        acked_at_full,
        o.refused.len(),
        o.other.len()
    );
    assert!(
        o.other.is_empty(),
        "unexpected answers: {:?}",
        &o.other[..o.other.len().min(5)]
    );
    let log = std::fs::read_to_string(d.log_path()).unwrap_or_default();
    assert!(
        log.contains("group commit failed"),
        "the log should record the failed commits"
    );

    // Before any restart: exactly the acknowledged reports are stored, once.
    let stored = stored_event_ids(&d);
    for sent in &o.acked {
        assert_eq!(
            stored.get(&sent.event_id),
            Some(&1),
            "acknowledged report {} not stored exactly once",
            sent.event_id
        );
    }
    for sent in &o.refused {
        assert_eq!(
            stored.get(&sent.event_id),
            None,
            "refused report {} was stored",
            sent.event_id
        );
    }
    assert_eq!(
        stored.len(),
        o.acked.len(),
        "stored reports nobody acknowledged"
    );
    let acked_sums = sums(&o.acked);
    for (miner, sum) in &acked_sums {
        assert_eq!(d.balance_msat(miner).await, *sum, "balance of {miner}");
    }

    // Crash and restart: still all there, exactly once.
    d.kill9();
    d.start_again().await;
    assert_eq!(healthz(&d).await.0, 200);
    let again = repost(&d, &o.acked).await;
    for sent in &o.acked {
        let (status, answer) = &again[&sent.event_id];
        assert_eq!(
            (*status, answer["error"].as_str()),
            (409, Some("duplicate_event")),
            "re-posting acknowledged {}: {answer}",
            sent.event_id
        );
    }
    let retried = repost(&d, &o.refused).await;
    for sent in &o.refused {
        let (status, answer) = &retried[&sent.event_id];
        assert_eq!(
            *status, 200,
            "refused {} must not have been recorded: {answer}",
            sent.event_id
        );
    }
    let mut all = o.acked.clone();
    all.extend(o.refused.iter().cloned());
    for (miner, sum) in sums(&all) {
        assert_eq!(
            d.balance_msat(&miner).await,
            sum,
            "balance of {miner} after retries"
        );
    }
    d.assert_verified();
    println!("disk-full scenario took {:?}", started.elapsed());
    // Stop the daemon before the filesystem goes away.
    d.kill9();
    drop(mount);
}
