//! The miner web app shows blocks and pending earnings from a real PPLNS
//! pool (issue 14, "visible everywhere"): a real regtest node mines a block
//! to the pool's wallet after a known sequence of shares, and headless
//! Chromium on the dashboard (390 px phone) shows the block in the pool's
//! "Blocks found" table and the miner's pending (immature) part, both read
//! back from the page and compared with the API; 100 blocks later the page
//! shows it matured, pending 0 and what it paid the miner — live, from the
//! SSE `block` event, without a reload. No request leaves the origin.
//! Screenshot: `artifacts/screenshots/blocks-phone.png`.

use std::time::{Duration, Instant};

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::browser::Browser;
use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s};
use pooldesk_e2e::payouts::config;
use serde_json::{Value, json};

const SUITE: &str = "browser_blocks";
/// Generous for a loaded 2-core machine; every wait polls for its event.
const DEADLINE: Duration = Duration::from_secs(120);

const ACCOUNTING: &str = r#"
[accounting]
scheme = "pplns"
pplns_factor = 1
pplns_min_window_work = 99
pool_fee_bps = 200
blocks_poll_s = 1
"#;

/// Polls `script` (a function body returning JSON) until `ok` holds.
async fn wait_page(
    browser: &Browser,
    what: &str,
    script: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = browser.eval(script).await;
        if ok(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {what}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the page shows: the pool's block rows and the miner's figures.
const READ_PAGE: &str = r#"
return {
  blocks: [...document.querySelectorAll('#pool-blocks tr[data-hash]')].map(tr => ({
    hash: tr.dataset.hash, state: tr.dataset.state,
    reward_msat: tr.querySelector('td[data-msat]').dataset.msat,
  })),
  pending_msat: document.querySelector('#pending').dataset.msat ?? null,
  window_work: document.querySelector('#window-share').dataset.work ?? null,
  paid: [...document.querySelectorAll('#miner-recent-blocks tr[data-hash]')].map(tr => ({
    hash: tr.dataset.hash, amount_msat: tr.querySelector('td[data-msat]').dataset.msat,
  })),
  reloaded: window.__noReload !== 1,
};
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_blocks_and_pending_earnings_live() {
    let Some(exe) = exe_or_skip(SUITE) else {
        return;
    };
    let Some(browser) = Browser::start(SUITE).await else {
        return;
    };
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("other").await;
    let pool = node.new_address("pool").await;
    let other = node.new_address("other").await;
    let d = Daemon::start(DaemonOptions {
        config: config(&node.node("pool"), "hot", "", ACCOUNTING),
        ..Default::default()
    })
    .await;
    // Window 99: bob 30, alice 50, carol 19 of her 40 (see blocks_real).
    for (miner, shares, difficulty) in [("carol", 4, 10), ("alice", 5, 10), ("bob", 3, 10)] {
        let body = serde_json::to_vec(&json!({
            "miner_id": miner, "worker_name": "rig", "shares": shares, "difficulty": difficulty,
            "event_id": format!("seq-{miner}"), "ts": now_s(),
        }))
        .unwrap();
        let (status, answer) = d.post_signed_report(&body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let origin = d.url.clone();
    browser.viewport(390, 844).await;
    browser
        .goto(&format!("{origin}/index.html?miner=alice"))
        .await;
    let shown = wait_page(&browser, "alice's window share", READ_PAGE, |v| {
        v["window_work"] == "50"
    })
    .await;
    assert_eq!(shown["blocks"], json!([]), "no block yet: {shown}");
    browser.eval("window.__noReload = 1; return true;").await;
    // The progress estimate names the scheme it assumes.
    let (_, history) = d.get("/api/miners/alice/history").await;
    assert_eq!(history["progress"]["scheme"], "pplns", "{history}");

    // A block to the pool's wallet: immature, alice's part pending.
    node.mine(1, &pool).await;
    let shown = wait_page(&browser, "the immature block", READ_PAGE, |v| {
        v["blocks"][0]["state"] == "immature" && v["pending_msat"] != "0"
    })
    .await;
    let (_, blocks) = d.get("/api/blocks").await;
    let block = &blocks["blocks"][0];
    let hash = block["hash"].as_str().expect("hash");
    assert_eq!(shown["blocks"][0]["hash"], hash, "{shown}");
    assert_eq!(
        shown["blocks"][0]["reward_msat"],
        block["reward_msat"].to_string(),
        "{shown}"
    );
    let (_, alice) = d.get("/api/miners/alice").await;
    assert_eq!(
        shown["pending_msat"],
        alice["pending_msat"].to_string(),
        "the page's pending = the API's: {shown} {alice}"
    );
    assert_eq!(alice["pending_msat"], 2_474_747_474_747i64, "{alice}");
    browser
        .eval("document.querySelector('#miner-blocks').scrollIntoView(); return true;")
        .await;
    browser.screenshot("blocks-phone").await;

    // Matured 100 blocks later: pending 0, the part is what it paid alice.
    node.mine(100, &other).await;
    let shown = wait_page(&browser, "the matured block", READ_PAGE, |v| {
        v["blocks"][0]["state"] == "matured" && v["pending_msat"] == "0"
    })
    .await;
    assert_eq!(
        shown["paid"],
        json!([{"hash": hash, "amount_msat": "2474747474747"}]),
        "{shown}"
    );
    assert_eq!(shown["reloaded"], false, "updated live, not by a reload");
    assert_eq!(
        d.balance_msat_if_known("alice").await,
        Some(2_474_747_474_747)
    );
    let outside = browser
        .eval("return performance.getEntries().map(e => e.name).filter(n => /^[a-z]+:/.test(n) && !n.startsWith(location.origin));")
        .await;
    assert_eq!(outside, json!([]), "requests to another origin");
    browser
        .eval("document.querySelector('#miner-blocks').scrollIntoView(); return true;")
        .await;
    browser.screenshot("blocks-phone-matured").await;
    d.assert_verified();
}
