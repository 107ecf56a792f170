//! `GET /api/stream`: live events as Server-Sent Events.
//!
//! Events: `pool` (the snapshot, each second), `credit`, `withdrawal`, and
//! for a stream following one miner (`?miner=ID`) that miner's `credit`,
//! `withdrawal` and `balance`, plus a `hashrate` event derived at each pool
//! tick. Control events: `reset` (the `Last-Event-ID` is older than the
//! replay window, or one this daemon never gave: refetch, then carry on
//! live) and `lagged` (this client
//! fell behind the bus and missed `missed` events: refetch).
//!
//! **Ids** are bus sequence numbers; an envelope of N credits uses N
//! consecutive ids (`seq + i`). Events derived from another one (`balance`,
//! `hashrate`) and control events carry no `id:`, so the browser's last id
//! always names a bus event and a resume (`Last-Event-ID` header, or
//! `?last_event_id=` for the first connection of a client that cannot set
//! headers) continues exactly after it: [`Cursor`] drops anything at or
//! below the last id handed out, which removes the overlap between the
//! replay and the live receiver.
//!
//! **Memory**: a stream is one [`Feed`] (a broadcast receiver, a cursor and
//! at most one pending event) inside axum's `Sse` body; nothing is buffered
//! per stream. The pool snapshot and credit bursts are rendered to JSON
//! once per envelope and shared ([`Renders`]), not once per subscriber.
//!
//! **Per client**: at most `http.max_sse_streams_per_ip` live streams per
//! client address (IPv6 per /64, through trusted proxies), past it 429
//! `too_many_streams`; and a stream lives at most `http.sse_max_lifetime_s`,
//! then the server ends it with a `retry:` hint, and the browser's
//! `EventSource` reconnects with `Last-Event-ID` and resumes exactly after
//! the last event it saw.
//!
//! **Slow clients** never slow anyone: the bus is a broadcast ring, a
//! stream that falls behind it gets `lagged` and continues from the oldest
//! retained event. **Shutdown** ends every stream, so graceful shutdown
//! does not wait on them.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pooldesk_proto::amount::{format_btc, format_msat_btc};
use pooldesk_proto::model::{CreditEvent, Snapshot};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::client_ip::ClientIp;
use super::error::ApiError;
use super::miner::hashrate_json;
use crate::app::App;
use crate::events::{BusEvent, Doorbell, Envelope, Replay};

/// Keep-alive comment interval: below the idle timeouts of common proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Longest `?miner=` accepted.
const MAX_MINER_ID_LEN: usize = 200;
/// Envelopes whose rendered JSON is kept for other streams.
const RENDER_SLOTS: usize = 16;

pub fn routes() -> Router<App> {
    let shared = Arc::new(Shared::default());
    Router::new().route(
        "/api/stream",
        get(
            move |State(app): State<App>,
                  ClientIp(client): ClientIp,
                  query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
                  headers: HeaderMap| {
                let shared = shared.clone();
                async move { stream(app, shared, client, query, headers) }
            },
        ),
    )
}

#[derive(Deserialize, Default)]
pub struct StreamQuery {
    miner: Option<String>,
    last_event_id: Option<String>,
}

/// State shared by all streams of one router.
#[derive(Default)]
struct Shared {
    open: AtomicUsize,
    /// Live streams per client address (IPv6 per /64).
    per_client: Mutex<HashMap<IpAddr, usize>>,
    renders: Renders,
}

/// Counts an open stream (the limits and the `sse_clients` gauge) for as
/// long as the stream exists, however it ends.
struct StreamGuard {
    shared: Arc<Shared>,
    app: App,
    client: IpAddr,
}

/// Why a stream could not be opened.
enum Full {
    Global,
    Client,
}

impl StreamGuard {
    fn try_new(app: &App, shared: &Arc<Shared>, client: IpAddr) -> Result<StreamGuard, Full> {
        let client = super::ratelimit::key(client);
        {
            let mut per_client = shared.per_client.lock().expect("stream counts");
            let count = per_client.entry(client).or_insert(0);
            if *count >= app.config.http.max_sse_streams_per_ip {
                return Err(Full::Client);
            }
            *count += 1;
        }
        let release_client = || {
            let mut per_client = shared.per_client.lock().expect("stream counts");
            if let Some(count) = per_client.get_mut(&client) {
                *count -= 1;
                if *count == 0 {
                    per_client.remove(&client);
                }
            }
        };
        let max = app.config.http.max_sse_streams;
        let before = shared.open.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            release_client();
            return Err(Full::Global);
        }
        app.metrics.sse_clients.inc();
        Ok(StreamGuard {
            shared: shared.clone(),
            app: app.clone(),
            client,
        })
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        self.app.metrics.sse_clients.dec();
        let mut per_client = self.shared.per_client.lock().expect("stream counts");
        if let Some(count) = per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// Where a resuming client wants to continue from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// A fresh stream: live events only.
    Fresh,
    /// Everything after this id.
    After(u64),
    /// An id we never handed out (not a number): treated like a too-old one.
    Invalid,
}

/// The `Last-Event-ID` header wins over `?last_event_id=`: a browser
/// reconnecting an `EventSource` reuses the original URL (with its stale
/// query) and sends the fresh id in the header.
pub fn resume_point(header: Option<&str>, query: Option<&str>) -> Resume {
    let raw = header
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .or_else(|| query.map(str::trim).filter(|v| !v.is_empty()));
    match raw {
        None => Resume::Fresh,
        Some(text) => text.parse::<u64>().map_or(Resume::Invalid, Resume::After),
    }
}

/// The highest sequence number handed out (or deliberately skipped) so
/// far: anything at or below it is a duplicate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor(pub u64);

impl Cursor {
    /// True (and advances) when `seq` is new.
    pub fn admit(&mut self, seq: u64) -> bool {
        if seq <= self.0 {
            return false;
        }
        self.0 = seq;
        true
    }
}

fn stream(
    app: App,
    shared: Arc<Shared>,
    client: IpAddr,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::unprocessable("invalid", format!("bad query string: {}", e.body_text()))
    })?;
    let miner: Option<Box<str>> = match query.miner.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) if id.len() > MAX_MINER_ID_LEN => {
            return Err(ApiError::unprocessable("invalid", "miner id is too long"));
        }
        Some(id) => Some(id.into()),
    };
    let guard = match StreamGuard::try_new(&app, &shared, client) {
        Ok(guard) => guard,
        Err(full) => {
            let (state, refusal) = match full {
                Full::Global => (
                    "sse_streams",
                    ApiError::unavailable(
                        "too many live streams are open (http.max_sse_streams); retry later",
                    ),
                ),
                Full::Client => (
                    "sse_streams_per_ip",
                    ApiError::new(
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        "too_many_streams",
                        format!(
                            "this address has {} live streams open (http.max_sse_streams_per_ip); close one first",
                            app.config.http.max_sse_streams_per_ip
                        ),
                    )
                    .with("limit", app.config.http.max_sse_streams_per_ip),
                ),
            };
            app.metrics
                .http_refused
                .get_or_create(&crate::metrics::StateLabel { state })
                .inc();
            return Err(refusal.retry_after(5));
        }
    };
    let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let resume = resume_point(header, query.last_event_id.as_deref());
    let (rx, replay, cursor, pending) = match resume {
        Resume::Fresh => (app.bus.subscribe(), Vec::new(), Cursor(0), None),
        Resume::Invalid => (
            app.bus.subscribe(),
            Vec::new(),
            Cursor(0),
            Some(reset_event("bad_id")),
        ),
        Resume::After(after) => match app.bus.subscribe_from(after) {
            (rx, Replay::Events(events)) => (rx, events, Cursor(after), None),
            (rx, Replay::TooOld) => (rx, Vec::new(), Cursor(0), Some(reset_event("too_old"))),
            // An id this daemon never gave: resuming after it would drop
            // every event up to it, a silent stream.
            (rx, Replay::Unknown) => (rx, Vec::new(), Cursor(0), Some(reset_event("unknown_id"))),
        },
    };
    // Of the pool snapshots in the replay only the newest matters.
    let last_replayed_pool = replay
        .iter()
        .rev()
        .find(|e| matches!(e.event, BusEvent::Pool(_)))
        .map(|e| e.seq)
        .unwrap_or(0);
    let doorbell = miner.as_deref().map(|m| app.bus.doorbell(m));
    let lifetime = Duration::from_secs(app.config.http.sse_max_lifetime_s);
    let feed = Feed {
        expires: Box::pin(tokio::time::sleep(lifetime)),
        ending: false,
        doorbell,
        shutdown: Box::pin(app.shutdown.clone().cancelled_owned()),
        app,
        shared: guard.shared.clone(),
        miner,
        rx,
        replay: replay.into(),
        last_replayed_pool,
        current: None,
        item: 0,
        cursor,
        pending,
        _guard: guard,
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<Event, Infallible>(event), feed))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Tell nginx-style proxies not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One subscriber's position in the event bus.
struct Feed {
    app: App,
    /// Created once: a fresh `cancelled()` per wait would register and
    /// unregister with the token's lock at every event, for every stream.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The end of this stream's lifetime (`http.sse_max_lifetime_s`).
    expires: Pin<Box<tokio::time::Sleep>>,
    /// The lifetime ended and the goodbye was sent: end the stream.
    ending: bool,
    /// Following one miner: woken only when something may concern it.
    doorbell: Option<Doorbell>,
    shared: Arc<Shared>,
    miner: Option<Box<str>>,
    rx: broadcast::Receiver<Arc<Envelope>>,
    replay: VecDeque<Arc<Envelope>>,
    last_replayed_pool: u64,
    /// The envelope being emitted (credits come several to an envelope).
    current: Option<Arc<Envelope>>,
    item: usize,
    cursor: Cursor,
    /// An event derived from the one just sent (balance, hashrate), or a
    /// control event to send first.
    pending: Option<Event>,
    _guard: StreamGuard,
}

impl Feed {
    async fn next(&mut self) -> Option<Event> {
        if self.ending {
            return None;
        }
        loop {
            if let Some(event) = self.pending.take() {
                return Some(event);
            }
            if let Some(envelope) = self.current.clone() {
                match self.step(&envelope).await {
                    Some(event) => return Some(event),
                    None => {
                        self.current = None;
                        continue;
                    }
                }
            }
            let envelope = match self.replay.pop_front() {
                Some(envelope) => {
                    if matches!(envelope.event, BusEvent::Pool(_))
                        && envelope.seq < self.last_replayed_pool
                    {
                        continue;
                    }
                    envelope
                }
                None => {
                    // Release the replay's allocation once it is done.
                    if self.replay.capacity() > 0 {
                        self.replay = VecDeque::new();
                    }
                    let received = match &self.doorbell {
                        None => tokio::select! {
                            biased;
                            _ = self.shutdown.as_mut() => return None,
                            _ = self.expires.as_mut() => return Some(self.goodbye()),
                            received = self.rx.recv() => received,
                        },
                        Some(doorbell) => loop {
                            let armed = doorbell.armed();
                            match self.rx.try_recv() {
                                Ok(envelope) => break Ok(envelope),
                                Err(TryRecvError::Lagged(missed)) => {
                                    break Err(RecvError::Lagged(missed));
                                }
                                Err(TryRecvError::Closed) => break Err(RecvError::Closed),
                                Err(TryRecvError::Empty) => {}
                            }
                            tokio::select! {
                                biased;
                                _ = self.shutdown.as_mut() => return None,
                                _ = self.expires.as_mut() => return Some(self.goodbye()),
                                _ = armed.rung() => {}
                            }
                        },
                    };
                    match received {
                        Ok(envelope) => envelope,
                        Err(RecvError::Lagged(missed)) => {
                            self.app.metrics.events_lagged.inc_by(missed);
                            return Some(lagged_event(missed));
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            };
            if envelope.last_seq() <= self.cursor.0 {
                continue;
            }
            self.current = Some(envelope);
            self.item = 0;
        }
    }

    /// The last thing a stream sends when its lifetime is over: a `retry:`
    /// hint so the browser reconnects soon (with `Last-Event-ID`, which
    /// names the last event delivered: nothing is lost).
    fn goodbye(&mut self) -> Event {
        self.ending = true;
        Event::default().retry(Duration::from_secs(1)).comment(
            "stream lifetime reached (http.sse_max_lifetime_s); reconnect with Last-Event-ID",
        )
    }

    /// The next event of `envelope` for this stream, or `None` when the
    /// envelope has nothing more for it.
    async fn step(&mut self, envelope: &Arc<Envelope>) -> Option<Event> {
        match &envelope.event {
            BusEvent::Pool(snapshot) => {
                if self.item > 0 || !self.cursor.admit(envelope.seq) {
                    return None;
                }
                self.item = 1;
                let json = self.shared.renders.pool(envelope, snapshot);
                if let Some(miner) = &self.miner {
                    let json = self.shared.renders.hashrate(envelope.seq, &self.app, miner);
                    self.pending = Some(Event::default().event("hashrate").data(&*json));
                }
                Some(
                    Event::default()
                        .event("pool")
                        .id(envelope.seq.to_string())
                        .data(&*json),
                )
            }
            BusEvent::Credits(credits) => {
                while self.item < credits.len() {
                    let index = self.item;
                    self.item += 1;
                    let seq = envelope.seq + index as u64;
                    if !self.cursor.admit(seq) {
                        continue;
                    }
                    let credit = &credits[index];
                    let event = Event::default().event("credit").id(seq.to_string());
                    match &self.miner {
                        None => {
                            let rendered = self.shared.renders.credits(envelope, credits);
                            return Some(event.data(&rendered[index]));
                        }
                        Some(miner) if **miner == *credit.miner_id => {
                            self.pending = Some(balance_event(miner, credit.balance_msat));
                            return Some(event.data(credit_json(credit).to_string()));
                        }
                        Some(_) => continue,
                    }
                }
                None
            }
            BusEvent::Withdrawal(row) => {
                if self.item > 0 || !self.cursor.admit(envelope.seq) {
                    return None;
                }
                self.item = 1;
                if let Some(miner) = &self.miner {
                    if **miner != *row.miner_id {
                        return None;
                    }
                    let miner_id = miner.to_string();
                    let account = crate::ledger::miner_account(&miner_id);
                    // The withdrawal moved money out of the balance; the
                    // event does not carry it, so read it (withdrawals are
                    // rare, credits carry their balance).
                    if let Ok(balance) = self
                        .app
                        .store
                        .read(move |conn| crate::ledger::balance(conn, &account))
                        .await
                    {
                        self.pending = Some(balance_event(&miner_id, balance));
                    }
                }
                Some(
                    Event::default()
                        .event("withdrawal")
                        .id(envelope.seq.to_string())
                        .data(crate::views::withdrawal_json(row).to_string()),
                )
            }
            BusEvent::Block(row) => {
                if self.item > 0 || !self.cursor.admit(envelope.seq) {
                    return None;
                }
                self.item = 1;
                Some(
                    Event::default()
                        .event("block")
                        .id(envelope.seq.to_string())
                        .data(serde_json::to_string(row).unwrap_or_default()),
                )
            }
            // Not part of the public stream; skipping them still moves the
            // cursor, so resume ids stay exact.
            BusEvent::Batch(_) | BusEvent::Audit(_) | BusEvent::Faucet { .. } => {
                self.cursor.admit(envelope.last_seq());
                None
            }
        }
    }
}

fn reset_event(reason: &str) -> Event {
    Event::default().event("reset").data(
        json!({
            "reason": reason,
            "message": "events after that id are no longer kept: refetch your state; live events follow",
        })
        .to_string(),
    )
}

fn lagged_event(missed: u64) -> Event {
    Event::default().event("lagged").data(
        json!({
            "missed": missed,
            "message": "this stream fell behind and skipped events: refetch your state; live events follow",
        })
        .to_string(),
    )
}

fn balance_event(miner_id: &str, balance_msat: i64) -> Event {
    Event::default().event("balance").data(
        json!({
            "miner_id": miner_id,
            "balance_msat": balance_msat,
            "balance_sat": balance_msat.div_euclid(1000),
            "balance_btc": format_btc(balance_msat.div_euclid(1000)),
        })
        .to_string(),
    )
}

/// The `hashrate` data of one miner, as of now.
fn hashrate_json_text(app: &App, miner_id: &str) -> String {
    let now = crate::clock::now_s();
    let h = app.tracker.miner(miner_id, now);
    let workers: Vec<Value> = h.workers.iter().map(super::miner::worker_json).collect();
    json!({
        "miner_id": miner_id,
        "at": now,
        "hashrate": hashrate_json(&h.hashrate),
        "workers": workers,
        "last_share_at": h.last_share_at,
    })
    .to_string()
}

pub fn credit_json(c: &CreditEvent) -> Value {
    json!({
        "miner_id": c.miner_id,
        "worker_name": c.worker_name,
        "event_id": c.event_id,
        "amount_msat": c.amount_msat,
        "amount_btc": format_msat_btc(c.amount_msat),
        "balance_msat": c.balance_msat,
        "balance_sat": c.balance_msat.div_euclid(1000),
        "balance_btc": format_btc(c.balance_msat.div_euclid(1000)),
        "at": c.at,
    })
}

/// The `pool` event: the snapshot with money as integer msat and exact BTC
/// strings, and `at_ms`, the server time the event was published (clients
/// and the benchmark measure delivery delay against it).
pub fn pool_json(snapshot: &Snapshot, at_ms: i64) -> Value {
    let l = &snapshot.ledger;
    let money = |msat: i64| json!({"msat": msat, "btc": format_msat_btc(msat)});
    json!({
        "at": snapshot.at,
        "at_ms": at_ms,
        "server": snapshot.server,
        "simulated": snapshot.simulated,
        "network": snapshot.network,
        "payout_mode": snapshot.payout_mode,
        "hashrate": hashrate_json(&snapshot.hashrate),
        "shares_per_s": snapshot.shares_per_s,
        "miners_total": snapshot.miners_total,
        "miners_active": snapshot.miners_active,
        "workers_active": snapshot.workers_active,
        "ledger": {
            "owed_msat": l.owed_msat, "owed_btc": format_msat_btc(l.owed_msat),
            "held_msat": l.held_msat, "held_btc": format_msat_btc(l.held_msat),
            "paid_msat": l.paid_msat, "paid_btc": format_msat_btc(l.paid_msat),
            "fees_msat": l.fees_msat, "fees_btc": format_msat_btc(l.fees_msat),
            "credited_msat": l.credited_msat, "credited_btc": format_msat_btc(l.credited_msat),
            "faucet_held_msat": l.faucet_held_msat, "faucet_held_btc": format_msat_btc(l.faucet_held_msat),
            "faucet_sent_msat": l.faucet_sent_msat, "faucet_sent_btc": format_msat_btc(l.faucet_sent_msat),
            "transfers": l.transfers,
        },
        "withdrawals": snapshot.withdrawals,
        "wallet": {
            "backend": snapshot.wallet.backend,
            "connected": snapshot.wallet.connected,
            "payouts_paused": snapshot.wallet.payouts_paused,
        },
        "warnings": snapshot.warnings,
        "totals": {
            "owed": money(l.owed_msat),
            "credited": money(l.credited_msat),
        },
    })
}

/// Per pool tick (its sequence number), each followed miner's rendered
/// `hashrate` data.
type HashrateRenders = (u64, HashMap<Box<str>, Arc<str>>);

/// JSON rendered once per envelope and shared by every stream (10,000
/// subscribers must not serialize the same snapshot 10,000 times).
#[derive(Default)]
struct Renders {
    slots: Mutex<VecDeque<(u64, Rendered)>>,
    /// Per pool tick (its sequence number), each followed miner's
    /// `hashrate` data: thousands of dashboards follow few miners.
    hashrates: Mutex<HashrateRenders>,
}

#[derive(Clone)]
enum Rendered {
    Pool(Arc<str>),
    Credits(Arc<[String]>),
}

impl Renders {
    fn get_or(&self, seq: u64, render: impl FnOnce() -> Rendered) -> Rendered {
        // Rendering happens under the lock on purpose: when thousands of
        // streams wake for the same envelope, one renders and the others
        // wait microseconds for its result instead of all rendering.
        let mut slots = self.slots.lock().expect("render cache lock");
        if let Some((_, rendered)) = slots.iter().find(|(s, _)| *s == seq) {
            return rendered.clone();
        }
        let rendered = render();
        if slots.len() == RENDER_SLOTS {
            slots.pop_front();
        }
        slots.push_back((seq, rendered.clone()));
        rendered
    }

    fn hashrate(&self, tick: u64, app: &App, miner_id: &str) -> Arc<str> {
        let mut cache = self.hashrates.lock().expect("hashrate cache lock");
        if cache.0 != tick {
            // A new tick: last tick's figures are stale. (A lagging stream
            // on an older tick just renders its own copy.)
            if tick < cache.0 {
                return hashrate_json_text(app, miner_id).into();
            }
            cache.0 = tick;
            cache.1.clear();
        }
        if let Some(json) = cache.1.get(miner_id) {
            return json.clone();
        }
        let json: Arc<str> = hashrate_json_text(app, miner_id).into();
        cache.1.insert(miner_id.into(), json.clone());
        json
    }

    fn pool(&self, envelope: &Envelope, snapshot: &Snapshot) -> Arc<str> {
        match self.get_or(envelope.seq, || {
            Rendered::Pool(pool_json(snapshot, envelope.at_ms).to_string().into())
        }) {
            Rendered::Pool(json) => json,
            Rendered::Credits(_) => unreachable!("one sequence number, one envelope"),
        }
    }

    fn credits(&self, envelope: &Envelope, credits: &[CreditEvent]) -> Arc<[String]> {
        match self.get_or(envelope.seq, || {
            Rendered::Credits(credits.iter().map(|c| credit_json(c).to_string()).collect())
        }) {
            Rendered::Credits(items) => items,
            Rendered::Pool(_) => unreachable!("one sequence number, one envelope"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_over_the_query() {
        assert_eq!(resume_point(None, None), Resume::Fresh);
        assert_eq!(resume_point(Some("42"), Some("7")), Resume::After(42));
        assert_eq!(resume_point(None, Some("7")), Resume::After(7));
        assert_eq!(resume_point(Some(" "), Some("7")), Resume::After(7));
        assert_eq!(resume_point(Some("abc"), None), Resume::Invalid);
        assert_eq!(resume_point(Some("-1"), None), Resume::Invalid);
    }

    fn credit(n: i64) -> CreditEvent {
        CreditEvent {
            miner_id: "m".into(),
            worker_name: "w".into(),
            event_id: format!("e{n}"),
            amount_msat: n,
            balance_msat: n,
            at: 0,
        }
    }

    /// What a stream emits for an envelope: credit ids past the cursor
    /// (other kinds only move it).
    fn emit(envelope: &Envelope, cursor: &mut Cursor, seen: &mut Vec<u64>) {
        for i in 0..envelope.event.width() {
            let seq = envelope.seq + i;
            if cursor.admit(seq) && matches!(envelope.event, BusEvent::Credits(_)) {
                seen.push(seq);
            }
        }
    }

    #[test]
    fn resume_mid_envelope_then_live_has_no_gaps_or_duplicates() {
        let bus = crate::events::EventBus::new(64, 64, 1);
        bus.publish(BusEvent::Credits(vec![credit(1), credit(2), credit(3)])); // ids 1-3
        bus.publish(BusEvent::Faucet {
            id: 1,
            state: "queued".into(),
        }); // id 4
        bus.publish(BusEvent::Credits(vec![credit(5), credit(6)])); // ids 5-6
        // The client's last id was 2, in the middle of the first envelope.
        let (mut rx, replay) = bus.subscribe_from(2);
        bus.publish(BusEvent::Credits(vec![credit(7)])); // id 7, live only
        let Replay::Events(replay) = replay else {
            panic!("2 is retained");
        };
        let mut cursor = Cursor(2);
        let mut seen = Vec::new();
        for envelope in &replay {
            emit(envelope, &mut cursor, &mut seen);
        }
        // Seeing the replay again (an overlap) changes nothing.
        for envelope in &replay {
            emit(envelope, &mut cursor, &mut seen);
        }
        while let Ok(envelope) = rx.try_recv() {
            emit(&envelope, &mut cursor, &mut seen);
        }
        assert_eq!(seen, vec![3, 5, 6, 7]);
    }

    #[test]
    fn the_cursor_drops_duplicates_and_old_ids() {
        let mut cursor = Cursor(10);
        assert!(!cursor.admit(9));
        assert!(!cursor.admit(10));
        assert!(cursor.admit(11));
        assert!(!cursor.admit(11));
        assert!(cursor.admit(15));
        assert_eq!(cursor, Cursor(15));
    }
}
