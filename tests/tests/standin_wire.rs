//! Wire-level behaviour: auth, wallet routing, envelopes, batches, named
//! parameters, and Core's parameter errors for money.

use std::time::Duration;

use pooldesk_e2e::standin::client::{CallError, Creds, RpcClient, amount_sat};
use pooldesk_e2e::standin::json::J;
use pooldesk_e2e::standin::{AddrKind, Auth, StandIn, StandInOptions};

fn rpc_error(e: CallError) -> (u16, i64, String) {
    match e {
        CallError::Rpc {
            status,
            code,
            message,
        } => (status, code, message),
        other => panic!("expected an RPC error, got {other}"),
    }
}

#[tokio::test]
async fn bad_or_missing_auth_is_an_empty_401() {
    let standin = StandIn::start(StandInOptions {
        auth: Auth::UserPass {
            user: "u".into(),
            password: "p".into(),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let good = RpcClient::for_standin(&standin);
    good.call(None, "getblockcount", "[]").await.unwrap();
    let bad = good.with_creds(Creds::Fixed("u:wrong".into()));
    let r = bad.call_raw(None, "getblockcount", "[]").await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (401, ""));
    let anon = reqwest::Client::new()
        .post(standin.url())
        .body(r#"{"id":1,"method":"getblockcount"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    assert_eq!(
        anon.headers().get("www-authenticate").unwrap(),
        "Basic realm=\"jsonrpc\""
    );
    assert_eq!(
        standin.calls().len(),
        1,
        "only the authenticated call is recorded"
    );
    standin.stop().await;
}

#[tokio::test]
async fn wallet_routing_follows_core() {
    let standin = StandIn::start(StandInOptions {
        wallets: vec!["pool".into(), "other".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let rpc = RpcClient::for_standin(&standin);
    let e = rpc_error(rpc.call(None, "getbalance", "[]").await.unwrap_err());
    assert_eq!(
        e,
        (
            500,
            -19,
            "Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path).".into()
        )
    );
    let e = rpc_error(
        rpc.call(Some("nope"), "getbalance", "[]")
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e,
        (
            500,
            -18,
            "Requested wallet does not exist or is not loaded".into()
        )
    );
    let wallets = rpc.call(None, "listwallets", "[]").await.unwrap();
    assert_eq!(wallets, J::Arr(vec![J::str("other"), J::str("pool")]));
    // Node methods work on a wallet path too.
    rpc.call(Some("pool"), "getblockcount", "[]").await.unwrap();
    let e = rpc_error(rpc.call(None, "no_such_method", "[]").await.unwrap_err());
    assert_eq!(e, (404, -32601, "Method not found".into()));
    // createwallet / unloadwallet / loadwallet.
    let c = rpc.call(None, "createwallet", r#"["cold"]"#).await.unwrap();
    assert_eq!(c.get("name"), Some(&J::str("cold")));
    rpc.call(None, "unloadwallet", r#"["other"]"#)
        .await
        .unwrap();
    rpc.call(None, "unloadwallet", r#"["cold"]"#).await.unwrap();
    // One wallet left: "/" reaches it.
    let b = rpc.call(None, "getbalance", "[]").await.unwrap();
    assert_eq!(amount_sat(&b), 50 * 100_000_000);
    rpc.call(None, "loadwallet", r#"["cold"]"#).await.unwrap();
    standin.stop().await;
}

#[tokio::test]
async fn envelopes_batches_and_named_params() {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    let rpc = RpcClient::for_standin(&standin);
    // Any JSON id is echoed; 2.0 requests get Core's 1.0-style reply.
    let r = rpc
        .raw(
            "/",
            r#"{"jsonrpc":"2.0","id":{"n":[1,"x"]},"method":"getblockcount","params":[]}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        r.body,
        "{\"result\":101,\"error\":null,\"id\":{\"n\":[1,\"x\"]}}\n"
    );
    let r = rpc.raw("/", "{not json").await.unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.error(), Some((-32700, "Parse error".into())));
    // A batch: one reply per call, HTTP 200 even with errors inside.
    let r = rpc
        .raw(
            "/wallet/pool",
            r#"[{"id":1,"method":"getblockcount"},{"id":2,"method":"nope"},{"id":3,"method":"getbalance","params":[]}]"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let items = r.json().unwrap();
    let items = items.as_arr().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].get("result"), Some(&J::int(101)));
    assert_eq!(
        items[1]
            .get("error")
            .unwrap()
            .get("code")
            .and_then(J::as_i64),
        Some(-32601)
    );
    assert_eq!(
        amount_sat(items[2].get("result").unwrap()),
        50 * 100_000_000
    );
    // Named parameters.
    let a = standin.new_external_address(AddrKind::P2wpkh);
    let txid = rpc
        .pool(
            "sendmany",
            &format!(r#"{{"amounts":{{"{a}":"0.00012345"}},"comment":"named","fee_rate":1.5}}"#),
        )
        .await
        .unwrap();
    let t = rpc
        .pool(
            "gettransaction",
            &format!(r#"{{"txid":"{}"}}"#, txid.as_str().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(t.get("comment"), Some(&J::str("named")));
    assert_eq!(standin.received_by(&a), 12_345);
    assert!(
        standin
            .calls()
            .iter()
            .any(|c| c.method == "sendmany" && c.wallet.as_deref() == Some("pool"))
    );
    standin.stop().await;
}

#[tokio::test]
async fn money_parameters_are_checked_like_core() {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    let rpc = RpcClient::for_standin(&standin).with_timeout(Duration::from_secs(10));
    let a = standin.new_external_address(AddrKind::P2wpkh);
    let b = standin.new_external_address(AddrKind::P2tr);
    let send = |amounts: String| {
        let rpc = rpc.clone();
        async move {
            rpc.pool(
                "sendmany",
                &format!(r#"["",{amounts},0,"",[],true,null,"unset",2]"#),
            )
            .await
        }
    };
    let cases: Vec<(String, (i64, String))> = vec![
        (format!(r#"{{"{a}":1e-09}}"#), (-3, "Invalid amount".into())),
        (
            format!(r#"{{"{a}":0.000000001}}"#),
            (-3, "Invalid amount".into()),
        ),
        (
            format!(r#"{{"{a}":0}}"#),
            (-3, "Invalid amount for send".into()),
        ),
        (
            format!(r#"{{"{a}":-0.1}}"#),
            (-3, "Amount out of range".into()),
        ),
        (format!(r#"{{"{a}":"abc"}}"#), (-3, "Invalid amount".into())),
        (
            format!(r#"{{"{a}":true}}"#),
            (-3, "Amount is not a number or string".into()),
        ),
        (
            r#"{"notanaddress":0.001}"#.to_string(),
            (-5, "Invalid Bitcoin address: notanaddress".into()),
        ),
        (
            r#"{"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq":0.001}"#.to_string(),
            (
                -5,
                "Invalid Bitcoin address: bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq".into(),
            ),
        ),
        (
            format!(r#"{{"{a}":0.001,"{b}":0.001,"{a}":0.002}}"#),
            (-8, format!("Invalid parameter, duplicated address: {a}")),
        ),
        (
            format!(r#"{{"{a}":100000}}"#),
            (-6, "Insufficient funds".into()),
        ),
        (
            format!(r#"{{"{a}":0.00000100}}"#),
            (-6, "Transaction amount too small".into()),
        ),
    ];
    for (amounts, want) in cases {
        let (status, code, message) = rpc_error(send(amounts.clone()).await.unwrap_err());
        assert_eq!((code, message), want, "{amounts}");
        assert_eq!(status, 500);
    }
    let e = rpc_error(
        rpc.pool(
            "sendmany",
            &format!(r#"["",{{"{a}":0.001}},0,"x",[],true,6,"unset",2]"#),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.1, -8);
    assert!(e.2.starts_with("Cannot specify both conf_target and fee_rate"));
    // Nothing above spent anything.
    assert_eq!(standin.received_by(&a) + standin.received_by(&b), 0);
    assert!(
        rpc.call(None, "getrawmempool", "[]")
            .await
            .unwrap()
            .as_arr()
            .unwrap()
            .is_empty()
    );
    // Exactly 8 decimals accepted, with trailing zeros; subtractfeefrom works.
    let txid = rpc
        .pool(
            "sendmany",
            &format!(r#"["",{{"{a}":0.00100000000}},0,"",["{a}"],true,null,"unset",2]"#),
        )
        .await
        .unwrap();
    let t = rpc
        .pool(
            "gettransaction",
            &format!(r#"["{}"]"#, txid.as_str().unwrap()),
        )
        .await
        .unwrap();
    let fee = -amount_sat(t.get("fee").unwrap());
    assert_eq!(
        standin.received_by(&a),
        100_000 - fee as u64,
        "fee subtracted from the output"
    );
    standin.stop().await;
}

#[tokio::test]
async fn locked_coins_are_not_selected() {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    let rpc = RpcClient::for_standin(&standin);
    let a = standin.new_external_address(AddrKind::P2wpkh);
    let coins = rpc.pool("listunspent", "[]").await.unwrap();
    let coins = coins.as_arr().unwrap();
    assert_eq!(coins.len(), 1, "one mature coinbase after 101 blocks");
    let txid = coins[0]
        .get("txid")
        .and_then(J::as_str)
        .unwrap()
        .to_string();
    let lock = format!(r#"[false,[{{"txid":"{txid}","vout":0}}]]"#);
    assert_eq!(rpc.pool("lockunspent", &lock).await.unwrap(), J::Bool(true));
    let e = rpc_error(rpc.pool("lockunspent", &lock).await.unwrap_err());
    assert_eq!(
        e,
        (500, -8, "Invalid parameter, output already locked".into())
    );
    let listed = rpc.pool("listlockunspent", "[]").await.unwrap();
    assert_eq!(listed.as_arr().unwrap().len(), 1);
    let pay = format!(r#"["",{{"{a}":0.001}},0,"",[],true,null,"unset",2]"#);
    let e = rpc_error(rpc.pool("sendmany", &pay).await.unwrap_err());
    assert_eq!(e, (500, -6, "Insufficient funds".into()));
    let unlock = format!(r#"[true,[{{"txid":"{txid}","vout":0}}]]"#);
    rpc.pool("lockunspent", &unlock).await.unwrap();
    rpc.pool("sendmany", &pay).await.unwrap();
    assert_eq!(standin.received_by(&a), 100_000);
    standin.stop().await;
}
