//! The main loop (gitui style): one `select!` over terminal input, messages
//! from the socket task and a tick. Nothing in it waits on the daemon:
//! requests are handed to the socket task with `try_send`, and a full queue
//! is answered locally as `busy`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use pooldesk_proto::control::{ErrorBody, Outcome, RequestFrame, ResponseFrame};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::app::App;
use crate::client::ClientEvent;

/// Redraw and housekeeping period (countdowns, refresh intervals).
pub const TICK: Duration = Duration::from_millis(250);
/// Socket messages handled per wake-up before drawing again, so a burst of
/// events cannot starve the keyboard.
const DRAIN: usize = 256;

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs until the admin quits, the input ends, or `shutdown` resolves.
pub async fn run<B, I, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut input: I,
    requests: mpsc::Sender<RequestFrame>,
    mut events: mpsc::Receiver<ClientEvent>,
    shutdown: S,
) -> std::io::Result<()>
where
    B: Backend,
    I: Stream<Item = std::io::Result<crossterm::event::Event>> + Unpin,
    S: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let clock = |start: Instant| start.elapsed().as_millis() as u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    app.tick(unix_now(), clock(start));
    loop {
        flush(app, &requests);
        terminal.draw(|frame| crate::ui::draw(frame, app))?;
        if app.quit {
            return Ok(());
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            input = input.next() => match input {
                Some(Ok(crossterm::event::Event::Key(key))) => app.handle_key(key),
                Some(Ok(_)) => {} // resize and the rest: just redraw
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            message = events.recv() => {
                let Some(message) = message else { return Ok(()) };
                app.handle_client(message);
                for _ in 0..DRAIN {
                    match events.try_recv() {
                        Ok(message) => app.handle_client(message),
                        Err(_) => break,
                    }
                }
            }
            _ = tick.tick() => app.tick(unix_now(), clock(start)),
        }
    }
}

/// Hands queued requests to the socket task without waiting.
fn flush(app: &mut App, requests: &mpsc::Sender<RequestFrame>) {
    for request in app.take_outbox() {
        let id = request.id;
        if let Err(e) = requests.try_send(request) {
            let (code, message) = match e {
                mpsc::error::TrySendError::Full(_) => {
                    ("busy", "too many requests queued; nothing was sent")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    ("not_connected", "the socket task stopped; nothing was sent")
                }
            };
            app.handle_client(ClientEvent::Response(ResponseFrame {
                id,
                outcome: Outcome::Err(ErrorBody::new(code, message)),
            }));
        }
    }
}
