//! The cold-wallet review page (`/psbt.html`) in headless Chromium against
//! a running daemon with a PSBT batch (cold mode, through the regtest
//! stand-in): the admin key is entered in the page's own form, the PSBT is
//! opened by id, and what the page shows — state, paid / change / fee,
//! fee rate, signatures, txid, every input and every output with its role
//! and withdrawals — is read back from the DOM and compared with
//! `GET /api/admin/psbt/{id}`. Two withdrawals to the same address are one
//! output naming both. Screenshot: `artifacts/screenshots/psbt-review.png`.

use std::time::{Duration, Instant};

use pooldesk_e2e::browser::Browser;
use pooldesk_e2e::payouts::Setup;
use pooldesk_e2e::standin::AddrKind;
use pooldesk_proto::amount::format_btc;
use serde_json::{Value, json};

const SUITE: &str = "browser_psbt";
const DEADLINE: Duration = Duration::from_secs(120);

/// What the review page shows, as text.
const READ_PAGE: &str = r#"
const t = (css) => document.querySelector(css).textContent;
return {
  visible: !document.querySelector('#review').classList.contains('hidden'),
  id: t('#r-id'), state: t('#r-state'), paid: t('#r-paid'), change: t('#r-change'),
  fee: t('#r-fee'), rate: t('#r-rate'), sigs: t('#r-sigs'), txid: t('#r-txid'),
  unsigned: document.querySelector('#unsigned').value,
  warnings: [...document.querySelectorAll('#r-warnings li')].map(li => li.textContent),
  inputs: [...document.querySelectorAll('#r-inputs tr')].map(tr =>
    [...tr.querySelectorAll('td')].map(td => td.textContent)),
  outputs: [...document.querySelectorAll('#r-outputs tr')].map(tr =>
    [...tr.querySelectorAll('td')].map(td => td.textContent)),
};
"#;

fn milli_sat_vb(milli: u64) -> String {
    format!("{}.{:03} sat/vB", milli / 1000, milli % 1000)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_psbt_page_shows_what_the_api_reviews() {
    let Some(browser) = Browser::start(SUITE).await else {
        return;
    };
    let s = Setup::with_standin("cold", "", "").await;
    // A second miner, and two withdrawals of the first to one address.
    let other = "second";
    let other_key = s.daemon.issue_key(other).await;
    s.fund(other, 50_000).await;
    let other_address = s.standin().new_external_address(AddrKind::P2tr);
    let (status, answer) = s.set_address(other, &other_key, &other_address).await;
    assert_eq!(status, 200, "{answer}");
    let w1 = s.request("0.0003").await;
    let w2 = s.request("0.0002").await;
    let (status, answer) = s
        .daemon
        .signed(
            "POST",
            "/api/withdraw",
            other,
            &other_key,
            &json!({"miner_id": other, "amount": "0.00045", "event_id": "w-second", "ts": pooldesk_e2e::daemon::now_s()}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let w3 = answer["withdrawal_id"].as_i64().unwrap();
    for id in [w1, w2, w3] {
        s.approve(id).await;
    }
    let (status, created) = s
        .daemon
        .admin("POST", "/api/admin/create_psbt", Some(&json!({})))
        .await;
    assert_eq!(status, 200, "{created}");
    let psbt_id = created["psbt_id"].as_i64().expect("psbt_id");
    let (status, review) = s
        .daemon
        .admin("GET", &format!("/api/admin/psbt/{psbt_id}"), None)
        .await;
    assert_eq!(status, 200, "{review}");

    // The admin's way: the key in the page's form, the id in the other.
    browser.goto(&format!("{}/psbt.html", s.daemon.url)).await;
    browser.fill("#admin-key", &s.daemon.admin_key).await;
    browser.click("#key-form button[type=submit]").await;
    browser
        .wait_text("#load-msg", DEADLINE, "the key accepted", |t| {
            t.contains("Admin key set")
        })
        .await;
    browser.fill("#psbt-id", &psbt_id.to_string()).await;
    browser.click("#load-form button[type=submit]").await;
    let deadline = Instant::now() + DEADLINE;
    let page = loop {
        let page = browser.eval(READ_PAGE).await;
        if page["visible"] == true && page["state"] != "—" {
            break page;
        }
        assert!(Instant::now() < deadline, "the review never showed: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser.screenshot("psbt-review").await;

    let sat = |v: &Value| format_btc(v.as_i64().unwrap_or_else(|| panic!("sat: {v}")));
    assert_eq!(
        page["id"],
        format!("#{psbt_id} (batch {})", review["batch_id"]).as_str()
    );
    assert_eq!(page["state"], review["state"]);
    assert_eq!(page["paid"], sat(&review["paid_to_miners_sat"]).as_str());
    assert_eq!(page["paid"], "0.00095000", "what the three withdrawals pay");
    assert_eq!(page["change"], sat(&review["change_sat"]).as_str());
    assert_eq!(page["fee"], sat(&review["fee_sat"]).as_str());
    assert_eq!(
        page["rate"],
        milli_sat_vb(review["fee_rate_milli_sat_vb"].as_u64().expect("rate")).as_str()
    );
    let sigs = &review["signatures"];
    assert_eq!(
        page["sigs"],
        format!("{} of {}", sigs["inputs_signed"], sigs["inputs_total"]).as_str()
    );
    assert_eq!(
        page["txid"], review["txid"],
        "the txid known before signing"
    );
    assert_eq!(page["txid"], created["txid"]);
    assert_eq!(page["unsigned"], review["psbt"]);
    assert_eq!(
        page["warnings"].as_array().unwrap().len(),
        review["warnings"].as_array().unwrap().len(),
        "{page}"
    );

    let inputs: Vec<Value> = review["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            json!([
                i["outpoint"],
                sat(&i["amount_sat"]),
                if i["verified"] == true { "yes" } else { "NO" },
                if i["signed"] == true { "yes" } else { "no" },
            ])
        })
        .collect();
    assert!(!inputs.is_empty());
    assert_eq!(page["inputs"], Value::Array(inputs));

    let outputs: Vec<Value> = review["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let ids: Vec<String> = o["withdrawal_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| format!("#{id}"))
                .collect();
            json!([
                o["index"].to_string(),
                o["address"],
                sat(&o["amount_sat"]),
                o["role"],
                if ids.is_empty() {
                    "—".to_string()
                } else {
                    ids.join(", ")
                },
            ])
        })
        .collect();
    assert_eq!(page["outputs"], Value::Array(outputs), "{page}");
    // Against the withdrawals themselves, not only the API's review.
    let rows = page["outputs"].as_array().unwrap();
    let row_of = |address: &str| {
        rows.iter()
            .find(|r| r[1] == address)
            .unwrap_or_else(|| panic!("no output to {address}: {page}"))
    };
    assert_eq!(
        row_of(&s.address),
        &json!([
            row_of(&s.address)[0],
            s.address,
            "0.00050000",
            "withdrawal",
            format!("#{w1}, #{w2}")
        ])
    );
    assert_eq!(
        row_of(&other_address),
        &json!([
            row_of(&other_address)[0],
            other_address,
            "0.00045000",
            "withdrawal",
            format!("#{w3}")
        ])
    );
    assert_eq!(rows.iter().filter(|r| r[3] == "change").count(), 1);
    browser.close().await;
    s.daemon.assert_verified();
}
