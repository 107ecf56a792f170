//! Snapshot tests of every screen, drawn into ratatui's `TestBackend` from
//! fixed data at 80×24 (the smallest terminal we support) and 160×48.
//! The snapshots hold text only, no colours: each must read right without
//! colour (labels like `[REQUESTED]`, `!` for warnings, `*` for selection).

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pooldesk_proto::control::{Outcome, Request, ResponseFrame};
use pooldesk_tui::app::{App, Tab};
use pooldesk_tui::client::ClientEvent;
use pooldesk_tui::fixtures::{self, FakeDaemon, NOW, connected_app, pump};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    let modifiers = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    KeyEvent::new(KeyCode::Char(c), modifiers)
}

fn draw(app: &mut App, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|frame| pooldesk_tui::ui::draw(frame, app))
        .expect("draw");
    terminal.backend().clone()
}

/// Builds an app at `width`, runs `setup`, and snapshots the screen.
fn check(name: &str, miners: usize, setup: impl Fn(&mut App, &mut FakeDaemon)) {
    for (width, height) in SIZES {
        let mut daemon = FakeDaemon::new(miners);
        let mut app = connected_app(&mut daemon, width);
        // A first draw sets the layout the keys act on (page sizes).
        draw(&mut app, width, height);
        setup(&mut app, &mut daemon);
        pump(&mut app, &mut daemon);
        let backend = draw(&mut app, width, height);
        insta::assert_snapshot!(format!("{name}_{width}x{height}"), backend);
    }
}

fn press(app: &mut App, daemon: &mut FakeDaemon, keys: &[KeyEvent]) {
    for k in keys {
        app.handle_key(*k);
        pump(app, daemon);
    }
}

#[test]
fn overview() {
    check("overview", 6, |_, _| {});
}

#[test]
fn miners_table_and_detail() {
    // 10,000 miners; the cursor three rows down, sorted by hashrate.
    check("miners", 10_000, |app, d| {
        // The cursor follows its miner through the re-sort; `g` goes to the top.
        press(
            app,
            d,
            &[
                ch('2'),
                ch('s'),
                ch('s'),
                ch('g'),
                ch('j'),
                ch('j'),
                ch('j'),
            ],
        );
    });
    // Narrow terminals show the detail pane instead of the table (Enter).
    check("miners_detail", 10_000, |app, d| {
        press(app, d, &[ch('2'), ch('j'), key(KeyCode::Enter)]);
    });
    check("miners_filtered", 10_000, |app, d| {
        press(
            app,
            d,
            &[
                ch('2'),
                ch('/'),
                ch('z'),
                ch('e'),
                ch('d'),
                ch('-'),
                ch('f'),
                ch('a'),
                ch('r'),
                ch('m'),
                ch('-'),
                ch('0'),
                ch('0'),
                ch('1'),
                ch('2'),
            ],
        );
    });
}

#[test]
fn miners_key_confirmation_and_issued_key() {
    check("miners_rotate_confirm", 100, |app, d| {
        press(app, d, &[ch('2'), ch('j'), ch('K')]);
    });
    check("miners_issued_key", 100, |app, d| {
        press(app, d, &[ch('2'), ch('j'), ch('K'), ch('y')]);
    });
}

#[test]
fn withdrawals() {
    check("withdrawals", 6, |app, d| {
        press(app, d, &[ch('3'), ch('j'), key(KeyCode::Char(' '))]);
    });
}

#[test]
fn withdrawals_approve_confirmation() {
    // Two selected, then `a`: the dialog lists both in full.
    check("withdrawals_approve_confirm", 6, |app, d| {
        press(
            app,
            d,
            &[
                ch('3'),
                ch('j'),
                key(KeyCode::Char(' ')),
                key(KeyCode::Char(' ')),
                ch('a'),
            ],
        );
    });
}

#[test]
fn withdrawals_reject_prompt_refuses_empty_reason() {
    check("withdrawals_reject_empty", 6, |app, d| {
        press(app, d, &[ch('3'), ch('j'), ch('r'), key(KeyCode::Enter)]);
    });
}

#[test]
fn withdrawals_batches_pane() {
    check("withdrawals_batches", 6, |app, d| {
        press(app, d, &[ch('3'), key(KeyCode::Right), ch('x')]);
    });
}

#[test]
fn withdrawals_on_todays_daemon() {
    for (width, height) in SIZES {
        let mut daemon = FakeDaemon::new(6);
        daemon.old_daemon = true;
        let mut app = connected_app(&mut daemon, width);
        press(&mut app, &mut daemon, &[ch('3')]);
        let backend = draw(&mut app, width, height);
        insta::assert_snapshot!(
            format!("withdrawals_unknown_method_{width}x{height}"),
            backend
        );
    }
}

#[test]
fn psbt_review_with_warnings() {
    check("psbt_review", 6, |app, d| {
        press(app, d, &[ch('4'), key(KeyCode::Enter)]);
    });
}

#[test]
fn psbt_tampered_import_shows_differences() {
    // A relative path of fixed length, so the snapshot does not depend on
    // where the temp directory is; its random part is replaced below.
    let dir = tempfile::Builder::new()
        .prefix("psbt-")
        .tempdir_in(".")
        .expect("tempdir");
    let name = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name")
        .to_string();
    let path = format!("./{name}/signed.psbt");
    std::fs::write(&path, "cHNidP8BAHECAAAAAQ==\n").expect("write");
    let fixed = format!("psbt-{}", "X".repeat(name.len() - 5));
    for (width, height) in SIZES {
        let mut daemon = FakeDaemon::new(6);
        let mut app = connected_app(&mut daemon, width);
        draw(&mut app, width, height);
        press(
            &mut app,
            &mut daemon,
            &[ch('4'), key(KeyCode::Enter), ch('i')],
        );
        // Replace the default path with the file above.
        app.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        for c in path.chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        press(&mut app, &mut daemon, &[key(KeyCode::Enter)]);
        let screen = draw(&mut app, width, height)
            .to_string()
            .replace(&name, &fixed);
        insta::assert_snapshot!(format!("psbt_tampered_import_{width}x{height}"), screen);
    }
}

#[test]
fn psbt_finalize_confirmation() {
    check("psbt_finalize_confirm", 6, |app, d| {
        press(app, d, &[ch('4'), key(KeyCode::Enter), ch('f')]);
    });
}

#[test]
fn faucet() {
    check("faucet", 6, |app, d| {
        press(app, d, &[ch('5')]);
    });
}

#[test]
fn audit() {
    check("audit", 6, |app, d| {
        press(app, d, &[ch('6'), ch('j')]);
    });
    check("audit_page_2", 6, |app, d| {
        press(app, d, &[ch('6'), ch('n')]);
    });
}

#[test]
fn blocks() {
    // The newest (immature) block selected: its split below.
    check("blocks", 6, |app, d| {
        press(app, d, &[ch('7')]);
    });
    // The matured one: credited, and when.
    check("blocks_matured", 6, |app, d| {
        press(app, d, &[ch('7'), ch('j')]);
    });
}

#[test]
fn help() {
    check("help", 6, |app, d| {
        press(app, d, &[ch('?')]);
    });
}

#[test]
fn disconnected_banner_keeps_stale_data() {
    check("disconnected", 6, |app, _| {
        app.handle_client(ClientEvent::Reconnecting {
            attempt: 3,
            retry_in: Duration::from_secs(2),
            reason:
                "cannot connect to /run/pooldeskd/control.sock: Connection refused (os error 111)"
                    .into(),
        });
    });
    check("disconnected_withdrawals", 6, |app, d| {
        press(app, d, &[ch('3')]);
        app.handle_client(ClientEvent::Reconnecting {
            attempt: 1,
            retry_in: Duration::from_millis(250),
            reason: "the daemon closed the connection".into(),
        });
    });
}

#[test]
fn first_connection_attempt() {
    for (width, height) in SIZES {
        let mut app = App::new("./pooldesk-data/control.sock");
        app.tick(NOW, 0);
        app.handle_client(ClientEvent::Connecting { attempt: 0 });
        app.handle_client(ClientEvent::Reconnecting {
            attempt: 1,
            retry_in: Duration::from_millis(250),
            reason: "cannot connect to ./pooldesk-data/control.sock: No such file or directory (os error 2)".into(),
        });
        let backend = draw(&mut app, width, height);
        insta::assert_snapshot!(format!("never_connected_{width}x{height}"), backend);
    }
}

#[test]
fn approve_result_names_the_actor() {
    for (width, height) in SIZES {
        let mut daemon = FakeDaemon::new(6);
        let mut app = connected_app(&mut daemon, width);
        // Row 0 is the needs-attention one; row 1 is the oldest request.
        press(&mut app, &mut daemon, &[ch('3'), ch('j'), ch('a'), ch('y')]);
        assert_eq!(app.tab, Tab::Withdrawals);
        let backend = draw(&mut app, width, height);
        insta::assert_snapshot!(format!("withdrawals_approved_{width}x{height}"), backend);
    }
}

/// Not a screen, but the same fixtures: the tampered import changed nothing
/// (the review on record is the unsigned one) and sent exactly one import.
#[test]
fn tampered_import_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("signed.psbt");
    std::fs::write(&path, "cHNidP8BAHECAAAAAQ==").expect("write");
    let mut daemon = FakeDaemon::new(6);
    let mut app = connected_app(&mut daemon, 80);
    press(&mut app, &mut daemon, &[ch('4'), key(KeyCode::Enter)]);
    let before = app.psbt.review.clone();
    app.handle_key(ch('i'));
    app.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    for c in path.to_str().expect("utf-8").chars() {
        app.handle_key(key(KeyCode::Char(c)));
    }
    daemon.log.clear();
    app.handle_key(key(KeyCode::Enter));
    let sent = app.take_outbox();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body,
        Request::ImportPsbt {
            psbt_id: 5,
            psbt: "cHNidP8BAHECAAAAAQ==".into()
        }
    );
    app.handle_client(ClientEvent::Response(ResponseFrame {
        id: sent[0].id,
        outcome: Outcome::Err(fixtures::tampered_import_error()),
    }));
    assert_eq!(app.psbt.review, before, "a refused import changes nothing");
    let refused = app.psbt.refused.clone().expect("refusal shown");
    assert_eq!(refused.differences.len(), 3);
    assert!(refused.differences[0].contains(fixtures::ADDR_ATTACKER));
}
