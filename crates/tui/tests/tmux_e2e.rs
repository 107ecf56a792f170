//! End to end in a real terminal: `pooldeskd --demo` and `pooldesk` inside
//! tmux, driven with `send-keys`, read with `capture-pane`, and checked
//! through the daemon itself (a minimal control client), not the screen
//! alone.
//!
//! 1. The TUI connects and shows live data.
//! 2. If the daemon serves withdrawals: go to Withdrawals, filter
//!    `requested`, press `a` on the oldest request, check the confirmation
//!    repeats its full address, press `y`; then ask the daemon: the
//!    withdrawal is no longer `requested`, and the audit log has an
//!    `approve` entry by `uid:<our uid>`, and the row itself says it was
//!    decided by that uid. The daemon serves withdrawals: any error fails.
//! 3. SIGTERM the daemon: the TUI shows the reconnecting banner; restart it
//!    on the same data dir and socket: the TUI is live again by itself.
//!
//! Without tmux the test is skipped on stderr and recorded in
//! `$POOLDESK_SKIP_LOG` (`tests/src/skip.rs`); with `CI=true` it fails.
//! `E2E_POOLDESKD=/path/to/pooldeskd` tests that daemon binary
//! instead of building the workspace's.
//! Every process started is killed by a guard; every wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "../../../tests/src/skip.rs"]
mod skip;

use pooldesk_proto::control::{
    ClientFrame, Hello, MAX_FRAME_BYTES, Outcome, PROTOCOL_VERSION, Request, RequestFrame,
    Response, ServerFrame, decode_server_frame, encode_frame,
};
use pooldesk_proto::model::{ListWithdrawals, WithdrawalRow};

/// Kills what the test started, whatever happens.
struct Guard {
    daemon: Option<Child>,
    tmux_socket: String,
    tmux_started: bool,
    /// Printed when the test fails, to say what the daemon saw.
    daemon_log: PathBuf,
}

impl Guard {
    fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop_daemon();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.daemon_log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of the pooldeskd log ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        if self.tmux_started {
            let _ = Command::new("tmux")
                .args(["-L", &self.tmux_socket, "kill-server"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // tmux leaves its socket file behind; it is ours, remove it.
            let base = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
            let _ = std::fs::remove_file(
                Path::new(&base)
                    .join(format!("tmux-{}", uid()))
                    .join(&self.tmux_socket),
            );
        }
    }
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `target/debug`, from this test binary's path (`target/debug/deps/…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .to_path_buf()
}

/// `E2E_POOLDESKD` if set (a prebuilt or release daemon), else builds
/// (or confirms up to date) `pooldeskd` with the cargo running this test;
/// cargo releases its build lock while tests run.
fn daemon_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("E2E_POOLDESKD") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "E2E_POOLDESKD: no file at {}",
            path.display()
        );
        return path;
    }
    let path = target_dir().join("pooldeskd");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "-q", "--workspace", "--bins"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    match built {
        Ok(s) if s.success() => {}
        other => {
            assert!(
                path.exists(),
                "cannot build pooldeskd ({other:?}) and no binary at {}",
                path.display()
            );
            eprintln!("warning: building pooldeskd failed ({other:?}); using the existing binary");
        }
    }
    assert!(path.exists(), "no pooldeskd at {}", path.display());
    path
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn start_daemon(bin: &Path, data: &Path, socket: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("daemon log");
    let err = log.try_clone().expect("log clone");
    let mut command = Command::new(bin);
    // The daemon refuses unknown POOLDESK_* variables, and the developer's
    // own settings must not leak into the daemon under test.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("POOLDESK_") {
            command.env_remove(name);
        }
    }
    command
        .arg("--demo")
        .arg("--http")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(data)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .expect("start pooldeskd")
}

/// Polls `check` until it returns `Some`, or panics with `what` at the deadline.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---- a minimal control client (pooldesk-proto only) -------------------------

struct Control {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Control {
    fn connect(socket: &Path) -> std::io::Result<Control> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_write_timeout(Some(Duration::from_secs(60)))?;
        let mut control = Control {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next_id: 1,
        };
        let hello = ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            client: "pooldesk tmux e2e".into(),
        });
        control
            .writer
            .write_all(&encode_frame(&hello).map_err(std::io::Error::other)?)?;
        match control.read_frame()? {
            ServerFrame::Welcome(_) => Ok(control),
            other => Err(std::io::Error::other(format!("no welcome: {other:?}"))),
        }
    }

    fn read_frame(&mut self) -> std::io::Result<ServerFrame> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(MAX_FRAME_BYTES as u64)
            .read_until(b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Err(std::io::Error::other(
                "connection closed or frame too large",
            ));
        }
        line.pop();
        decode_server_frame(&line).map_err(std::io::Error::other)
    }

    fn request(&mut self, body: Request) -> Outcome {
        let id = self.next_id;
        self.next_id += 1;
        let frame = ClientFrame::Request(RequestFrame { id, body });
        self.writer
            .write_all(&encode_frame(&frame).expect("encode"))
            .expect("send request");
        loop {
            match self.read_frame().expect("answer from the daemon") {
                ServerFrame::Response(r) if r.id == id => return r.outcome,
                _ => continue,
            }
        }
    }

    fn withdrawals(&mut self, state: Option<&str>) -> Result<Vec<WithdrawalRow>, String> {
        match self.request(Request::ListWithdrawals(ListWithdrawals {
            state: state.map(str::to_string),
            offset: 0,
            limit: Some(1000),
        })) {
            Outcome::Ok(Response::Withdrawals(page)) => Ok(page.rows),
            Outcome::Ok(other) => Err(format!("unexpected answer {other:?}")),
            Outcome::Err(e) => Err(e.code),
        }
    }
}

// ---- tmux -----------------------------------------------------------------------

struct Tmux<'a> {
    socket: &'a str,
    session: &'a str,
}

impl Tmux<'_> {
    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", self.socket, "send-keys", "-t", self.session])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success(), "tmux send-keys {keys:?}");
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", self.socket, "capture-pane", "-p", "-t", self.session])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_screen(&self, what: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// True when `text` contains `id` as a whole number (`withdrawal:12` has 12,
/// `#120` does not).
fn mentions_id(text: &str, id: i64) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|token| token == id.to_string())
}

#[test]
fn approve_in_tmux_and_reconnect_after_daemon_restart() {
    if !tmux_available() {
        skip::skip_or_fail(
            "tmux_e2e",
            "tmux is not installed (apt-get install tmux; contrib/test.sh installs it)",
        );
        return;
    }
    let daemon_bin = daemon_binary();
    let tui_bin = env!("CARGO_BIN_EXE_pooldesk");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let socket = dir.path().join("control.sock");
    let log = dir.path().join("pooldeskd.log");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmux_socket = format!("pooldesk-e2e-{}-{nanos}", std::process::id());
    let session = "pooldesk";
    let mut guard = Guard {
        daemon: Some(start_daemon(&daemon_bin, &data, &socket, &log)),
        tmux_socket: tmux_socket.clone(),
        tmux_started: false,
        daemon_log: log.clone(),
    };

    let mut control = wait_for(
        "the daemon's control socket",
        Duration::from_secs(30),
        || Control::connect(&socket).ok(),
    );

    // The TUI in a real terminal, 120×40, on a tmux server of its own.
    guard.tmux_started = true;
    let status = Command::new("tmux")
        .args([
            "-L",
            &tmux_socket,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
        ])
        .arg(format!("{tui_bin} --socket {}", socket.display()))
        .env("TERM", "xterm-256color")
        .status()
        .expect("tmux new-session");
    assert!(status.success(), "tmux new-session");
    let tmux = Tmux {
        socket: &tmux_socket,
        session,
    };
    tmux.wait_screen("the TUI to be live", Duration::from_secs(30), |s| {
        s.contains("live ") && s.contains("uid:") && s.contains("Pool")
    });

    // ---- approval, checked through the daemon --------------------------------
    match control.withdrawals(None) {
        Err(code) => panic!("list_withdrawals failed: {code}"),
        Ok(_) => {
            let oldest = wait_for(
                "a requested withdrawal from the demo",
                // The demo needs about a minute of credits before its first
                // request; a loaded CI machine may take several.
                Duration::from_secs(300),
                || {
                    let rows = control.withdrawals(Some("requested")).ok()?;
                    rows.into_iter().min_by_key(|w| w.id)
                },
            );
            let id = oldest.id;
            tmux.keys(&["3"]);
            tmux.keys(&["f"]); // filter: requested (oldest first)
            tmux.wait_screen(
                "the requested withdrawal on the Withdrawals tab",
                Duration::from_secs(60),
                |s| s.contains("[requested]") && s.contains(&format!(">  #{id} ")),
            );
            tmux.keys(&["a"]);
            let dialog =
                tmux.wait_screen("the approval confirmation", Duration::from_secs(60), |s| {
                    s.contains("Approve withdrawals?")
                });
            assert!(
                dialog.contains(&oldest.address),
                "the confirmation must show the full address {}:\n{dialog}",
                oldest.address
            );
            assert!(dialog.contains(&format!("#{id}")), "{dialog}");
            tmux.keys(&["y"]);
            let approved = wait_for(
                "the daemon to record the approval",
                Duration::from_secs(60),
                || {
                    let row = control
                        .withdrawals(None)
                        .ok()?
                        .into_iter()
                        .find(|w| w.id == id)?;
                    (row.state != "requested").then_some(row)
                },
            );
            assert!(
                ["approved", "batched", "broadcast", "confirmed"]
                    .contains(&approved.state.as_str()),
                "withdrawal #{id} is {} after approval",
                approved.state
            );
            let actor = format!("uid:{}", uid());
            assert_eq!(
                approved.decided_by.as_deref(),
                Some(actor.as_str()),
                "decided_by of withdrawal #{id}"
            );
            let entry = wait_for(
                "an approve entry in the audit log",
                Duration::from_secs(60),
                || {
                    let Outcome::Ok(Response::Audit(page)) = control.request(Request::AuditPage {
                        before_id: None,
                        limit: Some(200),
                    }) else {
                        return None;
                    };
                    page.entries.into_iter().find(|e| {
                        e.action.starts_with("approve")
                            && (mentions_id(&e.subject, id) || mentions_id(&e.detail, id))
                    })
                },
            );
            assert_eq!(entry.actor, actor, "audited under the socket peer uid");
            tmux.wait_screen(
                "the approval result on screen",
                Duration::from_secs(60),
                |s| s.contains(&format!("approved #{id}")),
            );
        }
    }

    // ---- restart: banner, then live again ------------------------------------------
    drop(control);
    let pid = guard
        .daemon
        .as_ref()
        .map(Child::id)
        .expect("daemon running");
    // SAFETY: plain kill(2) on the child we started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    wait_for(
        "the daemon to exit on SIGTERM",
        Duration::from_secs(20),
        || guard.daemon.as_mut()?.try_wait().ok()?,
    );
    guard.daemon = None;
    tmux.wait_screen("the reconnecting banner", Duration::from_secs(60), |s| {
        s.contains("DISCONNECTED") && s.contains("reconnecting") && s.contains("STALE")
    });
    guard.daemon = Some(start_daemon(&daemon_bin, &data, &socket, &log));
    tmux.wait_screen(
        "live data after the restart",
        Duration::from_secs(30),
        |s| !s.contains("DISCONNECTED") && s.contains("live ") && s.contains("reconnected to"),
    );
    tmux.keys(&["1"]);
    tmux.wait_screen(
        "the overview with live data",
        Duration::from_secs(60),
        |s| s.contains("Pool") && s.contains("Ledger") && !s.contains("STALE"),
    );

    // Quit cleanly (answering the quit question if something is pending).
    let alive = || {
        Command::new("tmux")
            .args(["-L", &tmux_socket, "has-session", "-t", session])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    tmux.keys(&["q"]);
    // Either it exits, or it asks first: wait for whichever happens.
    let asked = wait_for(
        "pooldesk to exit or ask to quit",
        Duration::from_secs(20),
        || {
            if !alive() {
                Some(false)
            } else {
                tmux.screen().contains("Quit pooldesk?").then_some(true)
            }
        },
    );
    if asked {
        tmux.keys(&["y"]);
    }
    wait_for("pooldesk to exit", Duration::from_secs(20), || {
        (!alive()).then_some(())
    });
    guard.stop_daemon();
}
