//! Honest hashrate windows at the API (issue 15): a miner (and worker) that
//! began less than a window ago is averaged over its own history, and
//! `GET /api/miners/{id}` says how many seconds each figure covers and that
//! it is partial; once the window has passed, the figure is whole again.

use std::time::{Duration, Instant};

use pooldesk_e2e::daemon::{Daemon, DaemonOptions};
use serde_json::Value;

/// `(rate, covered_s, partial)` of one window of a hashrate object.
fn figure(hashrate: &Value, window: &str) -> (f64, i64, bool) {
    (
        hashrate[window]
            .as_f64()
            .unwrap_or_else(|| panic!("no {window} in {hashrate}")),
        hashrate[format!("{window}_s")]
            .as_i64()
            .unwrap_or_else(|| panic!("no {window}_s in {hashrate}")),
        hashrate[format!("{window}_partial")]
            .as_bool()
            .unwrap_or_else(|| panic!("no {window}_partial in {hashrate}")),
    )
}

async fn miner(d: &Daemon, id: &str) -> Value {
    let (status, body) = d.get(&format!("/api/miners/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_young_miner_reports_figures_over_its_history_marked_partial_until_the_window_passes() {
    let d = Daemon::start(DaemonOptions::default()).await;
    let before_first_share = Instant::now();
    let (status, body) = d.post_report("young", "rig", 1000).await;
    assert_eq!(status, 200, "{body}");

    // Seconds or less after the first share: every window is partial and
    // covers the same few seconds, so all three figures are the same rate
    // (dividing by the whole window would make the 10 min figure a tenth of
    // the 1 min one, and the 1 h figure a sixtieth).
    let body = miner(&d, "young").await;
    let age_bound_s = before_first_share.elapsed().as_secs() as i64 + 1;
    for hashrate in [&body["hashrate"], &body["workers"][0]["hashrate"]] {
        let (h1m, h1m_s, h1m_partial) = figure(hashrate, "h1m");
        let (h10m, h10m_s, h10m_partial) = figure(hashrate, "h10m");
        let (h1h, h1h_s, h1h_partial) = figure(hashrate, "h1h");
        assert!(h1m_partial && h10m_partial && h1h_partial, "{hashrate}");
        assert!((1..=age_bound_s).contains(&h1m_s), "{hashrate}");
        assert_eq!((h1m_s, h1m_s), (h10m_s, h1h_s), "{hashrate}");
        assert!(h1m > 0.0, "{hashrate}");
        assert_eq!((h1m, h1m), (h10m, h1h), "{hashrate}");
        let text = hashrate["h10m_text"].as_str().unwrap();
        assert!(
            text.ends_with(&format!("(partial, {h10m_s} s)")),
            "{text:?} in {hashrate}"
        );
    }

    // Keep the miner mining, and wait (a deadline, not a speed claim) until
    // its history is longer than a minute: the 1 min figure is then whole,
    // the longer ones still partial and covering the whole history.
    let deadline = Instant::now() + Duration::from_secs(240);
    let body = loop {
        let (status, reply) = d.post_report("young", "rig", 1000).await;
        assert_eq!(status, 200, "{reply}");
        let body = miner(&d, "young").await;
        if !figure(&body["hashrate"], "h1m").2 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the 1 min figure was still partial 4 minutes on: {body}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let age_bound_s = before_first_share.elapsed().as_secs() as i64 + 1;
    let hashrate = &body["hashrate"];
    let (_, h1m_s, _) = figure(hashrate, "h1m");
    let (_, h10m_s, h10m_partial) = figure(hashrate, "h10m");
    let (_, h1h_s, h1h_partial) = figure(hashrate, "h1h");
    // The whole minute plus the part of the current one.
    assert!((60..120).contains(&h1m_s), "{hashrate}");
    assert!(h10m_partial && h1h_partial, "{hashrate}");
    assert!((60..=age_bound_s).contains(&h10m_s), "{hashrate}");
    assert_eq!(h10m_s, h1h_s, "{hashrate}");
    assert!(
        !hashrate["h1m_text"].as_str().unwrap().contains("partial"),
        "{hashrate}"
    );
    assert!(
        hashrate["h1h_text"]
            .as_str()
            .unwrap()
            .contains("(partial, 1 min"),
        "{hashrate}"
    );
    d.assert_verified();
}

/// Accepted and rejected shares per worker over the last hour, where the
/// pool reports rejects (v2 batches); a v1 reporter's rejects are unknown
/// (`null`), not zero. Resent shares are not counted twice.
#[tokio::test(flavor = "multi_thread")]
async fn workers_show_accepted_and_rejected_shares_of_the_last_hour() {
    use pooldesk_e2e::ckpool::post_batch;
    use pooldesk_e2e::daemon::now_s;
    use serde_json::json;

    let d = Daemon::start(DaemonOptions::default()).await;
    let shares: Vec<Value> = (1..=10)
        .map(|seq| {
            let worker = if seq <= 6 { "rig-a" } else { "rig-b" };
            // rig-a: seqs 5 and 6 rejected; rig-b: seq 10 rejected.
            let accepted = !matches!(seq, 5 | 6 | 10);
            let mut s = json!({
                "seq": seq, "miner": "dave", "worker": worker, "diff": 1, "sdiff": 1.5,
                "accepted": accepted, "time_s": now_s() - 5,
                "hash": format!("{seq:064x}"),
            });
            if !accepted {
                s["reason"] = "Stale".into();
            }
            s
        })
        .collect();
    let body =
        serde_json::to_vec(&json!({"origin": "pool-a", "ts": now_s(), "shares": shares})).unwrap();
    for _ in 0..2 {
        let (status, answer) = post_batch(&d, &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = d.post_report("dave", "rig-v1", 7).await;
    assert_eq!(status, 200, "{answer}");

    let body = miner(&d, "dave").await;
    let counts: Vec<(String, Value, Value)> = body["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["worker_name"].as_str().unwrap().to_string(),
                w["accepted_1h"].clone(),
                w["rejected_1h"].clone(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("rig-a".to_string(), json!(4), json!(2)),
            ("rig-b".to_string(), json!(3), json!(1)),
            ("rig-v1".to_string(), json!(7), Value::Null),
        ],
        "{body}"
    );
    d.assert_verified();
}

/// `GET /api/miners/{id}/history` adds up with the ledger: the hourly
/// earnings sum to the credits, the balance curve ends at the balance, the
/// progress is exact integer arithmetic, and the hashrate points cover a
/// day (per minute for the last hour). An unknown miner is a 404.
#[tokio::test(flavor = "multi_thread")]
async fn the_history_adds_up_with_the_ledger() {
    let d = Daemon::start(DaemonOptions {
        config: "[payouts]\nmin_payout_btc = \"0.0002\"\n".into(),
        ..DaemonOptions::default()
    })
    .await;
    for (worker, shares) in [("rig-1", 1500), ("rig-2", 500), ("rig-1", 1000)] {
        let (status, body) = d.post_report("erin", worker, shares).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, h) = d.get("/api/miners/erin/history").await;
    assert_eq!(status, 200, "{h}");
    // 3000 shares at 1 sat: 3,000,000 msat.
    let earned: i64 = h["earnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount_msat"].as_i64().unwrap())
        .sum();
    assert_eq!(earned, 3_000_000, "{h}");
    let credits: i64 = h["earnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["credits"].as_i64().unwrap())
        .sum();
    assert_eq!(credits, 3, "{h}");
    let balance = h["balance"].as_array().unwrap();
    assert_eq!(balance.last().unwrap()[1], 3_000_000, "{h}");
    assert_eq!(d.balance_msat("erin").await, 3_000_000);
    // Points: contiguous buckets, the last 60 one minute wide, a day long.
    let total = h["hashrate"]["total"].as_array().unwrap();
    let span: Vec<(i64, i64)> = total
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_i64().unwrap()))
        .collect();
    assert!(
        span.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0),
        "{span:?}"
    );
    assert_eq!(span.iter().rev().take(60).filter(|p| p.1 == 60).count(), 60);
    assert!(h["now"].as_i64().unwrap() - span[0].0 >= 86_400);
    assert!(total.iter().any(|p| p[2].as_f64().unwrap() > 0.0), "{h}");
    let workers: Vec<&String> = h["hashrate"]["workers"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(workers, ["rig-1", "rig-2"]);
    // Progress: 0.00003 of 0.0002 BTC.
    let p = &h["progress"];
    assert_eq!(p["threshold_msat"], 20_000_000, "{p}");
    assert_eq!(p["balance_msat"], 3_000_000, "{p}");
    assert_eq!(p["to_go_msat"], 17_000_000, "{p}");
    assert_eq!(p["permille"], 150, "{p}");
    assert_eq!(p["to_go_btc"], "0.00017000", "{p}");
    // Seconds old: no daily estimate from so little history.
    assert_eq!(p["per_day_msat"], Value::Null, "{p}");
    assert_eq!(p["eta_s"], Value::Null, "{p}");
    assert!(
        p["assumptions"]
            .as_str()
            .unwrap()
            .starts_with("too early to estimate"),
        "{p}"
    );
    assert_eq!(p["scheme"], "pps");
    // Regtest: no explorer.
    let (_, detail) = d.get("/api/miners/erin").await;
    assert_eq!(detail["explorer_tx_url"], Value::Null);

    let (status, body) = d.get("/api/miners/nobody/history").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, pool) = d.get("/api/pool/history").await;
    assert_eq!(status, 200, "{pool}");
    assert_eq!(
        pool["hashrate"].as_array().unwrap().len(),
        pool["miners"].as_array().unwrap().len()
    );
    assert!(
        pool["miners"].as_array().unwrap().contains(&Value::from(1)),
        "{pool}"
    );
    d.assert_verified();
}
