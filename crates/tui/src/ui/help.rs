//! `?`: every key, from the one table in [`crate::keys`].

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

use crate::keys::{KEYMAP, KeyGroup};
use crate::ui::theme;

fn group_lines(groups: &[KeyGroup], key_width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for g in groups {
        lines.push(Line::from(Span::styled(g.title, theme::header())));
        for (keys, what) in g.keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<key_width$} "), theme::strong()),
                Span::raw(*what),
            ]));
        }
        lines.push(Line::from(""));
    }
    lines
}

pub fn draw(frame: &mut Frame, area: Rect, scroll: u16) {
    // Everything below the tab line: no half-covered screen behind it.
    let popup = Rect {
        y: area.y + 1.min(area.height),
        height: area.height.saturating_sub(1),
        ..area
    };
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .title(Span::styled(" Keys ", theme::strong()))
        .title_bottom(Line::from(" j/k scroll · Esc or ? closes ").right_aligned());
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let key_width = 16;
    if inner.width >= 150 {
        // Two columns: everything fits on a large terminal.
        let split = 4;
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(inner);
        frame.render_widget(
            Paragraph::new(group_lines(&KEYMAP[..split], key_width)).scroll((scroll, 0)),
            left,
        );
        frame.render_widget(
            Paragraph::new(group_lines(&KEYMAP[split..], key_width)).scroll((scroll, 0)),
            right,
        );
    } else {
        let lines = group_lines(KEYMAP, key_width);
        let max = lines.len().saturating_sub(inner.height as usize) as u16;
        frame.render_widget(Paragraph::new(lines).scroll((scroll.min(max), 0)), inner);
    }
}
