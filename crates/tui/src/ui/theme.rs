//! Styles, kept few and always paired with text: every state reads without
//! colour (`[REQUESTED]`, `!` for warnings, `*` for selection, `>` for the
//! cursor), colour only helps.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

pub fn strong() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

pub fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

pub fn header() -> Style {
    Style::default()
        .add_modifier(Modifier::BOLD)
        .add_modifier(Modifier::UNDERLINED)
}

/// The cursor row of a table (also marked with `>`).
pub fn cursor() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

pub fn red() -> Style {
    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
}

pub fn yellow() -> Style {
    Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD)
}

pub fn green() -> Style {
    Style::default().fg(Color::Green)
}

/// The SIMULATED label: loud on purpose.
pub fn simulated() -> Style {
    Style::default()
        .fg(Color::Black)
        .bg(Color::Yellow)
        .add_modifier(Modifier::BOLD)
}

/// The disconnected banner.
pub fn banner() -> Style {
    Style::default()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD)
}

/// `! text` in red: a warning that must be read.
pub fn warn_line(text: impl Into<String>) -> Line<'static> {
    Line::from(Span::styled(format!("! {}", text.into()), red()))
}

/// `! error: text` in red.
pub fn error_line(text: impl Into<String>) -> Line<'static> {
    Line::from(Span::styled(format!("! {}", text.into()), red()))
}

/// Style of a withdrawal/batch state label.
pub fn state(state: &str) -> Style {
    match state {
        "needs_attention" | "failed" => red(),
        "requested" => yellow(),
        "approved" | "batched" | "broadcast" | "psbt_created" | "signed" | "intent" => {
            Style::default().fg(Color::Cyan)
        }
        "confirmed" => green(),
        _ => Style::default(),
    }
}
