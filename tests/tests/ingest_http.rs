//! Share ingest against the real daemon: both reporter contracts, every
//! refusal with the seed's status code and no ledger change, replay and
//! timestamp windows, the seed's own examples.

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s};
use pooldesk_e2e::skip::{skip_or_fail, which};
use serde_json::{Value, json};

/// Default rate: 0.00000001 BTC per difficulty-1 share = 1000 msat.
const RATE_MSAT: i64 = 1000;

async fn daemon(config: &str) -> Daemon {
    Daemon::start(DaemonOptions {
        config: config.to_string(),
        ..Default::default()
    })
    .await
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_report_is_credited_and_answers_the_balance() {
    let d = daemon("").await;
    let (status, answer) = d
        .post_signed_report(&body(&json!({
            "miner_id": "m1", "worker_name": "w1", "shares": 10, "difficulty": 4,
            "event_id": "e-1", "ts": now_s()
        })))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["credited_msat"], 40 * RATE_MSAT);
    assert_eq!(answer["balance_msat"], 40 * RATE_MSAT);
    assert_eq!(answer["balance_sat"], 40);
    assert_eq!(d.balance_msat("m1").await, 40 * RATE_MSAT);
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_of_an_accepted_report_is_409_and_credits_nothing() {
    let d = daemon("").await;
    let report = body(
        &json!({"miner_id": "m1", "worker_name": "w", "shares": 5, "event_id": "dup", "ts": now_s()}),
    );
    assert_eq!(d.post_signed_report(&report).await.0, 200);
    let (status, answer) = d.post_signed_report(&report).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "duplicate_event");
    assert_eq!(answer["credited_msat"], 5 * RATE_MSAT);
    // Same event id, different content: also 409, nothing moves.
    let other = body(
        &json!({"miner_id": "m1", "worker_name": "w", "shares": 500, "event_id": "dup", "ts": now_s()}),
    );
    let (status, answer) = d.post_signed_report(&other).await;
    assert_eq!(status, 409);
    assert_eq!(answer["error"], "event_id_conflict");
    assert_eq!(d.balance_msat("m1").await, 5 * RATE_MSAT);
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamp_window_is_300_seconds_both_ways() {
    let d = daemon("").await;
    let mut expected = 0;
    for (offset, ok) in [(-299, true), (299, true), (-301, false), (301, false)] {
        let report = body(&json!({
            "miner_id": "m", "worker_name": "w", "shares": 1,
            "event_id": format!("ts{offset}"), "ts": now_s() + offset
        }));
        let (status, answer) = d.post_signed_report(&report).await;
        if ok {
            assert_eq!(status, 200, "offset {offset}: {answer}");
            expected += RATE_MSAT;
        } else {
            assert_eq!(status, 401, "offset {offset}: {answer}");
            assert_eq!(answer["error"], "stale_timestamp");
        }
    }
    assert_eq!(d.balance_msat("m").await, expected);
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_has_its_code_and_changes_nothing() {
    let d = daemon("").await;
    assert_eq!(d.post_report("m", "w", 3).await.0, 200);
    let before = d.balance_msat("m").await;
    // Every (body, answer) refused below, for the leak check at the end.
    let mut refused: Vec<(Vec<u8>, Value)> = Vec::new();
    let fresh = |extra: Value| {
        let mut v = json!({"miner_id": "m", "worker_name": "w", "shares": 1, "event_id": format!("r-{}", rand_id()), "ts": now_s()});
        for (k, val) in extra.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        body(&v)
    };
    // Missing and wrong signatures.
    let sent = fresh(json!({}));
    let (status, answer) = d.post_report_raw(&sent, None).await;
    refused.push((sent, answer.clone()));
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("missing_signature"))
    );
    let sent = fresh(json!({}));
    let (status, answer) = d.post_report_raw(&sent, Some(&"0".repeat(64))).await;
    refused.push((sent, answer.clone()));
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("bad_signature"))
    );
    let signed_other_body = pooldesk_proto::sig::hmac_sha256_hex(d.report_secret.as_bytes(), b"{}");
    let sent = fresh(json!({}));
    let (status, answer) = d.post_report_raw(&sent, Some(&signed_other_body)).await;
    refused.push((sent, answer));
    assert_eq!(status, 401);
    // No replay protection.
    let sent = fresh(json!({"event_id": null, "ts": null}));
    let (status, answer) = d.post_signed_report(&sent).await;
    refused.push((sent, answer.clone()));
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("unprotected_report"))
    );
    assert!(answer["message"].as_str().unwrap().contains("event_id"));
    let sent = fresh(json!({"ts": null}));
    let (status, answer) = d.post_signed_report(&sent).await;
    refused.push((sent, answer));
    assert_eq!(status, 401);
    // Bad share counts and fields: 422.
    for bad in [
        json!({"shares": 0}),
        json!({"shares": -5}),
        json!({"shares": 1.5}),
        json!({"shares": 1e30}),
        json!({"shares": 18446744073709551615u64}),
        json!({"shares": "10"}),
        json!({"shares": null}),
        json!({"miner_id": ""}),
        json!({"miner_id": 7}),
        json!({"worker_name": null}),
        json!({"difficulty": 0}),
        json!({"difficulty": 2.5}),
        json!({"event_id": ""}),
        json!({"ts": "now"}),
    ] {
        let sent = fresh(bad.clone());
        let (status, answer) = d.post_signed_report(&sent).await;
        refused.push((sent, answer.clone()));
        assert_eq!(status, 422, "{bad}: {answer}");
        assert_eq!(answer["error"], "invalid", "{bad}");
        assert!(answer["message"].is_string());
    }
    // Malformed JSON (correctly signed): 400.
    let sent = b"{\"miner_id\": \"m\", ".to_vec();
    let (status, answer) = d.post_signed_report(&sent).await;
    refused.push((sent, answer.clone()));
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request"))
    );
    // Body of limit+1 bytes: 413 (default limit 65536).
    let big = vec![b' '; 65537];
    let (status, answer) = d.post_signed_report(&big).await;
    refused.push((big.clone(), answer.clone()));
    assert_eq!(
        (status, answer["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    // Nothing moved.
    assert_eq!(d.balance_msat("m").await, before);
    // No secret and no expected signature leaked: not in any answer, not
    // in the daemon's output (stdout and stderr both go to its log).
    let log = std::fs::read_to_string(d.log_path()).expect("the daemon's log");
    assert_eq!(refused.len(), 21, "every refusal above was recorded");
    for secret in [&d.report_secret, &d.admin_key, &d.master_key] {
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
    }
    for (sent, answer) in &refused {
        let expected = pooldesk_proto::sig::hmac_sha256_hex(d.report_secret.as_bytes(), sent);
        let text = answer.to_string();
        for (what, secret) in [
            ("report secret", d.report_secret.as_str()),
            ("admin key", d.admin_key.as_str()),
            ("master key", d.master_key.as_str()),
            ("expected signature", expected.as_str()),
        ] {
            assert!(!text.contains(secret), "{what} in the answer {text}");
            assert!(!log.contains(secret), "{what} in the log");
        }
    }
    d.assert_verified();
}

/// Sends `request` on `stream` and reads one response head (status line
/// and headers, lower-cased) and its body of Content-Length bytes.
async fn exchange(stream: &mut tokio::net::TcpStream, request: &[u8]) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.expect("write request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read response");
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (head, buf[head_end..head_end + length].to_vec())
}

// A body refused before it was read leaves the rest of it in flight, so
// the server drops the connection after answering; it must say so, or a
// keep-alive client reuses the connection and its next request fails.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_unread_body_closes_the_connection_and_says_so() {
    let d = daemon("").await;
    let host = d.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    // A read body (bad signature, 401) keeps the connection open ...
    let small = b"{}";
    let request = format!(
        "POST /api/report_share HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\nx-report-sig: {}\r\ncontent-length: {}\r\n\r\n",
        "0".repeat(64),
        small.len()
    );
    let (head, _) = exchange(&mut stream, &[request.as_bytes(), small].concat()).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    // ... and serves the next request on it; a declared oversize body is
    // refused unread, with `Connection: close`.
    let request = format!(
        "POST /api/report_share HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: 65537\r\n\r\n{{"
    );
    let (head, body) = exchange(&mut stream, request.as_bytes()).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["error"], "payload_too_large");
    // A pooled client alternating refusals and reads never fails a request.
    for _ in 0..50 {
        let (status, _) = d.post_signed_report(&vec![b' '; 65537]).await;
        assert_eq!(status, 413);
        assert_eq!(d.balance_msat_if_known("m").await, None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_never_echo_secrets_or_expected_signatures() {
    let d = daemon("").await;
    let report = body(
        &json!({"miner_id": "m", "worker_name": "w", "shares": 1, "event_id": "x", "ts": now_s()}),
    );
    let expected = pooldesk_proto::sig::hmac_sha256_hex(d.report_secret.as_bytes(), &report);
    let (_, answer) = d.post_report_raw(&report, Some(&"ab".repeat(32))).await;
    let text = answer.to_string();
    assert!(!text.contains(&expected));
    assert!(!text.contains(&d.report_secret));
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    assert!(
        !log.contains(&d.report_secret)
            && !log.contains(&d.admin_key)
            && !log.contains(&d.master_key)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unprotected_reports_only_when_allowed_and_the_snapshot_warns() {
    let d = daemon("[ingest]\nallow_unprotected_reports = true\n").await;
    let report = br#"{"miner_id":"miner123","worker_name":"worker1","shares":100}"#;
    assert_eq!(d.post_signed_report(report).await.0, 200);
    assert_eq!(
        d.post_signed_report(report).await.0,
        200,
        "no event_id: nothing to deduplicate on"
    );
    assert_eq!(d.balance_msat("miner123").await, 200 * RATE_MSAT);
    // The per-second snapshot says so: poll it (the event), not a sleep.
    let mut control = d.control().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match control
            .request(pooldesk_proto::control::Request::Snapshot)
            .await
            .unwrap()
        {
            pooldesk_proto::control::Outcome::Ok(pooldesk_proto::control::Response::Snapshot(
                s,
            )) => {
                if s.warnings.iter().any(|w| w.code == "unprotected_reports") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no unprotected_reports warning within 60 s: {:?}",
                    s.warnings
                );
            }
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn inactive_miner_is_403_for_pool_reports() {
    let d = daemon("").await;
    assert_eq!(d.post_report("m", "w", 1).await.0, 200);
    let (status, _) = d
        .admin(
            "POST",
            "/api/admin/miners/m/active",
            Some(&json!({"active": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = d.post_report("m", "w", 1).await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("inactive")));
    assert_eq!(d.balance_msat("m").await, RATE_MSAT);
}

/// Every report vector made by the seed's Python code verifies: the ones
/// with replay fields are refused only for their (old) timestamp, never for
/// their signature; a one-byte change fails the signature.
#[tokio::test(flavor = "multi_thread")]
async fn seed_signature_vectors_verify_over_raw_bytes() {
    let vectors: Value = serde_json::from_str(include_str!("../data/signatures.json")).unwrap();
    for v in vectors["report_share"].as_array().unwrap() {
        let secret = v["secret"].as_str().unwrap();
        let d = Daemon::start(DaemonOptions {
            config: "[ingest]\nallow_unprotected_reports = true\n".into(),
            env: vec![("REPORT_SHARED_SECRET".into(), secret.into())],
            ..Default::default()
        })
        .await;
        let raw = v["body"].as_str().unwrap().as_bytes();
        let sig = v["x_report_sig"].as_str().unwrap();
        let (status, answer) = d.post_report_raw(raw, Some(sig)).await;
        if raw.windows(5).any(|w| w == b"\"ts\":") {
            assert_eq!(
                (status, answer["error"].as_str()),
                (401, Some("stale_timestamp")),
                "{answer}"
            );
        } else {
            assert_eq!(status, 200, "{answer}");
        }
        let mut tampered = raw.to_vec();
        tampered[2] ^= 1;
        let (status, answer) = d.post_report_raw(&tampered, Some(sig)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("bad_signature"))
        );
        d.assert_verified();
    }
}

/// The personal vectors verify through the daemon too, using a shared-
/// secret user whose key is the vector's key (development mode).
#[tokio::test(flavor = "multi_thread")]
async fn seed_personal_vectors_verify_through_the_daemon() {
    let vectors: Value = serde_json::from_str(include_str!("../data/signatures.json")).unwrap();
    let d = Daemon::start(DaemonOptions {
        config: "[auth]\nallow_shared = true\n".into(),
        env: vec![("POOLDESK_SHARED_SECRET".into(), "your_api_key_here".into())],
        ..Default::default()
    })
    .await;
    for user in ["your_miner_id", "müller_é"] {
        let (status, answer) = d
            .get(&format!("/v1/user/profile/{}", urlencode(user)))
            .await;
        assert_eq!(status, 404, "{answer}");
    }
    let client = reqwest::Client::new();
    let register = |user: &str| json!({"user_id": user, "auth_method": "hmac_shared", "tier": "TIER_2_DESKTOP"});
    for user in ["your_miner_id", "m\u{fc}ller_\u{e9}"] {
        let (status, answer) = d
            .admin("POST", "/v1/user/register", Some(&register(user)))
            .await;
        assert_eq!(status, 201, "{answer}");
        assert!(
            answer["api_key"].is_null(),
            "the shared secret is never handed out"
        );
    }
    for v in vectors["personal"].as_array().unwrap() {
        if v["api_key"] != "your_api_key_here" {
            continue;
        }
        let sent = v["payload_json_as_sent"].as_str().unwrap();
        let sig = v["x_signature"].as_str().unwrap();
        let payload: Value = serde_json::from_str(sent).unwrap();
        let user = payload["miner_id"].as_str().unwrap_or("your_miner_id");
        let path = if payload.get("test").is_some() {
            "/v1/user/auth-test"
        } else {
            "/v1/ingest/block"
        };
        let r = client
            .post(format!("{}{path}", d.url))
            .header("content-type", "application/json")
            .header(
                "x-user-id",
                reqwest::header::HeaderValue::from_bytes(user.as_bytes()).unwrap(),
            )
            .header("x-signature", sig)
            .header("x-timestamp", now_s().to_string())
            .body(sent.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        if path.ends_with("auth-test") {
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["authenticated"], true);
        } else {
            // Signature accepted; the body's ts (2025) is outside the window.
            assert_eq!(
                (status, answer["error"].as_str()),
                (401, Some("stale_timestamp")),
                "{answer}"
            );
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn rand_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Registers `user` the default way: by the admin (`auth.registration`
/// defaults to "admin"; open registration is tested in hostile.rs).
async fn register(d: &Daemon, user: &str) -> String {
    let (status, answer) = d
        .admin(
            "POST",
            "/v1/user/register",
            Some(
                &json!({"user_id": user, "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["user_id"], user);
    assert_eq!(answer["auth_method"], "hmac_personal");
    assert_eq!(answer["tier"], "TIER_2_DESKTOP");
    assert!(answer["instructions"]["authentication"].is_string());
    answer["api_key"].as_str().unwrap().to_string()
}

async fn post_json(d: &Daemon, path: &str, v: &Value) -> (u16, Value) {
    let r = d
        .http
        .post(format!("{}{path}", d.url))
        .json(v)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn block(user: &str, event: &str, hash: &str, work: Value) -> Value {
    json!({
        "event_id": event, "block_index": 1, "block_hash": hash, "cid": "bafy",
        "miner_id": user, "capacity": "TIER_2_DESKTOP", "work_score": work,
        "ts": now_s(), "signature": "placeholder"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_key_contract_status_codes() {
    // A high limit: this test sends many refused blocks, which count too.
    let d = daemon("[limits]\nblocks_per_minute = 1000\n").await;
    let key = register(&d, "rig_01").await;
    // Register again, or an id created by pool reports: 409, no key.
    let (status, answer) = d
        .admin(
            "POST",
            "/v1/user/register",
            Some(&json!({"user_id": "rig_01", "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("user_exists"))
    );
    assert!(answer.get("api_key").is_none());
    d.post_report("pool_made", "w", 1).await;
    let (status, answer) = d
        .admin(
            "POST",
            "/v1/user/register",
            Some(&json!({"user_id": "pool_made", "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.get("api_key").is_none());
    // hmac_shared is off by default; unknown tier or method: 422.
    let (status, _) = d
        .admin(
            "POST",
            "/v1/user/register",
            Some(
                &json!({"user_id": "dev", "auth_method": "hmac_shared", "tier": "TIER_2_DESKTOP"}),
            ),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = d
        .admin(
            "POST",
            "/v1/user/register",
            Some(&json!({"user_id": "x1", "auth_method": "hmac_personal", "tier": "TIER_9_MOON"})),
        )
        .await;
    assert_eq!(status, 422);

    // Accepted block: 202 and credited work_score × rate_per_work (100000 msat).
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "rig_01",
            &key,
            &block("rig_01", "ev-1", "h1", json!(12.5)),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["user_id"], "rig_01");
    assert_eq!(answer["tier"], "TIER_2_DESKTOP");
    assert_eq!(answer["credited_msat"], 1_250_000);
    let balance = d.balance_msat("rig_01").await;
    assert_eq!(balance, 1_250_000);

    // 409: duplicate event id, duplicate block hash.
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "rig_01",
            &key,
            &block("rig_01", "ev-1", "h-other", json!(1)),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("duplicate_event"))
    );
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "rig_01",
            &key,
            &block("rig_01", "ev-2", "h1", json!(1)),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("duplicate_block"))
    );
    // 401: bad signature, missing headers, stale X-Timestamp and body ts.
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "rig_01",
            "wrong-key",
            &block("rig_01", "ev-3", "h3", json!(1)),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("bad_signature"))
    );
    let (status, _) = post_json(
        &d,
        "/v1/ingest/block",
        &block("rig_01", "ev-3", "h3", json!(1)),
    )
    .await;
    assert_eq!(status, 401);
    let bytes = serde_json::to_vec(&block("rig_01", "ev-3", "h3", json!(1))).unwrap();
    let (status, answer) = d
        .signed_raw(
            "POST",
            "/v1/ingest/block",
            "rig_01",
            &key,
            &bytes,
            now_s() - 301,
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("stale_timestamp"))
    );
    let mut old = block("rig_01", "ev-3", "h3", json!(1));
    old["ts"] = json!(now_s() + 301);
    let (status, _) = d
        .signed("POST", "/v1/ingest/block", "rig_01", &key, &old)
        .await;
    assert_eq!(status, 401);
    // A personal key reporting for another miner: 403.
    register(&d, "other").await;
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "rig_01",
            &key,
            &block("other", "ev-4", "h4", json!(1)),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("miner_mismatch"))
    );
    // 422: bad data.
    for bad in [json!(-1), json!(0), json!("1"), json!(1e-9), json!(1e30)] {
        let (status, answer) = d
            .signed(
                "POST",
                "/v1/ingest/block",
                "rig_01",
                &key,
                &block(
                    "rig_01",
                    &format!("ev-b{bad}"),
                    &format!("hb{bad}"),
                    bad.clone(),
                ),
            )
            .await;
        assert_eq!(status, 422, "work_score {bad}: {answer}");
    }
    let (status, _) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "rig_01",
            &key,
            &json!({"miner_id": "rig_01", "ts": now_s()}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        d.balance_msat("rig_01").await,
        balance,
        "refusals change nothing"
    );

    // 403: inactive.
    let (status, _) = d
        .admin(
            "POST",
            "/api/admin/miners/other/active",
            Some(&json!({"active": false})),
        )
        .await;
    assert_eq!(status, 200);
    let other_key = rotate(&d, "other").await;
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "other",
            &other_key,
            &block("other", "ev-5", "h5", json!(1)),
        )
        .await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("inactive")));
    d.assert_verified();
}

async fn rotate(d: &Daemon, miner: &str) -> String {
    let (status, answer) = d
        .admin("POST", &format!("/api/admin/miners/{miner}/key"), None)
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["api_key"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_is_per_user_and_per_tier() {
    let d = daemon("[limits]\nblocks_per_minute = 10\ntiers = { TIER_3_WORKSTATION = 12 }\n").await;
    let key = register(&d, "fast").await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let (status, answer) = d
            .signed(
                "POST",
                "/v1/ingest/block",
                "fast",
                &key,
                &block("fast", &format!("e{i}"), &format!("h{i}"), json!(1)),
            )
            .await;
        if status == 429 {
            assert_eq!(answer["error"], "rate_limited");
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    // Another user is not affected.
    let key2 = register(&d, "slow").await;
    let (status, _) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "slow",
            &key2,
            &block("slow", "s1", "hs1", json!(1)),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(d.balance_msat("fast").await, 10 * 100_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_are_changed_by_the_admin_only_and_auth_test_answers() {
    let d = daemon("").await;
    let key = register(&d, "u1").await;
    // The seed's unsigned example changes nothing.
    let (status, answer) = post_json(
        &d,
        "/v1/user/update-tier",
        &json!({"user_id": "u1", "tier": "TIER_3_WORKSTATION"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("admin_only"))
    );
    // A miner's own signature cannot raise its tier (and with it its limits).
    for body in [
        json!({"user_id": "u1", "tier": "TIER_3_WORKSTATION"}),
        json!({"user_id": "u1", "tier": "TIER_3_WORKSTATION", "ts": now_s()}),
    ] {
        let (status, answer) = d
            .signed("POST", "/v1/user/update-tier", "u1", &key, &body)
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some("admin_only")),
            "{answer}"
        );
    }
    let (_, profile) = d.get("/v1/user/profile/u1").await;
    assert_eq!(profile["tier"], "TIER_2_DESKTOP");
    // A wrong admin key is 401, not "not an admin".
    let r = d
        .http
        .post(format!("{}/v1/user/update-tier", d.url))
        .header("x-api-key", "wrong")
        .json(&json!({"user_id": "u1", "tier": "TIER_3_WORKSTATION"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, answer) = d
        .admin(
            "POST",
            "/v1/user/update-tier",
            Some(&json!({"user_id": "u1", "tier": "TIER_3_WORKSTATION"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, profile) = d.get("/v1/user/profile/u1").await;
    assert_eq!(profile["tier"], "TIER_3_WORKSTATION");
    let (status, answer) = d
        .admin(
            "POST",
            "/v1/user/update-tier",
            Some(&json!({"user_id": "nobody", "tier": "TIER_3_WORKSTATION"})),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/user/auth-test",
            "u1",
            &key,
            &json!({"test": "data"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["user_id"], "u1");
    let (status, _) = d
        .signed(
            "POST",
            "/v1/user/auth-test",
            "u1",
            "nope",
            &json!({"test": "data"}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(d.get("/v1/user/profile/nobody").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_registration_mode_and_key_rotation() {
    let d = daemon("[auth]\nregistration = \"admin\"\n").await;
    let (status, _) = post_json(
        &d,
        "/v1/user/register",
        &json!({"user_id": "a1", "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, answer) = d
        .admin(
            "POST",
            "/v1/user/register",
            Some(
                &json!({"user_id": "a1", "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let old = answer["api_key"].as_str().unwrap().to_string();
    let new = rotate(&d, "a1").await;
    assert_ne!(old, new);
    let (status, _) = d
        .signed(
            "POST",
            "/v1/user/auth-test",
            "a1",
            &old,
            &json!({"test": 1}),
        )
        .await;
    assert_eq!(status, 401, "a rotated key stops working");
    let (status, _) = d
        .signed(
            "POST",
            "/v1/user/auth-test",
            "a1",
            &new,
            &json!({"test": 1}),
        )
        .await;
    assert_eq!(status, 200);
    // The database holds no usable key.
    let db = std::fs::read(d.data_dir.join("ledger.sqlite")).unwrap();
    assert!(!db.windows(new.len()).any(|w| w == new.as_bytes()));
    // Admin key in the query string: refused.
    let (status, answer) = d
        .get(&format!("/api/admin/miners?api_key={}", d.admin_key))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("key_in_query"))
    );
}

/// The seed's curl example, run as written (secret, body and flags), with a
/// local URL.
#[tokio::test(flavor = "multi_thread")]
async fn seed_curl_example_runs_as_written() {
    let d = Daemon::start(DaemonOptions {
        config: "[ingest]\nallow_unprotected_reports = true\n".into(),
        env: vec![(
            "REPORT_SHARED_SECRET".into(),
            "change_this_report_secret".into(),
        )],
        ..Default::default()
    })
    .await;
    if which("curl").is_none() || which("python3").is_none() {
        skip_or_fail(
            "ingest_http seed_curl_example",
            "curl or python3 is not installed (contrib/test.sh installs curl)",
        );
        return;
    }
    let script = format!(
        r#"BODY='{{"miner_id":"miner123","worker_name":"worker1","shares":100}}'
SIG=$(python3 -c "import hmac,hashlib; print(hmac.new(b'change_this_report_secret', b'''$BODY''', hashlib.sha256).hexdigest())")
curl -s -X POST {}/api/report_share -H "Content-Type: application/json" -H "X-REPORT-SIG: $SIG" -d "$BODY""#,
        d.url
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        answer["status"],
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(d.balance_msat("miner123").await, 100 * RATE_MSAT);
}

/// The seed's Python example, as written, with a local URL.
#[tokio::test(flavor = "multi_thread")]
async fn seed_python_example_runs_as_written() {
    let d = Daemon::start(DaemonOptions {
        config: "[ingest]\nallow_unprotected_reports = true\n".into(),
        env: vec![("REPORT_SHARED_SECRET".into(), "my_secret_here".into())],
        ..Default::default()
    })
    .await;
    let has_requests = std::process::Command::new("python3")
        .args(["-c", "import requests"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_requests {
        skip_or_fail(
            "ingest_http seed_python_examples",
            "python3 with the requests module is not installed (contrib/test.sh installs it)",
        );
        return;
    }
    let script = format!(
        r#"import requests, hmac, hashlib
secret = b'my_secret_here'
body = b'{{"miner_id":"miner123","worker_name":"worker1","shares":100}}'
sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
resp = requests.post('{}/api/report_share', headers={{'X-REPORT-SIG': sig, 'Content-Type':'application/json'}}, data=body)
print(resp.status_code)
"#,
        d.url
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.balance_msat("miner123").await, 100 * RATE_MSAT);
}

/// The seed's COINjecture registration and submission, run as written in
/// Python with `requests`, against a local URL.
#[tokio::test(flavor = "multi_thread")]
async fn seed_coinjecture_python_flow_runs_as_written() {
    // The seed registers itself: open registration, with a self-registration
    // namespace the seed's id falls in.
    let d = daemon("[auth]\nregistration = \"open\"\nself_registration_prefix = \"your_\"\n").await;
    let has_requests = std::process::Command::new("python3")
        .args(["-c", "import requests"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_requests {
        skip_or_fail(
            "ingest_http seed_python_examples",
            "python3 with the requests module is not installed (contrib/test.sh installs it)",
        );
        return;
    }
    let script = format!(
        r#"import hmac, hashlib, json, time, requests
base = '{url}'
r = requests.post(base + '/v1/user/register', json={{"user_id": "your_miner_id", "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"}})
assert r.status_code == 201, r.text
api_key = r.json()['api_key']

def generate_signature(api_key, payload):
    canonical = json.dumps(payload, sort_keys=True, separators=(',', ':'))
    return hmac.new(api_key.encode('utf-8'), canonical.encode('utf-8'), hashlib.sha256).hexdigest()

payload = {{
    "event_id": "unique_event_id",
    "block_index": 1,
    "block_hash": "block_hash_here",
    "cid": "ipfs_cid_here",
    "miner_id": "your_miner_id",
    "capacity": "TIER_2_DESKTOP",
    "work_score": 1.0,
    "ts": time.time(),
    "signature": "placeholder"
}}
signature = generate_signature(api_key, payload)
headers = {{
    'X-User-ID': 'your_miner_id',
    'X-Signature': signature,
    'X-Timestamp': str(int(time.time())),
    'Content-Type': 'application/json'
}}
response = requests.post(base + '/v1/ingest/block', json=payload, headers=headers, timeout=10)
print(response.status_code, response.json().get('user_id'), response.json().get('tier'))
"#,
        url = d.url
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "202 your_miner_id TIER_2_DESKTOP",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.balance_msat("your_miner_id").await, 100_000);
}

/// `GET /api/admin/credits`: every credited report is in it once (per miner
/// the credits sum to the balance, the roll-ups count every report), newest
/// first, paged by `next_cursor` without gaps or repeats; admin only.
#[tokio::test(flavor = "multi_thread")]
async fn admin_credits_list_every_credit_once_newest_first() {
    let d = Daemon::start(DaemonOptions::default()).await;
    let mut reports = 0;
    for (miner, n) in [("alice", 3), ("bob", 2), ("carol", 4)] {
        for i in 0..n {
            let (status, body) = d.post_report(miner, &format!("w{i}"), 1 + i as u64).await;
            assert_eq!(status, 200, "{body}");
            reports += 1;
        }
    }
    let (status, all) = d.admin("GET", "/api/admin/credits?limit=1000", None).await;
    assert_eq!(status, 200, "{all}");
    assert!(all["next_cursor"].is_null(), "{all}");
    let rows = all["credits"].as_array().expect("credits").clone();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let counted: i64 = rows
        .iter()
        .map(|r| r["reports"].as_i64().expect("reports"))
        .sum();
    assert_eq!(counted, reports, "{all}");
    for miner in ["alice", "bob", "carol"] {
        let credited: i64 = rows
            .iter()
            .filter(|r| r["miner_id"] == miner)
            .map(|r| r["amount_msat"].as_i64().expect("amount_msat"))
            .sum();
        assert_eq!(credited, d.balance_msat(miner).await, "{miner}: {all}");
        assert!(credited > 0, "{miner}");
    }
    // Paged two at a time: the same rows, in the same order.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = d
            .admin(
                "GET",
                &format!("/api/admin/credits?limit=2&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        paged.extend(
            page["credits"]
                .as_array()
                .expect("credits")
                .iter()
                .map(|r| r["id"].as_i64().expect("id")),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
        assert!(paged.len() <= ids.len(), "paging does not end: {paged:?}");
    }
    assert_eq!(paged, ids);
    // Admin only; a forged cursor is refused.
    let (status, _) = d.get("/api/admin/credits").await;
    assert_eq!(status, 401);
    let (status, body) = d.admin("GET", "/api/admin/credits?cursor=x", None).await;
    assert_eq!(status, 422, "{body}");
    d.assert_verified();
}
