//! `pooldesk [--socket PATH] [--snapshot]`: the admin TUI of `pooldeskd`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pooldesk_proto::control::{PROTOCOL_VERSION, Request, Response};
use pooldesk_tui::app::App;
use pooldesk_tui::client::{self, Backoff, EVENT_QUEUE};
use pooldesk_tui::terminal::{TerminalGuard, install_panic_hook};

/// Where systemd's `RuntimeDirectory=pooldeskd` puts the socket.
const SYSTEM_SOCKET: &str = "/run/pooldeskd/control.sock";
/// `pooldeskd --demo` and a plain `pooldeskd` in this directory.
const LOCAL_SOCKET: &str = "./pooldesk-data/control.sock";

#[derive(Debug, Parser)]
#[command(
    name = "pooldesk",
    version = concat!(env!("CARGO_PKG_VERSION"), " (control protocol 1)"),
    about = "Terminal client of pooldeskd: hashrate, miners, withdrawals, PSBT review, faucet, audit.",
    after_help = "Default socket: /run/pooldeskd/control.sock if it exists, else ./pooldesk-data/control.sock.\nPress ? in the TUI for every key."
)]
struct Cli {
    /// Control socket of pooldeskd.
    #[arg(long, env = "POOLDESK_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the daemon's snapshot as JSON and exit (no TUI).
    #[arg(long)]
    snapshot: bool,
}

fn default_socket() -> PathBuf {
    if Path::new(SYSTEM_SOCKET).exists() {
        PathBuf::from(SYSTEM_SOCKET)
    } else {
        PathBuf::from(LOCAL_SOCKET)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    debug_assert_eq!(PROTOCOL_VERSION, 1, "update the --version text");
    let socket = cli.socket.clone().unwrap_or_else(default_socket);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pooldesk: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.snapshot {
        return runtime.block_on(print_snapshot(&socket));
    }
    match runtime.block_on(tui(socket)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pooldesk: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn print_snapshot(socket: &Path) -> ExitCode {
    match client::one_shot(socket, Request::Snapshot, Duration::from_secs(10)).await {
        Ok((_, Response::Snapshot(snapshot))) => match serde_json::to_string_pretty(&snapshot) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pooldesk: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(_) => {
            eprintln!("pooldesk: the daemon answered snapshot with something else");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pooldesk: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn tui(socket: PathBuf) -> anyhow::Result<()> {
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(EVENT_QUEUE);
    let requests = client::spawn(socket.clone(), Backoff::default(), events_tx);
    let mut app = App::new(socket.display().to_string());
    install_panic_hook();
    let mut guard = TerminalGuard::enter()?;
    let input = crossterm::event::EventStream::new();
    let result = pooldesk_tui::run::run(
        &mut guard.terminal,
        &mut app,
        input,
        requests,
        events_rx,
        shutdown_signal(),
    )
    .await;
    drop(guard);
    result?;
    Ok(())
}

/// SIGTERM / SIGHUP (the SSH session went away) end the UI cleanly.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}
