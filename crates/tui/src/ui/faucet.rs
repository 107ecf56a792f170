//! Faucet: budget and what it is doing (queue, recent payouts).

use crossterm::event::KeyEvent;
use pooldesk_proto::control::{Outcome, Request, Response};
use pooldesk_proto::model::{FaucetRow, FaucetStatus};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph};

use crate::app::{Action, Purpose, Shared, explain};
use crate::format;
use crate::keys::{apply_move, movement};
use crate::ui::{placeholder, theme, waiting};

const REFRESH_MS: u64 = 5_000;

#[derive(Debug, Default)]
pub struct Faucet {
    pub status: Option<FaucetStatus>,
    error: Option<String>,
    loaded_ms: Option<u64>,
    scroll: usize,
}

impl Faucet {
    pub fn hints(&self) -> &'static str {
        "j/k scroll"
    }

    pub fn refresh(&mut self, sh: &Shared, force: bool) -> Vec<Action> {
        let due = self
            .loaded_ms
            .is_none_or(|at| sh.clock_ms.saturating_sub(at) >= REFRESH_MS);
        if !force && !due {
            return Vec::new();
        }
        self.loaded_ms = Some(sh.clock_ms);
        vec![Action::Send(Purpose::Faucet, Request::FaucetStatus)]
    }

    pub fn on_status(&mut self, outcome: Outcome) -> Vec<Action> {
        match outcome {
            Outcome::Ok(Response::Faucet(status)) => {
                self.status = Some(*status);
                self.error = None;
            }
            Outcome::Ok(_) => self.error = Some("unexpected answer to faucet_status".into()),
            Outcome::Err(e) => self.error = Some(explain(&e, "faucet_status")),
        }
        Vec::new()
    }

    pub fn handle_key(&mut self, key: KeyEvent, _sh: &Shared) -> Vec<Action> {
        if let Some(m) = movement(&key) {
            let len = self
                .status
                .as_ref()
                .map_or(0, |s| s.queued.len() + s.recent.len());
            self.scroll = apply_move(self.scroll, len.max(1), 10, m);
        }
        Vec::new()
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let Some(s) = &self.status else {
            let lines = match &self.error {
                Some(e) => vec![theme::error_line(e.clone())],
                None => waiting(sh, "faucet status"),
            };
            placeholder(frame, area, lines);
            return;
        };
        let [info, gauge, lists] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(3),
            Constraint::Min(0),
        ])
        .areas(area);
        let mut lines = vec![Line::from(vec![
            if s.enabled {
                Span::styled("[ENABLED]", theme::green())
            } else {
                Span::styled("! [DISABLED]", theme::red())
            },
            Span::raw(format!(
                "  {} per request · cooldown {} per address and IP",
                format::amount(s.amount_sat),
                cooldown(s.cooldown_s)
            )),
        ])];
        if let Some(reason) = &s.disabled_reason {
            lines.push(theme::warn_line(reason.clone()));
        }
        if let Some(e) = &self.error {
            lines.push(theme::error_line(format!("last reload failed: {e}")));
        }
        frame.render_widget(
            Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }),
            info,
        );

        // Integer ratio: money never goes through f64 (the gauge's own
        // ratio is only the bar's length).
        let percent = if s.daily_budget_sat > 0 {
            (s.spent_today_sat.max(0) as i128 * 100 / s.daily_budget_sat as i128).min(100) as u16
        } else {
            100
        };
        let label = format!(
            "spent today {} of {} BTC ({percent}%) · {} left",
            format::btc(s.spent_today_sat),
            format::btc(s.daily_budget_sat),
            format::btc((s.daily_budget_sat - s.spent_today_sat).max(0))
        );
        frame.render_widget(
            Gauge::default()
                .block(Block::bordered().title(" Daily budget "))
                .gauge_style(if percent >= 90 {
                    theme::red()
                } else {
                    theme::green()
                })
                .percent(percent)
                .label(label),
            gauge,
        );

        let width = lists.width as usize;
        let mut rows = vec![Line::from(Span::styled(
            format!("Queue ({})", s.queued.len()),
            theme::strong(),
        ))];
        rows.push(header(width));
        if s.queued.is_empty() {
            rows.push(Line::from("empty"));
        }
        rows.extend(s.queued.iter().map(|r| faucet_line(r, sh.now_s, width)));
        rows.push(Line::from(""));
        rows.push(Line::from(Span::styled(
            format!("Recent payouts ({})", s.recent.len()),
            theme::strong(),
        )));
        rows.push(header(width));
        if s.recent.is_empty() {
            rows.push(Line::from("none yet"));
        }
        rows.extend(s.recent.iter().map(|r| faucet_line(r, sh.now_s, width)));
        self.scroll = self.scroll.min(rows.len().saturating_sub(1));
        frame.render_widget(
            Paragraph::new(rows)
                .block(Block::bordered().title(" Requests "))
                .scroll((self.scroll as u16, 0)),
            lists,
        );
    }
}

fn cooldown(s: u64) -> String {
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn address_width(width: usize) -> usize {
    // Leave the txid at least ~20 columns.
    width.saturating_sub(62).clamp(12, 64)
}

fn header(width: usize) -> Line<'static> {
    let aw = address_width(width);
    Line::from(Span::styled(
        format!(
            "{:<7} {:<aw$} {:>11} {:<11} {:>4} {}",
            "ID", "ADDRESS", "AMOUNT BTC", "STATE", "AGE", "TXID"
        ),
        theme::header(),
    ))
}

fn faucet_line(r: &FaucetRow, now: i64, width: usize) -> Line<'static> {
    let aw = address_width(width);
    let used = 7 + aw + 11 + 11 + 4 + 6;
    let txid_w = width.saturating_sub(used).max(8);
    Line::from(vec![
        Span::raw(format!(
            "#{:<6} {:<aw$} {:>11} ",
            r.id,
            format::clip(&r.address, aw),
            format::btc(r.amount_sat)
        )),
        Span::styled(
            format!("{:<11}", format::state_label(&r.state)),
            theme::state(&r.state),
        ),
        Span::raw(format!(
            " {:>4} {}",
            format::age(now, r.created_at),
            r.txid
                .as_deref()
                .map_or_else(|| "-".to_string(), |t| format::clip(t, txid_w))
        )),
    ])
}
