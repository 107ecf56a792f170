//! Render benchmark: frame time of the heaviest screens at 200×60 into a
//! `TestBackend`, with 10,000 miners. Prints median / p99 / max per case and
//! the ratio to a baseline measured in the same run (an empty frame), so a
//! slower machine does not read as a regression. It asserts nothing: the
//! budget is 16 ms per frame (60 Hz); the numbers are for people.
//!
//! `cargo bench -p pooldesk-tui --bench render` (add `-- --quick` for fewer
//! frames).

use std::hint::black_box;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pooldesk_tui::app::App;
use pooldesk_tui::fixtures::{FakeDaemon, connected_app, pump};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::widgets::Clear;

const WIDTH: u16 = 200;
const HEIGHT: u16 = 60;
const BUDGET: Duration = Duration::from_millis(16);

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

struct Stats {
    median: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        max: samples[samples.len() - 1],
    }
}

/// Times `frames` iterations of `step` (a key, say) followed by a draw.
fn measure(
    app: &mut App,
    terminal: &mut Terminal<TestBackend>,
    frames: usize,
    mut step: impl FnMut(&mut App, usize),
) -> Stats {
    // Warm up: first draws allocate buffers.
    for i in 0..10 {
        step(app, i);
        terminal
            .draw(|f| pooldesk_tui::ui::draw(f, app))
            .expect("draw");
    }
    let mut samples = Vec::with_capacity(frames);
    for i in 0..frames {
        let start = Instant::now();
        step(app, i);
        terminal
            .draw(|f| pooldesk_tui::ui::draw(f, app))
            .expect("draw");
        samples.push(start.elapsed());
        black_box(terminal.backend());
    }
    stats(samples)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let frames = if quick { 100 } else { 1000 };
    let mut daemon = FakeDaemon::new(10_000);
    let mut app = connected_app(&mut daemon, WIDTH);
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("terminal");

    // Baseline: a frame that only clears the screen.
    let baseline = {
        let mut samples = Vec::with_capacity(frames);
        for _ in 0..frames {
            let start = Instant::now();
            terminal
                .draw(|f| f.render_widget(Clear, f.area()))
                .expect("draw");
            samples.push(start.elapsed());
        }
        stats(samples)
    };

    let mut results: Vec<(&str, Stats)> = Vec::new();
    results.push((
        "overview (60-point chart)",
        measure(&mut app, &mut terminal, frames, |_, _| {}),
    ));

    app.handle_key(key('2'));
    pump(&mut app, &mut daemon);
    assert_eq!(app.miners.view_len(), 10_000, "10,000 miners loaded");
    results.push((
        "miners 10k: scroll one row (j)",
        measure(&mut app, &mut terminal, frames, |app, _| {
            app.handle_key(key('j'))
        }),
    ));
    results.push((
        "miners 10k: re-sort (S) + frame",
        measure(&mut app, &mut terminal, frames / 4, |app, _| {
            app.handle_key(KeyEvent::new(KeyCode::Char('S'), KeyModifiers::SHIFT))
        }),
    ));
    app.handle_key(key('/'));
    results.push((
        "miners 10k: filter keystroke + frame",
        measure(&mut app, &mut terminal, frames / 4, |app, i| {
            if i % 2 == 0 {
                app.handle_key(key('7'));
            } else {
                app.handle_key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
            }
        }),
    ));
    app.handle_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    app.handle_key(key('3'));
    pump(&mut app, &mut daemon);
    results.push((
        "withdrawals + batches",
        measure(&mut app, &mut terminal, frames, |app, i| {
            app.handle_key(key(if i % 2 == 0 { 'j' } else { 'k' }))
        }),
    ));
    app.handle_key(key('4'));
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    pump(&mut app, &mut daemon);
    results.push((
        "PSBT review",
        measure(&mut app, &mut terminal, frames, |_, _| {}),
    ));

    println!(
        "pooldesk render benchmark: {WIDTH}x{HEIGHT} TestBackend, {frames} frames per case ({} for re-sort/filter), budget {} per frame",
        frames / 4,
        ms(BUDGET)
    );
    println!(
        "{:<38} {:>11} {:>11} {:>11} {:>12}",
        "case", "median", "p99", "max", "median/base"
    );
    println!(
        "{:<38} {:>11} {:>11} {:>11} {:>12}",
        "baseline (empty frame)",
        ms(baseline.median),
        ms(baseline.p99),
        ms(baseline.max),
        "1.0x"
    );
    for (name, s) in &results {
        let ratio = s.median.as_secs_f64() / baseline.median.as_secs_f64().max(1e-9);
        let verdict = if s.p99 <= BUDGET { "" } else { "  OVER BUDGET" };
        println!(
            "{name:<38} {:>11} {:>11} {:>11} {:>11.1}x{verdict}",
            ms(s.median),
            ms(s.p99),
            ms(s.max),
            ratio
        );
    }
}
