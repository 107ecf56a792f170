//! The payout flows against a real Bitcoin Core regtest node, when
//! `BITCOIND_EXE` points at a `bitcoind` binary: fresh datadir, random
//! ports, descriptor wallets, 101 blocks mined. Without it the test says
//! loudly that it was skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pooldesk_e2e::daemon::free_port;
use pooldesk_e2e::payouts::{Node, Setup};
use pooldesk_e2e::standin::client::{Creds, RpcClient};
use serde_json::json;

struct Bitcoind {
    child: Child,
    _dir: tempfile::TempDir,
    cookie: PathBuf,
    url: String,
    rpc: RpcClient,
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_bitcoind(exe: &Path) -> Bitcoind {
    let dir = tempfile::tempdir().unwrap();
    let rpc_port = free_port();
    let child = Command::new(exe)
        .arg("-regtest")
        .arg(format!("-datadir={}", dir.path().display()))
        .arg(format!("-rpcport={rpc_port}"))
        .arg(format!("-port={}", free_port()))
        .args([
            "-listen=0",
            "-server=1",
            "-fallbackfee=0.0002",
            "-printtoconsole=0",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bitcoind");
    let cookie = dir.path().join("regtest").join(".cookie");
    let url = format!("http://127.0.0.1:{rpc_port}");
    let rpc = RpcClient::new(&url, Creds::Cookie(cookie.clone()), Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if cookie.exists() && rpc.call(None, "getblockchaininfo", "[]").await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "bitcoind did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Bitcoind {
        child,
        _dir: dir,
        cookie,
        url,
        rpc,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_and_cold_payouts_against_a_real_regtest_node() {
    let Some(exe) = std::env::var_os("BITCOIND_EXE").map(PathBuf::from) else {
        println!(
            "SKIPPED: BITCOIND_EXE is not set, so the payout tests against a real Bitcoin Core regtest node did not run \
             (the same flows ran against the regtest stand-in). Set BITCOIND_EXE=/path/to/bitcoind to run them."
        );
        return;
    };
    let node = start_bitcoind(&exe).await;
    let rpc = &node.rpc;
    // Descriptor wallets: the pool's and a receiver's.
    rpc.call(
        None,
        "createwallet",
        r#"["pool", false, false, "", false, true]"#,
    )
    .await
    .expect("createwallet pool");
    rpc.call(
        None,
        "createwallet",
        r#"["recv", false, false, "", false, true]"#,
    )
    .await
    .expect("createwallet recv");
    let mine_to = rpc.call(Some("pool"), "getnewaddress", "[]").await.unwrap();
    let mine_to = mine_to.as_str().unwrap().to_string();
    rpc.call(
        None,
        "generatetoaddress",
        &json!([101, mine_to]).to_string(),
    )
    .await
    .unwrap();
    let address = rpc
        .call(Some("recv"), "getnewaddress", "[]")
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();

    let node_config = Node {
        url: node.url.clone(),
        cookie: node.cookie.display().to_string(),
        wallet: "pool".into(),
    };
    let received = |addr: String| {
        let rpc = rpc.clone();
        async move {
            let v = rpc
                .call(
                    Some("recv"),
                    "getreceivedbyaddress",
                    &json!([addr, 0]).to_string(),
                )
                .await
                .unwrap();
            let text = v.to_text();
            let (whole, frac) = text.split_once('.').unwrap_or((&text, "0"));
            whole.parse::<i64>().unwrap() * 100_000_000
                + format!("{frac:0<8}")[..8].parse::<i64>().unwrap()
        }
    };

    // Hot: request, approve, sendmany, confirmation.
    let s = Setup::with_node(&node_config, "hot", "", "", address.clone()).await;
    let id = s.request("0.0005").await;
    s.approve(id).await;
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(received(address.clone()).await, 50_000);
    rpc.call(None, "generatetoaddress", &json!([1, mine_to]).to_string())
        .await
        .unwrap();
    s.wait_withdrawal(id, &["confirmed"], Duration::from_secs(30))
        .await;
    s.daemon.assert_verified();

    // Cold: PSBT, signed by Core as the offline signer, finalized.
    let address2 = rpc
        .call(Some("recv"), "getnewaddress", "[]")
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let c = Setup::with_node(&node_config, "cold", "", "", address2.clone()).await;
    let id = c.request("0.0004").await;
    c.approve(id).await;
    let (status, answer) = c
        .daemon
        .admin("POST", "/api/admin/create_psbt", Some(&json!({})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let psbt = answer["psbt"].as_str().unwrap();
    let signed = rpc
        .call(
            Some("pool"),
            "walletprocesspsbt",
            &json!([psbt]).to_string(),
        )
        .await
        .unwrap();
    let signed = signed
        .get("psbt")
        .and_then(|p| p.as_str())
        .unwrap()
        .to_string();
    let (status, answer) = c
        .daemon
        .admin(
            "POST",
            "/api/admin/finalize_psbt",
            Some(&json!({"psbt_id": answer["psbt_id"], "psbt": signed})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(received(address2).await, 40_000);
    c.daemon.assert_verified();
}
