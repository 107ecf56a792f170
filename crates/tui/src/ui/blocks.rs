//! Blocks: every block whose coinbase pays the pool's wallet (found,
//! immature with the confirmations still to go, matured, orphaned) and the
//! split of the selected one — who was in its window, with what work, and
//! what each was (or will be) credited.

use crossterm::event::{KeyCode, KeyEvent};
use pooldesk_proto::control::{Outcome, Request, Response};
use pooldesk_proto::model::{BlockRow, BlockState, BlockStatement, PayoutScheme};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use crate::app::{Action, Purpose, Shared, explain};
use crate::format;
use crate::keys::{apply_move, movement};
use crate::ui::{placeholder, theme, waiting};

/// Confirmations change with every block; the list is cheap.
const REFRESH_MS: u64 = 5_000;
const LIMIT: u32 = 100;

#[derive(Debug, Default)]
pub struct Blocks {
    /// Newest first, as the daemon lists them.
    pub rows: Vec<BlockRow>,
    error: Option<String>,
    loaded_ms: Option<u64>,
    pub selected: usize,
    /// The statement shown, and the block it belongs to.
    pub statement: Option<BlockStatement>,
    statement_error: Option<(String, String)>,
    /// The hash whose statement was last asked for (not asked twice).
    asked: Option<String>,
}

impl Blocks {
    pub fn hints(&self) -> &'static str {
        "j/k select · r reload split"
    }

    pub fn refresh(&mut self, sh: &Shared, force: bool) -> Vec<Action> {
        let due = self
            .loaded_ms
            .is_none_or(|at| sh.clock_ms.saturating_sub(at) >= REFRESH_MS);
        if !force && !due {
            return Vec::new();
        }
        self.loaded_ms = Some(sh.clock_ms);
        vec![Action::Send(
            Purpose::Blocks,
            Request::ListBlocks { limit: Some(LIMIT) },
        )]
    }

    fn selected_hash(&self) -> Option<String> {
        self.rows.get(self.selected).map(|r| r.hash.clone())
    }

    /// The statement of the selected block, unless it is shown or asked.
    fn want_statement(&mut self, force: bool) -> Vec<Action> {
        let Some(hash) = self.selected_hash() else {
            return Vec::new();
        };
        if !force && self.asked.as_deref() == Some(hash.as_str()) {
            return Vec::new();
        }
        self.asked = Some(hash.clone());
        vec![Action::Send(
            Purpose::BlockStatement { hash: hash.clone() },
            Request::BlockStatement { hash },
        )]
    }

    pub fn on_list(&mut self, outcome: Outcome) -> Vec<Action> {
        match outcome {
            Outcome::Ok(Response::Blocks(rows)) => {
                let keep = self.selected_hash();
                self.rows = rows;
                self.selected = keep
                    .and_then(|h| self.rows.iter().position(|r| r.hash == h))
                    .unwrap_or(0);
                self.error = None;
                // A changed state changes the statement (credited_at, the
                // block's row): ask again for the selected one.
                let changed = self.statement.as_ref().is_some_and(|s| {
                    self.rows
                        .iter()
                        .find(|r| r.hash == s.block.hash)
                        .is_some_and(|r| r.state != s.block.state)
                });
                return self.want_statement(changed);
            }
            Outcome::Ok(_) => self.error = Some("unexpected answer to list_blocks".into()),
            Outcome::Err(e) => self.error = Some(explain(&e, "list_blocks")),
        }
        Vec::new()
    }

    pub fn on_statement(&mut self, hash: &str, outcome: Outcome) -> Vec<Action> {
        match outcome {
            Outcome::Ok(Response::BlockStatement(statement)) => {
                self.statement = Some(*statement);
                self.statement_error = None;
            }
            Outcome::Ok(_) => {
                self.statement_error = Some((hash.into(), "unexpected answer".into()))
            }
            Outcome::Err(e) => {
                self.statement_error = Some((hash.into(), explain(&e, "block_statement")))
            }
        }
        Vec::new()
    }

    /// A `block` event: the row changes in place (or arrives on top).
    pub fn upsert(&mut self, row: BlockRow) -> Vec<Action> {
        let hash = row.hash.clone();
        let state_changed = match self.rows.iter_mut().find(|r| r.hash == row.hash) {
            Some(existing) => {
                let changed = existing.state != row.state;
                *existing = row;
                changed
            }
            None => {
                self.rows.insert(0, row);
                self.rows
                    .sort_by(|a, b| b.height.cmp(&a.height).then(a.hash.cmp(&b.hash)));
                true
            }
        };
        if state_changed && self.selected_hash().as_deref() == Some(hash.as_str()) {
            return self.want_statement(true);
        }
        Vec::new()
    }

    pub fn handle_key(&mut self, key: KeyEvent, _sh: &Shared) -> Vec<Action> {
        if let Some(m) = movement(&key) {
            self.selected = apply_move(self.selected, self.rows.len().max(1), 10, m);
            return self.want_statement(false);
        }
        if key.code == KeyCode::Char('r') {
            return self.want_statement(true);
        }
        Vec::new()
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        if self.rows.is_empty() {
            let lines = match (&self.error, self.loaded_ms) {
                (Some(e), _) => vec![theme::error_line(e.clone())],
                (None, Some(_)) => vec![Line::from(
                    "No block found yet: a block appears here when a coinbase pays the pool's wallet.",
                )],
                (None, None) => waiting(sh, "blocks"),
            };
            placeholder(frame, area, lines);
            return;
        }
        let list_height = (self.rows.len() as u16 + 3).min(area.height / 2).max(5);
        let [list, split] =
            Layout::vertical([Constraint::Length(list_height), Constraint::Min(0)]).areas(area);
        let width = list.width.saturating_sub(2) as usize;
        let mut lines = vec![header()];
        if let Some(e) = &self.error {
            lines.push(theme::error_line(format!("last reload failed: {e}")));
        }
        let visible = list_height.saturating_sub(3) as usize;
        let first = self.selected.saturating_sub(visible.saturating_sub(1));
        for (i, row) in self.rows.iter().enumerate().skip(first).take(visible) {
            lines.push(block_line(row, sh.now_s, width, i == self.selected));
        }
        let counts = |state: BlockState| self.rows.iter().filter(|r| r.state == state).count();
        let title = format!(
            " Blocks ({}: {} immature, {} matured, {} orphaned) ",
            self.rows.len(),
            counts(BlockState::Immature),
            counts(BlockState::Matured),
            counts(BlockState::Orphaned)
        );
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(title)),
            list,
        );
        self.draw_split(frame, split);
    }

    fn draw_split(&self, frame: &mut Frame, area: Rect) {
        let hash = self.selected_hash().unwrap_or_default();
        let title = format!(
            " Split of {} ",
            format::clip(&hash, (area.width as usize).saturating_sub(14))
        );
        let lines = match (&self.statement, &self.statement_error) {
            (_, Some((h, e))) if *h == hash => vec![theme::error_line(e.clone())],
            (Some(s), _) if s.block.hash == hash => statement_lines(s, area.width as usize),
            _ => vec![Line::from("loading the statement…")],
        };
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(title)),
            area,
        );
    }
}

fn state_style(state: BlockState) -> Style {
    match state {
        BlockState::Immature => theme::yellow(),
        BlockState::Matured => theme::green(),
        BlockState::Orphaned => theme::red(),
    }
}

/// `37 (63 to go)` while immature; the count alone otherwise.
fn confirmations(row: &BlockRow) -> String {
    match row.state {
        BlockState::Immature => format!(
            "{} ({} to go)",
            row.confirmations, row.confirmations_to_maturity
        ),
        BlockState::Matured => row.confirmations.to_string(),
        BlockState::Orphaned => "-".into(),
    }
}

/// Fixed columns: marker, height, state, confirmations, reward, age and
/// finder; the hash takes what is left (clipped on narrow terminals).
const FIXED_WIDTH: usize = 2 + 8 + 10 + 14 + 15 + 5 + 11;

fn header() -> Line<'static> {
    Line::from(Span::styled(
        format!(
            "  {:>7} {:<9} {:<13} {:>14} {:>4} {:<10} {}",
            "HEIGHT", "STATE", "CONF", "REWARD BTC", "AGE", "FINDER", "HASH"
        ),
        theme::header(),
    ))
}

fn block_line(row: &BlockRow, now: i64, width: usize, selected: bool) -> Line<'static> {
    let hash_width = width.saturating_sub(FIXED_WIDTH).max(8);
    let marker = if selected { "> " } else { "  " };
    let line = Line::from(vec![
        Span::raw(format!("{marker}{:>7} ", row.height)),
        Span::styled(format!("{:<9}", row.state.as_str()), state_style(row.state)),
        Span::raw(format!(
            " {:<13} {:>14} {:>4} {:<10} {}",
            confirmations(row),
            format::btc_msat_exact(row.reward_msat),
            format::age(now, row.found_at),
            format::clip(row.finder_miner_id.as_deref().unwrap_or("-"), 10),
            format::clip(&row.hash, hash_width)
        )),
    ]);
    if selected {
        line.style(theme::strong())
    } else {
        line
    }
}

/// Basis points of `part` in `whole`, for display only (integers).
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    let bp = (u128::from(part) * 10_000 / u128::from(whole)) as u64;
    format!("{}.{:02}%", bp / 100, bp % 100)
}

fn statement_lines(s: &BlockStatement, width: usize) -> Vec<Line<'static>> {
    let b = &s.block;
    let credited = match (b.state, b.credited_at) {
        (_, Some(at)) => format!("credited {}", format::utc(at)),
        (BlockState::Immature, None) => {
            format!(
                "pending: {} confirmations to maturity",
                b.confirmations_to_maturity
            )
        }
        (BlockState::Orphaned, None) => "orphaned: nothing credited".into(),
        (BlockState::Matured, None) => "matured: crediting".into(),
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{} ", b.state.as_str()), state_style(b.state)),
            Span::raw(format!("· height {} · {credited}", b.height)),
        ]),
        Line::from(format!(
            "scheme {} · reward {} BTC · pool fee {} BTC",
            s.scheme.as_str(),
            format::btc_msat_exact(s.reward_msat),
            format::btc_msat_exact(s.pool_fee_msat),
        )),
        Line::from(format!(
            "to miners {} BTC, split by work, largest remainders",
            format::btc_msat_exact(s.distributed_msat),
        )),
    ];
    match s.scheme {
        PayoutScheme::Pps => {
            lines.push(Line::from(
                "pay per share: miners were credited for each share as it arrived; the pool keeps the block",
            ));
            return lines;
        }
        PayoutScheme::Pplns | PayoutScheme::Solo => lines.push(Line::from(format!(
            "window {} of {} work · shares #{}…#{} · sha256 {}",
            format::grouped(s.total_work.min(i64::MAX as u64) as i64),
            format::grouped(s.window_work.min(i64::MAX as u64) as i64),
            s.first_share_id.map_or("-".into(), |i| i.to_string()),
            s.last_share_id.map_or("-".into(), |i| i.to_string()),
            format::clip(&s.shares_sha256, width.saturating_sub(58).max(12)),
        ))),
    }
    lines.push(Line::from(Span::styled(
        format!(
            "{:<24} {:>18} {:>8} {:>18}",
            "MINER", "WORK", "SHARE", "AMOUNT BTC"
        ),
        theme::header(),
    )));
    if s.parts.is_empty() {
        lines.push(Line::from(
            "no work in the window: the pool keeps the reward",
        ));
    }
    for part in &s.parts {
        lines.push(Line::from(format!(
            "{:<24} {:>18} {:>8} {:>18}",
            format::clip(&part.miner_id, 24),
            format::grouped(part.work.min(i64::MAX as u64) as i64),
            percent(part.work, s.total_work),
            format::btc_msat_exact(part.amount_msat)
        )));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_integer_basis_points() {
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(2, 3), "66.66%");
        assert_eq!(percent(5, 0), "-");
        assert_eq!(percent(u64::MAX, u64::MAX), "100.00%");
    }
}
