//! The event bus: committed facts fanned out to SSE streams and control
//! socket subscribers.
//!
//! Events are published only after the commit that made them true. Each
//! gets a daemon-wide sequence number (an envelope carrying N credits uses
//! N consecutive numbers), so a client can resume after `seq` without gaps
//! or duplicates from the replay ring, as long as it is within the ring.
//!
//! Fan-out is a tokio broadcast channel: a subscriber that falls behind by
//! more than the channel's capacity is told how many events it missed
//! (`Lagged`) and continues from the oldest retained one; it never slows
//! the publisher or other subscribers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use pooldesk_proto::model::{AuditEntry, BatchRow, CreditEvent, Snapshot, WithdrawalRow};
use tokio::sync::{Notify, broadcast};

/// Most credits carried by one envelope (the bus splits staged credits
/// beyond it).
pub const MAX_CREDITS_PER_ENVELOPE: usize = 512;

#[derive(Debug, Clone)]
pub enum BusEvent {
    /// Pool snapshot, every second.
    Pool(Arc<Snapshot>),
    /// Credits committed together, in commit order.
    Credits(Vec<CreditEvent>),
    Withdrawal(WithdrawalRow),
    Batch(BatchRow),
    Audit(AuditEntry),
    /// A block was found or changed (src/blocks).
    Block(pooldesk_proto::model::BlockRow),
    /// Faucet request changed state: `(request id, state)`.
    Faucet {
        id: i64,
        state: String,
    },
}

impl BusEvent {
    /// How many sequence numbers the event uses.
    pub fn width(&self) -> u64 {
        match self {
            BusEvent::Credits(credits) => credits.len().max(1) as u64,
            _ => 1,
        }
    }
}

#[derive(Debug)]
pub struct Envelope {
    /// Sequence number of the first (or only) item.
    pub seq: u64,
    pub at_ms: i64,
    pub event: BusEvent,
}

impl Envelope {
    /// The last sequence number this envelope uses.
    pub fn last_seq(&self) -> u64 {
        self.seq + self.event.width() - 1
    }
}

struct Ring {
    next_seq: u64,
    retained: VecDeque<Arc<Envelope>>,
    capacity: usize,
    /// Committed credits waiting to go out as one envelope (see
    /// [`EventBus::stage_credits`]).
    staged_credits: Vec<CreditEvent>,
    /// Envelopes published since every follower was last woken.
    since_all_rung: usize,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Envelope>>,
    ring: Arc<Mutex<Ring>>,
    doorbells: Arc<Doorbells>,
}

/// Wake-ups for subscribers that follow one miner. They read the same
/// broadcast (so order, ids and resume are unchanged) but only when
/// something concerns them: an envelope naming their miner, a pool tick, or
/// every [`ALL_RING_EVERY`] envelopes so they never fall behind the channel.
/// Without this, 10,000 followers were each woken for every envelope.
/// Per followed miner: its doorbell and how many streams follow it.
type FollowedMiners = HashMap<Box<str>, (Arc<Notify>, usize)>;

#[derive(Default)]
struct Doorbells {
    by_miner: Mutex<FollowedMiners>,
    all: Arc<Notify>,
}

/// Envelopes after which every follower drains its receiver, whatever they
/// carry (well below the channel capacity, so nobody lags).
const ALL_RING_EVERY: usize = 256;

/// A follower's doorbell; leaves the bus's table with the last follower of
/// its miner.
pub struct Doorbell {
    miner: Box<str>,
    mine: Arc<Notify>,
    all: Arc<Notify>,
    doorbells: Arc<Doorbells>,
}

impl Doorbell {
    /// Waits until something may concern this follower. Call
    /// [`Doorbell::armed`] *before* looking at the receiver, then await it:
    /// a publish in between is not missed.
    pub fn armed(&self) -> Armed<'_> {
        let mut mine = Box::pin(self.mine.notified());
        let mut all = Box::pin(self.all.notified());
        mine.as_mut().enable();
        all.as_mut().enable();
        Armed { mine, all }
    }
}

/// An armed doorbell (see [`Doorbell::armed`]).
pub struct Armed<'a> {
    mine: std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>,
    all: std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>,
}

impl Armed<'_> {
    pub async fn rung(mut self) {
        tokio::select! {
            _ = self.mine.as_mut() => {}
            _ = self.all.as_mut() => {}
        }
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        let mut map = self.doorbells.by_miner.lock().expect("doorbells lock");
        if let Some((_, followers)) = map.get_mut(&self.miner) {
            *followers -= 1;
            if *followers == 0 {
                map.remove(&self.miner);
            }
        }
    }
}

impl Doorbells {
    fn ring_for(&self, envelope: &Envelope, everyone: bool) {
        let ring_miner = |map: &FollowedMiners, miner: &str| {
            if let Some((notify, _)) = map.get(miner) {
                notify.notify_waiters();
            }
        };
        if everyone {
            self.all.notify_waiters();
            return;
        }
        match &envelope.event {
            BusEvent::Pool(_) => {}
            BusEvent::Credits(credits) => {
                let map = self.by_miner.lock().expect("doorbells lock");
                if map.is_empty() {
                    return;
                }
                for credit in credits {
                    ring_miner(&map, &credit.miner_id);
                }
            }
            BusEvent::Withdrawal(row) => ring_miner(
                &self.by_miner.lock().expect("doorbells lock"),
                &row.miner_id,
            ),
            // Followers do not show these; they skip them on their next read.
            BusEvent::Batch(_)
            | BusEvent::Audit(_)
            | BusEvent::Block(_)
            | BusEvent::Faucet { .. } => {}
        }
    }
}

/// What a resuming client gets.
pub enum Replay {
    /// Every retained envelope after the given seq (maybe none).
    Events(Vec<Arc<Envelope>>),
    /// The requested seq is older than the ring: the client missed events
    /// and must refetch its state.
    TooOld,
    /// The requested seq was never assigned (a clock stepped back since it
    /// was, or a made-up id): resuming after it would drop every event up
    /// to it, so the client starts over too.
    Unknown,
}

impl EventBus {
    /// `channel_capacity`: how far a live subscriber may fall behind before
    /// it lags; `replay_capacity`: envelopes kept for resume.
    pub fn new(channel_capacity: usize, replay_capacity: usize, first_seq: u64) -> EventBus {
        let (tx, _) = broadcast::channel(channel_capacity.max(16));
        EventBus {
            tx,
            ring: Arc::new(Mutex::new(Ring {
                next_seq: first_seq.max(1),
                retained: VecDeque::with_capacity(replay_capacity),
                capacity: replay_capacity.max(1),
                staged_credits: Vec::new(),
                since_all_rung: 0,
            })),
            doorbells: Arc::new(Doorbells::default()),
        }
    }

    /// Publishes a committed fact. Sequence assignment and send happen under
    /// one lock so the broadcast order is the sequence order. Staged credits
    /// go out first: they were committed before this fact.
    pub fn publish(&self, event: BusEvent) -> u64 {
        let mut ring = self.ring.lock().expect("bus lock");
        self.flush_locked(&mut ring);
        self.publish_locked(&mut ring, event)
    }

    /// Holds committed credits back to publish them together with later
    /// ones ([`EventBus::flush_credits`]): every envelope wakes every
    /// unfiltered subscriber and every follower of a miner it names, so
    /// fewer, fuller envelopes keep fan-out cheap. Order is
    /// kept: any other publish sends the staged credits first.
    pub fn stage_credits(&self, credits: impl IntoIterator<Item = CreditEvent>) {
        self.ring
            .lock()
            .expect("bus lock")
            .staged_credits
            .extend(credits);
    }

    /// Publishes the staged credits, if any.
    pub fn flush_credits(&self) {
        let mut ring = self.ring.lock().expect("bus lock");
        self.flush_locked(&mut ring);
    }

    fn flush_locked(&self, ring: &mut Ring) {
        while !ring.staged_credits.is_empty() {
            let take = ring.staged_credits.len().min(MAX_CREDITS_PER_ENVELOPE);
            let credits: Vec<CreditEvent> = ring.staged_credits.drain(..take).collect();
            self.publish_locked(ring, BusEvent::Credits(credits));
        }
    }

    fn publish_locked(&self, ring: &mut Ring, event: BusEvent) -> u64 {
        let seq = ring.next_seq;
        ring.next_seq += event.width();
        let envelope = Arc::new(Envelope {
            seq,
            at_ms: crate::clock::now_ms(),
            event,
        });
        if ring.retained.len() == ring.capacity {
            ring.retained.pop_front();
        }
        ring.retained.push_back(envelope.clone());
        // No receivers is fine: nobody is listening right now.
        let _ = self.tx.send(envelope.clone());
        // After the send, so a woken follower finds the envelope.
        ring.since_all_rung += 1;
        let everyone =
            ring.since_all_rung >= ALL_RING_EVERY || matches!(envelope.event, BusEvent::Pool(_));
        if everyone {
            ring.since_all_rung = 0;
        }
        self.doorbells.ring_for(&envelope, everyone);
        seq
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.tx.subscribe()
    }

    /// The doorbell of a subscriber that follows `miner` (see [`Doorbells`]).
    pub fn doorbell(&self, miner: &str) -> Doorbell {
        let mut map = self.doorbells.by_miner.lock().expect("doorbells lock");
        let entry = map
            .entry(miner.into())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Doorbell {
            miner: miner.into(),
            mine: entry.0.clone(),
            all: self.doorbells.all.clone(),
            doorbells: self.doorbells.clone(),
        }
    }

    /// Subscribes and returns the retained envelopes after `after_seq`, as
    /// one atomic step: nothing published in between is missed or doubled
    /// (the caller skips live envelopes with `seq <= ` the replay's last).
    pub fn subscribe_from(&self, after_seq: u64) -> (broadcast::Receiver<Arc<Envelope>>, Replay) {
        let ring = self.ring.lock().expect("bus lock");
        let rx = self.tx.subscribe();
        let oldest = ring
            .retained
            .front()
            .map(|e| e.seq)
            .unwrap_or(ring.next_seq);
        // First: `after_seq + 1` below cannot overflow past this.
        if after_seq >= ring.next_seq {
            return (rx, Replay::Unknown);
        }
        if after_seq + 1 < oldest && after_seq + 1 < ring.next_seq {
            return (rx, Replay::TooOld);
        }
        let events = ring
            .retained
            .iter()
            .filter(|e| e.last_seq() > after_seq)
            .cloned()
            .collect();
        (rx, Replay::Events(events))
    }

    /// The next sequence number to be assigned.
    pub fn next_seq(&self) -> u64 {
        self.ring.lock().expect("bus lock").next_seq
    }

    pub fn receiver_count(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn credits_use_consecutive_sequence_numbers() {
        let bus = EventBus::new(16, 16, 1);
        assert_eq!(
            bus.publish(BusEvent::Credits(vec![credit(1), credit(2), credit(3)])),
            1
        );
        assert_eq!(
            bus.publish(BusEvent::Faucet {
                id: 1,
                state: "paid".into()
            }),
            4
        );
        assert_eq!(bus.next_seq(), 5);
    }

    #[test]
    fn staged_credits_go_out_before_any_later_event_in_one_envelope() {
        let bus = EventBus::new(16, 16, 1);
        let mut rx = bus.subscribe();
        bus.stage_credits([credit(1), credit(2)]);
        bus.stage_credits([credit(3)]);
        assert!(rx.try_recv().is_err(), "staged, not yet published");
        bus.publish(BusEvent::Faucet {
            id: 1,
            state: "paid".into(),
        });
        let first = rx.try_recv().expect("credits first");
        assert_eq!(first.seq, 1);
        match &first.event {
            BusEvent::Credits(c) => assert_eq!(c.len(), 3),
            other => panic!("expected credits, got {other:?}"),
        }
        let second = rx.try_recv().expect("then the faucet event");
        assert_eq!(second.seq, 4);
        bus.stage_credits([credit(4)]);
        bus.flush_credits();
        assert_eq!(rx.try_recv().expect("flushed").seq, 5);
        bus.flush_credits();
        assert!(rx.try_recv().is_err(), "nothing staged, nothing sent");
    }

    fn credit_for(miner: &str) -> CreditEvent {
        CreditEvent {
            miner_id: miner.into(),
            ..credit(1)
        }
    }

    /// True when the armed doorbell rings before a short timeout.
    async fn rings(armed: Armed<'_>) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), armed.rung())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_follower_is_woken_for_its_miner_and_pool_ticks_only() {
        let bus = EventBus::new(1024, 16, 1);
        let alice = bus.doorbell("alice");
        let bob = bus.doorbell("bob");

        let armed = alice.armed();
        bus.publish(BusEvent::Credits(vec![credit_for("bob")]));
        assert!(!rings(armed).await, "bob's credit does not wake alice");

        let armed = bob.armed();
        bus.publish(BusEvent::Credits(vec![
            credit_for("carol"),
            credit_for("bob"),
        ]));
        assert!(rings(armed).await, "a burst naming bob wakes bob");

        let armed = alice.armed();
        bus.publish(BusEvent::Pool(Arc::new(Snapshot::default())));
        assert!(rings(armed).await, "a pool tick wakes everyone");

        // However quiet the miner, the follower drains well before the
        // channel could lag.
        let armed = alice.armed();
        for i in 0..ALL_RING_EVERY {
            bus.publish(BusEvent::Faucet {
                id: i as i64,
                state: "queued".into(),
            });
        }
        assert!(rings(armed).await);
    }

    #[test]
    fn doorbells_leave_with_their_last_follower() {
        let bus = EventBus::new(16, 16, 1);
        let first = bus.doorbell("alice");
        let second = bus.doorbell("alice");
        drop(first);
        assert_eq!(bus.doorbells.by_miner.lock().unwrap().len(), 1);
        drop(second);
        assert!(bus.doorbells.by_miner.lock().unwrap().is_empty());
    }

    #[test]
    fn resume_returns_only_later_envelopes_and_detects_too_old() {
        let bus = EventBus::new(16, 3, 1);
        for i in 0..5 {
            bus.publish(BusEvent::Faucet {
                id: i,
                state: "queued".into(),
            });
        }
        // Ring keeps seq 3, 4, 5.
        match bus.subscribe_from(3).1 {
            Replay::Events(events) => {
                assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5])
            }
            _ => panic!("3 is retained"),
        }
        assert!(matches!(bus.subscribe_from(1).1, Replay::TooOld));
        match bus.subscribe_from(5).1 {
            Replay::Events(events) => assert!(events.is_empty()),
            _ => panic!("up to date"),
        }
        // 6 is the next seq, not yet assigned: never handed out.
        assert!(matches!(bus.subscribe_from(6).1, Replay::Unknown));
        assert!(matches!(bus.subscribe_from(u64::MAX).1, Replay::Unknown));
    }

    #[test]
    fn a_lagging_subscriber_is_told_and_does_not_block_the_publisher() {
        let bus = EventBus::new(16, 16, 1);
        let mut slow = bus.subscribe();
        for i in 0..100 {
            bus.publish(BusEvent::Faucet {
                id: i,
                state: "queued".into(),
            });
        }
        match slow.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(missed)) => assert!(missed > 0),
            other => panic!("expected lag, got {other:?}"),
        }
    }
}
