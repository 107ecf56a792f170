//! Replays every request recorded from Bitcoin Core (tests/data/exchanges.json)
//! against a fresh stand-in and compares the answers' shape: HTTP status,
//! error code and message, result keys, and 8-decimal amounts.
//!
//! Addresses, txids and PSBTs differ between the recording and the stand-in,
//! so identifiers seen in recorded answers are mapped to the stand-in's own
//! answers at the same place and substituted into later requests.

use std::collections::{BTreeSet, HashMap};

use pooldesk_e2e::standin::client::RpcClient;
use pooldesk_e2e::standin::json::J;
use pooldesk_e2e::standin::{Auth, StandIn, StandInOptions};

const EXCHANGES: &str = include_str!("../data/exchanges.json");

/// Strings at least this long are identifiers (addresses, txids, hex, PSBTs)
/// worth mapping; shorter ones ("yes", "send") are values to compare.
const MIN_ID_LEN: usize = 26;

fn is_amount_literal(n: &str) -> bool {
    let n = n.strip_prefix('-').unwrap_or(n);
    match n.split_once('.') {
        Some((i, f)) => {
            !i.is_empty()
                && i.bytes().all(|c| c.is_ascii_digit())
                && f.len() == 8
                && f.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Records recorded→ours for identifier strings at the same place.
fn learn(map: &mut HashMap<String, String>, rec: &J, ours: &J) {
    match (rec, ours) {
        (J::Str(a), J::Str(b)) if a.len() >= MIN_ID_LEN && a != b => {
            map.entry(a.clone()).or_insert_with(|| b.clone());
        }
        (J::Arr(a), J::Arr(b)) => {
            for (x, y) in a.iter().zip(b) {
                learn(map, x, y);
            }
        }
        (J::Obj(a), J::Obj(_)) => {
            for (k, x) in a {
                if let Some(y) = ours.get(k) {
                    learn(map, x, y);
                }
            }
        }
        _ => {}
    }
}

fn substitute(map: &HashMap<String, String>, v: &J) -> J {
    match v {
        J::Str(s) => J::Str(map.get(s).cloned().unwrap_or_else(|| s.clone())),
        J::Arr(a) => J::Arr(a.iter().map(|x| substitute(map, x)).collect()),
        J::Obj(o) => J::Obj(
            o.iter()
                .map(|(k, x)| {
                    (
                        map.get(k).cloned().unwrap_or_else(|| k.clone()),
                        substitute(map, x),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every 8-decimal amount in the recording is an 8-decimal amount here too.
fn check_amounts(ctx: &str, path: &str, rec: &J, ours: &J, problems: &mut Vec<String>) {
    match (rec, ours) {
        (J::Num(r), o) if is_amount_literal(r) => match o {
            J::Num(n) if is_amount_literal(n) => {}
            other => problems.push(format!(
                "{ctx}: {path}: recorded amount {r}, got {}",
                other.to_text()
            )),
        },
        (J::Arr(a), J::Arr(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                check_amounts(ctx, &format!("{path}[{i}]"), x, y, problems);
            }
        }
        (J::Obj(a), J::Obj(_)) => {
            for (k, x) in a {
                if let Some(y) = ours.get(k) {
                    check_amounts(ctx, &format!("{path}.{k}"), x, y, problems);
                }
            }
        }
        _ => {}
    }
}

fn keys(v: &J) -> BTreeSet<String> {
    v.as_obj()
        .unwrap_or(&[])
        .iter()
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test]
async fn every_recorded_exchange_has_the_same_shape() {
    let standin = StandIn::start(StandInOptions {
        auth: Auth::UserPass {
            user: "pooldesk".into(),
            password: "hunter2".into(),
        },
        wallets: vec!["pool".into(), "recv".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let client = RpcClient::for_standin(&standin);
    let doc = J::parse(EXCHANGES).expect("exchanges.json parses");
    let exchanges = doc.get("exchanges").and_then(J::as_arr).unwrap();
    assert_eq!(exchanges.len(), 43);

    let mut map: HashMap<String, String> = HashMap::new();
    let mut problems = Vec::new();
    let mut error_cases = BTreeSet::new();
    for (i, ex) in exchanges.iter().enumerate() {
        let note = ex.get("note").and_then(J::as_str).unwrap_or("");
        let path = ex.get("path").and_then(J::as_str).unwrap();
        let status = ex.get("http_status").and_then(J::as_i64).unwrap() as u16;
        let raw = ex.get("response_raw").and_then(J::as_str).unwrap();
        let recorded = J::parse(raw.trim_end()).unwrap();
        let ctx = format!("#{i} {note}");
        // Between the recorded bumpfee and its confirmation a block was mined.
        if note.starts_with("confirmed") {
            standin.mine(1);
        }
        let request = substitute(&map, ex.get("request").unwrap());
        let reply = client.raw(path, &request.to_text()).await.unwrap();
        assert!(
            reply.body.ends_with('\n'),
            "{ctx}: body ends with a newline"
        );
        if reply.status != status {
            problems.push(format!(
                "{ctx}: HTTP {} instead of {status}: {}",
                reply.status, reply.body
            ));
            continue;
        }
        let ours = reply
            .json()
            .unwrap_or_else(|| panic!("{ctx}: not JSON: {}", reply.body));
        assert_eq!(ours.get("id"), recorded.get("id"), "{ctx}: id echoed");
        let rec_err = recorded.get("error").unwrap();
        if !rec_err.is_null() {
            let code = rec_err.get("code").and_then(J::as_i64).unwrap();
            error_cases.insert(code);
            let got = ours.get("error").cloned().unwrap_or(J::Null);
            if got != *rec_err {
                problems.push(format!(
                    "{ctx}: error {} instead of {}",
                    got.to_text(),
                    rec_err.to_text()
                ));
            }
            if !ours.get("result").is_some_and(J::is_null) {
                problems.push(format!("{ctx}: result must be null with an error"));
            }
            continue;
        }
        if !ours.get("error").is_some_and(J::is_null) {
            problems.push(format!("{ctx}: unexpected error {}", reply.body.trim_end()));
            continue;
        }
        let rec_res = recorded.get("result").unwrap();
        let our_res = ours.get("result").unwrap();
        match (rec_res, our_res) {
            (J::Obj(_), J::Obj(_)) => {
                if keys(rec_res) != keys(our_res) {
                    problems.push(format!(
                        "{ctx}: keys differ\n  recorded {:?}\n  ours     {:?}",
                        keys(rec_res),
                        keys(our_res)
                    ));
                }
            }
            (J::Arr(a), J::Arr(b)) => {
                if a.len() != b.len() {
                    problems.push(format!(
                        "{ctx}: {} elements instead of {}",
                        b.len(),
                        a.len()
                    ));
                }
                for (j, (x, y)) in a.iter().zip(b).enumerate() {
                    if keys(x) != keys(y) {
                        problems.push(format!(
                            "{ctx}[{j}]: keys differ\n  recorded {:?}\n  ours     {:?}",
                            keys(x),
                            keys(y)
                        ));
                    }
                }
            }
            (J::Str(_), J::Str(_)) | (J::Bool(_), J::Bool(_)) | (J::Num(_), J::Num(_)) => {}
            (a, b) => problems.push(format!(
                "{ctx}: result type differs: {} vs {}",
                a.to_text(),
                b.to_text()
            )),
        }
        // Same values where they are not identifiers: booleans, categories,
        // confirmations, "complete", "allowed", …
        compare_small_values(&ctx, rec_res, our_res, &mut problems);
        check_amounts(&ctx, "result", rec_res, our_res, &mut problems);
        learn(&mut map, rec_res, our_res);
    }
    assert_eq!(
        error_cases,
        [-32601, -22, -18, -8, -6, -5, -3].into_iter().collect(),
        "every recorded error code was exercised"
    );
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    standin.stop().await;
}

/// Booleans, short strings and integers that describe state must match
/// (`complete`, `allowed`, `confirmations`, `category`, `ismine`, …).
fn compare_small_values(ctx: &str, rec: &J, ours: &J, problems: &mut Vec<String>) {
    const STATEFUL: &[&str] = &[
        "complete",
        "allowed",
        "confirmations",
        "category",
        "ismine",
        "solvable",
        "ischange",
        "isvalid",
        "trusted",
        "bip125-replaceable",
        "reject-reason",
        "next",
        "is_final",
        "has_utxo",
        "chain",
        "descriptors",
        "private_keys_enabled",
        "comment",
        "abandoned",
        "changepos",
        "errors",
        "psbt_version",
        "iswitness",
        "witness_version",
    ];
    match (rec, ours) {
        (J::Obj(a), J::Obj(_)) => {
            for (k, x) in a {
                let Some(y) = ours.get(k) else { continue };
                if STATEFUL.contains(&k.as_str()) && x != y {
                    problems.push(format!(
                        "{ctx}: {k} is {} instead of {}",
                        y.to_text(),
                        x.to_text()
                    ));
                }
                if matches!(x, J::Obj(_) | J::Arr(_)) && k != "tx" && k != "non_witness_utxo" {
                    compare_small_values(ctx, x, y, problems);
                }
            }
        }
        (J::Arr(a), J::Arr(b)) => {
            for (x, y) in a.iter().zip(b) {
                compare_small_values(ctx, x, y, problems);
            }
        }
        _ => {}
    }
}
