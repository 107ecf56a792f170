//! Withdrawals: the queue by state, approvals, rejections, batches.
//!
//! Money safety rules of this screen:
//! - Nothing is sent without a confirmation that repeats, for every
//!   withdrawal, the miner, the amount in BTC (8 decimals) and sat, and the
//!   FULL address. `a` alone sends nothing.
//! - What is sent is exactly what the dialog listed: explicit ids, never
//!   "all approved" as the daemon sees it at that moment.
//! - Only `requested` rows are approved; a selected row that changed state
//!   since (a live event) is left out and the dialog says so.
//!
//! Order: what needs the admin first (needs_attention, requested, approved —
//! oldest first, a queue), then in-flight and finished ones, newest first.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent};
use pooldesk_proto::control::{Outcome, Request, Response};
use pooldesk_proto::model::{BatchResolution, BatchRow, ListWithdrawals, WithdrawalRow};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::app::{Action, Level, Purpose, Shared, explain, id_list};
use crate::format;
use crate::keys::{apply_move, movement, plain};
use crate::ui::dialog::{Confirm, Modal, Prompt, PromptKind};
use crate::ui::{WIDE, overview, placeholder, scroll_to, theme, waiting};

/// State filters, in the order `f` cycles them (`None` = all).
pub const FILTERS: [Option<&str>; 9] = [
    None,
    Some("requested"),
    Some("approved"),
    Some("needs_attention"),
    Some("batched"),
    Some("broadcast"),
    Some("confirmed"),
    Some("rejected"),
    Some("failed"),
];

/// Rows asked for per load, and kept at most (events can add rows).
const LIMIT: u32 = 1000;
const MAX_ROWS: usize = 2000;
/// Reload this often while shown (events keep it live in between).
const REFRESH_MS: u64 = 15_000;

fn rank(state: &str) -> u8 {
    match state {
        "needs_attention" => 0,
        "requested" => 1,
        "approved" => 2,
        "batched" => 3,
        "broadcast" => 4,
        "confirmed" => 5,
        "rejected" => 6,
        "failed" => 7,
        _ => 8,
    }
}

/// Display order (see the module docs).
pub fn order(rows: &mut [WithdrawalRow]) {
    rows.sort_by(|a, b| {
        let (ra, rb) = (rank(&a.state), rank(&b.state));
        ra.cmp(&rb).then_with(|| {
            if ra <= 2 {
                a.id.cmp(&b.id)
            } else {
                b.id.cmp(&a.id)
            }
        })
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    Queue,
    Batches,
}

#[derive(Debug, Default)]
pub struct Withdrawals {
    pub rows: Vec<WithdrawalRow>,
    pub total: u64,
    pub filter: usize,
    pub cursor: usize,
    offset: usize,
    page_height: usize,
    /// Selected withdrawals (marked `*`), with their latest known row.
    pub selected: BTreeMap<i64, WithdrawalRow>,
    pub focus: Pane,
    pub batch_cursor: usize,
    generation: u64,
    fetching: Option<u64>,
    loaded_ms: Option<u64>,
    loaded: bool,
    pub error: Option<String>,
}

impl Withdrawals {
    pub fn hints(&self) -> &'static str {
        match self.focus {
            Pane::Queue => "a approve  r reject  Space select  b batch  f filter  → batches",
            Pane::Batches => "Enter PSBT  m paid  t retry  x failed  ← queue",
        }
    }

    pub fn filter_state(&self) -> Option<&'static str> {
        FILTERS[self.filter % FILTERS.len()]
    }

    pub fn current(&self) -> Option<&WithdrawalRow> {
        self.rows.get(self.cursor)
    }

    pub fn reset_in_flight(&mut self) {
        self.fetching = None;
    }

    pub fn refresh(&mut self, sh: &Shared, force: bool) -> Vec<Action> {
        let due = self
            .loaded_ms
            .is_none_or(|at| sh.clock_ms.saturating_sub(at) >= REFRESH_MS);
        if !force && !due {
            return Vec::new();
        }
        self.generation += 1;
        self.fetching = Some(self.generation);
        self.loaded_ms = Some(sh.clock_ms);
        vec![Action::Send(
            Purpose::Withdrawals {
                generation: self.generation,
            },
            Request::ListWithdrawals(ListWithdrawals {
                state: self.filter_state().map(str::to_string),
                offset: 0,
                limit: Some(LIMIT),
            }),
        )]
    }

    pub fn on_page(&mut self, generation: u64, outcome: Outcome) -> Vec<Action> {
        if self.fetching != Some(generation) {
            return Vec::new();
        }
        self.fetching = None;
        match outcome {
            Outcome::Ok(Response::Withdrawals(page)) => {
                self.total = page.total;
                self.set_rows(page.rows);
                self.error = None;
            }
            Outcome::Ok(_) => self.error = Some("unexpected answer to list_withdrawals".into()),
            Outcome::Err(e) => self.error = Some(explain(&e, "list_withdrawals")),
        }
        Vec::new()
    }

    /// Replaces the rows, keeping the cursor on the same withdrawal.
    pub fn set_rows(&mut self, mut rows: Vec<WithdrawalRow>) {
        let keep = self.current().map(|r| r.id);
        order(&mut rows);
        rows.truncate(MAX_ROWS);
        for row in &rows {
            if let Some(slot) = self.selected.get_mut(&row.id) {
                *slot = row.clone();
            }
        }
        self.rows = rows;
        self.loaded = true;
        self.restore_cursor(keep);
    }

    fn restore_cursor(&mut self, keep: Option<i64>) {
        if let Some(pos) = keep.and_then(|id| self.rows.iter().position(|r| r.id == id)) {
            self.cursor = pos;
        }
        self.cursor = self.cursor.min(self.rows.len().saturating_sub(1));
    }

    /// A live `Withdrawal` event: insert, replace, or drop it from this
    /// filter's view.
    pub fn upsert(&mut self, row: WithdrawalRow) {
        if let Some(slot) = self.selected.get_mut(&row.id) {
            *slot = row.clone();
        }
        let keep = self.current().map(|r| r.id);
        let matches = self.filter_state().is_none_or(|s| s == row.state);
        let existing = self.rows.iter().position(|r| r.id == row.id);
        match (existing, matches) {
            (Some(i), true) => self.rows[i] = row,
            (Some(i), false) => {
                self.rows.remove(i);
                self.total = self.total.saturating_sub(1);
            }
            (None, true) => {
                self.rows.push(row);
                self.total += 1;
            }
            (None, false) => {}
        }
        order(&mut self.rows);
        self.rows.truncate(MAX_ROWS);
        self.restore_cursor(keep);
    }

    /// Batches in the order shown: needs_attention first, then newest.
    pub fn batch_order(batches: &[BatchRow]) -> Vec<&BatchRow> {
        let mut v: Vec<&BatchRow> = batches.iter().collect();
        v.sort_by(|a, b| {
            (b.state == "needs_attention")
                .cmp(&(a.state == "needs_attention"))
                .then(b.id.cmp(&a.id))
        });
        v
    }

    pub fn handle_key(&mut self, key: KeyEvent, sh: &Shared) -> Vec<Action> {
        if plain(&key) {
            match key.code {
                KeyCode::Left | KeyCode::Char('h') => {
                    self.focus = Pane::Queue;
                    return Vec::new();
                }
                KeyCode::Right | KeyCode::Char('l') => {
                    self.focus = Pane::Batches;
                    return Vec::new();
                }
                KeyCode::Char('P') => return overview::pause_confirm(sh),
                _ => {}
            }
        }
        match self.focus {
            Pane::Queue => self.queue_key(key, sh),
            Pane::Batches => self.batch_key(key, sh),
        }
    }

    fn queue_key(&mut self, key: KeyEvent, sh: &Shared) -> Vec<Action> {
        if let Some(m) = movement(&key) {
            self.cursor = apply_move(self.cursor, self.rows.len(), self.page_height, m);
            return Vec::new();
        }
        if !plain(&key) {
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('f') | KeyCode::Char('F') => {
                let n = FILTERS.len();
                self.filter = if key.code == KeyCode::Char('f') {
                    (self.filter + 1) % n
                } else {
                    (self.filter + n - 1) % n
                };
                self.cursor = 0;
                self.offset = 0;
                self.rows.clear();
                self.loaded = false;
                self.refresh(sh, true)
            }
            KeyCode::Char(' ') => self.toggle_current(),
            KeyCode::Char('v') => {
                let requested: Vec<&WithdrawalRow> = self
                    .rows
                    .iter()
                    .filter(|r| r.state == "requested")
                    .collect();
                let all = requested.iter().all(|r| self.selected.contains_key(&r.id));
                if all {
                    for r in requested {
                        self.selected.remove(&r.id);
                    }
                } else {
                    let add: Vec<WithdrawalRow> = requested.into_iter().cloned().collect();
                    for r in add {
                        self.selected.insert(r.id, r);
                    }
                }
                Vec::new()
            }
            KeyCode::Char('c') => {
                self.selected.clear();
                Vec::new()
            }
            KeyCode::Char('a') => self.confirm_approve(sh),
            KeyCode::Char('r') => self.prompt_reject(sh),
            KeyCode::Char('b') => self.confirm_batch(sh),
            _ => Vec::new(),
        }
    }

    fn toggle_current(&mut self) -> Vec<Action> {
        let Some(row) = self.current().cloned() else {
            return Vec::new();
        };
        if self.selected.remove(&row.id).is_some() {
            return Vec::new();
        }
        if row.state != "requested" && row.state != "approved" {
            return vec![Action::Flash(
                Level::Warn,
                format!(
                    "#{} is {}: only requested or approved withdrawals can be selected",
                    row.id,
                    format::state_label(&row.state)
                ),
            )];
        }
        self.selected.insert(row.id, row);
        // Move on, so Space Space Space selects a run of rows.
        self.cursor = (self.cursor + 1).min(self.rows.len().saturating_sub(1));
        Vec::new()
    }

    /// Rows an action applies to: the selection when there is one (in the
    /// given state), else the row under the cursor if it is in that state.
    fn targets(&self, state: &str) -> (Vec<WithdrawalRow>, Vec<i64>) {
        if self.selected.is_empty() {
            return match self.current() {
                Some(r) if r.state == state => (vec![r.clone()], Vec::new()),
                Some(r) => (Vec::new(), vec![r.id]),
                None => (Vec::new(), Vec::new()),
            };
        }
        let mut ok = Vec::new();
        let mut skipped = Vec::new();
        for row in self.selected.values() {
            if row.state == state {
                ok.push(row.clone());
            } else {
                skipped.push(row.id);
            }
        }
        (ok, skipped)
    }

    fn confirm_approve(&self, sh: &Shared) -> Vec<Action> {
        let (rows, skipped) = self.targets("requested");
        if rows.is_empty() {
            return vec![Action::Flash(
                Level::Warn,
                "nothing to approve: move to a [REQUESTED] withdrawal or select some with Space"
                    .into(),
            )];
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let total: i64 = rows.iter().map(|r| r.amount_sat).sum();
        let mut body = vec![Line::from(Span::styled(
            format!(
                "Approve {} withdrawal(s), total {}:",
                rows.len(),
                format::amount(total)
            ),
            theme::strong(),
        ))];
        body.push(Line::from(""));
        for r in &rows {
            body.extend(withdrawal_lines(r));
        }
        if !skipped.is_empty() {
            body.push(theme::warn_line(format!(
                "not included (no longer requested): {}",
                id_list(&skipped)
            )));
        }
        body.push(Line::from(""));
        body.push(Line::from(format!(
            "Approved withdrawals are paid by the next batch. Recorded in the audit log as {}.",
            sh.actor()
        )));
        let yes = if ids.len() == 1 {
            format!("approve #{}", ids[0])
        } else {
            format!("approve {} withdrawals", ids.len())
        };
        vec![Action::OpenModal(Modal::Confirm(Confirm::new(
            "Approve withdrawals?",
            body,
            yes,
            vec![Action::Send(
                Purpose::Approve { ids: ids.clone() },
                Request::ApproveWithdrawals { ids },
            )],
        )))]
    }

    fn prompt_reject(&self, sh: &Shared) -> Vec<Action> {
        let Some(row) = self.current() else {
            return Vec::new();
        };
        if row.state != "requested" && row.state != "approved" {
            return vec![Action::Flash(
                Level::Warn,
                format!(
                    "#{} is {}: only requested or approved withdrawals can be rejected",
                    row.id,
                    format::state_label(&row.state)
                ),
            )];
        }
        let mut body = vec![Line::from(Span::styled(
            format!("Reject withdrawal #{}:", row.id),
            theme::strong(),
        ))];
        body.push(Line::from(""));
        body.extend(withdrawal_lines(row));
        body.push(Line::from(""));
        body.push(Line::from(
            "The amount returns to the miner's balance. The reason is shown to the miner.",
        ));
        body.push(Line::from(format!(
            "Recorded in the audit log as {}.",
            sh.actor()
        )));
        vec![Action::OpenModal(Modal::Prompt(Prompt::new(
            format!("Reject #{}?", row.id),
            body,
            "Reason",
            "",
            PromptKind::RejectReason { id: row.id },
            format!("reject #{}", row.id),
        )))]
    }

    fn confirm_batch(&self, sh: &Shared) -> Vec<Action> {
        let rows: Vec<WithdrawalRow> = if self.selected.values().any(|r| r.state == "approved") {
            self.selected
                .values()
                .filter(|r| r.state == "approved")
                .cloned()
                .collect()
        } else {
            self.rows
                .iter()
                .filter(|r| r.state == "approved")
                .cloned()
                .collect()
        };
        if rows.is_empty() {
            let hint = match self.filter_state() {
                None | Some("approved") => "there are no approved withdrawals",
                Some(_) => "none shown: press f until the filter is all or approved",
            };
            return vec![Action::Flash(
                Level::Warn,
                format!("nothing to send: {hint}"),
            )];
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let total: i64 = rows.iter().map(|r| r.amount_sat).sum();
        let mode = sh
            .snapshot
            .as_ref()
            .map_or("?", |s| s.payout_mode.as_str())
            .to_string();
        let mut body = vec![Line::from(Span::styled(
            format!(
                "Send {} approved withdrawal(s) as one batch, total {}:",
                rows.len(),
                format::amount(total)
            ),
            theme::strong(),
        ))];
        body.push(Line::from(""));
        for r in &rows {
            body.extend(withdrawal_lines(r));
        }
        body.push(Line::from(""));
        match mode.as_str() {
            "cold" => body.push(Line::from(
                "Cold mode: a PSBT is built for offline signing. Nothing is paid until you import the signed PSBT and finalize it.",
            )),
            "hot" => body.push(theme::warn_line(
                "Hot mode: the hot wallet pays these NOW in one transaction (sendmany). This cannot be undone.",
            )),
            other => body.push(theme::warn_line(format!("Payout mode {other:?}: unknown"))),
        }
        if let Some(fee) = sh
            .snapshot
            .as_ref()
            .and_then(|s| s.wallet.fee_estimate_sat_vb)
        {
            body.push(Line::from(format!("Current fee estimate: {fee} sat/vB.")));
        }
        body.push(Line::from(format!(
            "Recorded in the audit log as {}.",
            sh.actor()
        )));
        vec![Action::OpenModal(Modal::Confirm(Confirm::new(
            format!("Send a batch ({mode} mode)?"),
            body,
            format!("send batch of {}", ids.len()),
            vec![Action::Send(
                Purpose::SendBatch { ids: ids.clone() },
                Request::SendBatch {
                    withdrawal_ids: ids,
                },
            )],
        )))]
    }

    fn batch_key(&mut self, key: KeyEvent, sh: &Shared) -> Vec<Action> {
        let batches = Self::batch_order(&sh.batches);
        if let Some(m) = movement(&key) {
            self.batch_cursor = apply_move(self.batch_cursor, batches.len(), 5, m);
            return Vec::new();
        }
        if !plain(&key) {
            return Vec::new();
        }
        let Some(batch) = batches.get(self.batch_cursor.min(batches.len().saturating_sub(1)))
        else {
            return Vec::new();
        };
        let batch = (*batch).clone();
        let attention = batch.state == "needs_attention";
        let resolve = |what: &str| -> Vec<Action> {
            vec![Action::Flash(
                Level::Warn,
                format!(
                    "batch #{} is {}: only batches that need attention can be marked {what}",
                    batch.id,
                    format::state_label(&batch.state)
                ),
            )]
        };
        match key.code {
            KeyCode::Enter => match batch.psbt_id {
                Some(psbt_id) => vec![Action::OpenPsbt { psbt_id }],
                None => vec![Action::Flash(
                    Level::Info,
                    format!(
                        "batch #{} is a {} batch without a PSBT",
                        batch.id, batch.mode
                    ),
                )],
            },
            KeyCode::Char('m') if attention => vec![Action::OpenModal(Modal::Prompt(Prompt::new(
                format!("Mark batch #{} paid?", batch.id),
                batch_lines(
                    &batch,
                    sh,
                    "Give the txid that paid it (check it on chain first).",
                ),
                "txid",
                batch.txid.clone().unwrap_or_default(),
                PromptKind::PaidTxid { batch_id: batch.id },
                "check txid",
            )))],
            KeyCode::Char('t') if attention => {
                let body = batch_lines(
                    &batch,
                    sh,
                    "The withdrawals go back to [APPROVED] and will be paid by a later batch. Only do this once you have checked the wallet: if this batch did pay, they would be paid TWICE.",
                );
                vec![Action::OpenModal(Modal::Confirm(Confirm::new(
                    format!("Retry batch #{}?", batch.id),
                    body,
                    format!("retry batch #{}", batch.id),
                    vec![Action::Send(
                        Purpose::ResolveBatch {
                            batch_id: batch.id,
                            what: "retry",
                        },
                        Request::ResolveBatch {
                            batch_id: batch.id,
                            resolution: BatchResolution::Retry,
                        },
                    )],
                )))]
            }
            KeyCode::Char('x') if attention => {
                let body = batch_lines(
                    &batch,
                    sh,
                    "The withdrawals become [FAILED] and the amounts return to the miners' balances. Only do this once you have checked that this batch paid nothing.",
                );
                vec![Action::OpenModal(Modal::Confirm(Confirm::new(
                    format!("Mark batch #{} failed?", batch.id),
                    body,
                    format!("mark batch #{} failed", batch.id),
                    vec![Action::Send(
                        Purpose::ResolveBatch {
                            batch_id: batch.id,
                            what: "failed",
                        },
                        Request::ResolveBatch {
                            batch_id: batch.id,
                            resolution: BatchResolution::Failed,
                        },
                    )],
                )))]
            }
            KeyCode::Char('m') => resolve("paid"),
            KeyCode::Char('t') => resolve("for retry"),
            KeyCode::Char('x') => resolve("failed"),
            _ => Vec::new(),
        }
    }

    pub fn on_approved(&mut self, ids: &[i64], outcome: Outcome, actor: &str) -> Vec<Action> {
        let mut actions = match outcome {
            Outcome::Ok(Response::Approvals(results)) => {
                let ok: Vec<i64> = results.iter().filter(|r| r.ok).map(|r| r.id).collect();
                let failed: Vec<String> = results
                    .iter()
                    .filter(|r| !r.ok)
                    .map(|r| format!("#{} {}", r.id, r.error.as_deref().unwrap_or("refused")))
                    .collect();
                for id in &ok {
                    self.selected.remove(id);
                }
                if failed.is_empty() {
                    vec![Action::Flash(
                        Level::Ok,
                        format!("approved {} (audited as {actor})", id_list(&ok)),
                    )]
                } else {
                    vec![Action::Flash(
                        Level::Error,
                        format!(
                            "approved {}; NOT approved: {} (audited as {actor})",
                            if ok.is_empty() {
                                "none".to_string()
                            } else {
                                id_list(&ok)
                            },
                            failed.join("; ")
                        ),
                    )]
                }
            }
            Outcome::Ok(Response::Done(done)) => {
                for id in ids {
                    self.selected.remove(id);
                }
                vec![Action::Flash(
                    Level::Ok,
                    format!("{} (audited as {actor})", done.message),
                )]
            }
            Outcome::Ok(_) => vec![Action::Flash(
                Level::Warn,
                format!("approve {}: unexpected answer; reloading", id_list(ids)),
            )],
            Outcome::Err(e) => vec![Action::Flash(
                Level::Error,
                format!(
                    "approve {} failed: {}",
                    id_list(ids),
                    explain(&e, "approve_withdrawals")
                ),
            )],
        };
        actions.push(Action::Refresh);
        actions
    }

    pub fn on_rejected(&mut self, id: i64, outcome: Outcome, actor: &str) -> Vec<Action> {
        let mut actions = match outcome {
            Outcome::Ok(_) => {
                self.selected.remove(&id);
                vec![Action::Flash(
                    Level::Ok,
                    format!("rejected #{id}; funds returned to the miner (audited as {actor})"),
                )]
            }
            Outcome::Err(e) => vec![Action::Flash(
                Level::Error,
                format!("reject #{id} failed: {}", explain(&e, "reject_withdrawal")),
            )],
        };
        actions.push(Action::Refresh);
        actions
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let attention: Vec<&BatchRow> = sh
            .batches
            .iter()
            .filter(|b| b.state == "needs_attention")
            .collect();
        let attention_count = sh
            .snapshot
            .as_ref()
            .map_or(0, |s| s.withdrawals.needs_attention);
        let mut banner: Vec<Line<'static>> = Vec::new();
        if !attention.is_empty() {
            let ids: Vec<i64> = attention.iter().map(|b| b.id).collect();
            banner.push(theme::warn_line(format!(
                "{} batch(es) NEED ATTENTION: {} — → then m paid / t retry / x failed",
                attention.len(),
                id_list(&ids)
            )));
        } else if attention_count > 0 {
            banner.push(theme::warn_line(format!(
                "{attention_count} withdrawal(s) NEED ATTENTION (filter with f)"
            )));
        }
        let banner_height = banner.len() as u16;
        let [banner_area, main] =
            Layout::vertical([Constraint::Length(banner_height), Constraint::Min(0)]).areas(area);
        frame.render_widget(
            Paragraph::new(banner).wrap(Wrap { trim: true }),
            banner_area,
        );

        let (queue_area, batch_area) = if area.width >= WIDE {
            let [q, b] =
                Layout::horizontal([Constraint::Min(0), Constraint::Length(62)]).areas(main);
            (q, b)
        } else {
            let batch_rows = (Self::batch_order(&sh.batches).len().clamp(1, 4) + 3) as u16;
            let [q, b] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(batch_rows)]).areas(main);
            (q, b)
        };
        self.draw_queue(frame, queue_area, sh);
        self.draw_batches(frame, batch_area, sh);
    }

    fn draw_queue(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let filter = self.filter_state().unwrap_or("all");
        let mut title = format!(
            " Withdrawals [{}] {} of {} ",
            filter,
            self.rows.len(),
            self.total
        );
        if !self.selected.is_empty() {
            let sum: i64 = self.selected.values().map(|r| r.amount_sat).sum();
            title.push_str(&format!(
                "· {} selected ({} BTC) ",
                self.selected.len(),
                format::btc(sum)
            ));
        }
        let focused = self.focus == Pane::Queue;
        let block = Block::bordered()
            .title(Span::styled(
                title,
                if focused {
                    theme::strong()
                } else {
                    theme::dim()
                },
            ))
            .border_type(if focused {
                ratatui::widgets::BorderType::Thick
            } else {
                ratatui::widgets::BorderType::Plain
            });
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if !self.loaded {
            let lines = match &self.error {
                Some(e) => vec![theme::error_line(e.clone())],
                None => waiting(sh, "withdrawals"),
            };
            placeholder(frame, inner, lines);
            return;
        }
        let [table_area, info_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(4)]).areas(inner);
        if self.rows.is_empty() {
            let msg = match &self.error {
                Some(e) => theme::error_line(e.clone()),
                None => Line::from(format!("no withdrawals in state {filter}")),
            };
            placeholder(frame, table_area, vec![msg]);
        } else {
            self.draw_table(frame, table_area, sh);
        }
        let info = match self.current() {
            Some(r) => {
                let mut lines = vec![
                    Line::from(vec![
                        Span::styled(format!("#{} ", r.id), theme::strong()),
                        Span::raw(format!("{} {} ", r.miner_id, format::amount(r.amount_sat))),
                        Span::styled(format::state_label(&r.state), theme::state(&r.state)),
                    ]),
                    Line::from(format!("to {}", r.address)),
                ];
                let mut extra = Vec::new();
                if let Some(by) = &r.decided_by {
                    extra.push(format!("decided by {by}"));
                }
                if let Some(batch) = r.batch_id {
                    extra.push(format!("batch #{batch}"));
                }
                if let Some(txid) = &r.txid {
                    extra.push(format!("txid {txid}"));
                }
                if let Some(note) = &r.note {
                    extra.push(format!("note: {note}"));
                }
                extra.push(format!("created {} UTC", format::utc(r.created_at)));
                lines.push(Line::from(Span::styled(extra.join(" · "), theme::dim())));
                lines
            }
            None => Vec::new(),
        };
        frame.render_widget(Paragraph::new(info).wrap(Wrap { trim: false }), info_area);
    }

    fn draw_table(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let body_rows = area.height.saturating_sub(1) as usize;
        self.page_height = body_rows.max(1);
        self.offset = scroll_to(self.cursor, self.offset, body_rows);
        let end = (self.offset + body_rows).min(self.rows.len());
        let fixed = 1 + 7 + 16 + 11 + 17 + 5 + 7;
        let addr_w = (area.width as usize).saturating_sub(fixed).max(8);
        let rows: Vec<Row> = self.rows[self.offset.min(end)..end]
            .iter()
            .map(|r| {
                let mark = if self.selected.contains_key(&r.id) {
                    "*"
                } else {
                    " "
                };
                Row::new(vec![
                    Cell::from(Span::styled(mark, theme::strong())),
                    Cell::from(format!("#{}", r.id)),
                    Cell::from(format::clip(&r.miner_id, 16)),
                    Cell::from(format::btc(r.amount_sat)),
                    Cell::from(Span::styled(
                        format::state_label(&r.state),
                        theme::state(&r.state),
                    )),
                    Cell::from(format::age(sh.now_s, r.created_at)),
                    Cell::from(format::clip(&r.address, addr_w)),
                ])
            })
            .collect();
        let header = Row::new(vec![
            "*",
            "ID",
            "MINER",
            "AMOUNT BTC",
            "STATE",
            "AGE",
            "ADDRESS",
        ])
        .style(theme::header());
        let widths = [
            Constraint::Length(1),
            Constraint::Length(6),
            Constraint::Length(16),
            Constraint::Length(11),
            Constraint::Length(17),
            Constraint::Length(4),
            Constraint::Min(8),
        ];
        let table = Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .row_highlight_style(if self.focus == Pane::Queue {
                theme::cursor()
            } else {
                ratatui::style::Style::default()
            })
            .highlight_symbol(">");
        let mut state = TableState::default();
        state.select(Some(self.cursor.saturating_sub(self.offset)));
        frame.render_stateful_widget(table, area, &mut state);
    }

    fn draw_batches(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let focused = self.focus == Pane::Batches;
        let block = Block::bordered()
            .title(Span::styled(
                " Batches ",
                if focused {
                    theme::strong()
                } else {
                    theme::dim()
                },
            ))
            .border_type(if focused {
                ratatui::widgets::BorderType::Thick
            } else {
                ratatui::widgets::BorderType::Plain
            });
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if let Some(e) = &sh.batches_error {
            frame.render_widget(
                Paragraph::new(theme::error_line(e.clone())).wrap(Wrap { trim: true }),
                inner,
            );
            return;
        }
        let batches = Self::batch_order(&sh.batches);
        if batches.is_empty() {
            frame.render_widget(Paragraph::new("no batches yet"), inner);
            return;
        }
        self.batch_cursor = self.batch_cursor.min(batches.len() - 1);
        let height = inner.height as usize;
        let offset = scroll_to(self.batch_cursor, 0, height);
        let wide = area.width >= 60;
        let lines: Vec<Line<'static>> = batches
            .iter()
            .enumerate()
            .skip(offset)
            .take(height)
            .map(|(i, b)| {
                let cursor = if focused && i == self.batch_cursor {
                    ">"
                } else {
                    " "
                };
                let bang = if b.state == "needs_attention" {
                    "!"
                } else {
                    " "
                };
                let mut spans = vec![
                    Span::raw(format!("{cursor}{bang}#{:<5} ", b.id)),
                    Span::styled(
                        format!("{:<17}", format::state_label(&b.state)),
                        theme::state(&b.state),
                    ),
                    Span::raw(format!(
                        " {} {:>3} wd {} ",
                        b.mode,
                        b.withdrawal_ids.len(),
                        format::btc(b.total_sat)
                    )),
                ];
                if wide {
                    if let Some(psbt) = b.psbt_id {
                        spans.push(Span::raw(format!("psbt #{psbt} ")));
                    }
                    if let Some(c) = b.confirmations {
                        spans.push(Span::raw(format!("{c} conf ")));
                    }
                }
                if let Some(note) = &b.note {
                    spans.push(Span::styled(note.clone(), theme::dim()));
                }
                let line = Line::from(spans);
                if focused && i == self.batch_cursor {
                    line.style(theme::cursor())
                } else {
                    line
                }
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// Miner, amount (BTC and sat) and the whole address of one withdrawal.
pub fn withdrawal_lines(r: &WithdrawalRow) -> Vec<Line<'static>> {
    vec![
        Line::from(vec![
            Span::styled(format!("#{:<6}", r.id), theme::strong()),
            Span::raw(format!(" miner {}  ", r.miner_id)),
            Span::styled(format::amount(r.amount_sat), theme::strong()),
        ]),
        Line::from(vec![Span::raw("   to "), Span::raw(r.address.clone())]),
    ]
}

fn batch_lines(b: &BatchRow, sh: &Shared, what: &str) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(format!(
            "Batch #{} {} ({} mode), {} withdrawal(s): {}",
            b.id,
            format::state_label(&b.state),
            b.mode,
            b.withdrawal_ids.len(),
            id_list(&b.withdrawal_ids)
        )),
        Line::from(format!("Total:   {}", format::amount(b.total_sat))),
    ];
    if let Some(fee) = b.fee_sat {
        lines.push(Line::from(format!("Fee:     {}", format::amount(fee))));
    }
    if let Some(txid) = &b.txid {
        lines.push(Line::from(format!("txid:    {txid}")));
    }
    if let Some(note) = &b.note {
        lines.push(Line::from(format!("Note:    {note}")));
    }
    lines.push(Line::from(format!(
        "Created: {} UTC, updated {} ago",
        format::utc(b.created_at),
        format::age(sh.now_s, b.updated_at)
    )));
    lines.push(Line::from(""));
    lines.push(theme::warn_line(what));
    lines.push(Line::from(format!(
        "Recorded in the audit log as {}.",
        sh.actor()
    )));
    lines
}
