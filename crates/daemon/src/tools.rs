//! Reporter tools, the Rust successors of the seed's `tools/sign_report.py`
//! and `tools/worker_simulator.py`. They speak to pooldeskd over HTTP
//! exactly as an external pool would: signed raw bodies with `event_id`
//! and `ts`. Demo mode runs the simulator against the daemon's own port.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

/// The body of one signed pool report, as bytes, and its signature.
pub fn signed_report(
    secret: &[u8],
    miner_id: &str,
    worker_name: &str,
    shares: u64,
    difficulty: Option<u64>,
    event_id: &str,
    ts: i64,
) -> (Vec<u8>, String) {
    let mut body = serde_json::json!({
        "miner_id": miner_id,
        "worker_name": worker_name,
        "shares": shares,
        "event_id": event_id,
        "ts": ts,
    });
    if let Some(difficulty) = difficulty {
        body["difficulty"] = difficulty.into();
    }
    let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
    let signature = pooldesk_proto::sig::hmac_sha256_hex(secret, &bytes);
    (bytes, signature)
}

/// A fresh event id: time plus randomness, unique across restarts.
pub fn new_event_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:016x}",
        crate::clock::now_ms(),
        rand::random::<u64>()
    )
}

/// `pooldeskd sign-report`: signs and sends one report, prints the answer.
pub async fn sign_report(
    url: &str,
    secret: &[u8],
    miner_id: &str,
    worker_name: &str,
    shares: u64,
    difficulty: Option<u64>,
) -> anyhow::Result<(u16, String)> {
    let (body, signature) = signed_report(
        secret,
        miner_id,
        worker_name,
        shares,
        difficulty,
        &new_event_id("sign-report"),
        crate::clock::now_s(),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = client
        .post(report_url(url))
        .header("content-type", "application/json")
        .header("x-report-sig", signature)
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// Accepts either the full endpoint or the daemon's base URL.
pub fn report_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    if trimmed.ends_with("/api/report_share") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/api/report_share")
    }
}

/// Settings of a simulated pool.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub url: String,
    pub miners: u32,
    pub workers_per_miner: u32,
    /// Reports per second across all miners.
    pub rate_per_s: f64,
    pub miner_prefix: String,
    /// Stop after this long (None: until cancelled).
    pub duration: Option<Duration>,
    pub concurrency: usize,
}

#[derive(Debug, Default)]
pub struct SimulationStats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
}

/// Runs simulated workers posting signed reports until `stop` fires or the
/// duration ends. Each worker has a steady hashrate (shares vary around
/// it), like the seed's simulator.
pub async fn simulate(
    sim: Simulation,
    secret: Vec<u8>,
    stop: tokio_util::sync::CancellationToken,
    stats: Arc<SimulationStats>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(sim.concurrency.max(1))
        .build()?;
    let url = report_url(&sim.url);
    let secret = Arc::new(secret);
    let interval = Duration::from_secs_f64(1.0 / sim.rate_per_s.max(0.001));
    let started = tokio::time::Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(sim.concurrency.max(1)));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if sim.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let miner = (n % u64::from(sim.miners.max(1))) as u32;
        let worker =
            ((n / u64::from(sim.miners.max(1))) % u64::from(sim.workers_per_miner.max(1))) as u32;
        n += 1;
        let shares = rand::thread_rng().gen_range(5..=15);
        let miner_id = format!("{}{miner}", sim.miner_prefix);
        let (body, signature) = signed_report(
            &secret,
            &miner_id,
            &format!("rig{worker}"),
            shares,
            Some(1 << (miner % 4)),
            &new_event_id(&miner_id),
            crate::clock::now_s(),
        );
        let permit = slots.clone().acquire_owned().await?;
        let client = client.clone();
        let url = url.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let result = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-report-sig", signature)
                .body(body)
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => stats.accepted.fetch_add(1, Ordering::Relaxed),
                Ok(_) => stats.refused.fetch_add(1, Ordering::Relaxed),
                Err(_) => stats.failed.fetch_add(1, Ordering::Relaxed),
            };
            drop(permit);
        });
    }
    // Let the last requests finish.
    let _ = slots.acquire_many(sim.concurrency.max(1) as u32).await;
    Ok(())
}
