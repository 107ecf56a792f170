//! `pooldeskd`: the daemon, and its maintenance commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use pooldeskd::config::{CliOverrides, Config};

#[derive(Parser)]
#[command(
    name = "pooldeskd",
    version,
    about = "The back office of a Bitcoin mining pool: ledger, share ingest, payouts, faucet"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    /// HTTP listen address (`http.listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// Control socket path (`control.socket`).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Run on embedded defaults with a simulated wallet and simulated workers.
    #[arg(long)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct Common {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (ledger, generated secrets, control socket).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Check every ledger invariant; exit 1 naming what is wrong.
    Verify {
        /// Also compare the ledger's payouts and faucet payments (txids,
        /// outputs, amounts, fees) with the node wallet's transactions, and
        /// look for pooldesk-tagged wallet sends the ledger does not know.
        #[arg(long)]
        wallet: bool,
    },
    /// Block statements (`GET /api/blocks/{hash}/statement`).
    Statement {
        #[command(subcommand)]
        action: StatementAction,
    },
    /// Consistent online copy of the ledger (safe while the daemon runs).
    Backup {
        /// Where to write the copy.
        path: PathBuf,
    },
    /// Ask a running daemon's /healthz: exit 0 when it answers 200, else 1
    /// (the container image's HEALTHCHECK; the image has no shell or curl).
    Healthcheck {
        /// Address to ask (default: `http.listen` from the configuration
        /// and environment; 0.0.0.0 and [::] are asked on loopback).
        #[arg(long = "http", value_name = "ADDR:PORT")]
        target: Option<SocketAddr>,
        /// Seconds the whole check may take.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Sign and send one pool report (like the seed's tools/sign_report.py).
    SignReport {
        /// Report secret (or REPORT_SHARED_SECRET in the environment).
        #[arg(long, env = "REPORT_SHARED_SECRET", hide_env_values = true)]
        secret: String,
        /// Daemon base URL or the full /api/report_share URL.
        #[arg(long)]
        url: String,
        #[arg(long)]
        miner: String,
        #[arg(long)]
        worker: String,
        #[arg(long)]
        shares: u64,
        #[arg(long)]
        difficulty: Option<u64>,
    },
    /// Follow pool software's share logs and send every share to
    /// /api/v2/shares exactly once (see README).
    Bridge {
        #[command(subcommand)]
        source: pooldeskd::bridge::BridgeSource,
    },
    /// Simulated miners posting signed reports (like tools/worker_simulator.py).
    Simulate {
        #[arg(long)]
        url: String,
        #[arg(long, env = "REPORT_SHARED_SECRET", hide_env_values = true)]
        secret: String,
        /// Number of miners.
        #[arg(long, default_value_t = 10)]
        miners: u32,
        /// Workers per miner.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Reports per second, all miners together.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        duration: Option<u64>,
        /// Miner id prefix.
        #[arg(long, default_value = "sim-miner-")]
        prefix: String,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

#[derive(Subcommand)]
enum StatementAction {
    /// Recompute a saved statement's split and share hash from its own
    /// data; exit 1 naming what is wrong.
    Verify {
        /// The statement JSON as served.
        file: PathBuf,
    },
}

fn statement_verify(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("statement verify: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let statement: pooldesk_proto::model::BlockStatement = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "statement verify: {}: not a block statement: {e}",
                file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let problems = pooldeskd::blocks::split::check_statement(&statement);
    if problems.is_empty() {
        println!(
            "statement of block {} is consistent: {} shares, {} miners, {} msat distributed",
            statement.block.hash,
            statement.shares.len(),
            statement.parts.len(),
            statement.distributed_msat
        );
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            println!("{problem}");
        }
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let overrides = CliOverrides {
        config_file: cli.common.config.clone(),
        data_dir: cli.common.data_dir.clone(),
        http: cli.http,
        socket: cli.socket.clone(),
        demo: cli.demo,
    };
    match cli.command {
        None => run_daemon(&overrides, env),
        Some(Command::Verify { wallet }) => {
            with_config(&overrides, &env, |config| verify(config, wallet))
        }
        Some(Command::Statement {
            action: StatementAction::Verify { file },
        }) => statement_verify(&file),
        Some(Command::Bridge { source }) => with_config(&overrides, &env, |config| {
            pooldeskd::bridge::run_cli(config, source)
        }),
        Some(Command::Backup { path }) => {
            with_config(&overrides, &env, |config| backup(config, &path))
        }
        Some(Command::Healthcheck { target, timeout }) => {
            healthcheck(&overrides, &env, target, timeout)
        }
        Some(Command::SignReport {
            secret,
            url,
            miner,
            worker,
            shares,
            difficulty,
        }) => tool(async move {
            let (status, body) = pooldeskd::tools::sign_report(
                &url,
                secret.as_bytes(),
                &miner,
                &worker,
                shares,
                difficulty,
            )
            .await?;
            println!("{status} {body}");
            Ok(if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }),
        Some(Command::Simulate {
            url,
            secret,
            miners,
            workers,
            rate,
            duration,
            prefix,
            concurrency,
        }) => tool(async move {
            let stop = tokio_util::sync::CancellationToken::new();
            let ctrl_c = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                ctrl_c.cancel();
            });
            let stats = Arc::new(pooldeskd::tools::SimulationStats::default());
            let sim = pooldeskd::tools::Simulation {
                url,
                miners,
                workers_per_miner: workers,
                rate_per_s: rate,
                miner_prefix: prefix,
                duration: duration.map(Duration::from_secs),
                concurrency,
            };
            pooldeskd::tools::simulate(sim, secret.into_bytes(), stop, stats.clone()).await?;
            use std::sync::atomic::Ordering::Relaxed;
            println!(
                "accepted {} refused {} failed {}",
                stats.accepted.load(Relaxed),
                stats.refused.load(Relaxed),
                stats.failed.load(Relaxed)
            );
            Ok(ExitCode::SUCCESS)
        }),
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let journald = match config.log.format.as_str() {
        "journald" => true,
        "auto" => std::env::var_os("JOURNAL_STREAM").is_some(),
        _ => false,
    };
    if journald && let Ok(layer) = tracing_journald::layer() {
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .init();
        return;
    }
    if config.log.format == "json" {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .init();
    }
}

fn load(overrides: &CliOverrides, env: &[(String, String)]) -> Result<Config, ExitCode> {
    Config::load(overrides, env).map_err(|e| {
        eprintln!("pooldeskd: {e}");
        ExitCode::from(2)
    })
}

fn run_daemon(overrides: &CliOverrides, env: Vec<(String, String)>) -> ExitCode {
    let config = match load(overrides, &env) {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pooldeskd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pooldeskd::daemon::run(config, env)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "pooldeskd failed");
            eprintln!("pooldeskd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn with_config(
    overrides: &CliOverrides,
    env: &[(String, String)],
    f: impl FnOnce(&Config) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let config = match load(overrides, env) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match f(&config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pooldeskd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn verify(config: &Config, with_wallet: bool) -> anyhow::Result<ExitCode> {
    let path = config.ledger_path();
    let conn = pooldeskd::store::open_read_only(&path)?;
    let violations = pooldeskd::verify::run(&conn, config.ingest.retention_days)?;
    let differences = if with_wallet {
        wallet_differences(config, &conn)?
    } else {
        Vec::new()
    };
    if violations.is_empty() && differences.is_empty() {
        println!(
            "ok: ledger {} verified ({}){}",
            path.display(),
            pooldeskd::verify::summary(&conn)?,
            if with_wallet {
                "; it agrees with the node wallet"
            } else {
                ""
            }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for violation in &violations {
            println!("VIOLATION: {violation}");
        }
        for difference in &differences {
            println!("WALLET DIFFERENCE: {difference}");
        }
        println!(
            "{} invariant violations and {} wallet differences in {}",
            violations.len(),
            differences.len(),
            path.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `verify --wallet`: the ledger's payments against the configured node.
fn wallet_differences(config: &Config, conn: &rusqlite::Connection) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        config.wallet_backend == pooldeskd::config::WalletBackendKind::Bitcoind,
        "verify --wallet needs wallet_backend = \"bitcoind\" (the simulated wallet has nothing to compare)"
    );
    let payments = pooldeskd::reconcile::ledger_payments(conn)?;
    let wallet = pooldeskd::wallet::bitcoind::BitcoindWallet::new(
        &config.bitcoind,
        config.network,
        std::time::Duration::from_secs(config.payouts.rpc_timeout_s),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(pooldeskd::reconcile::audit(&payments, &wallet))
        .map_err(|e| anyhow::anyhow!("cannot compare with the node wallet: {e}"))
}

fn backup(config: &Config, target: &std::path::Path) -> anyhow::Result<ExitCode> {
    pooldeskd::store::backup_to(&config.ledger_path(), target)?;
    let conn = pooldeskd::store::open_read_only(target)?;
    let violations = pooldeskd::verify::run(&conn, config.ingest.retention_days)?;
    anyhow::ensure!(
        violations.is_empty(),
        "the backup copy fails verification: {}",
        violations[0]
    );
    println!(
        "backup written to {} ({})",
        target.display(),
        pooldeskd::verify::summary(&conn)?
    );
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 only for a 200 from /healthz; every other outcome (no answer,
/// 503, an unreadable configuration) is 1, the status container engines
/// read as "unhealthy".
fn healthcheck(
    overrides: &CliOverrides,
    env: &[(String, String)],
    target: Option<SocketAddr>,
    timeout: u64,
) -> ExitCode {
    let listen = match target.or(overrides.http) {
        Some(addr) => addr,
        None => match Config::load(overrides, env) {
            Ok(config) => config.http.listen,
            Err(e) => {
                eprintln!("pooldeskd healthcheck: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let addr = pooldeskd::healthcheck::target(listen);
    match pooldeskd::healthcheck::check(addr, Duration::from_secs(timeout.max(1))) {
        Ok(answer) if answer.healthy() => {
            println!(
                "healthy: http://{addr}/healthz {} {}",
                answer.status, answer.body
            );
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            println!(
                "unhealthy: http://{addr}/healthz {} {}",
                answer.status, answer.body
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("unhealthy: http://{addr}/healthz: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn tool(fut: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pooldeskd: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pooldeskd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
