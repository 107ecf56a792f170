//! The key map: one table that the help screen prints, and small predicates
//! the screens use, so what `?` shows and what the keys do cannot drift apart
//! (the tests in `tests/keys.rs` press the keys this table lists).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One group of keys in the help screen.
pub struct KeyGroup {
    pub title: &'static str,
    pub keys: &'static [(&'static str, &'static str)],
}

/// Every key, by where it applies.
pub const KEYMAP: &[KeyGroup] = &[
    KeyGroup {
        title: "Everywhere",
        keys: &[
            (
                "1-7",
                "tabs: Overview Miners Withdrawals PSBT Faucet Audit Blocks",
            ),
            ("Tab / Shift-Tab", "next / previous tab"),
            ("?", "this help (Esc closes)"),
            ("q / Ctrl-C", "quit (asks first if an action is pending)"),
            ("F5 / Ctrl-R", "reload this screen from the daemon"),
            ("↑↓ / j k", "move"),
            ("PgUp PgDn ^U ^D", "move a page"),
            ("g G / Home End", "first / last row"),
        ],
    },
    KeyGroup {
        title: "Dialogs",
        keys: &[
            ("y / Enter", "confirm"),
            ("n / Esc", "cancel (nothing is sent)"),
            ("j k", "scroll a long confirmation"),
            ("Ctrl-U", "clear a text field"),
        ],
    },
    KeyGroup {
        title: "Overview",
        keys: &[("P", "pause / resume automatic payouts (confirm)")],
    },
    KeyGroup {
        title: "Miners",
        keys: &[
            ("s / S", "next sort column / reverse order"),
            ("← → / h l", "previous / next sort column"),
            ("/", "filter by miner id (Enter keeps, Esc clears)"),
            ("Enter", "show / hide the detail pane"),
            ("d", "deactivate / reactivate the miner (confirm)"),
            ("K", "issue or rotate the miner's key (confirm; shown once)"),
        ],
    },
    KeyGroup {
        title: "Withdrawals: queue",
        keys: &[
            ("f / F", "next / previous state filter"),
            ("Space", "select / unselect (marked *)"),
            ("v", "select all requested rows shown"),
            ("c", "clear the selection"),
            (
                "a",
                "approve the selected rows, or the current one (confirm)",
            ),
            ("r", "reject the current row (type a reason)"),
            ("b", "send approved withdrawals as one batch (confirm)"),
            ("P", "pause / resume automatic payouts (confirm)"),
            ("← → / h l", "switch between queue and batches"),
        ],
    },
    KeyGroup {
        title: "Withdrawals: batches",
        keys: &[
            ("Enter", "open the batch's PSBT review (cold batches)"),
            ("m", "mark paid with a txid (needs attention; confirm)"),
            ("t", "retry: withdrawals go back to approved (confirm)"),
            ("x", "mark failed: funds return to miners (confirm)"),
        ],
    },
    KeyGroup {
        title: "PSBT review",
        keys: &[
            ("Enter", "review the selected batch's PSBT"),
            ("Esc / h", "back to the list of PSBTs"),
            ("e", "export the PSBT (base64) to a file"),
            ("i", "import a signed PSBT from a file"),
            ("f", "finalize and broadcast (confirm)"),
        ],
    },
    KeyGroup {
        title: "Audit",
        keys: &[
            ("n / PgDn / l", "older page"),
            ("p / PgUp / h", "newer page"),
            ("g", "newest page"),
        ],
    },
];

/// Number of lines the help text takes (titles, keys and a blank per group).
pub fn help_lines() -> usize {
    KEYMAP.iter().map(|g| g.keys.len() + 2).sum()
}

pub fn plain(key: &KeyEvent) -> bool {
    !key.modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
}

pub fn ctrl(key: &KeyEvent, c: char) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char(c)
}

pub fn is_char(key: &KeyEvent, c: char) -> bool {
    plain(key) && key.code == KeyCode::Char(c)
}

/// Cursor movement shared by every list: a signed delta, or jump to an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    By(isize),
    Page(isize),
    First,
    Last,
}

pub fn movement(key: &KeyEvent) -> Option<Move> {
    if ctrl(key, 'u') {
        return Some(Move::Page(-1));
    }
    if ctrl(key, 'd') {
        return Some(Move::Page(1));
    }
    if !plain(key) {
        return None;
    }
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => Some(Move::By(-1)),
        KeyCode::Down | KeyCode::Char('j') => Some(Move::By(1)),
        KeyCode::PageUp => Some(Move::Page(-1)),
        KeyCode::PageDown => Some(Move::Page(1)),
        KeyCode::Home | KeyCode::Char('g') => Some(Move::First),
        KeyCode::End | KeyCode::Char('G') => Some(Move::Last),
        _ => None,
    }
}

/// Applies a movement to a cursor over `len` rows with `page` rows visible.
pub fn apply_move(cursor: usize, len: usize, page: usize, m: Move) -> usize {
    if len == 0 {
        return 0;
    }
    let last = len - 1;
    let page = page.max(1) as isize;
    let target = match m {
        Move::By(d) => cursor as isize + d,
        Move::Page(d) => cursor as isize + d * page,
        Move::First => 0,
        Move::Last => last as isize,
    };
    target.clamp(0, last as isize) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_clamp() {
        assert_eq!(apply_move(0, 10, 5, Move::By(-1)), 0);
        assert_eq!(apply_move(9, 10, 5, Move::By(1)), 9);
        assert_eq!(apply_move(2, 10, 5, Move::Page(1)), 7);
        assert_eq!(apply_move(2, 10, 5, Move::Last), 9);
        assert_eq!(apply_move(0, 0, 5, Move::Last), 0);
    }
}
