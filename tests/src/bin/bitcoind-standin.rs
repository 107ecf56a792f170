//! `bitcoind-standin`: the regtest JSON-RPC stand-in as a process, for users
//! outside the test binary (a soak script, a TUI demo). Prints one JSON line
//! `{"url":…,"cookie":…,"pid":…}` once it listens, then serves until killed.
//! Drive it with the `standin_*` RPCs (`standin_mine`, `standin_fault`,
//! `standin_unresponsive`, `standin_received_by`,
//! `standin_new_external_address`, …).

use std::path::PathBuf;

use clap::Parser;
use pooldesk_e2e::standin::{Auth, StandIn, StandInOptions};

#[derive(Parser, Debug)]
#[command(about = "Bitcoin Core regtest JSON-RPC stand-in (test support, not a node)")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Directory for the `.cookie` file (a temporary one if omitted).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Blocks mined to the first wallet at start (101: 50 BTC spendable).
    #[arg(long = "mine", default_value_t = 101)]
    mine: u32,
    /// Wallets to load (repeatable); the first is the pool's.
    #[arg(long = "wallet")]
    wallets: Vec<String>,
    /// Fixed user instead of cookie auth (needs --rpcpassword).
    #[arg(long, requires = "rpcpassword")]
    rpcuser: Option<String>,
    #[arg(long, requires = "rpcuser")]
    rpcpassword: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let auth = match (args.rpcuser, args.rpcpassword) {
        (Some(user), Some(password)) => Auth::UserPass { user, password },
        _ => Auth::Cookie { dir: args.datadir },
    };
    let wallets = if args.wallets.is_empty() {
        vec!["pool".to_string()]
    } else {
        args.wallets
    };
    let standin = StandIn::start(StandInOptions {
        auth,
        wallets,
        initial_blocks: args.mine,
        port: args.port,
    })
    .await?;
    let line = serde_json::json!({
        "url": standin.url(),
        "cookie": standin.cookie_path(),
        "pid": std::process::id(),
    });
    println!("{line}");
    // Serve until killed (SIGTERM's default action) or interrupted.
    tokio::signal::ctrl_c().await?;
    standin.stop().await;
    Ok(())
}
