//! `kill -9` in the middle of a burst of signed reports from several
//! connections: after a restart, every report that got 200 is credited
//! exactly once, none that failed is counted unless it was committed (and
//! then exactly once), and `pooldeskd verify` passes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s};
use serde_json::json;

const RATE_MSAT: i64 = 1000;
const CONNECTIONS: usize = 8;

/// A report sent under SIGTERM: (body, credited sat per share, event id).
type Attempt = (Vec<u8>, i64, String);

#[derive(Clone)]
struct Sent {
    miner: String,
    body: Vec<u8>,
    credit_msat: i64,
}

/// Drives signed reports from several connections and kills the daemon
/// once `kill_after_acks` of them were acknowledged (the kill point is an
/// event, not a time); returns (every report attempted, the event ids
/// acknowledged with 200).
async fn burst_until_killed(
    daemon: &mut Daemon,
    round: usize,
    kill_after_acks: usize,
) -> (Vec<Sent>, Vec<String>) {
    let attempted: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for conn in 0..CONNECTIONS {
        let url = format!("{}/api/report_share", daemon.url);
        let secret = daemon.report_secret.clone();
        let attempted = attempted.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            // One keep-alive connection per task.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let miner = format!("crash-m{}", n % 5);
                let shares = 1 + n % 7;
                let event_id = format!("r{round}-c{conn}-{n}");
                let body = serde_json::to_vec(&json!({
                    "miner_id": miner, "worker_name": format!("w{conn}"), "shares": shares,
                    "event_id": event_id, "ts": now_s()
                }))
                .unwrap();
                let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), &body);
                attempted.lock().unwrap().push(Sent {
                    miner: miner.clone(),
                    body: body.clone(),
                    credit_msat: shares as i64 * RATE_MSAT,
                });
                let result = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-report-sig", sig)
                    .body(body)
                    .send()
                    .await;
                match result {
                    Ok(r) if r.status().as_u16() == 200 => acked.lock().unwrap().push(event_id),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < kill_after_acks || attempted.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "round {round}: {kill_after_acks} acknowledgements did not come within 120 s:\n{}",
            daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    daemon.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a client task panicked");
    }
    let attempted = attempted.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    (attempted, acked)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_burst_loses_no_acknowledged_report_and_counts_none_twice() {
    let mut daemon = Daemon::start(DaemonOptions::default()).await;
    let mut expected: HashMap<String, i64> = HashMap::new();
    // Several kill points: after the first attempt, and after a few, some
    // and many acknowledgements.
    for (round, kill_after_acks) in [(0usize, 5usize), (1, 60), (2, 200), (3, 0)] {
        let (attempted, acked) = burst_until_killed(&mut daemon, round, kill_after_acks).await;
        daemon.start_again().await;
        assert!(!attempted.is_empty());
        let acked: std::collections::HashSet<String> = acked.into_iter().collect();
        // Replay every attempted report. A committed one (acknowledged or
        // not) must be a duplicate; an acknowledged one must never be new.
        for sent in &attempted {
            let event_id =
                serde_json::from_slice::<serde_json::Value>(&sent.body).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_string();
            // Replays need a fresh ts only if the old one left the window;
            // it has not (seconds), so resend the exact bytes.
            let (status, answer) = daemon.post_signed_report(&sent.body).await;
            match status {
                409 => {
                    assert_eq!(answer["error"], "duplicate_event", "{answer}");
                    assert_eq!(answer["credited_msat"], sent.credit_msat);
                }
                200 => assert!(
                    !acked.contains(&event_id),
                    "acknowledged report {event_id} was lost by kill -9 (round {round})"
                ),
                other => panic!("unexpected {other}: {answer}"),
            }
            *expected.entry(sent.miner.clone()).or_default() += sent.credit_msat;
        }
        // Now every attempted report is credited exactly once.
        for (miner, msat) in &expected {
            assert_eq!(
                daemon.balance_msat(miner).await,
                *msat,
                "miner {miner} after round {round}"
            );
        }
        daemon.assert_verified();
        println!(
            "round {round}: killed after {kill_after_acks} acknowledgements, {} attempted, {} acknowledged",
            attempted.len(),
            acked.len()
        );
    }
}

/// SIGTERM under load: in-flight requests finish or fail cleanly, and
/// nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_drains_and_loses_nothing() {
    let mut daemon = Daemon::start(DaemonOptions::default()).await;
    let attempted: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for conn in 0..CONNECTIONS {
        let url = format!("{}/api/report_share", daemon.url);
        let secret = daemon.report_secret.clone();
        let (attempted, acked) = (attempted.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..2000u64 {
                let event_id = format!("t-c{conn}-{n}");
                let body = serde_json::to_vec(&json!({
                    "miner_id": "term", "worker_name": "w", "shares": 1, "event_id": event_id, "ts": now_s()
                }))
                .unwrap();
                let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), &body);
                attempted.lock().unwrap().push((body.clone(), 1, event_id.clone()));
                match client.post(&url).header("x-report-sig", sig).body(body).send().await {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(event_id),
                    Ok(r) => assert!(r.status() == 503, "unexpected {}", r.status()),
                    Err(_) => break,
                }
            }
        }));
    }
    // SIGTERM once the load is under way (some acknowledged), not after a
    // guessed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "no load acknowledged within 120 s:\n{}",
            daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = daemon
        .terminate(Duration::from_secs(30))
        .expect("daemon stops on SIGTERM");
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    for task in tasks {
        // A client's assertion (only 200 or 503 while draining) fails here.
        task.await.expect("a client task panicked");
    }
    daemon.start_again().await;
    let acked: std::collections::HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let mut credited = 0;
    let attempted = attempted.lock().unwrap().clone();
    for (body, msat, event_id) in attempted.iter() {
        let (status, _) = daemon.post_signed_report(body).await;
        if status == 200 {
            assert!(
                !acked.contains(event_id),
                "acknowledged {event_id} lost on SIGTERM"
            );
        } else {
            assert_eq!(status, 409);
        }
        credited += msat * RATE_MSAT;
    }
    assert_eq!(daemon.balance_msat("term").await, credited);
    daemon.assert_verified();
}
