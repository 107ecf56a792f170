//! Modal dialogs: confirmations, text prompts, notices and help.
//!
//! Every action that moves money or changes a miner goes through a
//! [`Confirm`] (or a [`Prompt`] that is its own confirmation) which repeats
//! what will happen in full — miner, amount in BTC and sat, the whole
//! address — and sends nothing until the admin presses `y` or Enter.
//! Esc or `n` cancels and nothing is sent.

use crossterm::event::{KeyCode, KeyEvent};
use pooldesk_proto::control::Request;
use pooldesk_proto::model::{BatchResolution, BatchRow, IssuedKey};
use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};

use crate::app::{Action, Level, Purpose};
use crate::keys::{ctrl, is_char, plain};
use crate::ui::{help, psbt, theme};

#[derive(Debug, Clone)]
pub enum Modal {
    Confirm(Confirm),
    Prompt(Prompt),
    Notice(Notice),
    Help { scroll: u16 },
}

/// What a key did to the dialog.
#[derive(Debug)]
pub enum ModalKey {
    Stay,
    Close,
    /// Confirmed: carry out these actions.
    Confirm(Vec<Action>),
    /// Enter in a prompt: the app validates and acts.
    Submit,
}

#[derive(Debug, Clone)]
pub struct Confirm {
    pub title: String,
    pub body: Vec<Line<'static>>,
    /// What `y` does, in words: "approve 2 withdrawals".
    pub yes: String,
    pub on_yes: Vec<Action>,
    pub scroll: u16,
    /// The quit confirmation (Ctrl-C there quits at once).
    pub is_quit: bool,
}

impl Confirm {
    pub fn new(
        title: impl Into<String>,
        body: Vec<Line<'static>>,
        yes: impl Into<String>,
        on_yes: Vec<Action>,
    ) -> Confirm {
        Confirm {
            title: title.into(),
            body,
            yes: yes.into(),
            on_yes,
            scroll: 0,
            is_quit: false,
        }
    }

    pub fn quit(reasons: Vec<String>) -> Confirm {
        let mut body = vec![Line::from("Something is still pending:"), Line::from("")];
        body.extend(reasons.into_iter().map(|r| theme::warn_line(r)));
        body.push(Line::from(""));
        body.push(Line::from(
            "Quitting does not cancel a request already sent; its outcome will be in the audit log.",
        ));
        Confirm {
            title: "Quit pooldesk?".into(),
            body,
            yes: "quit".into(),
            on_yes: vec![Action::ForceQuit],
            scroll: 0,
            is_quit: true,
        }
    }
}

/// What a text prompt is for (decides validation and the resulting action).
#[derive(Debug, Clone, PartialEq)]
pub enum PromptKind {
    /// Reject a withdrawal: a reason is required (it is shown to the miner
    /// and recorded in the audit log).
    RejectReason { id: i64 },
    /// Write the PSBT (base64) to a file.
    ExportPsbt {
        psbt_id: i64,
        batch_id: i64,
        psbt: String,
    },
    /// Read a signed PSBT from a file and import it.
    ImportPsbt { psbt_id: i64 },
    /// Mark a batch paid: the txid that proves it.
    PaidTxid { batch_id: i64 },
}

#[derive(Debug, Clone)]
pub struct Prompt {
    pub title: String,
    pub body: Vec<Line<'static>>,
    pub label: String,
    pub input: String,
    pub kind: PromptKind,
    pub error: Option<String>,
    /// What Enter does, in words.
    pub submit: String,
}

/// Text fields are bounded: a reason or a path has no business being long.
const MAX_INPUT: usize = 512;

impl Prompt {
    pub fn new(
        title: impl Into<String>,
        body: Vec<Line<'static>>,
        label: impl Into<String>,
        initial: impl Into<String>,
        kind: PromptKind,
        submit: impl Into<String>,
    ) -> Prompt {
        Prompt {
            title: title.into(),
            body,
            label: label.into(),
            input: initial.into(),
            kind,
            error: None,
            submit: submit.into(),
        }
    }

    /// Validates the input; `Err` keeps the prompt open with the message.
    pub fn submit(&mut self) -> Result<Vec<Action>, String> {
        let text = self.input.trim().to_string();
        match &self.kind {
            PromptKind::RejectReason { id } => {
                if text.is_empty() {
                    return Err(
                        "a reason is required (shown to the miner, kept in the audit log)".into(),
                    );
                }
                Ok(vec![Action::Send(
                    Purpose::Reject { id: *id },
                    Request::RejectWithdrawal {
                        id: *id,
                        reason: text,
                    },
                )])
            }
            PromptKind::ExportPsbt { psbt_id, psbt, .. } => {
                if text.is_empty() {
                    return Err("type a file path".into());
                }
                let bytes = psbt::export_psbt(&text, psbt)?;
                Ok(vec![Action::Flash(
                    Level::Ok,
                    format!("exported PSBT #{psbt_id} to {text} ({bytes} bytes, base64)"),
                )])
            }
            PromptKind::ImportPsbt { psbt_id } => {
                if text.is_empty() {
                    return Err("type the path of the signed PSBT".into());
                }
                let psbt = psbt::read_psbt_file(&text)?;
                Ok(vec![Action::Send(
                    Purpose::ImportPsbt {
                        psbt_id: *psbt_id,
                        path: text,
                    },
                    Request::ImportPsbt {
                        psbt_id: *psbt_id,
                        psbt,
                    },
                )])
            }
            PromptKind::PaidTxid { batch_id } => {
                let txid = text.to_ascii_lowercase();
                if txid.len() != 64 || !txid.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("a txid is 64 hex characters".into());
                }
                let body = vec![
                    Line::from(format!(
                        "Batch #{batch_id} will be marked PAID by transaction"
                    )),
                    Line::from(Span::styled(txid.clone(), theme::strong())),
                    Line::from(""),
                    theme::warn_line(
                        "Only do this after checking the transaction on chain: the withdrawals become paid and will never be retried.",
                    ),
                ];
                Ok(vec![Action::OpenModal(Modal::Confirm(Confirm::new(
                    format!("Mark batch #{batch_id} paid?"),
                    body,
                    format!("mark batch #{batch_id} paid"),
                    vec![Action::Send(
                        Purpose::ResolveBatch {
                            batch_id: *batch_id,
                            what: "paid",
                        },
                        Request::ResolveBatch {
                            batch_id: *batch_id,
                            resolution: BatchResolution::Paid { txid },
                        },
                    )],
                )))])
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Notice {
    pub title: String,
    pub body: Vec<Line<'static>>,
    pub scroll: u16,
    /// Text for the close key, e.g. "I have stored the key".
    pub close: String,
}

impl Notice {
    pub fn new(title: impl Into<String>, body: Vec<Line<'static>>) -> Notice {
        Notice {
            title: title.into(),
            body,
            scroll: 0,
            close: "close".into(),
        }
    }

    /// A freshly issued key: shown once, never again.
    pub fn issued_key(key: &IssuedKey, actor: &str) -> Notice {
        Notice {
            title: format!("New key for {}", key.miner_id),
            body: vec![
                Line::from(format!("Miner:       {}", key.miner_id)),
                Line::from(format!("Key version: {}", key.key_version)),
                Line::from(""),
                Line::from(Span::styled(key.api_key.clone(), theme::strong())),
                Line::from(""),
                theme::warn_line(
                    "This key is shown ONCE and will not be shown again: the daemon keeps no usable copy.",
                ),
                theme::warn_line(
                    "Copy it now (select it with the mouse) and hand it to the miner over a safe channel.",
                ),
                Line::from("Any older key of this miner stopped working."),
                Line::from(format!("Recorded in the audit log as {actor}.")),
            ],
            scroll: 0,
            close: "I have stored the key".into(),
        }
    }

    /// A hot-mode batch that went out.
    pub fn batch_sent(batch: &BatchRow, actor: &str) -> Notice {
        let mut body = vec![
            Line::from(format!(
                "Batch #{} [{}] for {} withdrawal(s): {}",
                batch.id,
                batch.state.to_ascii_uppercase(),
                batch.withdrawal_ids.len(),
                crate::app::id_list(&batch.withdrawal_ids)
            )),
            Line::from(format!("Total: {}", crate::format::amount(batch.total_sat))),
        ];
        if let Some(fee) = batch.fee_sat {
            body.push(Line::from(format!("Fee:   {}", crate::format::amount(fee))));
        }
        match &batch.txid {
            Some(txid) => {
                body.push(Line::from("txid:"));
                body.push(Line::from(Span::styled(txid.clone(), theme::strong())));
            }
            None => body.push(theme::warn_line("no txid yet")),
        }
        if let Some(note) = &batch.note {
            body.push(Line::from(format!("Note: {note}")));
        }
        body.push(Line::from(format!("Recorded in the audit log as {actor}.")));
        Notice::new(format!("Batch #{} sent", batch.id), body)
    }
}

impl Modal {
    pub fn handle_key(&mut self, key: KeyEvent) -> ModalKey {
        match self {
            Modal::Confirm(c) => {
                if is_char(&key, 'y') || is_char(&key, 'Y') || key.code == KeyCode::Enter {
                    return ModalKey::Confirm(c.on_yes.clone());
                }
                if is_char(&key, 'n')
                    || is_char(&key, 'N')
                    || is_char(&key, 'q')
                    || key.code == KeyCode::Esc
                {
                    return ModalKey::Close;
                }
                scroll(&mut c.scroll, &key);
                ModalKey::Stay
            }
            Modal::Prompt(p) => {
                if ctrl(&key, 'u') {
                    p.input.clear();
                    p.error = None;
                    return ModalKey::Stay;
                }
                match key.code {
                    KeyCode::Enter => ModalKey::Submit,
                    KeyCode::Esc => ModalKey::Close,
                    KeyCode::Backspace => {
                        p.input.pop();
                        p.error = None;
                        ModalKey::Stay
                    }
                    KeyCode::Char(c) if plain(&key) => {
                        if p.input.chars().count() < MAX_INPUT && !c.is_control() {
                            p.input.push(c);
                        }
                        p.error = None;
                        ModalKey::Stay
                    }
                    _ => ModalKey::Stay,
                }
            }
            Modal::Notice(n) => {
                if key.code == KeyCode::Enter || key.code == KeyCode::Esc || is_char(&key, 'q') {
                    return ModalKey::Close;
                }
                scroll(&mut n.scroll, &key);
                ModalKey::Stay
            }
            Modal::Help { scroll: s } => {
                if key.code == KeyCode::Esc
                    || key.code == KeyCode::Enter
                    || is_char(&key, '?')
                    || is_char(&key, 'q')
                {
                    return ModalKey::Close;
                }
                scroll(s, &key);
                ModalKey::Stay
            }
        }
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect) {
        match self {
            Modal::Confirm(c) => {
                let keys = format!("[y/Enter] {}   [n/Esc] cancel", c.yes);
                draw_box(frame, area, &c.title, &c.body, c.scroll, None, &keys, true);
            }
            Modal::Prompt(p) => {
                let mut input = vec![Line::from(vec![
                    Span::styled(format!("{}: ", p.label), theme::strong()),
                    Span::raw(p.input.clone()),
                    Span::styled("▏", theme::strong()),
                ])];
                if let Some(error) = &p.error {
                    input.push(theme::error_line(error.clone()));
                }
                let keys = format!("[Enter] {}   [Esc] cancel   [Ctrl-U] clear", p.submit);
                draw_box(frame, area, &p.title, &p.body, 0, Some(input), &keys, true);
            }
            Modal::Notice(n) => {
                let keys = format!("[Enter] {}", n.close);
                draw_box(frame, area, &n.title, &n.body, n.scroll, None, &keys, false);
            }
            Modal::Help { scroll } => help::draw(frame, area, *scroll),
        }
    }
}

fn scroll(offset: &mut u16, key: &KeyEvent) {
    if !plain(key) {
        return;
    }
    match key.code {
        KeyCode::Down | KeyCode::Char('j') => *offset = offset.saturating_add(1),
        KeyCode::Up | KeyCode::Char('k') => *offset = offset.saturating_sub(1),
        KeyCode::PageDown => *offset = offset.saturating_add(10),
        KeyCode::PageUp => *offset = offset.saturating_sub(10),
        KeyCode::Home | KeyCode::Char('g') => *offset = 0,
        _ => {}
    }
}

/// A centered box: body (scrollable, wrapped), optional input lines pinned
/// under it, and the key line at the bottom. Heights are measured after
/// wrapping, so nothing is cut off silently; a body taller than the screen
/// scrolls and says so in the bottom border.
#[allow(clippy::too_many_arguments)]
fn draw_box(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    body: &[Line<'static>],
    scroll: u16,
    input: Option<Vec<Line<'static>>>,
    keys: &str,
    emphasize: bool,
) {
    let width = area.width.saturating_sub(4).clamp(20, 110).min(area.width);
    // Borders (2) and one column of padding each side (2).
    let text_width = width.saturating_sub(4).max(1);
    let body_par = Paragraph::new(body.to_vec()).wrap(Wrap { trim: false });
    let body_height = body_par.line_count(text_width);
    let input_par = input.map(|i| Paragraph::new(i).wrap(Wrap { trim: false }));
    let input_height = input_par
        .as_ref()
        .map_or(0, |p| p.line_count(text_width) + 1);
    // borders (2) + blank before keys (1) + keys (1)
    let wanted = body_height + input_height + 4;
    let height = (wanted.min(u16::MAX as usize) as u16)
        .min(area.height.saturating_sub(2))
        .max(6)
        .min(area.height);
    let popup = Rect {
        x: area.x + (area.width.saturating_sub(width)) / 2,
        y: area.y + (area.height.saturating_sub(height)) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    let border = if emphasize {
        BorderType::Double
    } else {
        BorderType::Plain
    };
    let inner_height = height.saturating_sub(2);
    let input_h = input_height.min(u16::MAX as usize) as u16;
    let body_visible = inner_height.saturating_sub(2 + input_h) as usize;
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_type(border)
        .title(Span::styled(format!(" {title} "), theme::strong()))
        .title_alignment(Alignment::Left);
    if body_height > body_visible + scroll as usize {
        block = block.title_bottom(Line::from(" more below: j/k scroll ").right_aligned());
    } else if scroll > 0 {
        block = block.title_bottom(Line::from(" k scrolls back up ").right_aligned());
    }
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let inner = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(2),
        ..inner
    };
    let keys_area = Rect {
        y: inner.y + inner.height.saturating_sub(1),
        height: 1.min(inner.height),
        ..inner
    };
    let body_area = Rect {
        height: inner.height.saturating_sub(2 + input_h),
        ..inner
    };
    frame.render_widget(body_par.scroll((scroll, 0)), body_area);
    if let Some(input_par) = input_par {
        let input_area = Rect {
            y: body_area.y + body_area.height + 1,
            height: input_h.saturating_sub(1),
            ..inner
        };
        frame.render_widget(input_par, input_area);
    }
    let key_line = Line::from(Span::styled(
        keys.to_string(),
        Style::default().add_modifier(Modifier::BOLD),
    ));
    frame.render_widget(Paragraph::new(key_line), keys_area);
}
