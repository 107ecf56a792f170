//! Audit: the daemon's append-only log, newest first, a page at a time.
//! New entries arrive live while the newest page is shown.

use crossterm::event::{KeyCode, KeyEvent};
use pooldesk_proto::control::{Outcome, Request, Response};
use pooldesk_proto::model::AuditEntry;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::app::{Action, Purpose, Shared, explain};
use crate::format;
use crate::keys::{apply_move, movement, plain};
use crate::ui::{placeholder, scroll_to, theme, waiting};

/// Entries per page.
pub const PAGE: u32 = 100;

#[derive(Debug, Default)]
pub struct Audit {
    pub entries: Vec<AuditEntry>,
    /// `before_id` of each page visited; the last is the page shown
    /// (`None` = newest).
    pages: Vec<Option<i64>>,
    pub next_before_id: Option<i64>,
    cursor: usize,
    offset: usize,
    page_height: usize,
    loaded: bool,
    error: Option<String>,
}

impl Audit {
    pub fn hints(&self) -> &'static str {
        "n/PgDn older  p/PgUp newer  g newest"
    }

    pub fn page_number(&self) -> usize {
        self.pages.len().max(1)
    }

    fn current_before(&self) -> Option<i64> {
        self.pages.last().copied().flatten()
    }

    fn load(&self, before_id: Option<i64>) -> Action {
        Action::Send(
            Purpose::Audit { before_id },
            Request::AuditPage {
                before_id,
                limit: Some(PAGE),
            },
        )
    }

    pub fn refresh(&mut self, _sh: &Shared, force: bool) -> Vec<Action> {
        if self.loaded && !force {
            return Vec::new();
        }
        if self.pages.is_empty() {
            self.pages.push(None);
        }
        vec![self.load(self.current_before())]
    }

    pub fn on_page(&mut self, before_id: Option<i64>, outcome: Outcome) -> Vec<Action> {
        if before_id != self.current_before() {
            return Vec::new();
        }
        match outcome {
            Outcome::Ok(Response::Audit(page)) => {
                self.entries = page.entries;
                self.next_before_id = page.next_before_id;
                self.loaded = true;
                self.error = None;
                self.cursor = self.cursor.min(self.entries.len().saturating_sub(1));
            }
            Outcome::Ok(_) => self.error = Some("unexpected answer to audit_page".into()),
            Outcome::Err(e) => self.error = Some(explain(&e, "audit_page")),
        }
        Vec::new()
    }

    /// A live entry: shown at the top while the newest page is open.
    pub fn push_live(&mut self, entry: AuditEntry) {
        if !self.loaded || self.current_before().is_some() {
            return;
        }
        if self.entries.iter().any(|e| e.id == entry.id) {
            return;
        }
        self.entries.insert(0, entry);
        if self.entries.len() > PAGE as usize {
            self.entries.truncate(PAGE as usize);
            self.next_before_id = self.entries.last().map(|e| e.id);
        }
        if self.cursor > 0 {
            self.cursor += 1;
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent, _sh: &Shared) -> Vec<Action> {
        let older = matches!(key.code, KeyCode::PageDown)
            || (plain(&key)
                && matches!(
                    key.code,
                    KeyCode::Char('n') | KeyCode::Char('l') | KeyCode::Right
                ));
        let newer = matches!(key.code, KeyCode::PageUp)
            || (plain(&key)
                && matches!(
                    key.code,
                    KeyCode::Char('p') | KeyCode::Char('h') | KeyCode::Left
                ));
        if older {
            return match self.next_before_id {
                Some(id) => {
                    self.pages.push(Some(id));
                    self.cursor = 0;
                    vec![self.load(Some(id))]
                }
                None => vec![Action::Flash(
                    crate::app::Level::Info,
                    "this is the oldest page".into(),
                )],
            };
        }
        if newer {
            if self.pages.len() <= 1 {
                return vec![Action::Flash(
                    crate::app::Level::Info,
                    "this is the newest page".into(),
                )];
            }
            self.pages.pop();
            self.cursor = 0;
            return vec![self.load(self.current_before())];
        }
        if plain(&key) && key.code == KeyCode::Char('g') {
            self.pages = vec![None];
            self.cursor = 0;
            return vec![self.load(None)];
        }
        if let Some(m) = movement(&key) {
            self.cursor = apply_move(self.cursor, self.entries.len(), self.page_height, m);
        }
        Vec::new()
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let title = format!(
            " Audit log · page {}{} · newest first ",
            self.page_number(),
            if self.current_before().is_none() {
                " (live)"
            } else {
                ""
            }
        );
        let block = Block::bordered().title(title);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if !self.loaded {
            let lines = match &self.error {
                Some(e) => vec![theme::error_line(e.clone())],
                None => waiting(sh, "audit log"),
            };
            placeholder(frame, inner, lines);
            return;
        }
        let [table_area, detail_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(inner);
        let body_rows = table_area.height.saturating_sub(1) as usize;
        self.page_height = body_rows.max(1);
        self.offset = scroll_to(self.cursor, self.offset, body_rows);
        let end = (self.offset + body_rows).min(self.entries.len());
        let wide = area.width >= 120;
        let rows: Vec<Row> = self.entries[self.offset.min(end)..end]
            .iter()
            .map(|e| {
                let when = if wide {
                    format::utc(e.at)
                } else {
                    format::utc_time(e.at)
                };
                Row::new(vec![
                    Cell::from(format!("#{}", e.id)),
                    Cell::from(when),
                    Cell::from(e.actor.clone()),
                    Cell::from(Span::styled(e.action.clone(), theme::strong())),
                    Cell::from(e.subject.clone()),
                    Cell::from(e.detail.clone()),
                ])
            })
            .collect();
        let widths = [
            Constraint::Length(7),
            Constraint::Length(if wide { 19 } else { 8 }),
            Constraint::Length(if wide { 22 } else { 10 }),
            Constraint::Length(if wide { 18 } else { 12 }),
            Constraint::Length(if wide { 24 } else { 14 }),
            Constraint::Min(10),
        ];
        let header = Row::new(vec![
            "ID", "TIME UTC", "ACTOR", "ACTION", "SUBJECT", "DETAIL",
        ])
        .style(theme::header());
        let mut state = TableState::default();
        if !self.entries.is_empty() {
            state.select(Some(self.cursor.saturating_sub(self.offset)));
        }
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(header)
                .column_spacing(1)
                .row_highlight_style(theme::cursor())
                .highlight_symbol(">"),
            table_area,
            &mut state,
        );
        if self.entries.is_empty() {
            placeholder(
                frame,
                table_area,
                vec![Line::from("the audit log is empty")],
            );
        }
        let detail = self.entries.get(self.cursor).map_or_else(Vec::new, |e| {
            let mut text = format!(
                "#{} {} UTC · {} · {} {}",
                e.id,
                format::utc(e.at),
                e.actor,
                e.action,
                e.subject
            );
            if !e.detail.is_empty() {
                text.push_str(&format!(" · {}", e.detail));
            }
            vec![Line::from(Span::styled(text, theme::dim()))]
        });
        let mut detail = detail;
        if let Some(e) = &self.error {
            detail.insert(0, theme::error_line(format!("last load failed: {e}")));
        }
        frame.render_widget(
            Paragraph::new(detail).wrap(Wrap { trim: false }),
            detail_area,
        );
    }
}
