//! Injected faults, restarts and a dead node, seen through a real HTTP
//! client with a timeout, as a daemon sees them.

use std::time::{Duration, Instant};

use pooldesk_e2e::standin::client::{CallError, Creds, RpcClient};
use pooldesk_e2e::standin::json::J;
use pooldesk_e2e::standin::{AddrKind, Fault, StandIn, StandInOptions};

async fn setup() -> (StandIn, RpcClient, String) {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    // A deadline for a loaded machine; the fault tests that need a timeout
    // use a short client of their own against a node that never answers.
    let rpc = RpcClient::for_standin(&standin).with_timeout(Duration::from_secs(60));
    let a = standin.new_external_address(AddrKind::P2wpkh);
    (standin, rpc, a)
}

fn pay(a: &str, comment: &str) -> String {
    format!(r#"["",{{"{a}":0.001}},0,"{comment}",[],true,null,"unset",2]"#)
}

async fn mempool(rpc: &RpcClient) -> Vec<J> {
    rpc.call(None, "getrawmempool", "[]")
        .await
        .unwrap()
        .as_arr()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn error_before_spend_answers_the_error_and_spends_nothing() {
    let (standin, rpc, a) = setup().await;
    standin.inject(Fault::ErrorBeforeSpend {
        method: "sendmany".into(),
        code: -4,
        message: "Error: wallet is busy".into(),
    });
    let r = rpc
        .call_raw(Some("pool"), "sendmany", &pay(&a, "b1"))
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.error(), Some((-4, "Error: wallet is busy".to_string())));
    assert_eq!(standin.received_by(&a), 0);
    assert!(mempool(&rpc).await.is_empty());
    // Applies once: the retry goes through.
    rpc.pool("sendmany", &pay(&a, "b1")).await.unwrap();
    assert_eq!(standin.received_by(&a), 100_000);
    assert_eq!(standin.count_calls("sendmany"), 2);
    standin.stop().await;
}

#[tokio::test]
async fn timeout_after_spend_moves_the_coins_but_never_answers() {
    let (standin, rpc, a) = setup().await;
    standin.inject(Fault::TimeoutAfterSpend {
        method: "sendmany".into(),
    });
    let short = rpc.with_timeout(Duration::from_millis(700));
    let e = short
        .pool("sendmany", &pay(&a, "pooldesk batch 12"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CallError::Transport(t) if t.is_timeout()),
        "{e}"
    );
    // The coins really moved: reconciliation finds the batch by comment.
    assert_eq!(standin.received_by(&a), 100_000);
    let list = rpc.pool("listtransactions", r#"["*",1,0]"#).await.unwrap();
    assert_eq!(
        list.as_arr().unwrap()[0].get("comment").and_then(J::as_str),
        Some("pooldesk batch 12")
    );
    // The node keeps answering other requests meanwhile.
    assert_eq!(mempool(&rpc).await.len(), 1);
    standin.stop().await;
}

#[tokio::test]
async fn dropped_connection_after_spend_gives_no_response() {
    let (standin, rpc, a) = setup().await;
    standin.inject(Fault::DropConnectionAfterSpend {
        method: "sendmany".into(),
    });
    let e = rpc.pool("sendmany", &pay(&a, "b3")).await.unwrap_err();
    // Closed, not timed out: the error itself says which (no clock).
    assert!(
        matches!(&e, CallError::Transport(t) if !t.is_timeout()),
        "{e}"
    );
    assert_eq!(standin.received_by(&a), 100_000);
    standin.stop().await;
}

#[tokio::test]
async fn http_status_fault_has_empty_body_and_changes_nothing() {
    let (standin, rpc, a) = setup().await;
    standin.inject(Fault::HttpStatus {
        method: "sendmany".into(),
        status: 503,
    });
    let r = rpc
        .call_raw(Some("pool"), "sendmany", &pay(&a, "b4"))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (503, ""));
    assert_eq!(standin.received_by(&a), 0);
    assert_eq!(standin.pending_faults(), 0);
    standin.stop().await;
}

#[tokio::test]
async fn delay_fault_slows_one_call() {
    let (standin, rpc, _) = setup().await;
    standin.inject(Fault::Delay {
        method: "getblockcount".into(),
        ms: 400,
    });
    assert_eq!(standin.pending_faults(), 1);
    let t = Instant::now();
    let n = rpc.call(None, "getblockcount", "[]").await.unwrap();
    assert_eq!(n, J::int(101));
    // A lower bound only: an injected delay cannot make a call faster, so
    // load cannot fail this; no upper bound is asserted anywhere.
    assert!(t.elapsed() >= Duration::from_millis(400));
    // One call only: the fault is used up, and the next call is answered.
    assert_eq!(standin.pending_faults(), 0);
    let n = rpc.call(None, "getblockcount", "[]").await.unwrap();
    assert_eq!(n, J::int(101));
    standin.stop().await;
}

#[tokio::test]
async fn restart_rotates_the_cookie_and_keeps_the_mempool() {
    let (standin, rpc, a) = setup().await;
    let txid = rpc.pool("sendmany", &pay(&a, "b5")).await.unwrap();
    let old = standin.credentials();
    let pinned = rpc.with_creds(Creds::Fixed(old.clone()));
    pinned.call(None, "getblockcount", "[]").await.unwrap();
    let restarted_from = pooldesk_e2e::daemon::now_s();
    standin.restart().await;
    let now = std::fs::read_to_string(standin.cookie_path().unwrap()).unwrap();
    assert_ne!(now, old);
    assert!(now.starts_with("__cookie__:") && now.len() == "__cookie__:".len() + 64);
    let r = pinned.call_raw(None, "getblockcount", "[]").await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (401, ""), "old cookie refused");
    // A client that re-reads the cookie works, and the mempool survived.
    assert_eq!(mempool(&rpc).await, vec![txid]);
    let up = rpc.call(None, "uptime", "[]").await.unwrap();
    // Reset by the restart: no older than the restart itself (a bound
    // from the clock readings around it, not a speed claim).
    let since_restart = pooldesk_e2e::daemon::now_s() - restarted_from;
    assert!(
        up.as_i64().unwrap() <= since_restart,
        "uptime {up:?} > {since_restart} s since the restart"
    );
    standin.stop().await;
}

#[tokio::test]
async fn unresponsive_node_hangs_until_turned_off() {
    let (standin, rpc, a) = setup().await;
    standin.set_unresponsive(true);
    let short = rpc.with_timeout(Duration::from_millis(500));
    let e = short.pool("sendmany", &pay(&a, "b6")).await.unwrap_err();
    assert!(
        matches!(&e, CallError::Transport(t) if t.is_timeout()),
        "{e}"
    );
    assert_eq!(standin.received_by(&a), 0, "a dead node executes nothing");
    standin.set_unresponsive(false);
    rpc.call(None, "getblockcount", "[]").await.unwrap();
    standin.stop().await;
}

#[tokio::test]
async fn binary_serves_with_cookie_and_standin_controls() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bitcoind-standin"))
        .args(["--port", "0", "--mine", "101", "--datadir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = info["url"].as_str().unwrap().to_string();
    let cookie = std::path::PathBuf::from(info["cookie"].as_str().unwrap());
    assert_eq!(cookie, dir.path().join(".cookie"));
    let rpc = RpcClient::new(&url, Creds::Cookie(cookie), Duration::from_secs(2));

    let a = rpc
        .call(None, "standin_new_external_address", r#"["bech32m"]"#)
        .await
        .unwrap();
    let a = a.as_str().unwrap().to_string();
    assert!(a.starts_with("bcrt1p"));
    rpc.call(
        None,
        "standin_fault",
        r#"[{"kind":"http_status","method":"sendmany","status":503}]"#,
    )
    .await
    .unwrap();
    let r = rpc
        .call_raw(Some("pool"), "sendmany", &pay(&a, "x"))
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    let txid = rpc.pool("sendmany", &pay(&a, "x")).await.unwrap();
    let paid = rpc
        .call(None, "standin_received_by", &format!(r#"["{a}"]"#))
        .await
        .unwrap();
    assert_eq!(paid, J::int(100_000));
    rpc.call(None, "standin_mine", "[1]").await.unwrap();
    let t = rpc
        .pool(
            "gettransaction",
            &format!(r#"["{}"]"#, txid.as_str().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(t.get("confirmations"), Some(&J::int(1)));
    rpc.call(None, "standin_unresponsive", "[true]")
        .await
        .unwrap();
    let e = rpc.call(None, "getblockcount", "[]").await.unwrap_err();
    assert!(
        matches!(&e, CallError::Transport(t) if t.is_timeout()),
        "{e}"
    );
    rpc.call(None, "standin_unresponsive", "[false]")
        .await
        .unwrap();
    assert_eq!(
        rpc.call(None, "getblockcount", "[]").await.unwrap(),
        J::int(102)
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
