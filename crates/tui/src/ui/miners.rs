//! Miners: every miner in one table, sorted and filtered locally so each key
//! answers at once even with tens of thousands of rows, plus a detail pane.
//!
//! Loading: `list_miners` pages hold at most 1000 rows, so a refresh walks
//! the pages (in id order, which does not move between pages, duplicates
//! dropped) into a staging list that replaces the shown one when complete:
//! no flicker, no half-lists. Up to [`MAX_LOCAL_ROWS`] are kept; past that the
//! daemon sorts and filters (the same query is sent) and the screen says the
//! list is truncated. Sorting here matches the daemon's order exactly
//! (ties by id), so both paths agree.
//!
//! Drawing builds table rows only for the visible window: the cost of a
//! frame does not grow with the number of miners.

use std::cmp::Ordering;
use std::collections::HashSet;

use crossterm::event::{KeyCode, KeyEvent};
use pooldesk_proto::control::{Outcome, Request, Response};
use pooldesk_proto::model::{ListMiners, MinerDetail, MinerRow, MinerSort};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use crate::app::{Action, Level, Purpose, Shared, explain};
use crate::format;
use crate::keys::{apply_move, movement, plain};
use crate::ui::dialog::{Confirm, Modal};
use crate::ui::{WIDE, placeholder, scroll_to, theme, waiting};

/// Rows kept locally. 50,000 rows are a few MB; beyond that the daemon
/// filters and sorts and the first 50,000 are shown.
pub const MAX_LOCAL_ROWS: usize = 50_000;
/// Rows per `list_miners` page (the daemon's maximum).
const PAGE: u32 = 1000;
/// Reload the table this often while it is shown.
const REFRESH_MS: u64 = 10_000;
/// Reload the detail pane this often while it is shown.
const DETAIL_REFRESH_MS: u64 = 3_000;

pub const SORTS: [MinerSort; 7] = [
    MinerSort::Id,
    MinerSort::Tier,
    MinerSort::Hashrate,
    MinerSort::Workers,
    MinerSort::Balance,
    MinerSort::LastShare,
    MinerSort::Status,
];

fn sort_name(sort: MinerSort) -> &'static str {
    match sort {
        MinerSort::Id => "id",
        MinerSort::Tier => "tier",
        MinerSort::Hashrate => "hashrate",
        MinerSort::Workers => "workers",
        MinerSort::Balance => "balance",
        MinerSort::LastShare => "last share",
        MinerSort::Status => "status",
    }
}

/// The daemon's order: the column, ties broken by id; descending reverses
/// the whole comparison (as the daemon does), so paging agrees.
pub fn compare(a: &MinerRow, b: &MinerRow, sort: MinerSort) -> Ordering {
    let primary = match sort {
        MinerSort::Id => Ordering::Equal,
        MinerSort::Tier => a.tier.cmp(&b.tier),
        MinerSort::Hashrate => a.hashrate_10m.total_cmp(&b.hashrate_10m),
        MinerSort::Workers => a.workers.cmp(&b.workers),
        MinerSort::Balance => a.balance_msat.cmp(&b.balance_msat),
        MinerSort::LastShare => a.last_share_at.cmp(&b.last_share_at),
        MinerSort::Status => a.active.cmp(&b.active),
    };
    primary.then_with(|| a.miner_id.cmp(&b.miner_id))
}

/// Indices of `rows` whose id contains `filter` (case-insensitive), in
/// sort order. `lower` holds the lower-cased ids (computed once per load).
pub fn filter_sort(
    rows: &[MinerRow],
    lower: &[String],
    filter: &str,
    sort: MinerSort,
    descending: bool,
) -> Vec<u32> {
    let needle = filter.trim().to_lowercase();
    let mut view: Vec<u32> = (0..rows.len() as u32)
        .filter(|&i| needle.is_empty() || lower[i as usize].contains(&needle))
        .collect();
    view.sort_by(|&a, &b| {
        let (a, b) = (&rows[a as usize], &rows[b as usize]);
        if descending {
            compare(b, a, sort)
        } else {
            compare(a, b, sort)
        }
    });
    view
}

/// A refresh in progress.
#[derive(Debug)]
struct Fetch {
    generation: u64,
    query: ListMiners,
    rows: Vec<MinerRow>,
    seen: HashSet<String>,
}

#[derive(Debug, Default)]
pub struct Miners {
    rows: Vec<MinerRow>,
    lower: Vec<String>,
    view: Vec<u32>,
    pub sort: MinerSort,
    pub descending: bool,
    pub filter: String,
    editing: bool,
    cursor: usize,
    offset: usize,
    page_height: usize,
    /// Rows the daemon has (matching the server-side filter, if any).
    total: u64,
    fetch: Option<Fetch>,
    generation: u64,
    loaded_ms: Option<u64>,
    has_loaded: bool,
    error: Option<String>,
    detail: Option<MinerDetail>,
    detail_in_flight: Option<String>,
    detail_ms: Option<u64>,
    /// Narrow terminals: the detail pane replaces the table while shown.
    show_detail: bool,
}

impl Miners {
    pub fn hints(&self) -> &'static str {
        if self.editing {
            "type to filter  Enter keep  Esc clear"
        } else {
            "s/S sort  / filter  Enter detail  d (de)activate  K key"
        }
    }

    pub fn typing(&self) -> bool {
        self.editing
    }

    pub fn loaded(&self) -> bool {
        self.has_loaded
    }

    /// Rows in display order (for tests and the detail pane).
    pub fn visible_ids(&self) -> impl Iterator<Item = &str> {
        self.view
            .iter()
            .map(|&i| self.rows[i as usize].miner_id.as_str())
    }

    pub fn view_len(&self) -> usize {
        self.view.len()
    }

    pub fn current(&self) -> Option<&MinerRow> {
        self.view.get(self.cursor).map(|&i| &self.rows[i as usize])
    }

    fn detail_visible(&self, sh: &Shared) -> bool {
        sh.width >= WIDE || self.show_detail
    }

    /// The query sent to the daemon: id order while everything fits
    /// locally (stable paging), the admin's sort and filter beyond.
    fn query(&self) -> ListMiners {
        if (self.total as usize) > MAX_LOCAL_ROWS {
            ListMiners {
                sort: self.sort,
                descending: self.descending,
                filter: (!self.filter.is_empty()).then(|| self.filter.clone()),
                offset: 0,
                limit: Some(PAGE),
            }
        } else {
            ListMiners {
                limit: Some(PAGE),
                ..ListMiners::default()
            }
        }
    }

    pub fn refresh(&mut self, sh: &Shared, force: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        let due = self
            .loaded_ms
            .is_none_or(|at| sh.clock_ms.saturating_sub(at) >= REFRESH_MS);
        // A fetch older than the interval is abandoned (its answer was lost
        // with a connection): starting over is always safe.
        if force || due {
            self.generation += 1;
            self.loaded_ms = Some(sh.clock_ms);
            let query = self.query();
            self.fetch = Some(Fetch {
                generation: self.generation,
                query: query.clone(),
                rows: Vec::new(),
                seen: HashSet::new(),
            });
            actions.push(Action::Send(
                Purpose::MinersPage {
                    generation: self.generation,
                },
                Request::ListMiners(query),
            ));
        }
        let detail_due = self
            .detail_ms
            .is_none_or(|at| sh.clock_ms.saturating_sub(at) >= DETAIL_REFRESH_MS);
        if self.detail_visible(sh) && (force || detail_due) {
            self.detail_ms = Some(sh.clock_ms);
            actions.extend(self.request_detail(true));
        }
        actions
    }

    /// After deactivating or issuing a key: reload the row and the detail.
    pub fn reload_after_change(&mut self, sh: &Shared) -> Vec<Action> {
        self.refresh(sh, true)
    }

    pub fn on_page(&mut self, generation: u64, outcome: Outcome) -> Vec<Action> {
        let Some(fetch) = self.fetch.as_mut().filter(|f| f.generation == generation) else {
            return Vec::new();
        };
        let page = match outcome {
            Outcome::Ok(Response::Miners(page)) => page,
            Outcome::Ok(_) => {
                self.fetch = None;
                self.error = Some("unexpected answer to list_miners".into());
                return Vec::new();
            }
            Outcome::Err(e) => {
                self.fetch = None;
                self.error = Some(explain(&e, "list_miners"));
                return Vec::new();
            }
        };
        let got = page.rows.len();
        for row in page.rows {
            if fetch.rows.len() >= MAX_LOCAL_ROWS {
                break;
            }
            if fetch.seen.insert(row.miner_id.clone()) {
                fetch.rows.push(row);
            }
        }
        let next_offset = page.offset as u64 + got as u64;
        if got > 0 && next_offset < page.total && fetch.rows.len() < MAX_LOCAL_ROWS {
            let mut query = fetch.query.clone();
            query.offset = next_offset.min(u32::MAX as u64) as u32;
            return vec![Action::Send(
                Purpose::MinersPage { generation },
                Request::ListMiners(query),
            )];
        }
        let Some(fetch) = self.fetch.take() else {
            return Vec::new();
        };
        self.total = page.total;
        self.set_rows(fetch.rows);
        self.error = None;
        self.request_detail(false)
    }

    /// Replaces the rows (keeping the cursor on the same miner).
    pub fn set_rows(&mut self, rows: Vec<MinerRow>) {
        self.lower = rows.iter().map(|r| r.miner_id.to_lowercase()).collect();
        self.rows = rows;
        self.has_loaded = true;
        if (self.total as usize) < self.rows.len() {
            self.total = self.rows.len() as u64;
        }
        self.rebuild();
    }

    fn rebuild(&mut self) {
        let keep = self.current().map(|r| r.miner_id.clone());
        self.view = filter_sort(
            &self.rows,
            &self.lower,
            &self.filter,
            self.sort,
            self.descending,
        );
        self.cursor = keep
            .and_then(|id| {
                self.view
                    .iter()
                    .position(|&i| self.rows[i as usize].miner_id == id)
            })
            .unwrap_or(self.cursor)
            .min(self.view.len().saturating_sub(1));
    }

    /// Asks for the detail of the miner under the cursor, one request at a
    /// time: moving fast over many rows sends one request, not one per row.
    fn request_detail(&mut self, again: bool) -> Vec<Action> {
        let Some(id) = self.current().map(|r| r.miner_id.clone()) else {
            return Vec::new();
        };
        if self.detail_in_flight.is_some() {
            return Vec::new();
        }
        if !again && self.detail.as_ref().is_some_and(|d| d.row.miner_id == id) {
            return Vec::new();
        }
        self.detail_in_flight = Some(id.clone());
        vec![Action::Send(
            Purpose::MinerDetail {
                miner_id: id.clone(),
            },
            Request::MinerDetail { miner_id: id },
        )]
    }

    pub fn on_detail(&mut self, miner_id: String, outcome: Outcome) -> Vec<Action> {
        self.detail_in_flight = None;
        match outcome {
            Outcome::Ok(Response::MinerDetail(detail)) => self.detail = Some(*detail),
            Outcome::Ok(_) => {}
            Outcome::Err(e) => {
                return vec![Action::Flash(
                    Level::Error,
                    format!("miner {miner_id}: {}", explain(&e, "miner_detail")),
                )];
            }
        }
        // The cursor moved on while this was loading: follow it.
        self.request_detail(false)
    }

    pub fn handle_key(&mut self, key: KeyEvent, sh: &Shared) -> Vec<Action> {
        if self.editing {
            return self.filter_key(key, sh);
        }
        if let Some(m) = movement(&key) {
            self.cursor = apply_move(self.cursor, self.view.len(), self.page_height, m);
            return self.after_move(sh);
        }
        if !plain(&key) {
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('/') => {
                self.editing = true;
                Vec::new()
            }
            KeyCode::Char('s') | KeyCode::Right | KeyCode::Char('l') => self.cycle_sort(1, sh),
            KeyCode::Left | KeyCode::Char('h') => self.cycle_sort(-1, sh),
            KeyCode::Char('S') => {
                self.descending = !self.descending;
                self.after_sort(sh)
            }
            KeyCode::Enter => {
                self.show_detail = !self.show_detail;
                self.after_move(sh)
            }
            KeyCode::Esc if self.show_detail => {
                self.show_detail = false;
                Vec::new()
            }
            KeyCode::Char('d') => self.confirm_active(sh),
            KeyCode::Char('K') => self.confirm_key(sh),
            _ => Vec::new(),
        }
    }

    fn after_move(&mut self, sh: &Shared) -> Vec<Action> {
        if self.detail_visible(sh) {
            self.request_detail(false)
        } else {
            Vec::new()
        }
    }

    fn cycle_sort(&mut self, delta: isize, sh: &Shared) -> Vec<Action> {
        let i = SORTS.iter().position(|s| *s == self.sort).unwrap_or(0) as isize;
        self.sort = SORTS[(i + delta).rem_euclid(SORTS.len() as isize) as usize];
        // Most columns are most useful biggest first.
        self.descending = !matches!(self.sort, MinerSort::Id | MinerSort::Tier);
        self.after_sort(sh)
    }

    fn after_sort(&mut self, sh: &Shared) -> Vec<Action> {
        self.rebuild();
        let mut actions = self.after_move(sh);
        if (self.total as usize) > MAX_LOCAL_ROWS {
            actions.extend(self.refresh(sh, true));
        }
        actions
    }

    fn filter_key(&mut self, key: KeyEvent, sh: &Shared) -> Vec<Action> {
        match key.code {
            KeyCode::Enter => {
                self.editing = false;
                let mut actions = self.after_move(sh);
                if (self.total as usize) > MAX_LOCAL_ROWS {
                    actions.extend(self.refresh(sh, true));
                }
                actions
            }
            KeyCode::Esc => {
                self.editing = false;
                self.filter.clear();
                self.rebuild();
                Vec::new()
            }
            KeyCode::Backspace => {
                self.filter.pop();
                self.rebuild();
                Vec::new()
            }
            KeyCode::Char(c) if plain(&key) && !c.is_control() => {
                if self.filter.len() < 128 {
                    self.filter.push(c);
                    self.cursor = 0;
                    self.rebuild();
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn confirm_active(&self, sh: &Shared) -> Vec<Action> {
        let Some(row) = self.current() else {
            return Vec::new();
        };
        let activate = !row.active;
        let verb = if activate { "reactivate" } else { "deactivate" };
        let mut body = miner_summary(row, sh);
        body.push(Line::from(""));
        body.push(if activate {
            Line::from("Its reports and blocks are accepted again.")
        } else {
            theme::warn_line(
                "Its reports and blocks are refused until it is reactivated. Its balance stays.",
            )
        });
        body.push(Line::from(format!(
            "Recorded in the audit log as {}.",
            sh.actor()
        )));
        vec![Action::OpenModal(Modal::Confirm(Confirm::new(
            format!("{} miner {}?", capitalize(verb), row.miner_id),
            body,
            format!("{verb} {}", row.miner_id),
            vec![Action::Send(
                Purpose::SetMinerActive {
                    miner_id: row.miner_id.clone(),
                    active: activate,
                },
                Request::SetMinerActive {
                    miner_id: row.miner_id.clone(),
                    active: activate,
                },
            )],
        )))]
    }

    fn confirm_key(&self, sh: &Shared) -> Vec<Action> {
        let Some(row) = self.current() else {
            return Vec::new();
        };
        let mut body = miner_summary(row, sh);
        body.push(Line::from(""));
        let (title, yes) = if row.has_key {
            let version = self
                .detail
                .as_ref()
                .filter(|d| d.row.miner_id == row.miner_id)
                .and_then(|d| d.key_version)
                .map_or_else(String::new, |v| format!(" (version {v})"));
            body.push(theme::warn_line(format!(
                "The current key{version} stops working at once; the miner needs the new one."
            )));
            (
                format!("Rotate the key of {}?", row.miner_id),
                "rotate the key",
            )
        } else {
            body.push(Line::from(
                "A personal signing key is created for this miner.",
            ));
            (format!("Issue a key for {}?", row.miner_id), "issue a key")
        };
        body.push(Line::from(
            "The new key is shown once, here, and never again.",
        ));
        body.push(Line::from(format!(
            "Recorded in the audit log as {}.",
            sh.actor()
        )));
        vec![Action::OpenModal(Modal::Confirm(Confirm::new(
            title,
            body,
            yes,
            vec![Action::Send(
                Purpose::IssueKey {
                    miner_id: row.miner_id.clone(),
                },
                Request::IssueKey {
                    miner_id: row.miner_id.clone(),
                },
            )],
        )))]
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        if !self.has_loaded {
            let mut lines = waiting(sh, "miners");
            if let Some(e) = &self.error {
                lines = vec![theme::error_line(e.clone())];
            }
            placeholder(frame, area, lines);
            return;
        }
        if area.width >= WIDE {
            let [table, detail] =
                Layout::horizontal([Constraint::Percentage(56), Constraint::Percentage(44)])
                    .areas(area);
            self.draw_table(frame, table, sh);
            self.draw_detail(frame, detail, sh);
        } else if self.show_detail {
            self.draw_detail(frame, area, sh);
        } else {
            self.draw_table(frame, area, sh);
        }
    }

    fn draw_table(&mut self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let mut title = format!(" Miners {} ", format::grouped(self.total as i64));
        if !self.filter.is_empty() || self.editing {
            title = format!(
                " Miners {} of {} match ",
                format::grouped(self.view.len() as i64),
                format::grouped(self.rows.len() as i64)
            );
        }
        let order = if self.descending {
            "desc ▼"
        } else {
            "asc ▲"
        };
        let block = Block::bordered().title(title).title(
            ratatui::text::Line::from(format!(" sort: {} {order} ", sort_name(self.sort)))
                .right_aligned(),
        );
        let inner = block.inner(area);
        frame.render_widget(block, area);

        let mut table_area = inner;
        let mut notes: Vec<Line<'static>> = Vec::new();
        if self.editing || !self.filter.is_empty() {
            let cursor = if self.editing { "▏" } else { "" };
            notes.push(Line::from(vec![
                Span::styled("filter /", theme::strong()),
                Span::raw(format!("{}{cursor}", self.filter)),
            ]));
        }
        if (self.total as usize) > self.rows.len() {
            notes.push(theme::warn_line(format!(
                "showing the first {} of {} (filter to narrow)",
                format::grouped(self.rows.len() as i64),
                format::grouped(self.total as i64)
            )));
        }
        if let Some(e) = &self.error {
            notes.push(theme::error_line(format!("last reload failed: {e}")));
        }
        if !notes.is_empty() {
            let [n, t] =
                Layout::vertical([Constraint::Length(notes.len() as u16), Constraint::Min(0)])
                    .areas(inner);
            frame.render_widget(Paragraph::new(notes), n);
            table_area = t;
        }

        let body_rows = table_area.height.saturating_sub(1) as usize;
        self.page_height = body_rows.max(1);
        self.offset = scroll_to(self.cursor, self.offset, body_rows);
        let end = (self.offset + body_rows).min(self.view.len());
        let now = sh.now_s;
        // Fixed columns (51) + spacing (6) + cursor mark (1); the id gets the rest.
        let id_width = (table_area.width as usize).saturating_sub(58).clamp(12, 40);
        let right = |text: String| Cell::from(Line::from(text).right_aligned());
        let rows: Vec<Row> = self.view[self.offset.min(end)..end]
            .iter()
            .map(|&i| {
                let r = &self.rows[i as usize];
                Row::new(vec![
                    Cell::from(format::clip(&r.miner_id, id_width)),
                    Cell::from(format::clip(r.tier.as_deref().unwrap_or("-"), 10)),
                    right(format::hashrate(r.hashrate_10m)),
                    right(r.workers.to_string()),
                    right(format::btc_msat(r.balance_msat)),
                    right(format::age_opt(now, r.last_share_at)),
                    Cell::from(if r.active {
                        Span::raw("active")
                    } else {
                        Span::styled("INACTIVE", theme::red())
                    }),
                ])
            })
            .collect();
        let mark = |s: MinerSort, name: &str| {
            if s == self.sort {
                format!("{name}{}", if self.descending { "▼" } else { "▲" })
            } else {
                name.to_string()
            }
        };
        let header = Row::new(vec![
            Cell::from(mark(MinerSort::Id, "MINER")),
            Cell::from(mark(MinerSort::Tier, "TIER")),
            right(mark(MinerSort::Hashrate, "HASH 10M")),
            right(mark(MinerSort::Workers, "WRK")),
            right(mark(MinerSort::Balance, "BALANCE")),
            right(mark(MinerSort::LastShare, "LAST")),
            Cell::from(mark(MinerSort::Status, "STATUS")),
        ])
        .style(theme::header());
        let widths = [
            Constraint::Length(id_width as u16),
            Constraint::Length(10),
            Constraint::Length(11),
            Constraint::Length(4),
            Constraint::Length(13),
            Constraint::Length(5),
            Constraint::Length(8),
        ];
        let table = Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .row_highlight_style(theme::cursor())
            .highlight_symbol(">");
        let mut state = TableState::default();
        if !self.view.is_empty() {
            state.select(Some(self.cursor - self.offset));
        }
        if self.view.is_empty() {
            frame.render_widget(
                Table::new(Vec::<Row>::new(), widths)
                    .header(Row::new(vec!["MINER"]).style(theme::header())),
                table_area,
            );
            let msg = if self.filter.is_empty() {
                "no miners yet".to_string()
            } else {
                format!("no miner id contains {:?}", self.filter)
            };
            let rest = Rect {
                y: table_area.y + 1,
                height: table_area.height.saturating_sub(1),
                ..table_area
            };
            placeholder(frame, rest, vec![Line::from(msg)]);
            return;
        }
        frame.render_stateful_widget(table, table_area, &mut state);
    }

    fn draw_detail(&self, frame: &mut Frame, area: Rect, sh: &Shared) {
        let current = self.current();
        let title = current.map_or_else(|| " Detail ".to_string(), |r| format!(" {} ", r.miner_id));
        let block = Block::bordered().title(title);
        let Some(row) = current else {
            frame.render_widget(Paragraph::new("no miner selected").block(block), area);
            return;
        };
        let detail = self
            .detail
            .as_ref()
            .filter(|d| d.row.miner_id == row.miner_id);
        let Some(d) = detail else {
            frame.render_widget(Paragraph::new("loading…").block(block), area);
            return;
        };
        let lines = detail_lines(d, sh, (area.width as usize).saturating_sub(2));
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn miner_summary(row: &MinerRow, sh: &Shared) -> Vec<Line<'static>> {
    vec![
        Line::from(format!("Miner:    {}", row.miner_id)),
        Line::from(format!("Tier:     {}", row.tier.as_deref().unwrap_or("-"))),
        Line::from(format!(
            "Status:   {}",
            if row.active { "[ACTIVE]" } else { "[INACTIVE]" }
        )),
        Line::from(format!(
            "Balance:  {} BTC",
            format::btc_msat_exact(row.balance_msat)
        )),
        Line::from(format!(
            "Hashrate: {} (10 min) · last share {}",
            format::hashrate(row.hashrate_10m),
            format::age_opt(sh.now_s, row.last_share_at)
        )),
    ]
}

fn label(text: &str) -> Span<'static> {
    Span::styled(format!("{text:<9}"), theme::dim())
}

/// The detail pane's text: everything about one miner.
pub fn detail_lines(d: &MinerDetail, sh: &Shared, width: usize) -> Vec<Line<'static>> {
    let now = sh.now_s;
    let r = &d.row;
    let mut lines = vec![
        Line::from(vec![
            label("status"),
            if r.active {
                Span::raw("[ACTIVE]")
            } else {
                Span::styled("[INACTIVE]", theme::red())
            },
            Span::raw(format!(
                "  tier {}  key {}",
                r.tier.as_deref().unwrap_or("-"),
                d.key_version
                    .map_or_else(|| "none".to_string(), |v| format!("v{v}"))
            )),
        ]),
        Line::from(vec![
            label("created"),
            Span::raw(format!("{} UTC", format::utc(d.created_at))),
        ]),
        Line::from(vec![
            label("balance"),
            Span::raw(format!("{} BTC", format::btc_msat_exact(r.balance_msat))),
        ]),
        Line::from(vec![
            label("hashrate"),
            Span::raw(format!(
                "1m {}{} · 10m {}{} · 1h {}{}",
                format::hashrate(d.hashrate.h1m),
                d.hashrate.partial_suffix(0),
                format::hashrate(d.hashrate.h10m),
                d.hashrate.partial_suffix(1),
                format::hashrate(d.hashrate.h1h),
                d.hashrate.partial_suffix(2)
            )),
        ]),
    ];
    match &d.payout_address {
        Some(address) => {
            lines.push(Line::from(vec![
                label("payout"),
                Span::raw(address.clone()),
            ]));
            if let Some(at) = d.payout_address_payable_at.filter(|at| *at > now) {
                lines.push(Line::from(vec![
                    label(""),
                    Span::styled(
                        format!("! new address: payable from {} UTC", format::utc(at)),
                        theme::yellow(),
                    ),
                ]));
            }
        }
        None => lines.push(Line::from(vec![
            label("payout"),
            Span::raw("no address set"),
        ])),
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!("Workers ({})", d.workers.len()),
        theme::strong(),
    )));
    // Hashrate cells are 11 wide: "24.99 TH/s" plus "~" when partial.
    let name_w = width.saturating_sub(52).clamp(8, 30);
    lines.push(Line::from(Span::styled(
        format!(
            "{:<name_w$} {:>11} {:>11} {:>11} {:>6} {:>5}",
            "NAME", "1 MIN", "10 MIN", "1 HOUR", "REJ 1H", "LAST"
        ),
        theme::header(),
    )));
    // A figure averaged over less than its window is marked `~`.
    let cell = |rate: f64, partial: bool| {
        format!(
            "{}{}",
            format::hashrate(rate),
            if partial { "~" } else { " " }
        )
    };
    for w in d.workers.iter().take(20) {
        let h = &w.hashrate;
        // Rejected share of the last hour's shares; "—" where the pool
        // does not report rejects.
        let total = w.accepted_1h.saturating_add(w.rejected_1h);
        let rejected = if !w.rejects_reported {
            "—".to_string()
        } else if total == 0 {
            "0%".to_string()
        } else {
            format!("{:.1}%", w.rejected_1h as f64 * 100.0 / total as f64)
        };
        lines.push(Line::from(format!(
            "{:<name_w$} {:>11} {:>11} {:>11} {:>6} {:>5}",
            format::clip(&w.worker_name, name_w),
            cell(h.h1m, h.h1m_partial),
            cell(h.h10m, h.h10m_partial),
            cell(h.h1h, h.h1h_partial),
            rejected,
            format::age_opt(now, w.last_share_at)
        )));
    }
    if d.workers.iter().any(|w| w.hashrate.h1h_partial) {
        lines.push(Line::from(Span::styled(
            "~ partial: averaged over a history shorter than the window",
            theme::dim(),
        )));
    }
    if d.workers.len() > 20 {
        lines.push(Line::from(format!("… and {} more", d.workers.len() - 20)));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("Recent credits", theme::strong())));
    let worker_w = width.saturating_sub(38).clamp(6, 24);
    lines.push(Line::from(Span::styled(
        format!(
            "{:>5} {:<worker_w$} {:>10} {:>15}",
            "AGE", "WORKER", "WORK", "AMOUNT BTC"
        ),
        theme::header(),
    )));
    if d.recent_credits.is_empty() {
        lines.push(Line::from("none"));
    }
    for c in d.recent_credits.iter().take(20) {
        lines.push(Line::from(format!(
            "{:>5} {:<worker_w$} {:>10} {:>15}",
            format::age(now, c.at),
            format::clip(&c.worker_name, worker_w),
            format::clip(&c.work, 10),
            format::btc_msat_exact(c.amount_msat)
        )));
    }
    if !d.withdrawals.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled("Withdrawals", theme::strong())));
        for w in d.withdrawals.iter().take(10) {
            lines.push(Line::from(vec![
                Span::raw(format!("#{:<6} {} ", w.id, format::btc(w.amount_sat))),
                Span::styled(format::state_label(&w.state), theme::state(&w.state)),
                Span::raw(format!(" {}", format::age(now, w.created_at))),
            ]));
        }
    }
    lines
}

impl Miners {
    /// The connection changed: answers to requests in flight will not come.
    pub fn reset_in_flight(&mut self) {
        self.fetch = None;
        self.detail_in_flight = None;
    }

    /// Test and benchmark hook: show this detail as if loaded.
    pub fn set_detail(&mut self, detail: MinerDetail) {
        self.detail = Some(detail);
    }

    /// Test hook: is a key-typing filter open?
    pub fn editing(&self) -> bool {
        self.editing
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, hashrate: f64, balance: i64) -> MinerRow {
        MinerRow {
            miner_id: id.into(),
            hashrate_10m: hashrate,
            balance_msat: balance,
            active: true,
            ..MinerRow::default()
        }
    }

    #[test]
    fn ties_break_by_id_both_ways() {
        let rows = vec![row("b", 1.0, 5), row("a", 1.0, 5), row("c", 2.0, 1)];
        let lower: Vec<String> = rows.iter().map(|r| r.miner_id.clone()).collect();
        let asc = filter_sort(&rows, &lower, "", MinerSort::Hashrate, false);
        assert_eq!(asc, vec![1, 0, 2]);
        let desc = filter_sort(&rows, &lower, "", MinerSort::Hashrate, true);
        assert_eq!(desc, vec![2, 0, 1]);
    }
}
