//! The TUI's own client code (`pooldesk_tui::client::one_shot`, the
//! socket code `pooldesk` runs) against a real `pooldeskd`: each control
//! request the TUI sends changes the daemon's state as the daemon itself
//! reports it (HTTP answers, the ledger), and the TUI's miner sort is
//! checked against the order the daemon's `sort_rows` produced.

use std::time::Duration;

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s, regtest_address};
use pooldesk_e2e::payouts::Setup;
use pooldesk_proto::control::{Request, Response};
use pooldesk_proto::model::{ListMiners, MinerRow, MinerSort};
use pooldesk_tui::client::one_shot;
use pooldesk_tui::ui::miners::{SORTS, filter_sort};
use serde_json::json;

/// A deadline for a loaded 2-core machine; never a speed claim.
const WAIT: Duration = Duration::from_secs(60);

/// One request through the TUI's client: the daemon's response, or the
/// client's `"message (code)"` error.
async fn tui(d: &Daemon, request: Request) -> Result<Response, String> {
    one_shot(&d.socket, request, WAIT)
        .await
        .map(|(_, response)| response)
}

async fn tui_ok(d: &Daemon, request: Request) -> Response {
    tui(d, request.clone())
        .await
        .unwrap_or_else(|e| panic!("{request:?}: {e}"))
}

/// Every miner row in one daemon answer (one call: one consistent order).
async fn all_rows(
    d: &Daemon,
    sort: MinerSort,
    descending: bool,
    filter: Option<&str>,
) -> Vec<MinerRow> {
    match tui_ok(
        d,
        Request::ListMiners(ListMiners {
            sort,
            descending,
            filter: filter.map(str::to_string),
            offset: 0,
            limit: Some(1000),
        }),
    )
    .await
    {
        Response::Miners(page) => {
            assert_eq!(page.total as usize, page.rows.len(), "one page holds all");
            page.rows
        }
        other => panic!("{other:?}"),
    }
}

/// Runs a test body on a runtime whose threads have 64 MiB stacks: the
/// TUI's App and these long test futures overflow the default 2 MiB of a
/// test thread in a debug build.
fn on_a_big_stack<F: std::future::Future<Output = ()> + 'static>(body: fn() -> F) {
    const STACK: usize = 64 << 20;
    let thread = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(Box::pin(body()))
        })
        .expect("test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn miner_requests_from_the_tui_change_the_real_daemon() {
    on_a_big_stack(miner_requests_from_the_tui_change_the_real_daemon_body);
}

async fn miner_requests_from_the_tui_change_the_real_daemon_body() {
    let d = Daemon::start(DaemonOptions::default()).await;
    // Twelve miners with repeated and distinct balances and worker counts
    // (ties exercise the id tie-break), reported through the pool API.
    for i in 0..12u64 {
        let miner = format!("Miner-{i:02}");
        for w in 0..=(i % 3) {
            let (status, body) = d
                .post_report(&miner, &format!("rig{w}"), 1 + (i * 7) % 4)
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }

    // IssueKey: the key the TUI shows works for that miner's signed API,
    // and a wrong key does not.
    let key = match tui_ok(
        &d,
        Request::IssueKey {
            miner_id: "Miner-03".into(),
        },
    )
    .await
    {
        Response::ApiKey(k) => {
            assert_eq!((k.miner_id.as_str(), k.key_version), ("Miner-03", 1));
            k.api_key
        }
        other => panic!("{other:?}"),
    };
    let set_address = |key: String| {
        let d = &d;
        async move {
            d.signed(
                "POST",
                "/api/miner/payout_address",
                "Miner-03",
                &key,
                &json!({"miner_id": "Miner-03", "address": regtest_address(), "ts": now_s(),
                    "event_id": format!("address-{}", rand::random::<u64>())}),
            )
            .await
        }
    };
    let (status, body) = set_address(key.clone()).await;
    assert_eq!(status, 200, "the issued key is refused: {body}");
    let (status, _) = set_address(format!("{key}x")).await;
    assert_eq!(status, 401, "a wrong key is accepted");

    // SetMinerActive: the daemon refuses the miner's reports, then takes
    // them again.
    let done = tui_ok(
        &d,
        Request::SetMinerActive {
            miner_id: "Miner-05".into(),
            active: false,
        },
    )
    .await;
    assert!(matches!(done, Response::Done(_)), "{done:?}");
    let (status, body) = d.post_report("Miner-05", "rig0", 1).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("inactive")));
    tui_ok(
        &d,
        Request::SetMinerActive {
            miner_id: "Miner-05".into(),
            active: true,
        },
    )
    .await;
    let (status, body) = d.post_report("Miner-05", "rig0", 1).await;
    assert_eq!(status, 200, "{body}");
    // Leave one miner inactive for the status sort.
    tui_ok(
        &d,
        Request::SetMinerActive {
            miner_id: "Miner-08".into(),
            active: false,
        },
    )
    .await;

    // MinerDetail: the daemon's own numbers for that miner.
    match tui_ok(
        &d,
        Request::MinerDetail {
            miner_id: "Miner-05".into(),
        },
    )
    .await
    {
        Response::MinerDetail(detail) => {
            assert_eq!(detail.row.miner_id, "Miner-05");
            assert_eq!(detail.row.balance_msat, d.balance_msat("Miner-05").await);
            assert_eq!(detail.row.workers, 3);
            assert!(detail.row.active);
        }
        other => panic!("{other:?}"),
    }
    let unknown = tui(
        &d,
        Request::MinerDetail {
            miner_id: "nobody".into(),
        },
    )
    .await;
    assert!(
        matches!(&unknown, Err(e) if e.ends_with("(not_found)")),
        "{unknown:?}"
    );

    // ListMiners: the rows are the daemon's state ...
    let rows = all_rows(&d, MinerSort::Id, false, None).await;
    assert_eq!(rows.len(), 12);
    for row in &rows {
        assert_eq!(row.balance_msat, d.balance_msat(&row.miner_id).await);
        assert_eq!(row.active, row.miner_id != "Miner-08", "{}", row.miner_id);
    }
    let balances: std::collections::HashSet<i64> = rows.iter().map(|r| r.balance_msat).collect();
    assert!(
        balances.len() > 1 && balances.len() < 12,
        "ties and differences"
    );
    // ... and for every column and direction, the order the daemon's
    // sort_rows gave (filtered case-insensitively) is the order the TUI's
    // own filter_sort gives the same rows.
    for sort in SORTS {
        for descending in [false, true] {
            let daemon_order = all_rows(&d, sort, descending, Some("MINER-0")).await;
            let lower: Vec<String> = daemon_order
                .iter()
                .map(|r| r.miner_id.to_lowercase())
                .collect();
            let tui_order: Vec<&str> =
                filter_sort(&daemon_order, &lower, "miner-0", sort, descending)
                    .into_iter()
                    .map(|i| daemon_order[i as usize].miner_id.as_str())
                    .collect();
            let daemon_ids: Vec<&str> = daemon_order.iter().map(|r| r.miner_id.as_str()).collect();
            assert_eq!(daemon_ids.len(), 10, "Miner-00 .. Miner-09");
            assert_eq!(tui_order, daemon_ids, "{sort:?} descending={descending}");
        }
    }
    // Paging (stable by id) returns every row once, in order.
    let mut paged = Vec::new();
    loop {
        let page = match tui_ok(
            &d,
            Request::ListMiners(ListMiners {
                sort: MinerSort::Balance,
                descending: true,
                filter: None,
                offset: paged.len() as u32,
                limit: Some(5),
            }),
        )
        .await
        {
            Response::Miners(page) => page,
            other => panic!("{other:?}"),
        };
        if page.rows.is_empty() {
            break;
        }
        paged.extend(page.rows.into_iter().map(|r| r.miner_id));
    }
    let whole: Vec<String> = all_rows(&d, MinerSort::Balance, true, None)
        .await
        .into_iter()
        .map(|r| r.miner_id)
        .collect();
    assert_eq!(paged, whole);
    d.assert_verified();
}

#[test]
fn payout_requests_from_the_tui_change_the_real_daemon() {
    on_a_big_stack(payout_requests_from_the_tui_change_the_real_daemon_body);
}

async fn payout_requests_from_the_tui_change_the_real_daemon_body() {
    let s = Setup::with_standin("hot", "", "").await;
    let d = &s.daemon;
    let funded = d.balance_msat(&s.miner).await;

    // RejectWithdrawal: the withdrawal is rejected and the money is back.
    let id = s.request("0.0003").await;
    assert!(d.balance_msat(&s.miner).await < funded, "nothing was held");
    let done = tui_ok(
        d,
        Request::RejectWithdrawal {
            id,
            reason: "address looks wrong".into(),
        },
    )
    .await;
    assert!(matches!(done, Response::Done(_)), "{done:?}");
    assert_eq!(s.withdrawal(id).await["state"], "rejected");
    assert_eq!(d.balance_msat(&s.miner).await, funded);

    // SetPayoutsPaused: no batch while paused, one after resuming.
    tui_ok(d, Request::SetPayoutsPaused { paused: true }).await;
    let paused_by = d.sql_i64("SELECT COUNT(*) FROM settings WHERE key = 'payouts_paused'");
    assert_eq!(paused_by, 1, "the pause is not in the daemon's settings");
    let id = s.request("0.0002").await;
    s.approve(id).await;
    let refused = tui(
        d,
        Request::SendBatch {
            withdrawal_ids: vec![],
        },
    )
    .await;
    assert!(
        matches!(&refused, Err(e) if e.ends_with("(payouts_waiting)")),
        "{refused:?}"
    );
    assert_eq!(s.withdrawal(id).await["state"], "approved");
    assert!(s.standin().calls().iter().all(|c| c.method != "sendmany"));
    tui_ok(d, Request::SetPayoutsPaused { paused: false }).await;
    assert_eq!(
        d.sql_i64("SELECT COUNT(*) FROM settings WHERE key = 'payouts_paused'"),
        0
    );
    // Resuming wakes the daemon's batch worker, which may send the batch
    // before our SendBatch does: either way exactly one batch pays it.
    match tui(
        d,
        Request::SendBatch {
            withdrawal_ids: vec![],
        },
    )
    .await
    {
        Ok(Response::Batch(b)) => assert_eq!(b.batch.withdrawal_ids, vec![id]),
        Err(e) if e.ends_with("(nothing_to_pay)") => {}
        other => panic!("{other:?}"),
    }

    // ListBatches: the daemon's one batch, as the TUI lists it.
    let row = paid_batch(d, id).await;
    assert_eq!(row.total_sat, 20_000);
    assert_eq!(s.standin().received_by(&s.address), 20_000);
    d.assert_verified();
}

/// Polls ListBatches (through the TUI's client) until the one batch holding
/// `withdrawal` has a txid; asserts no other batch exists.
async fn paid_batch(d: &Daemon, withdrawal: i64) -> pooldesk_proto::model::BatchRow {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match tui_ok(d, Request::ListBatches { limit: None }).await {
            Response::Batches(rows) => {
                assert!(rows.len() <= 1, "more than one batch: {rows:?}");
                if let Some(row) = rows.first().filter(|r| r.txid.is_some()) {
                    assert_eq!(row.withdrawal_ids, vec![withdrawal]);
                    return row.clone();
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "withdrawal {withdrawal} was never paid: {rows:?}\n{}",
                    d.log_tail()
                );
            }
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- the TUI's App, driven by keys, against the real daemon -------------------

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pooldesk_proto::control::ResponseFrame;
use pooldesk_tui::app::App;
use pooldesk_tui::client::ClientEvent;
use pooldesk_tui::ui::dialog::Modal;

fn ch(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn enter() -> KeyEvent {
    KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)
}

/// Sends everything `app` queued to the real daemon through the TUI's
/// client, feeds each answer back, until the app asks nothing more.
async fn pump_real(app: &mut App, d: &Daemon) {
    for _ in 0..1000 {
        let outbox = app.take_outbox();
        if outbox.is_empty() {
            return;
        }
        for frame in outbox {
            let outcome = match one_shot(&d.socket, frame.body.clone(), WAIT).await {
                Ok((_, response)) => pooldesk_proto::control::Outcome::Ok(response),
                Err(message) => {
                    // one_shot folds the error body into "message (code)".
                    let code = message
                        .rsplit_once(" (")
                        .map(|(_, c)| c.trim_end_matches(')').to_string())
                        .unwrap_or_else(|| "client".into());
                    pooldesk_proto::control::Outcome::Err(pooldesk_proto::control::ErrorBody::new(
                        &code, &message,
                    ))
                }
            };
            app.handle_client(ClientEvent::Response(ResponseFrame {
                id: frame.id,
                outcome,
            }));
        }
    }
    panic!("the app kept sending requests");
}

fn flash(app: &App) -> String {
    app.flash
        .as_ref()
        .map(|f| f.text.clone())
        .unwrap_or_default()
}

#[test]
fn the_tui_app_driven_by_keys_changes_the_real_daemon() {
    on_a_big_stack(the_tui_app_driven_by_keys_changes_the_real_daemon_body);
}

async fn the_tui_app_driven_by_keys_changes_the_real_daemon_body() {
    let mut s = Setup::with_standin("hot", "", "").await;
    let d = &s.daemon;
    let (welcome, _) = one_shot(&d.socket, Request::Snapshot, WAIT)
        .await
        .expect("hello");
    let mut app = App::new(d.socket.display().to_string());
    app.tick(now_s(), 1_000);
    app.handle_client(ClientEvent::Connected(welcome));
    pump_real(&mut app, d).await;

    // Miners tab: the daemon's one miner; K y rotates its key and the
    // dialog shows the daemon's new key, which works while the old one is
    // refused (the string comes from the daemon, not from the test).
    app.handle_key(ch('2'));
    pump_real(&mut app, d).await;
    assert_eq!(
        app.miners.visible_ids().collect::<Vec<_>>(),
        vec![s.miner.as_str()]
    );
    app.handle_key(ch('K'));
    app.handle_key(ch('y'));
    pump_real(&mut app, d).await;
    let Some(Modal::Notice(notice)) = &app.modal else {
        panic!("no key dialog: {:?} / {}", app.modal.is_some(), flash(&app));
    };
    let text: String = notice.body.iter().map(|l| format!("{l}\n")).collect();
    let shown = text
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 64)
        .unwrap_or_else(|| panic!("no key in the dialog:\n{text}"))
        .to_string();
    assert_ne!(shown, s.key, "the key was not rotated");
    app.handle_key(enter());
    let (status, body) = s.set_address(&s.miner, &shown, &s.address).await;
    assert_eq!(status, 200, "the shown key is refused: {body}");
    let (status, _) = s.set_address(&s.miner, &s.key, &s.address).await;
    assert_eq!(status, 401, "the rotated-out key still works");
    s.key = shown;

    // d y deactivates: the daemon refuses the miner's pool reports.
    app.handle_key(ch('d'));
    app.handle_key(ch('y'));
    pump_real(&mut app, d).await;
    let (status, body) = d.post_report(&s.miner, "rig", 1).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("inactive")));
    app.handle_key(ch('d'));
    app.handle_key(ch('y'));
    pump_real(&mut app, d).await;
    assert_eq!(d.post_report(&s.miner, "rig", 1).await.0, 200);

    // Withdrawals tab: r + a reason rejects the daemon's withdrawal and
    // returns the money.
    let before = d.balance_msat(&s.miner).await;
    let rejected = s.request("0.0003").await;
    app.handle_key(ch('3'));
    pump_real(&mut app, d).await;
    // The tab was loaded at connect, before this withdrawal existed, and the
    // app's clock does not move here: F5 reloads it from the daemon.
    app.handle_key(KeyEvent::new(KeyCode::F(5), KeyModifiers::NONE));
    pump_real(&mut app, d).await;
    assert_eq!(app.withdrawals.current().expect("a row").id, rejected);
    app.handle_key(ch('r'));
    for c in "wrong address".chars() {
        app.handle_key(ch(c));
    }
    app.handle_key(enter());
    pump_real(&mut app, d).await;
    assert_eq!(s.withdrawal(rejected).await["state"], "rejected");
    assert_eq!(d.balance_msat(&s.miner).await, before);

    // a y approves as this peer: the flash names the uid the daemon took
    // from the socket (SO_PEERCRED), and the daemon recorded the same.
    let approved = s.request("0.0002").await;
    app.handle_key(KeyEvent::new(KeyCode::F(5), KeyModifiers::NONE));
    pump_real(&mut app, d).await;
    // From the first row down to the new withdrawal.
    app.handle_key(ch('g'));
    while app.withdrawals.current().map(|w| w.id) != Some(approved) {
        let at = app.withdrawals.current().map(|w| w.id);
        app.handle_key(ch('j'));
        assert_ne!(
            app.withdrawals.current().map(|w| w.id),
            at,
            "withdrawal {approved} is not listed"
        );
    }
    app.handle_key(ch('a'));
    app.handle_key(ch('y'));
    pump_real(&mut app, d).await;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = format!("uid:{}", unsafe { libc::getuid() });
    assert!(flash(&app).contains(&uid), "{}", flash(&app));
    let w = s.withdrawal(approved).await;
    assert_eq!(
        (w["state"].as_str(), w["decided_by"].as_str()),
        (Some("approved"), Some(uid.as_str()))
    );

    // P y pauses payouts in the daemon; b y then sends nothing; P y
    // resumes and b y sends the approved withdrawal.
    app.handle_key(ch('P'));
    app.handle_key(ch('y'));
    pump_real(&mut app, d).await;
    assert_eq!(
        d.sql_i64("SELECT COUNT(*) FROM settings WHERE key = 'payouts_paused'"),
        1,
        "{}",
        flash(&app)
    );
    app.handle_key(ch('b'));
    app.handle_key(ch('y'));
    pump_real(&mut app, d).await;
    assert_eq!(s.withdrawal(approved).await["state"], "approved");
    assert_eq!(s.standin().received_by(&s.address), 0);
    // P toggles by what the app's snapshot says: wait until the daemon's
    // snapshot (asked for as the app's clock moves on) shows the pause.
    let mut clock_ms = 1_000;
    let deadline = std::time::Instant::now() + WAIT;
    while !app
        .shared
        .snapshot
        .as_ref()
        .is_some_and(|s| s.wallet.payouts_paused)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the snapshot never showed the pause"
        );
        clock_ms += 6_000;
        app.tick(now_s(), clock_ms);
        pump_real(&mut app, d).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.handle_key(ch('P'));
    app.handle_key(ch('y'));
    pump_real(&mut app, d).await;
    assert_eq!(
        d.sql_i64("SELECT COUNT(*) FROM settings WHERE key = 'payouts_paused'"),
        0
    );
    // b y sends it (unless the batch worker, woken by the resume, did
    // first): one batch pays it exactly once.
    app.handle_key(ch('b'));
    app.handle_key(ch('y'));
    pump_real(&mut app, d).await;
    paid_batch(d, approved).await;
    assert_eq!(
        s.standin().received_by(&s.address),
        20_000,
        "{}",
        flash(&app)
    );
    assert_ne!(s.withdrawal(approved).await["state"], "approved");
    d.assert_verified();
}
