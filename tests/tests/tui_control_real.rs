//! The TUI's own client code (`pooldesk_tui::client::one_shot` and its
//! socket task `spawn`, the code `pooldesk` runs) against a real
//! `pooldeskd`: each control request the TUI sends changes the daemon's
//! state as the daemon itself reports it (HTTP answers, the ledger, the
//! regtest node), and the TUI's miner sort is checked against the order the
//! daemon's `sort_rows` produced. Every request of
//! `pooldesk_proto::control::Request` is sent here: Snapshot, Subscribe,
//! ListMiners, MinerDetail, SetMinerActive, IssueKey, ListWithdrawals,
//! ApproveWithdrawals, RejectWithdrawal, SendBatch (hot and cold),
//! ListBatches, PsbtReview, ImportPsbt, FinalizePsbt, ResolveBatch (Failed,
//! Paid), SetPayoutsPaused, FaucetStatus, ResolveFaucetBatch (Failed, Paid)
//! and AuditPage. The PSBT and resolution tests need a real Bitcoin Core
//! (`BITCOIND_EXE`); without one they say so and, under `CI=true`, fail.

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

// ---- PSBT review, import, finalize and batch resolutions: a real wallet -------

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_proto::model::BatchResolution;

const SUITE: &str = "tui_control_real";
const CRASH: &str = "POOLDESK_TEST_CRASH_AT";

/// A regtest node with a `pool` wallet holding `mature` spendable
/// coinbases and an empty `recv` wallet; `None` when the suite is skipped
/// (which fails under `CI=true`).
async fn node_with_coins(mature: u32) -> Option<(Bitcoind, String)> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(100 + mature, &mine_to).await;
    Some((node, mine_to))
}

/// The daemon's batch `id` as the TUI lists it.
async fn batch_row(d: &Daemon, id: i64) -> pooldesk_proto::model::BatchRow {
    match tui_ok(d, Request::ListBatches { limit: None }).await {
        Response::Batches(rows) => rows
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("batch {id} is not listed")),
        other => panic!("{other:?}"),
    }
}

/// Polls (through the TUI's client) until batch `id` is in `state`.
async fn wait_batch_state(d: &Daemon, id: i64, state: &str) -> pooldesk_proto::model::BatchRow {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let row = batch_row(d, id).await;
        if row.state == state {
            return row;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "batch {id} never reached {state}: {row:?}\n{}",
            d.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn psbt_review(d: &Daemon, psbt_id: i64) -> pooldesk_proto::model::PsbtReview {
    match tui_ok(d, Request::PsbtReview { psbt_id }).await {
        Response::PsbtReview(review) => *review,
        other => panic!("{other:?}"),
    }
}

#[test]
fn cold_psbt_requests_from_the_tui_pay_through_a_real_wallet() {
    on_a_big_stack(cold_psbt_requests_from_the_tui_pay_through_a_real_wallet_body);
}

/// SendBatch (cold) → PsbtReview → ImportPsbt (a foreign PSBT refused, the
/// one signed by Core's `walletprocesspsbt` taken) → FinalizePsbt: each
/// step is the daemon's state (its batch, withdrawal and PSBT records), and
/// the receiver is paid once, by the reviewed transaction.
async fn cold_psbt_requests_from_the_tui_pay_through_a_real_wallet_body() {
    let Some((node, mine_to)) = node_with_coins(2).await else {
        return;
    };
    let address = node.new_address("recv").await;
    let s = Setup::with_node(&node.node("pool"), "cold", "", "", address.clone()).await;
    let d = &s.daemon;
    let id = s.request("0.0004").await;
    s.approve(id).await;

    // SendBatch in cold mode: a PSBT, recorded, nothing sent.
    let created = match tui_ok(
        d,
        Request::SendBatch {
            withdrawal_ids: vec![],
        },
    )
    .await
    {
        Response::Batch(b) => b,
        other => panic!("{other:?}"),
    };
    let (batch_id, psbt_id) = (
        created.batch.id,
        created.batch.psbt_id.expect("a cold batch names its PSBT"),
    );
    let unsigned = created.psbt.expect("a cold batch carries its PSBT");
    assert_eq!(created.batch.withdrawal_ids, vec![id]);
    assert_eq!(s.withdrawal(id).await["state"], "batched");
    assert_eq!(
        d.sql_text(&format!(
            "SELECT state || ':' || unsigned_psbt FROM psbts WHERE id = {psbt_id}"
        )),
        format!("unsigned:{unsigned}")
    );
    assert!(
        node.mempool().await.is_empty(),
        "a cold batch sends nothing"
    );

    // PsbtReview: the daemon's reading of the PSBT it built.
    let review = psbt_review(d, psbt_id).await;
    assert_eq!(
        (review.batch_id, review.state.as_str(), review.psbt.as_str()),
        (batch_id, "unsigned", unsigned.as_str())
    );
    assert_eq!(review.paid_to_miners_sat, 40_000);
    assert!(!review.signatures.complete && review.signatures.inputs_signed == 0);
    let paid: Vec<_> = review
        .outputs
        .iter()
        .filter(|o| o.role == "withdrawal")
        .map(|o| (o.address.as_str(), o.amount_sat, o.withdrawal_ids.clone()))
        .collect();
    assert_eq!(paid, vec![(address.as_str(), 40_000, vec![id])]);
    assert!(review.warnings.is_empty(), "{:?}", review.warnings);

    // ImportPsbt of a signed PSBT paying someone else: refused, nothing kept.
    let elsewhere = node.new_address("recv").await;
    let foreign = node
        .call(
            Some("pool"),
            "walletcreatefundedpsbt",
            &json!([[], [{ elsewhere.clone(): 0.0004 }]]).to_string(),
        )
        .await;
    let foreign = node
        .sign_psbt(
            "pool",
            foreign.get("psbt").and_then(|p| p.as_str()).expect("psbt"),
        )
        .await;
    let refused = tui(
        d,
        Request::ImportPsbt {
            psbt_id,
            psbt: foreign,
        },
    )
    .await;
    assert!(
        matches!(&refused, Err(e) if e.ends_with("(psbt_mismatch)")),
        "{refused:?}"
    );
    assert_eq!(psbt_review(d, psbt_id).await.state, "unsigned");
    assert_eq!(
        d.sql_i64(&format!(
            "SELECT COUNT(*) FROM psbts WHERE id = {psbt_id} AND signed_psbt IS NULL"
        )),
        1,
        "the refused PSBT was stored"
    );

    // ImportPsbt of the PSBT signed by the wallet, as an offline signer
    // would: stored, reviewed as complete; still nothing sent.
    let signed = node.sign_psbt("pool", &unsigned).await;
    let imported = match tui_ok(
        d,
        Request::ImportPsbt {
            psbt_id,
            psbt: signed.clone(),
        },
    )
    .await
    {
        Response::PsbtReview(r) => *r,
        other => panic!("{other:?}"),
    };
    assert_eq!(imported.state, "signed");
    assert!(imported.signatures.complete, "{:?}", imported.signatures);
    assert!(
        imported.differences.is_empty(),
        "{:?}",
        imported.differences
    );
    assert_eq!(
        d.sql_text(&format!(
            "SELECT state || ':' || signed_psbt FROM psbts WHERE id = {psbt_id}"
        )),
        format!("signed:{signed}")
    );
    assert_eq!(batch_row(d, batch_id).await.state, "signed");
    assert!(node.mempool().await.is_empty(), "import sends nothing");

    // FinalizePsbt: broadcast by the daemon, the reviewed txid, paid once.
    let sent = match tui_ok(d, Request::FinalizePsbt { psbt_id }).await {
        Response::Broadcast(b) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(sent.batch_id, batch_id);
    assert_eq!(review.txid.as_deref(), Some(sent.txid.as_str()));
    assert_eq!(node.mempool().await, vec![sent.txid.clone()]);
    assert_eq!(node.received_sat("recv", &address, 0).await, 40_000);
    let w = s.withdrawal(id).await;
    assert_eq!(
        (w["state"].as_str(), w["txid"].as_str()),
        (Some("broadcast"), Some(sent.txid.as_str()))
    );
    assert_eq!(s.ledger_paid_sat(), 40_000);
    let after = psbt_review(d, psbt_id).await;
    assert_eq!(after.state, "broadcast");
    // A second finalize is not a second payment.
    let again = tui(d, Request::FinalizePsbt { psbt_id }).await;
    assert!(again.is_err(), "{again:?}");
    node.mine(1, &mine_to).await;
    s.wait_withdrawal(id, &["confirmed"], WAIT).await;
    assert_eq!(node.received_sat("recv", &address, 1).await, 40_000);
    d.assert_verified();
    d.assert_wallet_verified();
}

#[test]
fn resolve_batch_from_the_tui_failed_then_paid_against_a_real_wallet() {
    on_a_big_stack(resolve_batch_from_the_tui_failed_then_paid_against_a_real_wallet_body);
}

/// Two payouts whose transactions are killed by a mined conflicting spend
/// (so each batch lands in `needs_attention`): the first is resolved
/// Failed through the TUI (money back to the miner, nothing paid, inputs
/// unlocked), the second Paid with the txid of the admin's own payment
/// (recorded as the batch's transaction; the receiver is paid once).
async fn resolve_batch_from_the_tui_failed_then_paid_against_a_real_wallet_body() {
    let Some((node, mine_to)) = node_with_coins(5).await else {
        return;
    };
    let address = node.new_address("recv").await;
    let s = Setup::with_node(
        &node.node("pool"),
        "hot",
        "confirmations = 2",
        "",
        address.clone(),
    )
    .await;
    let d = &s.daemon;
    let funded = d.balance_msat(&s.miner).await;

    // A batch sent through the TUI, then killed by a mined conflict.
    let attention = |amount: &'static str| {
        let (s, node, mine_to) = (&s, &node, &mine_to);
        async move {
            let id = s.request(amount).await;
            s.approve(id).await;
            let sent = match tui_ok(
                &s.daemon,
                Request::SendBatch {
                    withdrawal_ids: vec![],
                },
            )
            .await
            {
                Response::Batch(b) => b.batch,
                other => panic!("{other:?}"),
            };
            let txid = sent.txid.clone().expect("hot batches know their txid");
            let elsewhere = node.new_address("recv").await;
            let conflict = node
                .spend_first_input_elsewhere("pool", &txid, &elsewhere)
                .await;
            node.mine(1, mine_to).await;
            let row = wait_batch_state(&s.daemon, sent.id, "needs_attention").await;
            assert!(
                row.note.as_deref().unwrap_or_default().contains(&conflict),
                "{row:?}"
            );
            assert_eq!(s.withdrawal(id).await["state"], "needs_attention");
            (id, sent.id, conflict)
        }
    };

    // Failed: refused while the conflict is 1 deep of 2 (the payout could
    // still come back), then returns the money once it is deep.
    let (first, batch_id, conflict) = attention("0.0002").await;
    assert_eq!(
        s.ledger_paid_sat(),
        20_000,
        "counted as paid until resolved"
    );
    let early = tui(
        d,
        Request::ResolveBatch {
            batch_id,
            resolution: BatchResolution::Failed,
        },
    )
    .await;
    assert!(
        matches!(&early, Err(e) if e.contains("only 1 deep") && e.ends_with("(conflict)")),
        "{early:?}"
    );
    assert_eq!(batch_row(d, batch_id).await.state, "needs_attention");
    // Paid with a transaction that does not pay the batch: refused.
    let wrong = tui(
        d,
        Request::ResolveBatch {
            batch_id,
            resolution: BatchResolution::Paid {
                txid: conflict.clone(),
            },
        },
    )
    .await;
    assert!(
        matches!(&wrong, Err(e) if e.ends_with("(invalid)")),
        "{wrong:?}"
    );
    node.mine(1, &mine_to).await;
    let done = tui_ok(
        d,
        Request::ResolveBatch {
            batch_id,
            resolution: BatchResolution::Failed,
        },
    )
    .await;
    assert!(matches!(done, Response::Done(_)), "{done:?}");
    assert_eq!(batch_row(d, batch_id).await.state, "failed");
    assert_eq!(s.withdrawal(first).await["state"], "failed");
    assert_eq!(d.balance_msat(&s.miner).await, funded, "money back");
    assert_eq!(s.ledger_paid_sat(), 0);
    assert_eq!(
        d.sql_i64(
            "SELECT COALESCE(SUM(balance_msat), 0) FROM accounts WHERE name = 'fees:network'"
        ),
        0,
        "the dead transaction's fee is reversed"
    );
    let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
    assert_eq!(
        locks.as_arr().map(|l| l.len()),
        Some(0),
        "{}",
        locks.to_text()
    );
    assert_eq!(node.received_sat("recv", &address, 0).await, 0);
    d.assert_verified();

    // Paid{txid}: the admin pays the receiver with the wallet's own tool;
    // that transaction becomes the batch's, and nothing else is sent.
    let (second, batch_id, _) = attention("0.0003").await;
    let manual = node
        .call(
            Some("pool"),
            "sendtoaddress",
            &json!([address, 0.0003]).to_string(),
        )
        .await
        .as_str()
        .expect("txid")
        .to_string();
    let done = tui_ok(
        d,
        Request::ResolveBatch {
            batch_id,
            resolution: BatchResolution::Paid {
                txid: manual.clone(),
            },
        },
    )
    .await;
    assert!(matches!(done, Response::Done(_)), "{done:?}");
    let row = batch_row(d, batch_id).await;
    assert_eq!(
        (row.state.as_str(), row.txid.as_deref()),
        ("broadcast", Some(manual.as_str()))
    );
    let w = s.withdrawal(second).await;
    assert_eq!(
        (w["state"].as_str(), w["txid"].as_str()),
        (Some("broadcast"), Some(manual.as_str()))
    );
    assert_eq!(s.ledger_paid_sat(), 30_000);
    assert_eq!(d.balance_msat(&s.miner).await, funded - 30_000_000);
    node.mine(2, &mine_to).await;
    s.wait_withdrawal(second, &["confirmed"], WAIT).await;
    assert_eq!(node.mempool().await, Vec::<String>::new());
    assert_eq!(
        node.received_sat("recv", &address, 1).await,
        30_000,
        "paid once"
    );
    d.assert_verified();
}

#[test]
fn resolve_faucet_batch_from_the_tui_against_a_real_wallet() {
    on_a_big_stack(resolve_faucet_batch_from_the_tui_against_a_real_wallet_body);
}

/// A faucet batch an older daemon (before txid-first: `prebuilt = 0`) left
/// `sending` cannot be proven unsent, so the restarted daemon parks it in
/// `needs_attention`. Made here by killing the daemon at `faucet_signed`
/// (nothing left the wallet) and marking the batch as an old one. The TUI
/// resolves one Failed (request cancelled, hold back in the budget) and one
/// Paid with the admin's own payment (request paid by that txid).
async fn resolve_faucet_batch_from_the_tui_against_a_real_wallet_body() {
    let Some((node, _mine_to)) = node_with_coins(2).await else {
        return;
    };
    let mut d = Daemon::start(DaemonOptions {
        config: pooldesk_e2e::payouts::config(
            &node.node("pool"),
            "hot",
            "",
            "[faucet]\ndifficulty_bits = 8\nbatch_interval_s = 1\ncooldown_s = 0\n",
        ),
        env: vec![(CRASH.into(), "faucet_signed".into())],
        ..Default::default()
    })
    .await;
    let held = |d: &Daemon| {
        d.sql_i64("SELECT COALESCE(SUM(balance_msat), 0) FROM accounts WHERE name = 'faucet:held'")
    };
    let mut parked = Vec::new();
    for round in 0..2 {
        let address = node.new_address("recv").await;
        if round > 0 {
            d.opts.env.push((CRASH.into(), "faucet_signed".into()));
            d.restart().await;
        }
        let id = d.faucet_claim(&address).await;
        d.wait_exited(WAIT).await;
        let batch_id = d.sql_i64(&format!(
            "SELECT batch_id FROM faucet_requests WHERE id = {id} AND state = 'sending'"
        ));
        let conn = rusqlite::Connection::open(d.data_dir.join("ledger.sqlite")).expect("ledger");
        conn.execute(
            "UPDATE faucet_batches SET prebuilt = 0 WHERE id = ?1 AND state = 'sending'",
            [batch_id],
        )
        .expect("an old daemon's batch");
        drop(conn);
        d.opts.env.retain(|(k, _)| k != CRASH);
        d.start_again().await;
        let deadline = std::time::Instant::now() + WAIT;
        while d.sql_text(&format!(
            "SELECT state FROM faucet_batches WHERE id = {batch_id}"
        )) != "needs_attention"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "faucet batch {batch_id} was never parked\n{}",
                d.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        parked.push((id, batch_id, address));
    }
    assert!(node.mempool().await.is_empty(), "nothing was sent");
    assert_eq!(held(&d), 2 * 10_000_000);

    // Failed: the request is cancelled and its hold returns to the budget.
    let (id, batch_id, address) = parked[0].clone();
    let done = tui_ok(
        &d,
        Request::ResolveFaucetBatch {
            batch_id,
            resolution: BatchResolution::Failed,
        },
    )
    .await;
    assert!(matches!(done, Response::Done(_)), "{done:?}");
    let (status, body) = d.get(&format!("/api/faucet/requests/{id}")).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    assert_eq!(held(&d), 10_000_000);
    assert_eq!(node.received_sat("recv", &address, 0).await, 0);

    // Paid: a transaction that does not pay the batch is refused; the
    // admin's own payment to the address is recorded as the batch's.
    let (id, batch_id, address) = parked[1].clone();
    let other = node.new_address("recv").await;
    let unrelated = node
        .call(
            Some("pool"),
            "sendtoaddress",
            &json!([other, 0.0001]).to_string(),
        )
        .await
        .as_str()
        .expect("txid")
        .to_string();
    let wrong = tui(
        &d,
        Request::ResolveFaucetBatch {
            batch_id,
            resolution: BatchResolution::Paid { txid: unrelated },
        },
    )
    .await;
    assert!(
        matches!(&wrong, Err(e) if e.ends_with("(invalid)")),
        "{wrong:?}"
    );
    let manual = node
        .call(
            Some("pool"),
            "sendtoaddress",
            &json!([address, 0.0001]).to_string(),
        )
        .await
        .as_str()
        .expect("txid")
        .to_string();
    tui_ok(
        &d,
        Request::ResolveFaucetBatch {
            batch_id,
            resolution: BatchResolution::Paid {
                txid: manual.clone(),
            },
        },
    )
    .await;
    let (status, body) = d.get(&format!("/api/faucet/requests/{id}")).await;
    assert_eq!(
        (status, body["state"].as_str(), body["txid"].as_str()),
        (200, Some("paid"), Some(manual.as_str())),
        "{body}"
    );
    assert_eq!(held(&d), 0);
    assert_eq!(
        d.sql_i64("SELECT balance_msat FROM accounts WHERE name = 'faucet:sent'"),
        10_000_000
    );
    assert_eq!(node.received_sat("recv", &address, 0).await, 10_000);
    d.assert_verified();
}

// ---- the read side and approvals: Subscribe, ListWithdrawals, ------------------
// ---- ApproveWithdrawals, AuditPage, FaucetStatus, Snapshot ---------------------

#[test]
fn read_requests_and_approvals_from_the_tui_are_the_real_daemons_state() {
    on_a_big_stack(read_requests_and_approvals_from_the_tui_are_the_real_daemons_state_body);
}

/// The requests the other tests only reach through the App: each answer is
/// checked against the daemon's own HTTP view or ledger, and the
/// subscription (the TUI's long-lived socket task) carries the daemon's
/// event for the approval.
async fn read_requests_and_approvals_from_the_tui_are_the_real_daemons_state_body() {
    use pooldesk_proto::control::{Outcome, RequestFrame};
    use pooldesk_proto::model::{Event, ListWithdrawals};
    use pooldesk_tui::client::{Backoff, spawn};

    let s = Setup::with_standin("hot", "", "[faucet]\ndifficulty_bits = 8\n").await;
    let d = &s.daemon;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = format!("uid:{}", unsafe { libc::getuid() });

    // Subscribe on the TUI's own socket task.
    let (events_tx, mut events) = tokio::sync::mpsc::channel(1024);
    let requests = spawn(d.socket.clone(), Backoff::default(), events_tx);
    loop {
        if let ClientEvent::Connected(welcome) = next(&mut events).await {
            assert_eq!(welcome.peer_uid.to_string(), uid["uid:".len()..]);
            break;
        }
    }
    requests
        .send(RequestFrame {
            id: 1,
            body: Request::Subscribe,
        })
        .await
        .expect("queue subscribe");
    loop {
        if let ClientEvent::Response(r) = next(&mut events).await {
            assert_eq!(r.id, 1);
            assert_eq!(r.outcome, Outcome::Ok(Response::Subscribed));
            break;
        }
    }

    // ListWithdrawals: the daemon's rows, as its HTTP API lists them.
    let id = s.request("0.0002").await;
    let listed = match tui_ok(
        d,
        Request::ListWithdrawals(ListWithdrawals {
            state: Some("requested".into()),
            offset: 0,
            limit: None,
        }),
    )
    .await
    {
        Response::Withdrawals(page) => page,
        other => panic!("{other:?}"),
    };
    assert_eq!(listed.total, 1);
    let row = &listed.rows[0];
    let http = s.withdrawal(id).await;
    assert_eq!(
        (
            row.id,
            row.miner_id.as_str(),
            row.amount_sat,
            row.address.as_str()
        ),
        (
            id,
            s.miner.as_str(),
            http["amount_sat"].as_i64().expect("amount_sat"),
            s.address.as_str()
        )
    );
    assert_eq!(row.amount_sat, 20_000);

    // ApproveWithdrawals: approved in the daemon, decided by this peer's
    // uid; an unknown id is refused in its own row.
    let results = match tui_ok(
        d,
        Request::ApproveWithdrawals {
            ids: vec![id, 999_999],
        },
    )
    .await
    {
        Response::Approvals(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results[0].ok && results[0].state.as_deref() == Some("approved"));
    assert!(!results[1].ok && results[1].error.is_some(), "{results:?}");
    let http = s.withdrawal(id).await;
    assert_eq!(
        (http["state"].as_str(), http["decided_by"].as_str()),
        (Some("approved"), Some(uid.as_str()))
    );
    // ... and the subscription carried the daemon's event for it.
    loop {
        if let ClientEvent::Event(frame) = next(&mut events).await
            && let Event::Withdrawal(w) = frame.event
            && w.id == id
            && w.state == "approved"
        {
            assert_eq!(w.decided_by.as_deref(), Some(uid.as_str()));
            break;
        }
    }
    drop(requests);

    // AuditPage: the approval, under this uid.
    let audit = match tui_ok(
        d,
        Request::AuditPage {
            before_id: None,
            limit: Some(50),
        },
    )
    .await
    {
        Response::Audit(page) => page,
        other => panic!("{other:?}"),
    };
    let subject = format!("withdrawal:{id}");
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.actor == uid && e.subject == subject && e.action.contains("approve")),
        "{:#?}",
        audit.entries
    );
    assert!(
        audit.entries.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );

    // FaucetStatus: the daemon's faucet, as its public API states it, with
    // the claim just made.
    let claim = d
        .faucet_claim(
            &s.standin()
                .new_external_address(pooldesk_e2e::standin::AddrKind::P2wpkh),
        )
        .await;
    let faucet = match tui_ok(d, Request::FaucetStatus).await {
        Response::Faucet(f) => *f,
        other => panic!("{other:?}"),
    };
    let (status, public) = d.get("/api/faucet").await;
    assert_eq!(status, 200, "{public}");
    assert_eq!(
        (
            faucet.enabled,
            faucet.amount_sat,
            faucet.daily_budget_sat,
            faucet.cooldown_s
        ),
        (
            public["enabled"].as_bool().expect("enabled"),
            public["amount_sat"].as_i64().expect("amount"),
            public["daily_budget_sat"].as_i64().expect("budget"),
            public["cooldown_s"].as_u64().expect("cooldown"),
        )
    );
    assert!(
        faucet
            .queued
            .iter()
            .chain(&faucet.recent)
            .any(|r| r.id == claim),
        "{faucet:?}"
    );

    // Snapshot: the daemon's counts and ledger totals (the snapshot is
    // refreshed by the daemon: wait for the one showing the approval).
    let deadline = std::time::Instant::now() + WAIT;
    let snapshot = loop {
        let snapshot = match tui_ok(d, Request::Snapshot).await {
            Response::Snapshot(s) => *s,
            other => panic!("{other:?}"),
        };
        if snapshot.withdrawals.approved == 1 {
            break snapshot;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the snapshot never showed the approval: {:?}",
            snapshot.withdrawals
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(snapshot.payout_mode, "hot");
    assert_eq!(snapshot.miners_total, 1);
    assert_eq!(
        snapshot.ledger.owed_msat,
        d.balance_msat(&s.miner).await,
        "what the pool owes is the one miner's balance"
    );
    assert_eq!(
        snapshot.ledger.held_msat,
        d.sql_i64("SELECT balance_msat FROM accounts WHERE name = 'withdrawals:held'")
    );
    assert_eq!(snapshot.ledger.held_msat, 20_000_000);
    d.assert_verified();
}

/// The next thing the TUI's socket task reports (within the deadline).
async fn next(events: &mut tokio::sync::mpsc::Receiver<ClientEvent>) -> ClientEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("the TUI's client went quiet")
        .expect("the TUI's client ended")
}
