//! Application state and the one place where things happen.
//!
//! Data flows one way (ratatui component template): keys become [`Action`]s
//! in the screens; [`App::apply`] carries them out (queue a request, open a
//! dialog, switch tab); answers and pushed events from the socket task come
//! back through [`App::handle_client`] and are routed to the screen that asked,
//! by the [`Purpose`] recorded with each request id.
//!
//! The app never touches the socket or the terminal: requests go to
//! [`App::take_outbox`], which the run loop hands to the socket task. That is
//! what lets the key-handling tests assert "pressing `a` alone sends nothing".

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};
use pooldesk_proto::control::{
    ErrorBody, EventFrame, Outcome, Request, RequestFrame, Response, Welcome,
};
use pooldesk_proto::model::{BatchRow, Event, Snapshot};

use crate::client::ClientEvent;
use crate::keys::{ctrl, plain};
use crate::ui::audit::Audit;
use crate::ui::blocks::Blocks;
use crate::ui::dialog::{Confirm, Modal, ModalKey, Notice};
use crate::ui::faucet::Faucet;
use crate::ui::miners::Miners;
use crate::ui::overview::Overview;
use crate::ui::psbt::Psbt;
use crate::ui::withdrawals::Withdrawals;

/// The seven screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Miners,
    Withdrawals,
    Psbt,
    Faucet,
    Audit,
    Blocks,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Overview,
        Tab::Miners,
        Tab::Withdrawals,
        Tab::Psbt,
        Tab::Faucet,
        Tab::Audit,
        Tab::Blocks,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Miners => "Miners",
            Tab::Withdrawals => "Withdrawals",
            Tab::Psbt => "PSBT",
            Tab::Blocks => "Blocks",
            Tab::Faucet => "Faucet",
            Tab::Audit => "Audit",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    fn step(self, delta: isize) -> Tab {
        let n = Tab::ALL.len() as isize;
        Tab::ALL[(self.index() as isize + delta).rem_euclid(n) as usize]
    }
}

/// The connection as the socket task last described it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnState {
    /// Trying to connect; `attempt` 0 is the very first try.
    Connecting {
        attempt: u32,
    },
    Live,
    /// Not connected; next attempt at `retry_at_ms` (on [`Shared::clock_ms`]).
    Reconnecting {
        attempt: u32,
        retry_at_ms: u64,
        reason: String,
    },
}

/// State every screen may read: connection, clock and the daemon's
/// pushed views.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Wall clock, Unix seconds (ages and "last data at").
    pub now_s: i64,
    /// Monotonic milliseconds since start (countdowns, refresh intervals).
    pub clock_ms: u64,
    pub conn: ConnState,
    pub socket: String,
    pub welcome: Option<Welcome>,
    pub snapshot: Option<Snapshot>,
    /// Payout batches, newest first (from `list_batches` and `Batch` events).
    pub batches: Vec<BatchRow>,
    pub batches_error: Option<String>,
    /// Terminal width last drawn, so screens can pick a layout for keys too.
    pub width: u16,
}

impl Shared {
    pub fn live(&self) -> bool {
        self.conn == ConnState::Live
    }

    /// Demo mode as either the welcome or the latest snapshot says.
    pub fn simulated(&self) -> bool {
        self.welcome.as_ref().is_some_and(|w| w.simulated)
            || self.snapshot.as_ref().is_some_and(|s| s.simulated)
    }

    /// How the daemon records this admin in the audit log.
    pub fn actor(&self) -> String {
        self.welcome
            .as_ref()
            .map_or_else(|| "uid:?".to_string(), |w| format!("uid:{}", w.peer_uid))
    }
}

/// Why a request was sent: decides where its answer goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    Subscribe,
    Snapshot,
    MinersPage { generation: u64 },
    MinerDetail { miner_id: String },
    SetMinerActive { miner_id: String, active: bool },
    IssueKey { miner_id: String },
    Withdrawals { generation: u64 },
    Batches,
    Approve { ids: Vec<i64> },
    Reject { id: i64 },
    SendBatch { ids: Vec<i64> },
    ResolveBatch { batch_id: i64, what: &'static str },
    PsbtReview { psbt_id: i64 },
    ImportPsbt { psbt_id: i64, path: String },
    FinalizePsbt { psbt_id: i64 },
    SetPayoutsPaused { paused: bool },
    Blocks,
    BlockStatement { hash: String },
    Faucet,
    Audit { before_id: Option<i64> },
}

impl Purpose {
    /// Requests that change something (and are audited by the daemon).
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Purpose::SetMinerActive { .. }
                | Purpose::IssueKey { .. }
                | Purpose::Approve { .. }
                | Purpose::Reject { .. }
                | Purpose::SendBatch { .. }
                | Purpose::ResolveBatch { .. }
                | Purpose::ImportPsbt { .. }
                | Purpose::FinalizePsbt { .. }
                | Purpose::SetPayoutsPaused { .. }
        )
    }

    /// Words for "waiting for …" and the quit confirmation.
    pub fn describe(&self) -> String {
        match self {
            Purpose::SetMinerActive { miner_id, active } => format!(
                "{} miner {miner_id}",
                if *active { "reactivate" } else { "deactivate" }
            ),
            Purpose::IssueKey { miner_id } => format!("issue a key for {miner_id}"),
            Purpose::Approve { ids } => format!("approve {}", id_list(ids)),
            Purpose::Reject { id } => format!("reject #{id}"),
            Purpose::SendBatch { ids } => format!("send a batch of {}", id_list(ids)),
            Purpose::ResolveBatch { batch_id, what } => format!("mark batch #{batch_id} {what}"),
            Purpose::ImportPsbt { psbt_id, .. } => format!("import PSBT #{psbt_id}"),
            Purpose::FinalizePsbt { psbt_id } => format!("finalize PSBT #{psbt_id}"),
            Purpose::SetPayoutsPaused { paused } => if *paused {
                "pause payouts"
            } else {
                "resume payouts"
            }
            .to_string(),
            other => format!("{other:?}"),
        }
    }
}

/// `#1, #2, #3` (at most 8 shown, then `+N more`).
pub fn id_list(ids: &[i64]) -> String {
    let mut parts: Vec<String> = ids.iter().take(8).map(|id| format!("#{id}")).collect();
    if ids.len() > 8 {
        parts.push(format!("+{} more", ids.len() - 8));
    }
    parts.join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Ok,
    Warn,
    Error,
}

/// The one-line message at the bottom: the last result or problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub level: Level,
    pub text: String,
    pub at_ms: u64,
}

/// Flash messages stay this long, then key hints come back.
const FLASH_MS: u64 = 30_000;

/// What keys (and answers) ask the app to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Queue a request to the daemon.
    Send(Purpose, Request),
    OpenModal(Modal),
    Flash(Level, String),
    SwitchTab(Tab),
    /// Switch to the PSBT tab and load this PSBT's review.
    OpenPsbt {
        psbt_id: i64,
    },
    /// Reload the current screen now.
    Refresh,
    /// Quit, asking first if something is pending.
    Quit,
    /// Quit without asking (confirmed).
    ForceQuit,
}

pub struct App {
    pub tab: Tab,
    pub shared: Shared,
    pub overview: Overview,
    pub miners: Miners,
    pub withdrawals: Withdrawals,
    pub psbt: Psbt,
    pub blocks: Blocks,
    pub faucet: Faucet,
    pub audit: Audit,
    pub modal: Option<Modal>,
    pub flash: Option<Flash>,
    pub quit: bool,
    pending: HashMap<u64, Purpose>,
    next_id: u64,
    outbox: Vec<RequestFrame>,
    /// When the last snapshot arrived (clock_ms), to ask again if the
    /// per-second push stops.
    snapshot_ms: Option<u64>,
}

/// Requests in flight at once; the socket task has its own, larger bound.
const MAX_PENDING: usize = 128;

impl App {
    pub fn new(socket: impl Into<String>) -> App {
        App {
            tab: Tab::Overview,
            shared: Shared {
                now_s: 0,
                clock_ms: 0,
                conn: ConnState::Connecting { attempt: 0 },
                socket: socket.into(),
                welcome: None,
                snapshot: None,
                batches: Vec::new(),
                batches_error: None,
                width: 80,
            },
            overview: Overview,
            miners: Miners::default(),
            withdrawals: Withdrawals::default(),
            psbt: Psbt::default(),
            blocks: Blocks::default(),
            faucet: Faucet::default(),
            audit: Audit::default(),
            modal: None,
            flash: None,
            quit: false,
            pending: HashMap::new(),
            next_id: 1,
            outbox: Vec::new(),
            snapshot_ms: None,
        }
    }

    /// Requests queued since the last call, for the socket task.
    pub fn take_outbox(&mut self) -> Vec<RequestFrame> {
        std::mem::take(&mut self.outbox)
    }

    /// Requests sent and not yet answered.
    pub fn pending(&self) -> impl Iterator<Item = &Purpose> {
        self.pending.values()
    }

    /// Actions sent and not yet answered, described for the admin.
    pub fn pending_actions(&self) -> Vec<String> {
        let mut ids: Vec<(&u64, &Purpose)> =
            self.pending.iter().filter(|(_, p)| p.is_action()).collect();
        ids.sort_by_key(|(id, _)| **id);
        ids.into_iter().map(|(_, p)| p.describe()).collect()
    }

    pub fn flash(&mut self, level: Level, text: impl Into<String>) {
        self.flash = Some(Flash {
            level,
            text: text.into(),
            at_ms: self.shared.clock_ms,
        });
    }

    /// The flash message, while it is fresh.
    pub fn current_flash(&self) -> Option<&Flash> {
        self.flash
            .as_ref()
            .filter(|f| self.shared.clock_ms.saturating_sub(f.at_ms) < FLASH_MS)
    }

    // ---- keys -------------------------------------------------------------

    pub fn handle_key(&mut self, key: KeyEvent) {
        if key.kind != KeyEventKind::Press {
            return;
        }
        let actions = self.key_actions(key);
        for action in actions {
            self.apply(action);
        }
    }

    fn key_actions(&mut self, key: KeyEvent) -> Vec<Action> {
        if ctrl(&key, 'c') {
            // Ctrl-C twice (in the quit confirmation) always gets out.
            if matches!(&self.modal, Some(Modal::Confirm(c)) if c.is_quit) {
                return vec![Action::ForceQuit];
            }
            self.modal = None;
            return vec![Action::Quit];
        }
        if let Some(modal) = self.modal.as_mut() {
            return match modal.handle_key(key) {
                ModalKey::Stay => Vec::new(),
                ModalKey::Close => {
                    self.modal = None;
                    Vec::new()
                }
                ModalKey::Confirm(actions) => {
                    self.modal = None;
                    actions
                }
                ModalKey::Submit => self.submit_prompt(),
            };
        }
        if self.typing() {
            return self.screen_key(key);
        }
        if ctrl(&key, 'r') || key.code == KeyCode::F(5) {
            return vec![Action::Refresh];
        }
        if plain(&key) {
            match key.code {
                KeyCode::Char(c @ '1'..='7') => {
                    let index = c as usize - '1' as usize;
                    return vec![Action::SwitchTab(Tab::ALL[index])];
                }
                KeyCode::Tab => return vec![Action::SwitchTab(self.tab.step(1))],
                KeyCode::BackTab => return vec![Action::SwitchTab(self.tab.step(-1))],
                KeyCode::Char('?') => return vec![Action::OpenModal(Modal::Help { scroll: 0 })],
                KeyCode::Char('q') => return vec![Action::Quit],
                _ => {}
            }
        }
        if key.code == KeyCode::BackTab {
            return vec![Action::SwitchTab(self.tab.step(-1))];
        }
        self.screen_key(key)
    }

    /// A screen has a text field open: it gets every key.
    fn typing(&self) -> bool {
        match self.tab {
            Tab::Miners => self.miners.typing(),
            _ => false,
        }
    }

    fn screen_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let sh = &self.shared;
        match self.tab {
            Tab::Overview => self.overview.handle_key(key, sh),
            Tab::Miners => self.miners.handle_key(key, sh),
            Tab::Withdrawals => self.withdrawals.handle_key(key, sh),
            Tab::Psbt => self.psbt.handle_key(key, sh),
            Tab::Blocks => self.blocks.handle_key(key, sh),
            Tab::Faucet => self.faucet.handle_key(key, sh),
            Tab::Audit => self.audit.handle_key(key, sh),
        }
    }

    /// Enter in a text prompt: validate, then act or say what is wrong.
    fn submit_prompt(&mut self) -> Vec<Action> {
        let Some(Modal::Prompt(prompt)) = self.modal.as_mut() else {
            return Vec::new();
        };
        match prompt.submit() {
            Ok(actions) => {
                self.modal = None;
                actions
            }
            Err(error) => {
                prompt.error = Some(error);
                Vec::new()
            }
        }
    }

    // ---- actions ----------------------------------------------------------

    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Send(purpose, request) => self.send(purpose, request),
            Action::OpenModal(modal) => self.modal = Some(modal),
            Action::Flash(level, text) => self.flash(level, text),
            Action::SwitchTab(tab) => {
                self.tab = tab;
                self.refresh_tab(tab, false);
            }
            Action::OpenPsbt { psbt_id } => {
                self.tab = Tab::Psbt;
                let actions = self.psbt.open(psbt_id);
                for action in actions {
                    self.apply(action);
                }
            }
            Action::Refresh => {
                self.refresh_tab(self.tab, true);
                self.send(Purpose::Snapshot, Request::Snapshot);
            }
            Action::Quit => {
                let pending = self.pending_actions();
                let mut reasons: Vec<String> = pending
                    .iter()
                    .map(|p| format!("waiting for the daemon to answer: {p}"))
                    .collect();
                if !self.withdrawals.selected.is_empty() {
                    reasons.push(format!(
                        "{} withdrawal(s) selected and not yet acted on",
                        self.withdrawals.selected.len()
                    ));
                }
                if reasons.is_empty() {
                    self.quit = true;
                } else {
                    self.modal = Some(Modal::Confirm(Confirm::quit(reasons)));
                }
            }
            Action::ForceQuit => self.quit = true,
        }
    }

    fn send(&mut self, purpose: Purpose, request: Request) {
        if !self.shared.live() {
            if purpose.is_action() {
                self.flash(
                    Level::Error,
                    format!(
                        "not connected: could not {} — nothing was sent",
                        purpose.describe()
                    ),
                );
            }
            // Reads are repeated by the reconnect refresh.
            return;
        }
        // One of each read at a time: a slow daemon must not pile them up.
        if !purpose.is_action() && self.pending.values().any(|p| *p == purpose) {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.flash(
                Level::Error,
                "too many requests waiting for the daemon; try again",
            );
            return;
        }
        if purpose.is_action() {
            self.flash(
                Level::Info,
                format!("sent: {} — waiting for the daemon…", purpose.describe()),
            );
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, purpose);
        self.outbox.push(RequestFrame { id, body: request });
    }

    /// Loads what `tab` shows; `force` ignores the refresh interval.
    fn refresh_tab(&mut self, tab: Tab, force: bool) {
        let sh = &self.shared;
        let actions = match tab {
            Tab::Overview => Vec::new(),
            Tab::Miners => self.miners.refresh(sh, force),
            Tab::Withdrawals => {
                let mut a = self.withdrawals.refresh(sh, force);
                if force {
                    a.push(batches_request());
                }
                a
            }
            Tab::Psbt => {
                let mut a = self.psbt.refresh(sh, force);
                if force {
                    a.push(batches_request());
                }
                a
            }
            Tab::Blocks => self.blocks.refresh(sh, force),
            Tab::Faucet => self.faucet.refresh(sh, force),
            Tab::Audit => self.audit.refresh(sh, force),
        };
        for action in actions {
            self.apply(action);
        }
    }

    // ---- time ---------------------------------------------------------------

    /// Called by the run loop on every tick with the current clocks.
    pub fn tick(&mut self, now_s: i64, clock_ms: u64) {
        self.shared.now_s = now_s;
        self.shared.clock_ms = clock_ms;
        if !self.shared.live() {
            return;
        }
        // The daemon pushes a snapshot every second; ask if that stops.
        if self
            .snapshot_ms
            .is_none_or(|at| clock_ms.saturating_sub(at) > 5_000)
        {
            self.snapshot_ms = Some(clock_ms);
            self.send(Purpose::Snapshot, Request::Snapshot);
        }
        self.refresh_tab(self.tab, false);
    }

    // ---- socket -------------------------------------------------------------

    pub fn handle_client(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Connecting { attempt } => {
                if attempt == 0 && self.shared.welcome.is_none() {
                    self.shared.conn = ConnState::Connecting { attempt };
                } else if let ConnState::Reconnecting { retry_at_ms, .. } = &mut self.shared.conn {
                    // Trying now: the countdown is over.
                    *retry_at_ms = self.shared.clock_ms;
                }
            }
            ClientEvent::Connected(welcome) => {
                let reconnect = self.shared.welcome.is_some();
                self.shared.conn = ConnState::Live;
                self.flash(
                    Level::Ok,
                    format!(
                        "{} {} as uid:{} (every action is audited under this uid)",
                        if reconnect {
                            "reconnected to"
                        } else {
                            "connected to"
                        },
                        welcome.server,
                        welcome.peer_uid
                    ),
                );
                self.shared.welcome = Some(welcome);
                self.pending.clear();
                self.on_connected();
            }
            ClientEvent::Reconnecting {
                attempt,
                retry_in,
                reason,
            } => {
                let retry_at_ms = self.shared.clock_ms + retry_in.as_millis() as u64;
                self.shared.conn = ConnState::Reconnecting {
                    attempt,
                    retry_at_ms,
                    reason,
                };
                // Reads in flight died with the connection (the socket task
                // answers them); forget them so they are asked again.
                self.pending.retain(|_, p| p.is_action());
            }
            ClientEvent::Response(frame) => {
                let Some(purpose) = self.pending.remove(&frame.id) else {
                    return;
                };
                // A read lost with the connection is asked again after the
                // reconnect; only actions need the admin's attention.
                if let Outcome::Err(e) = &frame.outcome
                    && !purpose.is_action()
                    && matches!(e.code.as_str(), "disconnected" | "not_connected")
                {
                    return;
                }
                self.on_response(purpose, frame.outcome);
            }
            ClientEvent::Event(frame) => self.on_event(frame),
        }
    }

    /// A new connection: subscribe, then reload everything shown (it may
    /// be stale).
    fn on_connected(&mut self) {
        self.miners.reset_in_flight();
        self.withdrawals.reset_in_flight();
        self.psbt.reset_in_flight();
        self.send(Purpose::Subscribe, Request::Subscribe);
        self.reload_all();
    }

    /// Asks again for everything shown (after a reconnect, or when the
    /// daemon says we missed events).
    fn reload_all(&mut self) {
        self.snapshot_ms = Some(self.shared.clock_ms);
        self.send(Purpose::Snapshot, Request::Snapshot);
        self.apply(batches_request());
        for tab in [Tab::Withdrawals, Tab::Audit, Tab::Faucet, Tab::Blocks] {
            self.refresh_tab(tab, true);
        }
        if self.tab == Tab::Miners || self.miners.loaded() {
            self.refresh_tab(Tab::Miners, true);
        }
        if self.tab == Tab::Psbt {
            self.refresh_tab(Tab::Psbt, true);
        }
    }

    fn on_event(&mut self, frame: EventFrame) {
        match frame.event {
            Event::Pool(snapshot) => {
                self.snapshot_ms = Some(self.shared.clock_ms);
                self.shared.snapshot = Some(*snapshot);
            }
            Event::Withdrawal(row) => self.withdrawals.upsert(row),
            Event::Batch(row) => {
                let psbt_id = row.psbt_id;
                upsert_batch(&mut self.shared.batches, row);
                if let Some(psbt_id) = psbt_id {
                    let actions = self.psbt.batch_changed(psbt_id);
                    for action in actions {
                        self.apply(action);
                    }
                }
            }
            Event::Audit(entry) => self.audit.push_live(entry),
            Event::Credit(_) => {}
            Event::Block(row) => {
                let actions = self.blocks.upsert(row);
                for action in actions {
                    self.apply(action);
                }
            }
            Event::Lagged { missed } => {
                self.flash(
                    Level::Warn,
                    format!("missed {missed} live updates; reloading"),
                );
                self.reload_all();
            }
        }
    }

    fn on_response(&mut self, purpose: Purpose, outcome: Outcome) {
        let actor = self.shared.actor();
        // "sent: … waiting for the daemon" is over once the answer is here.
        if purpose.is_action()
            && self
                .flash
                .as_ref()
                .is_some_and(|f| f.level == Level::Info && f.text.starts_with("sent: "))
        {
            self.flash = None;
        }
        let actions: Vec<Action> = match (purpose, outcome) {
            (Purpose::Subscribe, Outcome::Ok(_)) => Vec::new(),
            (Purpose::Snapshot, Outcome::Ok(Response::Snapshot(snapshot))) => {
                self.shared.snapshot = Some(*snapshot);
                Vec::new()
            }
            (Purpose::Batches, Outcome::Ok(Response::Batches(rows))) => {
                self.shared.batches = rows;
                self.shared.batches.sort_by_key(|b| std::cmp::Reverse(b.id));
                self.shared.batches_error = None;
                Vec::new()
            }
            (Purpose::Batches, Outcome::Err(e)) => {
                self.shared.batches_error = Some(explain(&e, "list_batches"));
                Vec::new()
            }
            (Purpose::MinersPage { generation }, outcome) => {
                self.miners.on_page(generation, outcome)
            }
            (Purpose::MinerDetail { miner_id }, outcome) => {
                self.miners.on_detail(miner_id, outcome)
            }
            (Purpose::SetMinerActive { miner_id, active }, Outcome::Ok(_)) => {
                let mut a = vec![Action::Flash(
                    Level::Ok,
                    format!(
                        "miner {miner_id} {} (audited as {actor})",
                        if active { "reactivated" } else { "deactivated" }
                    ),
                )];
                a.extend(self.miners.reload_after_change(&self.shared));
                a
            }
            (Purpose::IssueKey { .. }, Outcome::Ok(Response::ApiKey(key))) => {
                let mut a = vec![
                    Action::Flash(
                        Level::Ok,
                        format!(
                            "issued key version {} for {} (audited as {actor})",
                            key.key_version, key.miner_id
                        ),
                    ),
                    Action::OpenModal(Modal::Notice(Notice::issued_key(&key, &actor))),
                ];
                a.extend(self.miners.reload_after_change(&self.shared));
                a
            }
            (Purpose::Withdrawals { generation }, outcome) => {
                self.withdrawals.on_page(generation, outcome)
            }
            (Purpose::Approve { ids }, outcome) => {
                self.withdrawals.on_approved(&ids, outcome, &actor)
            }
            (Purpose::Reject { id }, outcome) => self.withdrawals.on_rejected(id, outcome, &actor),
            (Purpose::SendBatch { ids }, outcome) => self.on_batch_sent(&ids, outcome, &actor),
            (Purpose::ResolveBatch { batch_id, what }, Outcome::Ok(_)) => vec![
                Action::Flash(
                    Level::Ok,
                    format!("batch #{batch_id} marked {what} (audited as {actor})"),
                ),
                batches_request(),
                Action::Refresh,
            ],
            (Purpose::PsbtReview { psbt_id }, outcome) => self.psbt.on_review(psbt_id, outcome),
            (Purpose::ImportPsbt { psbt_id, path }, outcome) => {
                self.psbt.on_import(psbt_id, &path, outcome, &actor)
            }
            (Purpose::FinalizePsbt { psbt_id }, outcome) => {
                let mut a = self.psbt.on_finalized(psbt_id, outcome, &actor);
                a.push(batches_request());
                a
            }
            (Purpose::SetPayoutsPaused { paused }, Outcome::Ok(_)) => vec![
                Action::Flash(
                    Level::Ok,
                    format!(
                        "automatic payouts {} (audited as {actor})",
                        if paused { "paused" } else { "resumed" }
                    ),
                ),
                Action::Send(Purpose::Snapshot, Request::Snapshot),
            ],
            (Purpose::Faucet, outcome) => self.faucet.on_status(outcome),
            (Purpose::Blocks, outcome) => self.blocks.on_list(outcome),
            (Purpose::BlockStatement { hash }, outcome) => self.blocks.on_statement(&hash, outcome),
            (Purpose::Audit { before_id }, outcome) => self.audit.on_page(before_id, outcome),
            // Any other failure of an action: say so plainly.
            (purpose, Outcome::Err(e)) => vec![Action::Flash(
                Level::Error,
                format!("{} failed: {}", purpose.describe(), explain(&e, "")),
            )],
            (purpose, Outcome::Ok(other)) => vec![Action::Flash(
                Level::Warn,
                format!(
                    "unexpected answer to {}: {}",
                    purpose.describe(),
                    response_kind(&other)
                ),
            )],
        };
        for action in actions {
            self.apply(action);
        }
    }

    fn on_batch_sent(&mut self, ids: &[i64], outcome: Outcome, actor: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        match outcome {
            Outcome::Ok(Response::Batch(result)) => {
                let batch = result.batch;
                for id in ids {
                    self.withdrawals.selected.remove(id);
                }
                match batch.psbt_id {
                    Some(psbt_id) => {
                        actions.push(Action::Flash(
                            Level::Ok,
                            format!(
                                "batch #{} created as PSBT #{psbt_id} for {} — review, export and sign it (audited as {actor})",
                                batch.id,
                                id_list(&batch.withdrawal_ids)
                            ),
                        ));
                        actions.push(Action::OpenPsbt { psbt_id });
                    }
                    None => actions.push(Action::OpenModal(Modal::Notice(Notice::batch_sent(
                        &batch, actor,
                    )))),
                }
                upsert_batch(&mut self.shared.batches, batch);
            }
            Outcome::Ok(Response::PsbtReview(review)) => {
                for id in ids {
                    self.withdrawals.selected.remove(id);
                }
                actions.push(Action::Flash(
                    Level::Ok,
                    format!(
                        "PSBT #{} created for batch #{} — review, export and sign it (audited as {actor})",
                        review.psbt_id, review.batch_id
                    ),
                ));
                self.tab = Tab::Psbt;
                self.psbt.set_review(*review);
            }
            Outcome::Ok(other) => actions.push(Action::Flash(
                Level::Warn,
                format!("unexpected answer to send_batch: {}", response_kind(&other)),
            )),
            Outcome::Err(e) => actions.push(Action::Flash(
                Level::Error,
                format!("sending the batch failed: {}", explain(&e, "send_batch")),
            )),
        }
        actions.push(batches_request());
        actions.extend(self.withdrawals.refresh(&self.shared, true));
        actions
    }
}

pub fn batches_request() -> Action {
    Action::Send(Purpose::Batches, Request::ListBatches { limit: Some(50) })
}

/// Inserts or replaces a batch, keeping newest first, bounded.
fn upsert_batch(batches: &mut Vec<BatchRow>, row: BatchRow) {
    match batches.iter_mut().find(|b| b.id == row.id) {
        Some(slot) => *slot = row,
        None => {
            batches.push(row);
            batches.sort_by_key(|b| std::cmp::Reverse(b.id));
            batches.truncate(200);
        }
    }
}

/// An error for the admin: the daemon's sentence, and a plain note when this
/// daemon does not know the request yet.
pub fn explain(e: &ErrorBody, method: &str) -> String {
    if e.code == "unknown_method" {
        if method.is_empty() {
            return "this pooldeskd does not support that yet (unknown_method)".to_string();
        }
        return format!("this pooldeskd does not serve {method} yet (unknown_method)");
    }
    format!("{} ({})", e.message, e.code)
}

fn response_kind(response: &Response) -> &'static str {
    match response {
        Response::Snapshot(_) => "snapshot",
        Response::Subscribed => "subscribed",
        Response::Miners(_) => "miners",
        Response::MinerDetail(_) => "miner_detail",
        Response::Done(_) => "done",
        Response::ApiKey(_) => "api_key",
        Response::Withdrawals(_) => "withdrawals",
        Response::Approvals(_) => "approvals",
        Response::Batch(_) => "batch",
        Response::Batches(_) => "batches",
        Response::PsbtReview(_) => "psbt_review",
        Response::Broadcast(_) => "broadcast",
        Response::Faucet(_) => "faucet",
        Response::Audit(_) => "audit",
        Response::Blocks(_) => "blocks",
        Response::BlockStatement(_) => "block_statement",
    }
}
