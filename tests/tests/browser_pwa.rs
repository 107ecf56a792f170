//! The PWA in headless Chromium against a real daemon: the dashboard
//! updates live, a signed-in miner sets an address and withdraws (and the
//! admin page shows it), the faucet page solves its proof of work and gets
//! paid, and the app is installable (valid manifest, service worker in
//! control, shell served offline). Screenshots (desktop and 390×844 phone)
//! go to `artifacts/screenshots/`.
//!
//! Without Chromium the suite is skipped on stderr (`pooldesk_e2e::skip`);
//! with `CI=true` it fails instead.

use std::time::Duration;

use pooldesk_e2e::browser::Browser;
use pooldesk_e2e::daemon::{Daemon, DaemonOptions, regtest_address};
use tokio::sync::Mutex;

const WAIT: Duration = Duration::from_secs(30);

/// One browser at a time: two cores do not run several Chromiums well.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn start(config: &str) -> Daemon {
    Daemon::start(DaemonOptions {
        config: config.to_string(),
        ..DaemonOptions::default()
    })
    .await
}

#[tokio::test]
async fn the_dashboard_shows_hashrate_and_balance_change_live() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start("browser_pwa").await else {
        return;
    };
    let d = start("").await;
    let (status, _) = d.post_report("alice", "rig-1", 1000).await;
    assert_eq!(status, 200);

    browser
        .goto(&format!("{}/index.html?miner=alice", d.url))
        .await;
    let balance = browser
        .wait_text("#balance", WAIT, "the first balance", |t| {
            t.starts_with("0.0000")
        })
        .await;
    let hashrate = browser
        .wait_text("#hr-1m", WAIT, "a hashrate", |t| t.contains("H/s"))
        .await;
    browser
        .wait_text("#stream-state", WAIT, "the live stream", |t| t == "live")
        .await;
    // A marker that a reload would wipe.
    browser.eval("window.__noReload = 42; return true;").await;

    for _ in 0..5 {
        let (status, body) = d.post_report("alice", "rig-2", 20_000).await;
        assert_eq!(status, 200, "{body}");
    }
    // 1000 + 5 × 20000 shares at 1 sat each, exact from integer msat; the
    // credits may arrive in more than one burst.
    assert_ne!(balance, "0.00101000");
    browser
        .wait_text("#balance", WAIT, "the balance to reach 0.00101000", |t| {
            t == "0.00101000"
        })
        .await;
    browser
        .wait_text("#hr-1m", WAIT, "the hashrate to change", |t| t != hashrate)
        .await;
    browser
        .wait_text("#workers", WAIT, "the second worker", |t| {
            t.contains("rig-2")
        })
        .await;
    let credits = browser.text("#credits").await;
    assert!(credits.contains("rig-2"), "{credits}");
    assert_eq!(
        browser.eval("return window.__noReload;").await,
        42,
        "no reload happened"
    );
    browser.screenshots("dashboard").await;
    browser.close().await;
    d.assert_verified();
}

#[tokio::test]
async fn a_signed_in_miner_withdraws_and_the_admin_page_shows_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start("browser_pwa").await else {
        return;
    };
    let d = start("[payouts]\nnew_address_delay_s = 0\n").await;
    let key = d.issue_key("bob").await;
    for _ in 0..3 {
        let (status, body) = d.post_report("bob", "rig", 20_000).await;
        assert_eq!(status, 200, "{body}");
    }
    browser
        .goto(&format!("{}/index.html?miner=bob", d.url))
        .await;
    browser
        .wait_text("#balance", WAIT, "bob's balance", |t| t == "0.00060000")
        .await;
    browser.fill("#api-key", &key).await;
    browser.click("#signin-form button[type=submit]").await;
    browser
        .wait_text("#account-msg", WAIT, "signed in", |t| {
            t.contains("Signed in")
        })
        .await;
    // The key is kept in localStorage (the page warns about it).
    let stored = browser
        .eval("return localStorage.getItem('pooldesk.key.bob');")
        .await;
    assert_eq!(stored.as_str(), Some(key.as_str()));

    let address = regtest_address();
    browser.fill("#new-address", &address).await;
    browser.click("#address-form button[type=submit]").await;
    browser
        .wait_text("#account-msg", WAIT, "address saved", |t| {
            t.contains("saved") || t.contains("not")
        })
        .await;
    let msg = browser.text("#account-msg").await;
    assert!(msg.contains("saved"), "{msg}");
    browser
        .wait_text("#payout-address", WAIT, "the address shown", |t| {
            t == address
        })
        .await;

    browser.fill("#withdraw-amount", "0.0002").await;
    browser.click("#withdraw-form button[type=submit]").await;
    let msg = browser
        .wait_text("#account-msg", WAIT, "withdrawal answer", |t| {
            t.contains("Withdrawal")
        })
        .await;
    assert!(msg.contains("requested"), "{msg}");
    browser
        .wait_text("#withdrawals", WAIT, "the withdrawal row", |t| {
            t.contains("0.00020000")
        })
        .await;
    browser
        .wait_text("#balance", WAIT, "the balance after the hold", |t| {
            t == "0.00040000"
        })
        .await;
    browser.screenshots("dashboard-signed-in").await;

    // The admin page lists it, with the key only in the header.
    browser.goto(&format!("{}/admin.html", d.url)).await;
    browser.fill("#admin-key", &d.admin_key).await;
    browser.click("#key-form button[type=submit]").await;
    let rows = browser
        .wait_text("#withdrawals", WAIT, "bob's request", |t| t.contains("bob"))
        .await;
    assert!(
        rows.contains("0.00020000") && rows.contains(&address),
        "{rows}"
    );
    assert_eq!(
        browser
            .eval("return sessionStorage.getItem('pooldesk.adminKey');")
            .await
            .as_str(),
        Some(d.admin_key.as_str())
    );
    let url = browser.client.current_url().await.unwrap().to_string();
    assert!(!url.contains(&d.admin_key), "key never in a URL: {url}");
    browser.screenshots("admin").await;
    // Approve from the page.
    browser
        .click("#withdrawals button[data-action=approve]")
        .await;
    browser
        .wait_text("#wd-msg", WAIT, "approval", |t| {
            t.contains("approved") || t.contains("not")
        })
        .await;
    let msg = browser.text("#wd-msg").await;
    assert!(msg.contains("approved"), "{msg}");
    browser.close().await;
    d.assert_verified();
}

#[tokio::test]
async fn the_faucet_page_solves_the_challenge_and_is_paid() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start("browser_pwa").await else {
        return;
    };
    // A cooldown under an hour reads in minutes, not "0 h".
    let d = start("[faucet]\ndifficulty_bits = 12\nbatch_interval_s = 1\ncooldown_s = 600\n").await;
    browser.goto(&format!("{}/faucet.html", d.url)).await;
    let info = browser
        .wait_text("#faucet-info", WAIT, "faucet info", |t| {
            t.contains("per request")
        })
        .await;
    assert!(info.contains("once every 10 min."), "{info}");
    let address = regtest_address();
    browser.fill("#address", &address).await;
    browser.click("#request").await;
    browser
        .wait_text("#work-text", WAIT, "progress", |t| {
            t.contains("hashes tried")
        })
        .await;
    let txid = browser
        .wait_text("#req-txid", WAIT, "the payout txid", |t| {
            t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .await;
    assert_eq!(browser.text("#req-state").await, "paid");
    assert_eq!(
        d.sql_i64(&format!(
            "SELECT COUNT(*) FROM faucet_requests WHERE state = 'paid' AND txid = '{txid}' AND address = '{address}'"
        )),
        1
    );
    browser.screenshots("faucet").await;
    browser.close().await;
    d.assert_verified();
}

#[tokio::test]
async fn the_app_is_installable_and_its_shell_works_offline() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start("browser_pwa").await else {
        return;
    };
    let mut d = start("").await;
    browser.goto(&format!("{}/", d.url)).await;
    // The manifest is linked and parses with the fields installability needs.
    let manifest = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             const href = document.querySelector('link[rel=manifest]').href;
             fetch(href).then(r => r.json()).then(done, e => done(String(e)));",
        )
        .await;
    assert_eq!(manifest["start_url"], "/");
    assert_eq!(manifest["display"], "standalone");
    let sizes: Vec<&str> = manifest["icons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sizes"].as_str().unwrap())
        .collect();
    assert!(sizes.contains(&"192x192") && sizes.contains(&"512x512"));
    // The icons decode as images of the declared size.
    let dims = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             Promise.all(['/static/icon-192.png', '/static/icon-512.png'].map(src => new Promise((ok, bad) => {
               const img = new Image(); img.onload = () => ok(img.naturalWidth + 'x' + img.naturalHeight);
               img.onerror = () => bad('broken ' + src); img.src = src; }))).then(done, e => done(String(e)));",
        )
        .await;
    assert_eq!(dims, serde_json::json!(["192x192", "512x512"]));
    // The service worker registers, activates and takes control.
    let scope = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             navigator.serviceWorker.ready.then(r => done(r.active ? r.scope : 'inactive'), e => done(String(e)));",
        )
        .await;
    assert_eq!(scope.as_str(), Some(format!("{}/", d.url).as_str()));
    browser.goto(&format!("{}/index.html", d.url)).await;
    let controlled = browser
        .eval("return navigator.serviceWorker.controller !== null;")
        .await;
    assert_eq!(
        controlled, true,
        "the page is controlled by the service worker"
    );
    browser.screenshots("installable").await;

    // Daemon gone: the shell still loads from the cache, the API says offline.
    d.terminate(Duration::from_secs(10)).expect("stopped");
    browser.goto(&format!("{}/faucet.html", d.url)).await;
    let title = browser.eval("return document.title;").await;
    assert_eq!(title.as_str(), Some("pooldesk — test coin faucet"));
    browser
        .wait_text("#faucet-info", WAIT, "the offline notice", |t| {
            t.contains("unavailable")
        })
        .await;
    browser.screenshots("offline").await;
    browser.close().await;
    d.start_again().await;
    d.assert_verified();
}
