//! The miner dashboard's charts, progress bar and offline view in headless
//! Chromium against a real daemon, at desktop (1280×900) and phone
//! (390×844) sizes (issue 15). The charts' data is read back from the page
//! (`data-series` of each chart) and compared with the API; new reports
//! move the charts without a reload; no request leaves the page's origin;
//! nothing scrolls sideways at 360 px; with the daemon gone, the installed
//! app shows the last data it saw, marked stale. Screenshots go to
//! `artifacts/screenshots/charts-*.png`.

use std::time::{Duration, Instant};

use pooldesk_e2e::browser::Browser;
use pooldesk_e2e::daemon::{Daemon, DaemonOptions};
use serde_json::Value;
use tokio::sync::Mutex;

const WAIT: Duration = Duration::from_secs(60);

/// One browser at a time: two cores do not run several Chromiums well.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The data a chart plotted: `{series name: [[t, value], …]}`.
async fn chart(browser: &Browser, id: &str) -> Value {
    let text = browser
        .eval(&format!(
            "const f = document.getElementById('{id}'); return f && f.dataset.series || '';"
        ))
        .await;
    serde_json::from_str(text.as_str().unwrap_or("")).unwrap_or(Value::Null)
}

/// Waits until chart `id` has plotted data that satisfies `ok`.
async fn wait_chart(browser: &Browser, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let data = chart(browser, id).await;
        if !data.is_null() && ok(&data) {
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: #{id} plotted {data}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn values(series: &Value) -> Vec<f64> {
    series
        .as_array()
        .unwrap_or_else(|| panic!("not a series: {series}"))
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect()
}

/// Every URL the page fetched (navigation and resources, `fetch` and
/// EventSource included) starts with the daemon's own origin.
async fn assert_same_origin(browser: &Browser, origin: &str) {
    let names = browser
        .eval("return performance.getEntries().map(e => e.name).filter(n => /^[a-z]+:/.test(n));")
        .await;
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(!names.is_empty());
    for name in &names {
        assert!(
            name.starts_with(&format!("{origin}/")),
            "a request left the origin {origin}: {name} (all: {names:?})"
        );
    }
}

#[tokio::test]
async fn the_dashboard_charts_progress_and_offline_view_follow_the_daemon() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start("browser_charts").await else {
        return;
    };
    // A threshold of 0.001 BTC (100,000 sat; 1 sat per share).
    let mut d = Daemon::start(DaemonOptions {
        config: "[payouts]\nmin_payout_btc = \"0.001\"\n".into(),
        ..DaemonOptions::default()
    })
    .await;
    for (worker, shares) in [("rig-1", 3000), ("rig-2", 1000), ("rig-1", 2000)] {
        let (status, body) = d.post_report("carol", worker, shares).await;
        assert_eq!(status, 200, "{body}");
    }
    let origin = d.url.clone();

    for (size, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
        browser.viewport(width, height).await;
        browser
            .goto(&format!("{origin}/index.html?miner=carol"))
            .await;
        // Hashrate: the newest minutes carry the 6000 shares of work; the
        // page plots exactly the API's points.
        let plotted = wait_chart(&browser, "chart-hashrate", "the hashrate chart", |c| {
            values(&c["total"]).iter().any(|v| *v > 0.0)
        })
        .await;
        let (status, api) = d.get("/api/miners/carol/history").await;
        assert_eq!(status, 200, "{api}");
        let api_points: Vec<(i64, f64)> = api["hashrate"]["total"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[2].as_f64().unwrap()))
            .collect();
        let page_points: Vec<(i64, f64)> = plotted["total"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        assert_eq!(page_points.len(), api_points.len(), "{size}");
        // Same buckets; the same work in them (the newest point may have
        // moved on with the clock or a live event between the two reads).
        let n = api_points.len();
        assert_eq!(
            page_points[..n - 1].iter().map(|p| p.0).collect::<Vec<_>>(),
            api_points[..n - 1].iter().map(|p| p.0).collect::<Vec<_>>(),
            "{size}"
        );
        assert!(
            api_points.iter().any(|p| p.1 > 0.0),
            "{size}: the API has the work too"
        );
        // Per worker: both rigs are offered.
        let options = browser
            .eval(
                "return [...document.querySelectorAll('#chart-worker option')].map(o => o.value);",
            )
            .await;
        assert_eq!(options, serde_json::json!(["", "rig-1", "rig-2"]), "{size}");
        // Balance and earnings: 6000 sat, in the newest hour.
        let balance = wait_chart(&browser, "chart-balance", "the balance chart", |c| {
            values(&c["balance"]).last() == Some(&6000.0)
        })
        .await;
        assert!(values(&balance["balance"]).iter().all(|v| *v <= 6000.0));
        let earnings = chart(&browser, "chart-earnings").await;
        assert_eq!(
            values(&earnings["earned per hour"]).iter().sum::<f64>(),
            6000.0,
            "{size}: {earnings}"
        );
        // The progress bar shows the API's figures: 6000 of 100,000 sat.
        let bar = browser
            .eval(
                "const b = document.getElementById('progress-bar');
                 return [b.value, b.dataset.toGoMsat, b.dataset.thresholdMsat];",
            )
            .await;
        let progress = &api["progress"];
        assert_eq!(progress["permille"], 60, "{api}");
        assert_eq!(progress["to_go_msat"], 94_000_000, "{api}");
        assert_eq!(
            bar,
            serde_json::json!([
                progress["permille"],
                progress["to_go_msat"].to_string(),
                progress["threshold_msat"].to_string()
            ]),
            "{size}"
        );
        let text = browser.text("#progress-text").await;
        assert!(
            text.contains("0.00006000 of 0.00100000 BTC") && text.contains("0.00094000 BTC to go"),
            "{size}: {text}"
        );
        // The pool: hashrate and active miners.
        wait_chart(&browser, "chart-pool-hashrate", "the pool chart", |c| {
            values(&c["pool"]).iter().any(|v| *v > 0.0)
        })
        .await;
        let miners = chart(&browser, "chart-pool-miners").await;
        assert!(values(&miners["miners"]).contains(&1.0), "{miners}");
        // Phone first: no sideways scrolling, down to 360 px.
        let fits = browser
            .eval("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await;
        assert_eq!(fits, true, "{size}: the page scrolls sideways");
        browser.screenshot(&format!("charts-{size}")).await;
    }
    // Every page at 360 px: nothing wider than the screen (wide tables
    // scroll inside their own box).
    browser.viewport(360, 780).await;
    for page in [
        "index.html?miner=carol",
        "faucet.html",
        "admin.html",
        "psbt.html",
    ] {
        browser.goto(&format!("{origin}/{page}")).await;
        browser
            .wait_text("h1, h2", WAIT, "the page", |t| !t.is_empty())
            .await;
        if page.starts_with("index") {
            wait_chart(
                &browser,
                "chart-hashrate",
                "the hashrate chart at 360 px",
                |c| values(&c["total"]).iter().any(|v| *v > 0.0),
            )
            .await;
        }
        let v = browser
            .eval("return [document.documentElement.scrollWidth, window.innerWidth];")
            .await;
        let (scroll_w, inner_w) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
        assert!(
            scroll_w <= inner_w,
            "{page} at 360 px: {scroll_w} > {inner_w}"
        );
    }
    browser.viewport(1280, 900).await;
    browser
        .goto(&format!("{origin}/index.html?miner=carol"))
        .await;
    wait_chart(&browser, "chart-balance", "the balance chart", |c| {
        values(&c["balance"]).last() == Some(&6000.0)
    })
    .await;
    browser
        .wait_text("#stream-state", WAIT, "the live stream", |t| t == "live")
        .await;

    // Live: a new report moves the charts without a reload.
    browser.eval("window.__noReload = 7; return true;").await;
    let (status, body) = d.post_report("carol", "rig-2", 4000).await;
    assert_eq!(status, 200, "{body}");
    wait_chart(
        &browser,
        "chart-balance",
        "the balance chart to move",
        |c| values(&c["balance"]).last() == Some(&10_000.0),
    )
    .await;
    wait_chart(&browser, "chart-earnings", "the earnings to move", |c| {
        values(&c["earned per hour"]).iter().sum::<f64>() == 10_000.0
    })
    .await;
    browser
        .wait_text("#progress-text", WAIT, "the progress to move", |t| {
            t.contains("0.00090000 BTC to go")
        })
        .await;
    assert_eq!(browser.eval("return window.__noReload;").await, 7);
    assert_same_origin(&browser, &origin).await;

    // Offline: once the service worker controls the page, the daemon goes
    // away; the page still shows carol's last figures, marked stale.
    browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             navigator.serviceWorker.ready.then(() => done(true), e => done(String(e)));",
        )
        .await;
    browser
        .goto(&format!("{origin}/index.html?miner=carol"))
        .await;
    wait_chart(&browser, "chart-balance", "the balance again", |c| {
        values(&c["balance"]).last() == Some(&10_000.0)
    })
    .await;
    d.terminate(Duration::from_secs(30)).expect("stopped");
    browser
        .goto(&format!("{origin}/index.html?miner=carol"))
        .await;
    browser
        .wait_text("[data-testid=stale]", WAIT, "the stale badge", |t| {
            t.contains("offline")
        })
        .await;
    assert_eq!(browser.text("#balance").await, "0.00010000");
    wait_chart(&browser, "chart-balance", "the kept balance chart", |c| {
        values(&c["balance"]).last() == Some(&10_000.0)
    })
    .await;
    browser.screenshot("charts-offline").await;
    browser.close().await;
    d.start_again().await;
    d.assert_verified();
}
