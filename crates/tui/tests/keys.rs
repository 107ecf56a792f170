//! Key handling and state: what each key sends to the daemon, byte for byte
//! at the request level, and — as important — what it does not send.

use std::collections::HashSet;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pooldesk_proto::control::{ErrorBody, EventFrame, Outcome, Request, ResponseFrame};
use pooldesk_proto::model::{
    AuditEntry, BatchResolution, Event, ListMiners, MinerRow, MinerSort, WithdrawalRow,
};
use pooldesk_tui::app::{App, ConnState, Purpose, Tab};
use pooldesk_tui::client::ClientEvent;
use pooldesk_tui::fixtures::{self, FakeDaemon, NOW, connected_app, pump};
use pooldesk_tui::ui::dialog::Modal;
use pooldesk_tui::ui::miners::{SORTS, compare, filter_sort};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.handle_key(ch(c));
    }
}

/// A connected app on the Withdrawals tab, everything loaded, outbox empty.
fn on_withdrawals() -> (App, FakeDaemon) {
    let mut daemon = FakeDaemon::new(20);
    let mut app = connected_app(&mut daemon, 80);
    app.handle_key(ch('3'));
    pump(&mut app, &mut daemon);
    draw(&mut app);
    (app, daemon)
}

fn draw(app: &mut App) {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    terminal
        .draw(|f| pooldesk_tui::ui::draw(f, app))
        .expect("draw");
}

fn sent(app: &mut App) -> Vec<Request> {
    app.take_outbox().into_iter().map(|f| f.body).collect()
}

fn current_id(app: &App) -> i64 {
    app.withdrawals.current().expect("a row").id
}

// ---- approvals ----------------------------------------------------------------

#[test]
fn pressing_a_alone_sends_nothing() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    assert_eq!(current_id(&app), 101);
    app.handle_key(ch('a'));
    assert!(sent(&mut app).is_empty(), "a alone must not send");
    assert!(matches!(app.modal, Some(Modal::Confirm(_))));
}

#[test]
fn a_then_y_approves_the_current_row() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::ApproveWithdrawals { ids: vec![101] }]
    );
    assert!(app.modal.is_none());
}

#[test]
fn a_then_enter_approves_too() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    app.handle_key(ch('a'));
    app.handle_key(key(KeyCode::Enter));
    assert_eq!(
        sent(&mut app),
        vec![Request::ApproveWithdrawals { ids: vec![101] }]
    );
}

#[test]
fn esc_or_n_cancels_the_approval() {
    for cancel in [key(KeyCode::Esc), ch('n')] {
        let (mut app, _) = on_withdrawals();
        app.handle_key(ch('j'));
        app.handle_key(ch('a'));
        app.handle_key(cancel);
        assert!(app.modal.is_none());
        // Other keys after cancelling still send nothing.
        app.handle_key(ch('y'));
        app.handle_key(key(KeyCode::Enter));
        assert!(sent(&mut app).is_empty());
    }
}

#[test]
fn the_confirmation_repeats_miner_amount_and_full_address() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    app.handle_key(ch('j'));
    app.handle_key(ch('a'));
    let Some(Modal::Confirm(confirm)) = &app.modal else {
        panic!("no confirmation");
    };
    let text: String = confirm
        .body
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("demo-miner-2"), "{text}");
    assert!(text.contains("0.02500000 BTC (2,500,000 sat)"), "{text}");
    assert!(text.contains(fixtures::ADDR_2), "full address: {text}");
}

#[test]
fn approve_on_a_row_that_is_not_requested_sends_nothing() {
    let (mut app, _) = on_withdrawals();
    assert_eq!(current_id(&app), 90, "needs_attention row first");
    app.handle_key(ch('a'));
    assert!(app.modal.is_none());
    app.handle_key(ch('y'));
    assert!(sent(&mut app).is_empty());
    assert!(
        app.current_flash()
            .is_some_and(|f| f.text.contains("nothing to approve"))
    );
}

#[test]
fn multi_select_approves_exactly_the_selected_ids() {
    let (mut app, _) = on_withdrawals();
    // 101 selected (Space moves down to 102), skip 102, select 103.
    app.handle_key(ch('j'));
    app.handle_key(ch(' '));
    assert_eq!(current_id(&app), 102);
    app.handle_key(ch('j'));
    app.handle_key(ch(' '));
    let selected: Vec<i64> = app.withdrawals.selected.keys().copied().collect();
    assert_eq!(selected, vec![101, 103]);
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::ApproveWithdrawals {
            ids: vec![101, 103]
        }]
    );
}

#[test]
fn selected_rows_that_are_not_requested_are_left_out() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    app.handle_key(ch(' ')); // 101 requested
    // Move to #98 (approved) and select it.
    while current_id(&app) != 98 {
        app.handle_key(ch('j'));
    }
    app.handle_key(ch(' '));
    assert_eq!(app.withdrawals.selected.len(), 2);
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::ApproveWithdrawals { ids: vec![101] }]
    );
}

#[test]
fn v_selects_every_requested_row_and_space_unselects() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('v'));
    let selected: Vec<i64> = app.withdrawals.selected.keys().copied().collect();
    assert_eq!(selected, vec![101, 102, 103]);
    app.handle_key(ch('v'));
    assert!(app.withdrawals.selected.is_empty(), "v again unselects");
    app.handle_key(ch('v'));
    app.handle_key(ch('j')); // cursor on 101
    app.handle_key(ch(' ')); // unselect 101
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::ApproveWithdrawals {
            ids: vec![102, 103]
        }]
    );
}

#[test]
fn approval_result_clears_the_selection_and_names_the_uid() {
    let (mut app, mut daemon) = on_withdrawals();
    app.handle_key(ch('v'));
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    pump(&mut app, &mut daemon);
    assert!(app.withdrawals.selected.is_empty());
    let flash = app.current_flash().expect("result shown");
    assert!(
        flash.text.contains("approved #101, #102, #103"),
        "{}",
        flash.text
    );
    assert!(flash.text.contains("uid:1000"), "{}", flash.text);
    // The list was reloaded and shows the new state.
    let states: Vec<&str> = app
        .withdrawals
        .rows
        .iter()
        .filter(|r| [101, 102, 103].contains(&r.id))
        .map(|r| r.state.as_str())
        .collect();
    assert_eq!(states, vec!["approved"; 3]);
}

// ---- rejections ---------------------------------------------------------------

#[test]
fn reject_asks_for_a_reason_and_refuses_an_empty_one() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    app.handle_key(ch('r'));
    assert!(matches!(app.modal, Some(Modal::Prompt(_))));
    assert!(sent(&mut app).is_empty());
    app.handle_key(key(KeyCode::Enter));
    assert!(sent(&mut app).is_empty(), "empty reason refused");
    let Some(Modal::Prompt(prompt)) = &app.modal else {
        panic!("prompt closed on an empty reason");
    };
    assert!(
        prompt
            .error
            .as_deref()
            .is_some_and(|e| e.contains("reason is required"))
    );
    // Blank is empty too.
    typed(&mut app, "   ");
    app.handle_key(key(KeyCode::Enter));
    assert!(sent(&mut app).is_empty(), "blank reason refused");
    app.handle_key(ctrl('u'));
    typed(&mut app, "address belongs to an exchange");
    app.handle_key(key(KeyCode::Enter));
    assert_eq!(
        sent(&mut app),
        vec![Request::RejectWithdrawal {
            id: 101,
            reason: "address belongs to an exchange".into()
        }]
    );
    assert!(app.modal.is_none());
}

#[test]
fn esc_cancels_a_rejection() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    app.handle_key(ch('r'));
    typed(&mut app, "typo");
    app.handle_key(key(KeyCode::Esc));
    assert!(app.modal.is_none());
    assert!(sent(&mut app).is_empty());
}

// ---- batches --------------------------------------------------------------------

#[test]
fn b_sends_exactly_the_approved_rows_after_confirmation() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('b'));
    assert!(sent(&mut app).is_empty());
    let Some(Modal::Confirm(confirm)) = &app.modal else {
        panic!("no confirmation");
    };
    let text: String = confirm.body.iter().map(|l| l.to_string()).collect();
    assert!(text.contains("Cold mode"), "{text}");
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::SendBatch {
            withdrawal_ids: vec![98, 99]
        }]
    );
}

#[test]
fn cold_batch_result_opens_the_psbt_review() {
    let (mut app, mut daemon) = on_withdrawals();
    app.handle_key(ch('b'));
    app.handle_key(ch('y'));
    let frames = app.take_outbox();
    let mut batch = fixtures::batches()[0].clone();
    batch.state = "psbt_created".into();
    app.handle_client(ClientEvent::Response(ResponseFrame {
        id: frames[0].id,
        outcome: Outcome::Ok(pooldesk_proto::control::Response::Batch(
            pooldesk_proto::model::BatchResult {
                batch,
                psbt: Some("cHNidP8=".into()),
            },
        )),
    }));
    assert_eq!(app.tab, Tab::Psbt);
    pump(&mut app, &mut daemon);
    assert_eq!(app.psbt.review.as_ref().map(|r| r.psbt_id), Some(5));
}

#[test]
fn resolving_a_batch_needs_a_valid_txid_and_a_confirmation() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(key(KeyCode::Right));
    app.handle_key(ch('m'));
    assert!(matches!(app.modal, Some(Modal::Prompt(_))));
    typed(&mut app, "not-a-txid");
    app.handle_key(key(KeyCode::Enter));
    assert!(sent(&mut app).is_empty());
    assert!(
        matches!(app.modal, Some(Modal::Prompt(_))),
        "bad txid keeps the prompt"
    );
    app.handle_key(ctrl('u'));
    let txid = "AB".repeat(32);
    typed(&mut app, &txid);
    app.handle_key(key(KeyCode::Enter));
    assert!(sent(&mut app).is_empty(), "txid then a confirmation");
    assert!(matches!(app.modal, Some(Modal::Confirm(_))));
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::ResolveBatch {
            batch_id: 7,
            resolution: BatchResolution::Paid {
                txid: txid.to_lowercase()
            }
        }]
    );
}

#[test]
fn retry_and_failed_are_confirmed_and_only_for_batches_needing_attention() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(key(KeyCode::Right));
    app.handle_key(ch('t'));
    app.handle_key(key(KeyCode::Esc));
    assert!(sent(&mut app).is_empty());
    app.handle_key(ch('x'));
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::ResolveBatch {
            batch_id: 7,
            resolution: BatchResolution::Failed
        }]
    );
    // Batch #8 (psbt_created) cannot be resolved.
    app.handle_key(ch('j'));
    app.handle_key(ch('t'));
    assert!(app.modal.is_none());
    assert!(sent(&mut app).is_empty());
}

// ---- PSBT ---------------------------------------------------------------------

#[test]
fn finalize_needs_confirmation() {
    let (mut app, mut daemon) = on_withdrawals();
    app.handle_key(ch('4'));
    app.handle_key(key(KeyCode::Enter));
    pump(&mut app, &mut daemon);
    app.handle_key(ch('f'));
    assert!(sent(&mut app).is_empty());
    app.handle_key(ch('y'));
    assert_eq!(sent(&mut app), vec![Request::FinalizePsbt { psbt_id: 5 }]);
}

#[test]
fn export_writes_the_psbt_to_the_typed_path() {
    let (mut app, mut daemon) = on_withdrawals();
    app.handle_key(ch('4'));
    app.handle_key(key(KeyCode::Enter));
    pump(&mut app, &mut daemon);
    app.handle_key(ch('e'));
    let Some(Modal::Prompt(prompt)) = &app.modal else {
        panic!("no prompt");
    };
    assert_eq!(prompt.input, "./pooldesk-batch-8.psbt", "default path");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.psbt");
    app.handle_key(ctrl('u'));
    typed(&mut app, path.to_str().expect("utf-8"));
    app.handle_key(key(KeyCode::Enter));
    assert!(app.modal.is_none());
    assert!(sent(&mut app).is_empty(), "export is local");
    let written = std::fs::read_to_string(&path).expect("file written");
    assert_eq!(written.trim_end(), fixtures::psbt_review().psbt);
}

// ---- miners -------------------------------------------------------------------

#[test]
fn deactivate_and_key_rotation_need_confirmation() {
    let mut daemon = FakeDaemon::new(50);
    let mut app = connected_app(&mut daemon, 80);
    app.handle_key(ch('2'));
    pump(&mut app, &mut daemon);
    draw(&mut app);
    let id = app.miners.current().expect("row").miner_id.clone();
    app.handle_key(ch('d'));
    assert!(sent(&mut app).is_empty());
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::SetMinerActive {
            miner_id: id.clone(),
            active: false
        }]
    );
    app.handle_key(ch('K'));
    assert!(sent(&mut app).is_empty());
    app.handle_key(ch('y'));
    assert_eq!(
        sent(&mut app),
        vec![Request::IssueKey {
            miner_id: id.clone()
        }]
    );
}

#[test]
fn an_issued_key_is_shown_once_in_a_dialog() {
    let mut daemon = FakeDaemon::new(50);
    let mut app = connected_app(&mut daemon, 80);
    app.handle_key(ch('2'));
    pump(&mut app, &mut daemon);
    app.handle_key(ch('K'));
    app.handle_key(ch('y'));
    pump(&mut app, &mut daemon);
    let Some(Modal::Notice(notice)) = &app.modal else {
        panic!("key not shown");
    };
    let text: String = notice.body.iter().map(|l| l.to_string()).collect();
    assert!(text.contains("pk_3f9a1c0e"), "{text}");
    assert!(text.contains("will not be shown again"), "{text}");
    app.handle_key(key(KeyCode::Enter));
    assert!(app.modal.is_none());
}

#[test]
fn typing_a_filter_does_not_switch_tabs_or_quit() {
    let mut daemon = FakeDaemon::new(500);
    let mut app = connected_app(&mut daemon, 80);
    app.handle_key(ch('2'));
    pump(&mut app, &mut daemon);
    app.handle_key(ch('/'));
    typed(&mut app, "q3?");
    assert_eq!(app.tab, Tab::Miners);
    assert!(!app.quit);
    assert!(app.modal.is_none());
    assert_eq!(app.miners.filter, "q3?");
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.miners.filter, "");
}

// ---- 10,000 rows: filter and sort ---------------------------------------------------

fn is_sorted(rows: &[MinerRow], view: &[u32], sort: MinerSort, descending: bool) -> bool {
    view.windows(2).all(|w| {
        let (a, b) = (&rows[w[0] as usize], &rows[w[1] as usize]);
        let order = compare(a, b, sort);
        if descending {
            order.is_ge()
        } else {
            order.is_le()
        }
    })
}

#[test]
fn sort_is_right_on_ten_thousand_rows_for_every_column_and_direction() {
    let rows = fixtures::miners(10_000);
    let lower: Vec<String> = rows.iter().map(|r| r.miner_id.to_lowercase()).collect();
    for sort in SORTS {
        for descending in [false, true] {
            let view = filter_sort(&rows, &lower, "", sort, descending);
            assert_eq!(view.len(), 10_000);
            let unique: HashSet<u32> = view.iter().copied().collect();
            assert_eq!(unique.len(), 10_000, "every row exactly once");
            assert!(
                is_sorted(&rows, &view, sort, descending),
                "{sort:?} descending={descending}"
            );
        }
    }
}

#[test]
fn local_order_matches_the_daemons_paging_order() {
    // What the fake daemon returns page by page must be what the screen
    // shows, for every sort. The fake sorts with the TUI's own comparator,
    // so this checks paging only; the order of the real daemon's
    // `sort_rows` against the TUI's is checked in
    // tests/tests/tui_control_real.rs.
    let mut daemon = FakeDaemon::new(10_000);
    let rows = daemon.miners.clone();
    let lower: Vec<String> = rows.iter().map(|r| r.miner_id.to_lowercase()).collect();
    for sort in SORTS {
        for descending in [false, true] {
            let local: Vec<&str> = filter_sort(&rows, &lower, "bob", sort, descending)
                .into_iter()
                .map(|i| rows[i as usize].miner_id.as_str())
                .collect();
            let mut remote: Vec<String> = Vec::new();
            let mut offset = 0;
            loop {
                let Outcome::Ok(pooldesk_proto::control::Response::Miners(page)) =
                    daemon.answer(&Request::ListMiners(ListMiners {
                        sort,
                        descending,
                        filter: Some("BOB".into()),
                        offset,
                        limit: Some(1000),
                    }))
                else {
                    panic!("no page");
                };
                if page.rows.is_empty() {
                    break;
                }
                offset += page.rows.len() as u32;
                remote.extend(page.rows.into_iter().map(|r| r.miner_id));
            }
            assert_eq!(local, remote, "{sort:?} descending={descending}");
        }
    }
}

#[test]
fn filter_is_right_on_ten_thousand_rows() {
    let rows = fixtures::miners(10_000);
    let lower: Vec<String> = rows.iter().map(|r| r.miner_id.to_lowercase()).collect();
    for needle in [
        "zed",
        "ZED-farm",
        "-0001",
        "club-member-09999",
        "nobody",
        "",
    ] {
        let view = filter_sort(&rows, &lower, needle, MinerSort::Balance, true);
        let want = rows
            .iter()
            .filter(|r| r.miner_id.to_lowercase().contains(&needle.to_lowercase()))
            .count();
        assert_eq!(view.len(), want, "{needle:?}");
        assert!(view.iter().all(|&i| {
            rows[i as usize]
                .miner_id
                .to_lowercase()
                .contains(&needle.to_lowercase())
        }));
        assert!(is_sorted(&rows, &view, MinerSort::Balance, true));
    }
    assert_eq!(
        filter_sort(&rows, &lower, "zed", MinerSort::Id, false).len(),
        2_000
    );
}

#[test]
fn the_screen_loads_all_ten_thousand_rows_in_pages_and_filters_them_by_key() {
    let mut daemon = FakeDaemon::new(10_000);
    let mut app = connected_app(&mut daemon, 80);
    daemon.log.clear();
    app.handle_key(ch('2'));
    pump(&mut app, &mut daemon);
    let offsets: Vec<u32> = daemon
        .log
        .iter()
        .filter_map(|r| match r {
            Request::ListMiners(q) => Some(q.offset),
            _ => None,
        })
        .collect();
    assert_eq!(offsets, (0..10).map(|p| p * 1000).collect::<Vec<u32>>());
    assert_eq!(app.miners.view_len(), 10_000);
    // Sort by balance (s ×4 from id), descending by default for money.
    for _ in 0..4 {
        app.handle_key(ch('s'));
    }
    assert_eq!(app.miners.sort, MinerSort::Balance);
    assert!(app.miners.descending);
    app.handle_key(ch('/'));
    typed(&mut app, "ZED");
    app.handle_key(key(KeyCode::Enter));
    assert_eq!(app.miners.view_len(), 2_000);
    let shown: Vec<&str> = app.miners.visible_ids().collect();
    let mut expected: Vec<&MinerRow> = daemon
        .miners
        .iter()
        .filter(|r| r.miner_id.to_lowercase().contains("zed"))
        .collect();
    expected.sort_by(|a, b| compare(b, a, MinerSort::Balance));
    let expected: Vec<&str> = expected.iter().map(|r| r.miner_id.as_str()).collect();
    assert_eq!(shown, expected);
    // Nothing more was asked of the daemon for sorting or filtering.
    assert!(
        app.take_outbox()
            .iter()
            .all(|f| !matches!(f.body, Request::ListMiners(_)))
    );
}

// ---- navigation and quitting ---------------------------------------------------

#[test]
fn tabs_by_number_tab_and_shift_tab() {
    let mut daemon = FakeDaemon::new(10);
    let mut app = connected_app(&mut daemon, 80);
    for (c, tab) in [
        ('1', Tab::Overview),
        ('2', Tab::Miners),
        ('3', Tab::Withdrawals),
        ('4', Tab::Psbt),
        ('5', Tab::Faucet),
        ('6', Tab::Audit),
        ('7', Tab::Blocks),
    ] {
        app.handle_key(ch(c));
        assert_eq!(app.tab, tab);
    }
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Overview, "Tab wraps around");
    app.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    assert_eq!(app.tab, Tab::Blocks);
}

#[test]
fn help_opens_and_closes() {
    let mut daemon = FakeDaemon::new(10);
    let mut app = connected_app(&mut daemon, 80);
    app.handle_key(ch('?'));
    assert!(matches!(app.modal, Some(Modal::Help { .. })));
    app.handle_key(ch('1'));
    assert!(
        matches!(app.modal, Some(Modal::Help { .. })),
        "keys go to help"
    );
    app.handle_key(key(KeyCode::Esc));
    assert!(app.modal.is_none());
}

#[test]
fn q_quits_at_once_when_nothing_is_pending() {
    let mut daemon = FakeDaemon::new(10);
    let mut app = connected_app(&mut daemon, 80);
    app.handle_key(ch('q'));
    assert!(app.quit);
}

#[test]
fn q_asks_first_while_an_approval_awaits_its_answer() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    assert_eq!(sent(&mut app).len(), 1);
    app.handle_key(ch('q'));
    assert!(!app.quit);
    assert!(matches!(&app.modal, Some(Modal::Confirm(c)) if c.is_quit));
    app.handle_key(key(KeyCode::Esc));
    assert!(!app.quit);
    app.handle_key(ch('q'));
    app.handle_key(ch('y'));
    assert!(app.quit);
}

#[test]
fn q_asks_first_with_an_unsent_selection_and_ctrl_c_twice_quits() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('v'));
    app.handle_key(ctrl('c'));
    assert!(!app.quit);
    app.handle_key(ctrl('c'));
    assert!(app.quit);
}

// ---- connection ---------------------------------------------------------------

#[test]
fn actions_are_not_sent_while_disconnected() {
    let (mut app, _) = on_withdrawals();
    app.handle_client(ClientEvent::Reconnecting {
        attempt: 2,
        retry_in: Duration::from_millis(500),
        reason: "gone".into(),
    });
    app.handle_key(ch('j'));
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    assert!(sent(&mut app).is_empty());
    assert!(
        app.current_flash().is_some_and(
            |f| f.text.contains("not connected") && f.text.contains("nothing was sent")
        )
    );
}

#[test]
fn an_approval_lost_with_the_connection_is_reported_as_unknown() {
    let (mut app, _) = on_withdrawals();
    app.handle_key(ch('j'));
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    let frames = app.take_outbox();
    app.handle_client(ClientEvent::Response(ResponseFrame {
        id: frames[0].id,
        outcome: Outcome::Err(ErrorBody::new(
            "disconnected",
            "the connection dropped before the daemon answered; the outcome is unknown — check before retrying",
        )),
    }));
    let flash = app.current_flash().expect("told");
    assert!(flash.text.contains("outcome is unknown"), "{}", flash.text);
}

#[test]
fn reconnecting_resubscribes_and_reloads() {
    let (mut app, mut daemon) = on_withdrawals();
    app.handle_client(ClientEvent::Reconnecting {
        attempt: 1,
        retry_in: Duration::from_millis(250),
        reason: "the daemon closed the connection".into(),
    });
    assert!(matches!(
        app.shared.conn,
        ConnState::Reconnecting { attempt: 1, .. }
    ));
    assert!(app.shared.snapshot.is_some(), "last data kept (stale)");
    app.handle_client(ClientEvent::Connected(fixtures::welcome()));
    let requests = sent(&mut app);
    assert!(requests.contains(&Request::Subscribe));
    assert!(requests.contains(&Request::Snapshot));
    assert!(
        requests
            .iter()
            .any(|r| matches!(r, Request::ListWithdrawals(_)))
    );
    assert!(
        requests
            .iter()
            .any(|r| matches!(r, Request::AuditPage { .. }))
    );
    pump(&mut app, &mut daemon);
    assert_eq!(app.shared.conn, ConnState::Live);
}

#[test]
fn reads_lost_with_the_connection_are_asked_again_quietly() {
    let mut daemon = FakeDaemon::new(10);
    let mut app = connected_app(&mut daemon, 80);
    app.handle_key(ch('5'));
    app.handle_key(key(KeyCode::F(5))); // reload now
    let frames = app.take_outbox();
    assert!(!frames.is_empty());
    for f in &frames {
        app.handle_client(ClientEvent::Response(ResponseFrame {
            id: f.id,
            outcome: Outcome::Err(ErrorBody::new("disconnected", "gone")),
        }));
    }
    assert!(app.current_flash().is_none(), "no error for a lost read");
    assert!(app.pending().all(|p| *p != Purpose::Faucet));
}

// ---- live events --------------------------------------------------------------

#[test]
fn pushed_events_update_the_screens() {
    let (mut app, _) = on_withdrawals();
    let mut row: WithdrawalRow = fixtures::withdrawals()[0].clone();
    row.state = "approved".into();
    row.decided_by = Some("http-admin".into());
    app.handle_client(ClientEvent::Event(EventFrame {
        seq: 1,
        event: Event::Withdrawal(row),
    }));
    let updated = app
        .withdrawals
        .rows
        .iter()
        .find(|r| r.id == 101)
        .expect("row");
    assert_eq!(updated.state, "approved");

    let mut snapshot = fixtures::snapshot();
    snapshot.at = NOW + 1;
    snapshot.miners_total = 7;
    app.handle_client(ClientEvent::Event(EventFrame {
        seq: 2,
        event: Event::Pool(Box::new(snapshot)),
    }));
    assert_eq!(
        app.shared.snapshot.as_ref().map(|s| s.miners_total),
        Some(7)
    );

    let entry = AuditEntry {
        id: 251,
        at: NOW + 1,
        actor: "uid:1000".into(),
        action: "approve".into(),
        subject: "withdrawal:101".into(),
        detail: String::new(),
    };
    app.handle_client(ClientEvent::Event(EventFrame {
        seq: 3,
        event: Event::Audit(entry.clone()),
    }));
    assert_eq!(app.audit.entries.first(), Some(&entry));
}

/// The Blocks tab lists blocks and asks for the selected block's
/// statement once; moving the cursor asks for the next one; a pushed
/// `block` event that changes the selected block's state (it matured)
/// updates its row and asks for its statement again.
#[test]
fn blocks_tab_follows_the_selection_and_block_events() {
    let mut daemon = FakeDaemon::new(6);
    let mut app = connected_app(&mut daemon, 80);
    // Loaded with everything else on connect.
    app.handle_key(ch('7'));
    assert_eq!(app.tab, Tab::Blocks);
    pump(&mut app, &mut daemon);
    let blocks = fixtures::blocks();
    assert!(
        daemon
            .log
            .iter()
            .any(|r| matches!(r, Request::ListBlocks { limit: Some(_) })),
        "{:?}",
        daemon.log
    );
    let statements: Vec<&Request> = daemon
        .log
        .iter()
        .filter(|r| matches!(r, Request::BlockStatement { .. }))
        .collect();
    assert_eq!(
        statements,
        vec![&Request::BlockStatement {
            hash: blocks[0].hash.clone()
        }],
        "the selected (newest) block's split, once"
    );
    assert_eq!(app.blocks.rows, blocks);
    // What the app asks the daemon next (answered at once by `pump`).
    let asked = |app: &mut App, daemon: &mut FakeDaemon, keys: &[char]| {
        let before = daemon.log.len();
        for k in keys {
            app.handle_key(ch(*k));
            pump(app, daemon);
        }
        daemon.log[before..].to_vec()
    };
    let statement = |i: usize| Request::BlockStatement {
        hash: blocks[i].hash.clone(),
    };
    assert_eq!(
        asked(&mut app, &mut daemon, &['r']),
        vec![statement(0)],
        "r asks again for the selected block's split"
    );
    assert_eq!(
        app.blocks.statement.as_ref().map(|s| s.block.hash.clone()),
        Some(blocks[0].hash.clone())
    );
    assert_eq!(
        asked(&mut app, &mut daemon, &['j', 'j', 'k']),
        vec![statement(1), statement(2), statement(1)]
    );
    // The first block matures: its row changes in place; not selected, so
    // nothing is asked.
    let mut matured = blocks[0].clone();
    matured.state = pooldesk_proto::model::BlockState::Matured;
    matured.confirmations = 100;
    matured.confirmations_to_maturity = 0;
    let before = daemon.log.len();
    app.handle_client(ClientEvent::Event(EventFrame {
        seq: 9,
        event: Event::Block(matured.clone()),
    }));
    pump(&mut app, &mut daemon);
    assert_eq!(app.blocks.rows[0], matured);
    assert_eq!(daemon.log.len(), before, "{:?}", &daemon.log[before..]);
    // Selected and changed: its split is asked for again.
    assert_eq!(asked(&mut app, &mut daemon, &['k']), vec![statement(0)]);
    let mut orphaned = matured.clone();
    orphaned.state = pooldesk_proto::model::BlockState::Orphaned;
    let before = daemon.log.len();
    app.handle_client(ClientEvent::Event(EventFrame {
        seq: 10,
        event: Event::Block(orphaned),
    }));
    pump(&mut app, &mut daemon);
    assert_eq!(daemon.log[before..].to_vec(), vec![statement(0)]);
}
