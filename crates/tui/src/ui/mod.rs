//! Drawing: the frame around every screen (tabs, status or disconnected
//! banner, key hints / last result) and one module per screen.
//!
//! Each screen module holds that screen's state, its key handling
//! (`handle_key` → [`Action`](crate::app::Action)s), its answers
//! (`on_*`), and its `draw` — the ratatui component shape. Drawing is a pure
//! function of the state (plus scroll offsets), generic over the backend, so
//! the snapshot tests draw into a `TestBackend` exactly what a terminal shows.

pub mod audit;
pub mod blocks;
pub mod dialog;
pub mod faucet;
pub mod help;
pub mod miners;
pub mod overview;
pub mod psbt;
pub mod theme;
pub mod withdrawals;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, ConnState, Level, Shared, Tab};
use crate::format;

/// Width from which screens put two panes side by side.
pub const WIDE: u16 = 140;

pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    app.shared.width = area.width;
    let banner = !app.shared.live();
    let [tabs, status, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(if banner { 2 } else { 1 }),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);

    draw_tabs(frame, tabs, app);
    draw_status(frame, status, &app.shared);
    let sh = &app.shared;
    match app.tab {
        Tab::Overview => app.overview.draw(frame, body, sh),
        Tab::Miners => app.miners.draw(frame, body, sh),
        Tab::Withdrawals => app.withdrawals.draw(frame, body, sh),
        Tab::Psbt => app.psbt.draw(frame, body, sh),
        Tab::Blocks => app.blocks.draw(frame, body, sh),
        Tab::Faucet => app.faucet.draw(frame, body, sh),
        Tab::Audit => app.audit.draw(frame, body, sh),
    }
    if banner && sh.welcome.is_some() {
        grey_out(frame, body);
    }
    draw_footer(frame, footer, app);
    if let Some(modal) = &app.modal {
        modal.draw(frame, area);
    }
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App) {
    let spans = tab_spans(app, false);
    let used: usize = spans.iter().map(|s| s.width()).sum();
    // Seven tabs and the SIMULATED mark do not fit 80 columns with two
    // spaces around every label: one space, then.
    let mut spans = if used + 11 > area.width as usize {
        tab_spans(app, true)
    } else {
        spans
    };
    let used: usize = spans.iter().map(|s| s.width()).sum();
    if app.shared.simulated() {
        let room = (area.width as usize).saturating_sub(used);
        let label = if room >= 12 {
            " SIMULATED "
        } else if room >= 9 {
            "SIMULATED"
        } else {
            "SIM"
        };
        let pad = room.saturating_sub(label.len());
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(label, theme::simulated()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn tab_spans(app: &App, compact: bool) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let counts = app.shared.snapshot.as_ref().map(|s| &s.withdrawals);
    for tab in Tab::ALL {
        let mut label = format!("{} {}", tab.index() + 1, tab.title());
        if tab == Tab::Withdrawals
            && let Some(c) = counts
        {
            if c.requested > 0 {
                label.push_str(&format!(" {}", c.requested));
            }
            if c.needs_attention > 0 {
                label.push_str(" !");
            }
        }
        // Brackets mark the current tab without colour.
        if tab == app.tab {
            spans.push(Span::styled(
                format!("[{label}]"),
                Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            ));
        } else if compact {
            spans.push(Span::raw(format!(" {label}")));
        } else {
            spans.push(Span::raw(format!(" {label} ")));
        }
    }
    spans
}

/// Status line when live; a two-line banner when not (the last data stays on
/// screen, greyed and marked STALE).
fn draw_status(frame: &mut Frame, area: Rect, sh: &Shared) {
    let snapshot = sh.snapshot.as_ref();
    let mut info = Vec::new();
    if let Some(s) = snapshot {
        info.push(s.network.clone());
        info.push(format!("{} payouts", s.payout_mode));
        if s.wallet.payouts_paused {
            info.push("PAYOUTS PAUSED".into());
        }
    }
    if let Some(w) = &sh.welcome {
        info.push(w.server.clone());
        info.push(format!("uid:{}", w.peer_uid));
    }
    match &sh.conn {
        ConnState::Live => {
            let at = snapshot.map_or(sh.now_s, |s| s.at);
            info.push(format!("live {} UTC", format::utc_time(at)));
            let line = Line::from(vec![Span::raw(info.join(" · "))]);
            frame.render_widget(Paragraph::new(line), area);
        }
        state => {
            let (what, when) = match state {
                ConnState::Connecting { attempt: 0 } => {
                    (format!("connecting to {}", sh.socket), String::new())
                }
                ConnState::Connecting { attempt } => (
                    "DISCONNECTED".to_string(),
                    format!("reconnecting now (attempt {attempt})"),
                ),
                ConnState::Reconnecting {
                    attempt,
                    retry_at_ms,
                    ..
                } => {
                    let left = retry_at_ms.saturating_sub(sh.clock_ms);
                    let when = if left == 0 {
                        format!("reconnecting now (attempt {attempt})")
                    } else {
                        format!("reconnecting in {} (attempt {attempt})", seconds(left))
                    };
                    ("DISCONNECTED".to_string(), when)
                }
                ConnState::Live => unreachable!("handled above"),
            };
            let mut first = format!("! {what}");
            if !when.is_empty() {
                first.push_str(&format!(" — {when}"));
            }
            if sh.welcome.is_some() {
                let since = snapshot.map_or_else(|| "-".to_string(), |s| format::utc_time(s.at));
                first.push_str(&format!(" · STALE data of {since}"));
            }
            let reason = match state {
                ConnState::Reconnecting { reason, .. } => reason.clone(),
                _ => String::new(),
            };
            let second = if info.is_empty() {
                reason
            } else if reason.is_empty() {
                info.join(" · ")
            } else {
                format!("{} · {}", reason, info.join(" · "))
            };
            let lines = vec![
                Line::from(Span::styled(
                    format!("{first:<width$}", width = area.width as usize),
                    theme::banner(),
                )),
                Line::from(Span::styled(
                    format::clip(&second, area.width as usize),
                    theme::dim(),
                )),
            ];
            frame.render_widget(Paragraph::new(lines), area);
        }
    }
}

/// `"2 s"` from milliseconds, rounded up; tenths below one second.
fn seconds(ms: u64) -> String {
    if ms >= 1000 {
        format!("{} s", ms.div_ceil(1000))
    } else {
        format!("0.{} s", ms.div_ceil(100).min(9))
    }
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let line = match app.current_flash() {
        Some(flash) => {
            let (prefix, style) = match flash.level {
                Level::Info => ("", Style::default()),
                Level::Ok => ("ok: ", theme::green()),
                Level::Warn => ("! ", theme::yellow()),
                Level::Error => ("! error: ", theme::red()),
            };
            Line::from(Span::styled(format!("{prefix}{}", flash.text), style))
        }
        None => {
            let hints = match app.tab {
                Tab::Overview => app.overview.hints(),
                Tab::Miners => app.miners.hints(),
                Tab::Withdrawals => app.withdrawals.hints(),
                Tab::Psbt => app.psbt.hints(),
                Tab::Blocks => app.blocks.hints(),
                Tab::Faucet => app.faucet.hints(),
                Tab::Audit => app.audit.hints(),
            };
            Line::from(Span::styled(
                format!("{hints}  ? help  q quit"),
                theme::dim(),
            ))
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// Greys every cell of `area`: stale data must not look live.
fn grey_out(frame: &mut Frame, area: Rect) {
    let buffer = frame.buffer_mut();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            if let Some(cell) = buffer.cell_mut((x, y)) {
                cell.set_fg(Color::DarkGray);
                cell.set_bg(Color::Reset);
            }
        }
    }
}

/// Centers a message in `area` (empty and error states of screens).
pub fn placeholder(frame: &mut Frame, area: Rect, lines: Vec<Line<'static>>) {
    let paragraph = Paragraph::new(lines)
        .alignment(ratatui::layout::Alignment::Center)
        .wrap(ratatui::widgets::Wrap { trim: true });
    let height = paragraph.line_count(area.width).min(u16::MAX as usize) as u16;
    let y = area.y + area.height.saturating_sub(height) / 2;
    let rect = Rect {
        y,
        height: height.min(area.height),
        ..area
    };
    frame.render_widget(paragraph, rect);
}

/// Keeps the cursor row inside a window of `height` rows starting at
/// `offset`; returns the new offset.
pub fn scroll_to(cursor: usize, offset: usize, height: usize) -> usize {
    if height == 0 {
        return cursor;
    }
    if cursor < offset {
        cursor
    } else if cursor >= offset + height {
        cursor + 1 - height
    } else {
        offset
    }
}

/// "Waiting for the daemon" or the reason nothing can be shown.
pub fn waiting(sh: &Shared, what: &str) -> Vec<Line<'static>> {
    if sh.live() {
        vec![Line::from(format!("loading {what}…"))]
    } else {
        vec![
            Line::from(format!("no {what} yet: not connected to pooldeskd at")),
            Line::from(sh.socket.clone()),
            Line::from(""),
            Line::from("Is pooldeskd running? Another socket: pooldesk --socket PATH"),
        ]
    }
}
