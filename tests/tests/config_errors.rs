//! Bad configuration stops start-up with one line naming the problem.

use std::process::Command;

use pooldesk_e2e::daemon::bin;

fn run(config: Option<&str>, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("pooldeskd"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.arg("--data-dir").arg(dir.path().join("data"));
    cmd.arg("--http").arg("127.0.0.1:1");
    match config {
        Some(text) => {
            let path = dir.path().join("pooldesk.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        None => {
            cmd.arg("--config").arg(dir.path().join("missing.toml"));
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A daemon that wrongly accepts the configuration would run forever:
    // after a deadline long enough for a loaded machine it is stopped and
    // counted as started (so the refusal tests fail instead of hanging).
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (
        status.is_some_and(|s| s.success()) || status.is_none(),
        stderr,
    )
}

fn assert_one_line_naming(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected exactly one line, got:\n{stderr}");
    assert!(
        lines[0].contains(needle),
        "{needle:?} not named in: {}",
        lines[0]
    );
}

#[test]
fn missing_config_file_is_named() {
    let (ok, stderr) = run(None, &[]);
    assert!(!ok);
    assert_one_line_naming(&stderr, "missing.toml");
}

#[test]
fn unknown_key_is_named() {
    let (ok, stderr) = run(Some("[payouts]\nmin_payout = \"0.1\"\n"), &[]);
    assert!(!ok);
    assert_one_line_naming(&stderr, "payouts.min_payout");
}

#[test]
fn malformed_value_is_named() {
    let (ok, stderr) = run(Some("[http]\nmax_body_bytes = \"big\"\n"), &[]);
    assert!(!ok);
    assert_one_line_naming(&stderr, "http.max_body_bytes");
    let (ok, stderr) = run(Some("[payouts]\ndaily_cap_btc = \"1.123456789\"\n"), &[]);
    assert!(!ok);
    assert_one_line_naming(&stderr, "payouts.daily_cap_btc");
}

#[test]
fn toml_syntax_error_is_one_line() {
    let (ok, stderr) = run(Some("[http\nlisten = 1\n"), &[]);
    assert!(!ok);
    assert_one_line_naming(&stderr, "line 1");
}

#[test]
fn unknown_environment_override_is_named() {
    let (ok, stderr) = run(Some(""), &[("POOLDESK_PAYOUTS_MAX_FEE", "3")]);
    assert!(!ok);
    assert_one_line_naming(&stderr, "payouts.max_fee");
    let (ok, stderr) = run(
        Some(""),
        &[("MINING_PAYOUT_RATE_PER_SHARE", "0.000000000001")],
    );
    assert!(!ok);
    assert_one_line_naming(&stderr, "ingest.rate_per_share_btc");
}

#[test]
fn the_simulated_wallet_is_refused_on_mainnet() {
    let (ok, stderr) = run(
        Some("network = \"mainnet\"\nwallet_backend = \"simulated\"\n"),
        &[],
    );
    assert!(!ok, "pooldeskd started a simulated wallet on mainnet");
    assert_one_line_naming(&stderr, "the simulated wallet cannot run on mainnet");
    assert_one_line_naming(&stderr, "wallet_backend");
    // The same through the environment override of the network.
    let (ok, stderr) = run(
        Some("wallet_backend = \"simulated\"\n"),
        &[("POOLDESK_NETWORK", "mainnet")],
    );
    assert!(!ok);
    assert_one_line_naming(&stderr, "the simulated wallet cannot run on mainnet");
}
