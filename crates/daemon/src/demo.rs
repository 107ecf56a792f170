//! Demo mode (`pooldeskd --demo`): simulated workers report shares for a
//! handful of miners every second through the daemon's own HTTP port and
//! report secret — the same signed path, the same ledger path, as a real
//! pool. Demo miners get personal keys and payout addresses and, now and
//! then, ask for a withdrawal with a signed request, so the admin has
//! something to approve. Everything it does is labelled simulated.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::audit::Actor;
use crate::tools::{Simulation, SimulationStats, simulate};

const MINER_PREFIX: &str = "demo-miner-";

pub async fn run(app: App) {
    let listen = app.config.http.listen;
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        listen.ip().to_string()
    };
    let url = format!("http://{host}:{}", listen.port());
    let miners = app.config.demo.miners.max(1);
    let workers = app.config.demo.workers_per_miner.max(1);
    tracing::warn!(miners, workers, url = %url, "demo: simulated workers start reporting");
    // Let the listener come up first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sim = Simulation {
        url: url.clone(),
        miners,
        workers_per_miner: workers,
        rate_per_s: f64::from(miners * workers),
        miner_prefix: MINER_PREFIX.into(),
        duration: None,
        concurrency: 8,
    };
    let stats = Arc::new(SimulationStats::default());
    let reporting = tokio::spawn(simulate(
        sim,
        app.secrets.report_secret.expose().to_vec(),
        app.shutdown.clone(),
        stats,
    ));
    requester(app.clone(), url, miners).await;
    if let Ok(Err(e)) = reporting.await {
        tracing::error!(error = %e, "demo workers stopped");
    }
}

/// Gives demo miners keys and payout addresses, then asks for a withdrawal
/// from the richest miner without an open one every 20 seconds.
async fn requester(app: App, url: String, miners: u32) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "demo: no HTTP client");
            return;
        }
    };
    let network = crate::wallet::to_bitcoin_network(app.config.network);
    let mut keys = Vec::new();
    // Wait until the first reports created the miners.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..miners {
        let id = format!("{MINER_PREFIX}{i}");
        let key = match app.miners.get(id.clone()).await {
            Ok(Some(record)) if record.key_version.is_some() => crate::miners::derive_api_key(
                app.secrets.master_key.expose(),
                &id,
                record.key_version.unwrap_or(1),
            ),
            _ => match app.miners.issue_key(Actor::System, id.clone(), true).await {
                Ok(issued) => issued.api_key,
                Err(e) => {
                    tracing::warn!(miner = %id, error = %e, "demo: cannot issue a key");
                    continue;
                }
            },
        };
        let address = demo_address(&id, network);
        let body = serde_json::json!({"miner_id": id, "address": address, "ts": crate::clock::now_s(),
                "event_id": format!("demo-address-{}", rand::random::<u64>())});
        if let Err(e) =
            signed_post(&client, &url, "/api/miner/payout_address", &id, &key, &body).await
        {
            tracing::warn!(miner = %id, error = %e, "demo: cannot set a payout address");
        }
        keys.push((id, key));
    }
    let min_sat = app.config.payouts.min_payout_btc.sat();
    let mut tick = tokio::time::interval(Duration::from_secs(20));
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut best: Option<(i64, &(String, String))> = None;
        for entry in &keys {
            let Ok(detail) = crate::views::miner_detail(&app, entry.0.clone()).await else {
                continue;
            };
            let open = detail.withdrawals.iter().any(|w| {
                ["requested", "approved", "batched", "needs_attention"].contains(&w.state.as_str())
            });
            let balance_sat = detail.row.balance_msat / 1000;
            if !open && balance_sat >= min_sat && best.is_none_or(|(b, _)| balance_sat > b) {
                best = Some((balance_sat, entry));
            }
        }
        let Some((balance_sat, (id, key))) = best else {
            continue;
        };
        let amount_sat = (balance_sat * rand::Rng::gen_range(&mut rand::thread_rng(), 50..90)
            / 100)
            .max(min_sat);
        let body = serde_json::json!({
            "miner_id": id,
            "amount": pooldesk_proto::amount::format_btc(amount_sat),
            "event_id": crate::tools::new_event_id("demo-withdraw"),
            "ts": crate::clock::now_s(),
        });
        match signed_post(&client, &url, "/api/withdraw", id, key, &body).await {
            Ok(status) => {
                tracing::info!(miner = %id, amount_sat, status, "demo: withdrawal requested")
            }
            Err(e) => tracing::warn!(miner = %id, error = %e, "demo: withdrawal request failed"),
        }
    }
}

/// A fixed address per demo miner, derived from its id: not the simulated
/// wallet's own, so payouts really leave it.
fn demo_address(miner_id: &str, network: bitcoin::Network) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("pooldesk demo payout {miner_id}").as_bytes());
    let secret = bitcoin::secp256k1::SecretKey::from_slice(&digest).expect("valid key");
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let public = bitcoin::CompressedPublicKey(secret.public_key(&secp));
    bitcoin::Address::p2wpkh(&public, network).to_string()
}

async fn signed_post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    user: &str,
    key: &str,
    body: &serde_json::Value,
) -> anyhow::Result<u16> {
    let bytes = serde_json::to_vec(body)?;
    let canonical = pooldesk_proto::canonical::canonicalize(&bytes)?;
    let signature =
        pooldesk_proto::sig::sign_personal_request(key.as_bytes(), "POST", path, &canonical);
    let response = client
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .header("x-user-id", user)
        .header("x-signature", signature)
        .header("x-timestamp", crate::clock::now_s().to_string())
        .body(canonical.into_bytes())
        .send()
        .await?;
    Ok(response.status().as_u16())
}
