//! Overview: standing warnings first (they are why an admin looks), then
//! pool, ledger, wallet/node and withdrawal counts, then the hashrate of the
//! last hour. Everything comes from the per-second [`Snapshot`] push.

use crossterm::event::KeyEvent;
use pooldesk_proto::control::Request;
use pooldesk_proto::model::Snapshot;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Wrap};

use crate::app::{Action, Purpose, Shared};
use crate::format;
use crate::keys::is_char;
use crate::ui::dialog::{Confirm, Modal};
use crate::ui::{placeholder, theme, waiting};

#[derive(Debug, Default)]
pub struct Overview;

impl Overview {
    pub fn hints(&self) -> &'static str {
        "P pause/resume payouts"
    }

    pub fn handle_key(&mut self, key: KeyEvent, sh: &Shared) -> Vec<Action> {
        if is_char(&key, 'P') {
            return pause_confirm(sh);
        }
        Vec::new()
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let Some(s) = sh.snapshot.as_ref() else {
            placeholder(frame, area, waiting(sh, "pool snapshot"));
            return;
        };
        let wide = area.width >= 120;
        let warnings = warning_lines(s, area.width as usize);
        let warnings_height = warnings.len() as u16;
        let counts_height = if wide { 0 } else { 2 };
        let origins = origin_lines(s, area.width as usize);
        // Bordered; nothing at all when no pool software sends batches.
        let origins_height = if origins.is_empty() {
            0
        } else {
            origins.len() as u16 + 2
        };
        let [warn_area, boxes_area, counts_area, origins_area, chart_area] = Layout::vertical([
            Constraint::Length(warnings_height),
            Constraint::Length(9),
            Constraint::Length(counts_height),
            Constraint::Length(origins_height),
            Constraint::Min(0),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(warnings), warn_area);

        let boxes: Vec<Rect> = if wide {
            Layout::horizontal([Constraint::Ratio(1, 4); 4])
                .split(boxes_area)
                .to_vec()
        } else {
            Layout::horizontal([Constraint::Ratio(1, 3); 3])
                .split(boxes_area)
                .to_vec()
        };
        frame.render_widget(
            Paragraph::new(pool_lines(s)).block(Block::bordered().title(" Pool ")),
            boxes[0],
        );
        frame.render_widget(
            Paragraph::new(ledger_lines(s)).block(Block::bordered().title(" Ledger (BTC) ")),
            boxes[1],
        );
        frame.render_widget(
            Paragraph::new(wallet_lines(s, sh.now_s))
                .block(Block::bordered().title(" Wallet & node ")),
            boxes[2],
        );
        if wide {
            frame.render_widget(
                Paragraph::new(count_lines(s)).block(Block::bordered().title(" Withdrawals ")),
                boxes[3],
            );
        } else {
            frame.render_widget(
                Paragraph::new(count_inline(s)).wrap(Wrap { trim: true }),
                counts_area,
            );
        }
        if !origins.is_empty() {
            frame.render_widget(
                Paragraph::new(origins).block(Block::bordered().title(" Share origins ")),
                origins_area,
            );
        }
        if chart_area.height >= 5 {
            draw_chart(frame, chart_area, s);
        }
    }
}

/// Seconds without a batch before an origin is shown as silent, and lag
/// before it is shown as behind (the daemon's warnings use the same).
const ORIGIN_SILENT_S: i64 = 600;
const ORIGIN_BEHIND_S: i64 = 120;
/// Origins listed; the rest are summed up in one line.
const ORIGIN_ROWS: usize = 4;

/// One line per share origin (`POST /api/v2/shares` senders, bridges):
/// last share, lag, backlog, quarantined lines, and a warning when silent
/// or behind.
fn origin_lines(s: &Snapshot, width: usize) -> Vec<Line<'static>> {
    let room = width.saturating_sub(2);
    let mut lines: Vec<Line<'static>> = s
        .origins
        .iter()
        .take(ORIGIN_ROWS)
        .map(|o| {
            let silent_s = o.last_batch_at.map(|at| s.at - at);
            let lag_s = o.lag_s();
            let lag = lag_s.map_or("-".into(), |l| format!("{l}s"));
            let quarantined = o.quarantined_lines.map_or("-".into(), |q| q.to_string());
            let mut text = if width >= 120 {
                format!(
                    "{:<16} last share {:<8} lag {:<6} backlog {:<11} quarantined {:<4} {}/{} rejected, {} blocks",
                    format::clip(&o.name, 16),
                    format!("{} ago", format::age_opt(s.at, o.last_share_at)),
                    lag,
                    o.backlog_bytes
                        .map_or("-".into(), |b| format!("{} B", format::grouped(b as i64))),
                    quarantined,
                    o.rejected,
                    o.accepted + o.rejected,
                    o.blocks,
                )
            } else {
                format!(
                    "{:<12} share {:<4} ago lag {:<5} q {:<3} blocks {}",
                    format::clip(&o.name, 12),
                    format::age_opt(s.at, o.last_share_at),
                    lag,
                    quarantined,
                    o.blocks,
                )
            };
            let problem = if silent_s.is_some_and(|q| q > ORIGIN_SILENT_S) {
                Some("SILENT")
            } else if lag_s.is_some_and(|l| l > ORIGIN_BEHIND_S) {
                Some("BEHIND")
            } else if o.quarantined_lines.is_some_and(|q| q > 0) {
                Some("QUARANTINE")
            } else {
                None
            };
            match problem {
                Some(p) => {
                    text = format::clip(&format!("{p} {text}"), room);
                    theme::warn_line(text)
                }
                None => Line::from(format::clip(&text, room)),
            }
        })
        .collect();
    if s.origins.len() > ORIGIN_ROWS {
        lines.push(Line::from(Span::styled(
            format!("and {} more origins", s.origins.len() - ORIGIN_ROWS),
            theme::dim(),
        )));
    }
    lines
}

/// The pause/resume confirmation (also bound on the Withdrawals tab).
pub fn pause_confirm(sh: &Shared) -> Vec<Action> {
    let Some(s) = sh.snapshot.as_ref() else {
        return vec![Action::Flash(
            crate::app::Level::Warn,
            "no snapshot yet: cannot tell whether payouts are paused".into(),
        )];
    };
    let pause = !s.wallet.payouts_paused;
    let body = if pause {
        vec![
            Line::from("Automatic payouts stop: no new batch is sent until you resume."),
            Line::from("Withdrawals can still be requested and approved; nothing already"),
            Line::from("broadcast is affected."),
        ]
    } else {
        vec![
            Line::from("Automatic payouts start again: approved withdrawals go out with"),
            Line::from(format!(
                "the next batch ({} mode).",
                if s.payout_mode.is_empty() {
                    "?"
                } else {
                    &s.payout_mode
                }
            )),
        ]
    };
    let verb = if pause {
        "pause payouts"
    } else {
        "resume payouts"
    };
    vec![Action::OpenModal(Modal::Confirm(Confirm::new(
        format!("{}?", capitalize(verb)),
        body,
        verb,
        vec![Action::Send(
            Purpose::SetPayoutsPaused { paused: pause },
            Request::SetPayoutsPaused { paused: pause },
        )],
    )))]
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn warning_lines(s: &Snapshot, width: usize) -> Vec<Line<'static>> {
    const MAX: usize = 4;
    let room = width.saturating_sub(2);
    let mut texts: Vec<String> = s
        .warnings
        .iter()
        .map(|w| {
            // The code helps when it fits; the sentence always comes first.
            let full = format!("{} ({})", w.message, w.code);
            if full.chars().count() <= room {
                full
            } else {
                format::clip(&w.message, room)
            }
        })
        .collect();
    // A node error is a standing problem too.
    if let Some(e) = &s.wallet.last_error {
        texts.push(format::clip(&format!("wallet/node: {e}"), room));
    }
    let more = texts.len().saturating_sub(MAX);
    let mut lines: Vec<Line<'static>> = texts.into_iter().take(MAX).map(theme::warn_line).collect();
    if more > 0 {
        lines.push(theme::warn_line(format!("and {more} more warnings")));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no standing warnings",
            theme::green(),
        )));
    }
    lines
}

fn row(label: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:<10}"), theme::dim()),
        Span::raw(value),
    ])
}

fn pool_lines(s: &Snapshot) -> Vec<Line<'static>> {
    vec![
        row(
            "1 min",
            format::hashrate(s.hashrate.h1m) + &s.hashrate.partial_suffix(0),
        ),
        row(
            "10 min",
            format::hashrate(s.hashrate.h10m) + &s.hashrate.partial_suffix(1),
        ),
        row(
            "1 hour",
            format::hashrate(s.hashrate.h1h) + &s.hashrate.partial_suffix(2),
        ),
        row("shares/s", format!("{:.2}", s.shares_per_s)),
        row(
            "miners",
            format!("{} active / {}", s.miners_active, s.miners_total),
        ),
        row("workers", format!("{} active", s.workers_active)),
        row("network", s.network.clone()),
    ]
}

fn ledger_lines(s: &Snapshot) -> Vec<Line<'static>> {
    let l = &s.ledger;
    vec![
        row("owed", format::btc_msat(l.owed_msat)),
        row("held", format::btc_msat(l.held_msat)),
        row("paid", format::btc_msat(l.paid_msat)),
        row("fees", format::btc_msat(l.fees_msat)),
        row("credited", format::btc_msat(l.credited_msat)),
        row("faucet", format::btc_msat(l.faucet_sent_msat)),
        row("transfers", format::grouped(l.transfers as i64)),
    ]
}

fn wallet_lines(s: &Snapshot, now_s: i64) -> Vec<Line<'static>> {
    let w = &s.wallet;
    let node = if w.connected {
        Line::from(vec![
            Span::styled(format!("{:<10}", "node"), theme::dim()),
            Span::styled("[CONNECTED]", theme::green()),
        ])
    } else {
        Line::from(vec![
            Span::styled(format!("{:<10}", "node"), theme::dim()),
            Span::styled("! [DOWN]", theme::red()),
        ])
    };
    vec![
        node,
        row(
            "backend",
            if w.backend.is_empty() {
                "?".to_string()
            } else {
                w.backend.clone()
            },
        ),
        row(
            "height",
            w.block_height
                .map_or_else(|| "-".to_string(), |h| format::grouped(h as i64)),
        ),
        row(
            "spendable",
            w.spendable_sat.map_or_else(|| "-".to_string(), format::btc),
        ),
        row(
            "fee est.",
            w.fee_estimate_sat_vb
                .map_or_else(|| "-".to_string(), |f| format!("{f} sat/vB")),
        ),
        if w.payouts_paused {
            Line::from(vec![
                Span::styled(format!("{:<10}", "payouts"), theme::dim()),
                Span::styled("! [PAUSED]", theme::yellow()),
            ])
        } else {
            row("payouts", format!("[RUNNING] {}", s.payout_mode))
        },
        row(
            "checked",
            format!("{} ago", format::age_opt(now_s, w.checked_at)),
        ),
    ]
}

fn count_lines(s: &Snapshot) -> Vec<Line<'static>> {
    let c = &s.withdrawals;
    let mut lines = vec![
        row("requested", c.requested.to_string()),
        row("approved", c.approved.to_string()),
        row("batched", c.batched.to_string()),
        row("broadcast", c.broadcast.to_string()),
        row("confirmed", c.confirmed.to_string()),
        row("rejected", format!("{}  failed {}", c.rejected, c.failed)),
    ];
    let attention = format!("{}", c.needs_attention);
    lines.push(if c.needs_attention > 0 {
        Line::from(Span::styled(
            format!("! {attention} NEED ATTENTION"),
            theme::red(),
        ))
    } else {
        row("attention", attention)
    });
    lines
}

fn count_inline(s: &Snapshot) -> Vec<Line<'static>> {
    let c = &s.withdrawals;
    let mut spans = vec![
        Span::styled("Withdrawals ", theme::strong()),
        Span::raw(format!(
            "{} requested · {} approved · {} batched · {} broadcast · {} confirmed · {} rejected · {} failed",
            c.requested, c.approved, c.batched, c.broadcast, c.confirmed, c.rejected, c.failed
        )),
    ];
    if c.needs_attention > 0 {
        spans.push(Span::styled(
            format!(" · ! {} NEED ATTENTION", c.needs_attention),
            theme::red(),
        ));
    }
    vec![Line::from(spans)]
}

fn draw_chart(frame: &mut Frame, area: Rect, s: &Snapshot) {
    let block = Block::bordered().title(" Pool hashrate, last hour (per minute) ");
    let Some(&(last_t, _)) = s.hashrate_history.last() else {
        frame.render_widget(Paragraph::new("no hashrate history yet").block(block), area);
        return;
    };
    // Minutes relative to the newest point, so the axis reads "-60m … now".
    let points: Vec<(f64, f64)> = s
        .hashrate_history
        .iter()
        .map(|(t, h)| (((t - last_t) as f64) / 60.0, h.max(0.0)))
        .collect();
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    // With no hashrate yet, unit labels on an empty scale would mislead.
    let labels = if max > 0.0 {
        [
            "0".to_string(),
            format::hashrate(top / 2.0),
            format::hashrate(top),
        ]
    } else {
        [
            "0".to_string(),
            String::new(),
            "no hashrate yet".to_string(),
        ]
    };
    let dataset = Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(theme::green())
        .data(&points);
    let chart = Chart::new(vec![dataset])
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([-60.0, 0.0])
                .labels(["-60m", "-30m", "now"]),
        )
        .y_axis(Axis::default().bounds([0.0, top]).labels(labels));
    frame.render_widget(chart, area);
}
