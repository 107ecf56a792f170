//! PSBT review: what a cold-mode batch will pay, before and after signing.
//!
//! Shown in full: inputs (outpoint, amount, verified or not, signed or not),
//! outputs with the withdrawals they pay (whole addresses), change, fee, fee
//! rate and signature status. Every warning is red AND starts with `!`.
//! A signed PSBT whose transaction differs from the reviewed one is refused
//! by the daemon; the differences are shown here and nothing changes.
//!
//! Files: export writes base64 text and never overwrites (a signed file in
//! the way must not be lost); import reads at most [`MAX_PSBT_FILE`] bytes,
//! base64 text or raw binary PSBT.

use std::io::{Read, Write};

use base64::Engine;
use crossterm::event::{KeyCode, KeyEvent};
use pooldesk_proto::control::{MAX_FRAME_BYTES, Outcome, Request, Response};
use pooldesk_proto::model::PsbtReview;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::app::{Action, Level, Purpose, Shared, explain, id_list};
use crate::format;
use crate::keys::{apply_move, movement, plain};
use crate::ui::dialog::{Confirm, Modal, Notice, Prompt, PromptKind};
use crate::ui::{placeholder, theme};

/// A PSBT file larger than this cannot be sent in one control frame.
pub const MAX_PSBT_FILE: u64 = (MAX_FRAME_BYTES / 2) as u64;

/// Writes `psbt` (base64) to a new file; refuses to overwrite.
pub fn export_psbt(path: &str, psbt: &str) -> Result<usize, String> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{path} exists; choose another name (files are never overwritten)")
            }
            _ => format!("cannot create {path}: {e}"),
        })?;
    let text = format!("{psbt}\n");
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {path} failed: {e}"))?;
    Ok(text.len())
}

/// Reads a PSBT file: base64 text (Bitcoin Core, most tools) or a binary
/// PSBT (`psbt\xff…`, hardware wallet tools). Returns base64.
pub fn read_psbt_file(path: &str) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_PSBT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading {path} failed: {e}"))?;
    if bytes.len() as u64 > MAX_PSBT_FILE {
        return Err(format!(
            "{path} is larger than {MAX_PSBT_FILE} bytes: not a PSBT"
        ));
    }
    parse_psbt_bytes(&bytes).map_err(|e| format!("{path}: {e}"))
}

/// See [`read_psbt_file`].
pub fn parse_psbt_bytes(bytes: &[u8]) -> Result<String, String> {
    const MAGIC: &[u8] = b"psbt\xff";
    let engine = base64::engine::general_purpose::STANDARD;
    if bytes.starts_with(MAGIC) {
        return Ok(engine.encode(bytes));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "neither base64 text nor a binary PSBT".to_string())?;
    let text: String = text.split_whitespace().collect();
    if text.is_empty() {
        return Err("the file is empty".into());
    }
    let decoded = engine
        .decode(&text)
        .map_err(|e| format!("not valid base64: {e}"))?;
    if !decoded.starts_with(MAGIC) {
        return Err("base64 that is not a PSBT (no psbt magic)".into());
    }
    Ok(text)
}

/// An import the daemon refused: the review did not change.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub path: String,
    pub message: String,
    pub differences: Vec<String>,
}

/// Differences from an error's `details`: a list of strings, an object with
/// `differences`, or anything else shown as compact JSON.
pub fn differences_from(details: Option<&serde_json::Value>) -> Vec<String> {
    let Some(details) = details else {
        return Vec::new();
    };
    let list = details
        .get("differences")
        .unwrap_or(details)
        .as_array()
        .cloned();
    match list {
        Some(items) => items
            .iter()
            .take(100)
            .map(|v| match v.as_str() {
                Some(s) => s.to_string(),
                None => v.to_string(),
            })
            .collect(),
        None => vec![details.to_string()],
    }
}

#[derive(Debug, Default)]
pub struct Psbt {
    pub review: Option<PsbtReview>,
    pub refused: Option<Refused>,
    list_cursor: usize,
    scroll: u16,
    loading: Option<i64>,
    error: Option<String>,
    /// Showing the list of PSBTs rather than one review.
    list: bool,
}

impl Psbt {
    pub fn hints(&self) -> &'static str {
        if self.review.is_some() && !self.list {
            "e export  i import  f finalize  j/k scroll  Esc list"
        } else {
            "Enter review  j/k move"
        }
    }

    pub fn reset_in_flight(&mut self) {
        self.loading = None;
    }

    fn showing_review(&self) -> bool {
        self.review.is_some() && !self.list
    }

    /// Load (or reload) one PSBT's review and show it.
    pub fn open(&mut self, psbt_id: i64) -> Vec<Action> {
        if self.review.as_ref().is_none_or(|r| r.psbt_id != psbt_id) {
            self.refused = None;
            self.scroll = 0;
        }
        self.list = false;
        self.loading = Some(psbt_id);
        vec![Action::Send(
            Purpose::PsbtReview { psbt_id },
            Request::PsbtReview { psbt_id },
        )]
    }

    pub fn set_review(&mut self, review: PsbtReview) {
        if self
            .review
            .as_ref()
            .is_none_or(|r| r.psbt_id != review.psbt_id)
        {
            self.refused = None;
            self.scroll = 0;
        }
        self.review = Some(review);
        self.list = false;
        self.loading = None;
        self.error = None;
    }

    pub fn refresh(&mut self, _sh: &Shared, force: bool) -> Vec<Action> {
        match (&self.review, force) {
            (Some(r), true) => {
                let id = r.psbt_id;
                self.loading = Some(id);
                vec![Action::Send(
                    Purpose::PsbtReview { psbt_id: id },
                    Request::PsbtReview { psbt_id: id },
                )]
            }
            _ => Vec::new(),
        }
    }

    /// A batch event touched this PSBT: reload its review.
    pub fn batch_changed(&mut self, psbt_id: i64) -> Vec<Action> {
        if self.review.as_ref().is_some_and(|r| r.psbt_id == psbt_id) {
            self.loading = Some(psbt_id);
            return vec![Action::Send(
                Purpose::PsbtReview { psbt_id },
                Request::PsbtReview { psbt_id },
            )];
        }
        Vec::new()
    }

    pub fn on_review(&mut self, psbt_id: i64, outcome: Outcome) -> Vec<Action> {
        if self.loading == Some(psbt_id) {
            self.loading = None;
        }
        match outcome {
            Outcome::Ok(Response::PsbtReview(review)) => {
                self.set_review(*review);
                Vec::new()
            }
            Outcome::Ok(_) => Vec::new(),
            Outcome::Err(e) => {
                self.error = Some(format!("PSBT #{psbt_id}: {}", explain(&e, "psbt_review")));
                Vec::new()
            }
        }
    }

    pub fn on_import(
        &mut self,
        psbt_id: i64,
        path: &str,
        outcome: Outcome,
        actor: &str,
    ) -> Vec<Action> {
        match outcome {
            Outcome::Ok(Response::PsbtReview(review)) if !review.differences.is_empty() => {
                self.refused = Some(Refused {
                    path: path.to_string(),
                    message: "the signed PSBT does not pay what was reviewed".into(),
                    differences: review.differences.clone(),
                });
                vec![Action::Flash(
                    Level::Error,
                    format!(
                        "import of {path} REFUSED: it differs from the review — nothing changed"
                    ),
                )]
            }
            Outcome::Ok(Response::PsbtReview(review)) => {
                let s = &review.signatures;
                let text = format!(
                    "imported {path} into PSBT #{psbt_id}: {}/{} inputs signed{} (audited as {actor})",
                    s.inputs_signed,
                    s.inputs_total,
                    if s.complete {
                        ", complete — press f to finalize"
                    } else {
                        ", incomplete"
                    }
                );
                self.refused = None;
                self.set_review(*review);
                vec![Action::Flash(Level::Ok, text)]
            }
            Outcome::Ok(_) => vec![Action::Flash(
                Level::Warn,
                "unexpected answer to import_psbt".into(),
            )],
            Outcome::Err(e) => {
                let differences = differences_from(e.details.as_ref());
                self.refused = Some(Refused {
                    path: path.to_string(),
                    message: explain(&e, "import_psbt"),
                    differences,
                });
                vec![Action::Flash(
                    Level::Error,
                    format!(
                        "import of {path} REFUSED: {} — nothing changed",
                        explain(&e, "import_psbt")
                    ),
                )]
            }
        }
    }

    pub fn on_finalized(&mut self, psbt_id: i64, outcome: Outcome, actor: &str) -> Vec<Action> {
        match outcome {
            Outcome::Ok(Response::Broadcast(b)) => {
                let body = vec![
                    Line::from(format!(
                        "PSBT #{psbt_id} of batch #{} was finalized and broadcast.",
                        b.batch_id
                    )),
                    Line::from("txid:"),
                    Line::from(Span::styled(b.txid.clone(), theme::strong())),
                    Line::from(""),
                    Line::from("Confirmations are tracked on the Withdrawals tab (batches)."),
                    Line::from(format!("Recorded in the audit log as {actor}.")),
                ];
                let mut a = vec![Action::OpenModal(Modal::Notice(Notice::new(
                    format!("Batch #{} broadcast", b.batch_id),
                    body,
                )))];
                a.extend(self.open(psbt_id));
                a
            }
            Outcome::Ok(_) => vec![Action::Flash(
                Level::Warn,
                "unexpected answer to finalize_psbt".into(),
            )],
            Outcome::Err(e) => {
                let differences = differences_from(e.details.as_ref());
                if !differences.is_empty() {
                    self.refused = Some(Refused {
                        path: String::new(),
                        message: explain(&e, "finalize_psbt"),
                        differences,
                    });
                }
                vec![Action::Flash(
                    Level::Error,
                    format!(
                        "finalize PSBT #{psbt_id} failed: {} — nothing was broadcast",
                        explain(&e, "finalize_psbt")
                    ),
                )]
            }
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent, sh: &Shared) -> Vec<Action> {
        if !self.showing_review() {
            return self.list_key(key, sh);
        }
        if let Some(m) = movement(&key) {
            let len = self.review_len(sh);
            self.scroll =
                apply_move(self.scroll as usize, len, 10, m).min(u16::MAX as usize) as u16;
            return Vec::new();
        }
        if !plain(&key) {
            return Vec::new();
        }
        let Some(review) = self.review.as_ref() else {
            return Vec::new();
        };
        let default_path = format!("./pooldesk-batch-{}.psbt", review.batch_id);
        match key.code {
            KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') => {
                self.list = true;
                Vec::new()
            }
            KeyCode::Char('e') => vec![Action::OpenModal(Modal::Prompt(Prompt::new(
                format!("Export PSBT #{}", review.psbt_id),
                vec![
                    Line::from(format!(
                        "Writes the PSBT of batch #{} as base64 text, for signing offline",
                        review.batch_id
                    )),
                    Line::from("(e.g. bitcoin-cli walletprocesspsbt, or a hardware wallet)."),
                    Line::from("An existing file is never overwritten."),
                ],
                "File",
                default_path,
                PromptKind::ExportPsbt {
                    psbt_id: review.psbt_id,
                    batch_id: review.batch_id,
                    psbt: review.psbt.clone(),
                },
                "export",
            )))],
            KeyCode::Char('i') => vec![Action::OpenModal(Modal::Prompt(Prompt::new(
                format!("Import signed PSBT #{}", review.psbt_id),
                vec![
                    Line::from(
                        "Reads a signed PSBT (base64 text or binary) and hands it to the daemon.",
                    ),
                    Line::from(
                        "The daemon refuses it, changing nothing, unless it pays exactly the",
                    ),
                    Line::from(
                        "reviewed outputs with a fee within limits; the differences are shown.",
                    ),
                ],
                "File",
                default_path,
                PromptKind::ImportPsbt {
                    psbt_id: review.psbt_id,
                },
                "import",
            )))],
            KeyCode::Char('f') => vec![self.confirm_finalize(review, sh)],
            _ => Vec::new(),
        }
    }

    fn confirm_finalize(&self, r: &PsbtReview, sh: &Shared) -> Action {
        let mut body = vec![Line::from(Span::styled(
            format!(
                "Finalize PSBT #{} and BROADCAST batch #{}. This cannot be undone.",
                r.psbt_id, r.batch_id
            ),
            theme::strong(),
        ))];
        body.push(Line::from(""));
        for o in &r.outputs {
            let role = if o.role == "withdrawal" {
                format!("pays {}", id_list(&o.withdrawal_ids))
            } else {
                o.role.clone()
            };
            body.push(Line::from(format!(
                "out {}: {}  {}",
                o.index,
                format::amount(o.amount_sat),
                role
            )));
            body.push(Line::from(format!("   to {}", o.address)));
        }
        body.push(Line::from(""));
        body.push(Line::from(format!(
            "Paid to miners: {}",
            format::amount(r.paid_to_miners_sat)
        )));
        body.push(Line::from(format!(
            "Fee:            {}{}",
            r.fee_sat.map_or_else(|| "unknown".into(), format::amount),
            r.fee_rate_milli_sat_vb
                .map_or_else(String::new, |f| format!(
                    " at {}",
                    format::fee_rate_milli(f)
                ))
        )));
        let s = &r.signatures;
        body.push(Line::from(format!(
            "Signatures:     {}/{} inputs{}",
            s.inputs_signed,
            s.inputs_total,
            if s.complete {
                " [COMPLETE]"
            } else {
                " [INCOMPLETE]"
            }
        )));
        if !s.complete {
            body.push(theme::warn_line(
                "signatures are incomplete: the daemon will refuse to finalize",
            ));
        }
        for w in &r.warnings {
            body.push(theme::warn_line(w.clone()));
        }
        body.push(Line::from(format!(
            "Recorded in the audit log as {}.",
            sh.actor()
        )));
        Action::OpenModal(Modal::Confirm(Confirm::new(
            format!("Broadcast batch #{}?", r.batch_id),
            body,
            format!("finalize and broadcast batch #{}", r.batch_id),
            vec![Action::Send(
                Purpose::FinalizePsbt { psbt_id: r.psbt_id },
                Request::FinalizePsbt { psbt_id: r.psbt_id },
            )],
        )))
    }

    fn psbt_batches(sh: &Shared) -> Vec<&pooldesk_proto::model::BatchRow> {
        sh.batches.iter().filter(|b| b.psbt_id.is_some()).collect()
    }

    fn list_key(&mut self, key: KeyEvent, sh: &Shared) -> Vec<Action> {
        let batches = Self::psbt_batches(sh);
        if let Some(m) = movement(&key) {
            self.list_cursor = apply_move(self.list_cursor, batches.len(), 10, m);
            return Vec::new();
        }
        if (key.code == KeyCode::Enter || (plain(&key) && key.code == KeyCode::Char('l')))
            && let Some(psbt_id) = batches.get(self.list_cursor).and_then(|b| b.psbt_id)
        {
            return self.open(psbt_id);
        }
        Vec::new()
    }

    fn review_len(&self, sh: &Shared) -> usize {
        self.review.as_ref().map_or(0, |r| {
            review_lines(r, self.refused.as_ref(), sh.width as usize).len()
        })
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        if self.showing_review()
            && let Some(review) = &self.review
        {
            {
                let title = format!(
                    " PSBT #{} · batch #{} {} ",
                    review.psbt_id,
                    review.batch_id,
                    format::state_label(&review.state)
                );
                let lines = review_lines(review, self.refused.as_ref(), area.width as usize);
                let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
                let total = paragraph.line_count(area.width.saturating_sub(2));
                let visible = area.height.saturating_sub(2) as usize;
                let max_scroll = total.saturating_sub(visible).min(u16::MAX as usize) as u16;
                self.scroll = self.scroll.min(max_scroll);
                let mut block = Block::bordered().title(Span::styled(title, theme::strong()));
                if total > visible {
                    let shown_to = (self.scroll as usize + visible).min(total);
                    block = block.title_bottom(
                        Line::from(format!(
                            " lines {}-{shown_to} of {total} · j/k scroll ",
                            self.scroll + 1
                        ))
                        .right_aligned(),
                    );
                }
                frame.render_widget(paragraph.block(block).scroll((self.scroll, 0)), area);
                return;
            }
        }
        self.draw_list(frame, area, sh);
    }

    fn draw_list(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let block = Block::bordered().title(" PSBTs (cold-mode batches) ");
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let mut top: Vec<Line<'static>> = Vec::new();
        if let Some(e) = &self.error {
            top.push(theme::error_line(e.clone()));
        }
        if let Some(id) = self.loading {
            top.push(Line::from(format!("loading PSBT #{id}…")));
        }
        let batches = Self::psbt_batches(sh);
        let [top_area, list_area] =
            Layout::vertical([Constraint::Length(top.len() as u16), Constraint::Min(0)])
                .areas(inner);
        frame.render_widget(Paragraph::new(top), top_area);
        if let Some(e) = &sh.batches_error {
            placeholder(frame, list_area, vec![theme::error_line(e.clone())]);
            return;
        }
        if batches.is_empty() {
            placeholder(
                frame,
                list_area,
                vec![
                    Line::from("No PSBTs."),
                    Line::from("In cold mode, press b on the Withdrawals tab to build one"),
                    Line::from("from approved withdrawals; it opens here for review."),
                ],
            );
            return;
        }
        self.list_cursor = self.list_cursor.min(batches.len() - 1);
        let mut lines = vec![Line::from(Span::styled(
            format!(
                "  {:<7} {:<7} {:<17} {:>4} {:>17}  {}",
                "BATCH", "PSBT", "STATE", "WD", "TOTAL BTC", "UPDATED"
            ),
            theme::header(),
        ))];
        let height = list_area.height.saturating_sub(1) as usize;
        let offset = crate::ui::scroll_to(self.list_cursor, 0, height);
        for (i, b) in batches.iter().enumerate().skip(offset).take(height) {
            let cursor = if i == self.list_cursor { ">" } else { " " };
            let bang = if b.state == "needs_attention" {
                "!"
            } else {
                " "
            };
            let line = Line::from(vec![
                Span::raw(format!(
                    "{cursor}{bang}#{:<6} #{:<6} ",
                    b.id,
                    b.psbt_id.unwrap_or_default()
                )),
                Span::styled(
                    format!("{:<17}", format::state_label(&b.state)),
                    theme::state(&b.state),
                ),
                Span::raw(format!(
                    " {:>4} {:>17}  {} ago",
                    b.withdrawal_ids.len(),
                    format::btc(b.total_sat),
                    format::age(sh.now_s, b.updated_at)
                )),
            ]);
            lines.push(if i == self.list_cursor {
                line.style(theme::cursor())
            } else {
                line
            });
        }
        frame.render_widget(Paragraph::new(lines), list_area);
    }
}

/// Middle-clips a long outpoint (`txid:vout`) to `width`, keeping both ends
/// so it can still be matched by eye.
fn clip_middle(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width || width < 9 {
        return text.to_string();
    }
    let keep = width - 1;
    let head = keep / 2;
    let tail = keep - head;
    let chars: Vec<char> = text.chars().collect();
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[n - tail..]);
    out
}

/// The review as text lines: warnings and refusals first, so they are the
/// first thing on screen.
pub fn review_lines(r: &PsbtReview, refused: Option<&Refused>, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let s = &r.signatures;
    lines.push(Line::from(vec![
        Span::styled("Signatures ", theme::strong()),
        Span::raw(format!(
            "{}/{} inputs signed ",
            s.inputs_signed, s.inputs_total
        )),
        if s.complete {
            Span::styled("[COMPLETE]", theme::green())
        } else {
            Span::styled("[INCOMPLETE]", theme::yellow())
        },
        Span::raw(match &r.txid {
            Some(txid) => format!("   txid {txid}"),
            None => String::new(),
        }),
    ]));
    // The numbers that matter, before any scrolling.
    let withdrawals: usize = r.outputs.iter().map(|o| o.withdrawal_ids.len()).sum();
    lines.push(Line::from(format!(
        "Pays {} BTC to {} withdrawal(s) · fee {} at {}",
        format::btc(r.paid_to_miners_sat),
        withdrawals,
        r.fee_sat.map_or_else(
            || "unknown".to_string(),
            |f| format!("{} sat", format::grouped(f))
        ),
        r.fee_rate_milli_sat_vb
            .map_or_else(|| "fee rate unknown".to_string(), format::fee_rate_milli),
    )));
    if let Some(refused) = refused {
        lines.push(Line::from(""));
        let from = if refused.path.is_empty() {
            String::new()
        } else {
            format!(" from {}", refused.path)
        };
        lines.push(theme::warn_line(format!(
            "IMPORT REFUSED{from}: {} — nothing changed; the review below is still the one on record",
            refused.message
        )));
        if refused.differences.is_empty() {
            lines.push(theme::warn_line("(the daemon gave no list of differences)"));
        }
        for d in &refused.differences {
            lines.push(theme::warn_line(format!("difference: {d}")));
        }
    }
    if !r.differences.is_empty() && refused.is_none() {
        lines.push(Line::from(""));
        for d in &r.differences {
            lines.push(theme::warn_line(format!("difference: {d}")));
        }
    }
    if !r.warnings.is_empty() {
        lines.push(Line::from(""));
        for w in &r.warnings {
            lines.push(theme::warn_line(format!("WARNING: {w}")));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!("Inputs ({})", r.inputs.len()),
        theme::strong(),
    )));
    let op_w = width.saturating_sub(44).clamp(20, 80);
    lines.push(Line::from(Span::styled(
        format!(
            "  {:<op_w$} {:>14} {:<12} {}",
            "OUTPOINT", "AMOUNT BTC", "VERIFIED", "SIGNED"
        ),
        theme::header(),
    )));
    for i in &r.inputs {
        let amount = i.amount_sat.map_or_else(|| "?".to_string(), format::btc);
        let verified = if i.verified {
            Span::raw(format!("{:<12}", "verified"))
        } else {
            Span::styled(format!("{:<12}", "! UNVERIFIED"), theme::red())
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "  {:<op_w$} {:>14} ",
                clip_middle(&i.outpoint, op_w),
                amount
            )),
            verified,
            Span::raw(if i.signed { " signed" } else { " unsigned" }),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!("Outputs ({})", r.outputs.len()),
        theme::strong(),
    )));
    for o in &r.outputs {
        let role = match o.role.as_str() {
            "withdrawal" => Span::raw(format!("pays {}", id_list(&o.withdrawal_ids))),
            "change" => Span::raw("change (back to our wallet)"),
            other => Span::styled(
                format!("! {} output", other.to_ascii_uppercase()),
                theme::red(),
            ),
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "  #{:<3} {:>14} BTC  ",
                o.index,
                format::btc(o.amount_sat)
            )),
            role,
        ]));
        lines.push(Line::from(format!("        {}", o.address)));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("Totals", theme::strong())));
    let row = |label: &str, value: String| Line::from(format!("  {label:<16}{value}"));
    lines.push(row(
        "inputs",
        r.total_in_sat
            .map_or_else(|| "unknown".into(), format::amount),
    ));
    lines.push(row("outputs", format::amount(r.total_out_sat)));
    lines.push(row("paid to miners", format::amount(r.paid_to_miners_sat)));
    lines.push(row("change", format::amount(r.change_sat)));
    lines.push(row(
        "fee",
        r.fee_sat.map_or_else(|| "unknown".into(), format::amount),
    ));
    lines.push(row(
        "size",
        r.vsize
            .map_or_else(|| "unknown".into(), |v| format!("{v} vB")),
    ));
    lines.push(row(
        "fee rate",
        r.fee_rate_milli_sat_vb
            .map_or_else(|| "unknown".into(), format::fee_rate_milli),
    ));
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!(
            "PSBT: {} base64 characters · e export · i import signed · f finalize",
            r.psbt.len()
        ),
        theme::dim(),
    )));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psbt_files_are_base64_or_binary() {
        let binary = b"psbt\xff\x01\x00";
        let b64 = base64::engine::general_purpose::STANDARD.encode(binary);
        assert_eq!(parse_psbt_bytes(binary).unwrap(), b64);
        assert_eq!(
            parse_psbt_bytes(format!("{b64}\n").as_bytes()).unwrap(),
            b64
        );
        assert!(parse_psbt_bytes(b"").is_err());
        assert!(parse_psbt_bytes(b"aGVsbG8=").is_err());
        assert!(parse_psbt_bytes(b"not base64 !!").is_err());
    }

    #[test]
    fn export_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.psbt");
        let path = path.to_str().unwrap();
        assert!(export_psbt(path, "cHNidP8=").is_ok());
        assert_eq!(std::fs::read_to_string(path).unwrap(), "cHNidP8=\n");
        let err = export_psbt(path, "other").unwrap_err();
        assert!(err.contains("exists"), "{err}");
        assert_eq!(std::fs::read_to_string(path).unwrap(), "cHNidP8=\n");
        assert_eq!(read_psbt_file(path).unwrap(), "cHNidP8=");
    }

    #[test]
    fn differences_from_details() {
        let v = serde_json::json!({"differences": ["output 0 amount 5 != 6"]});
        assert_eq!(differences_from(Some(&v)), vec!["output 0 amount 5 != 6"]);
        let v = serde_json::json!(["a", {"x": 1}]);
        assert_eq!(differences_from(Some(&v)), vec!["a", "{\"x\":1}"]);
        let v = serde_json::json!({"other": 1});
        assert_eq!(differences_from(Some(&v)), vec!["{\"other\":1}"]);
        assert!(differences_from(None).is_empty());
    }

    #[test]
    fn middle_clip_keeps_both_ends() {
        assert_eq!(clip_middle("abcdefghijklmnop:1", 11), "abcde…nop:1");
        assert_eq!(clip_middle("short:0", 20), "short:0");
    }
}
