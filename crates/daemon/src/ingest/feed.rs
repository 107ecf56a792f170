//! Credit events for live streams. Handlers hand their committed credits to
//! a small aggregator task, which stages them on the bus and publishes
//! what gathered at most every [`CREDIT_PACE`]: every envelope wakes every
//! unfiltered SSE subscriber and the followers of the miners it names, so
//! 10,000 streams cost about the same whether reports arrive 200 or 20,000
//! a second, for at most that much added delay. Anything
//! else published meanwhile sends the staged credits first (order holds).

use std::time::Duration;

use pooldesk_proto::model::CreditEvent;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use crate::events::{EventBus, MAX_CREDITS_PER_ENVELOPE};

/// Shortest time between two credit envelopes.
pub const CREDIT_PACE: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct CreditFeed {
    tx: mpsc::Sender<CreditEvent>,
    dropped: Counter,
}

impl CreditFeed {
    /// Starts the aggregator. `capacity` bounds the queue; when it is full
    /// the event is dropped (the ledger is the truth, streams are a view)
    /// and counted.
    pub fn start(bus: EventBus, capacity: usize, dropped: Counter) -> CreditFeed {
        let (tx, mut rx) = mpsc::channel::<CreditEvent>(capacity);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_CREDITS_PER_ENVELOPE);
            let mut last_publish = tokio::time::Instant::now() - CREDIT_PACE;
            while rx.recv_many(&mut batch, MAX_CREDITS_PER_ENVELOPE).await > 0 {
                bus.stage_credits(batch.drain(..));
                // A lone credit after a quiet spell goes out at once; in a
                // burst, wait out the pace while more gather.
                tokio::time::sleep_until(last_publish + CREDIT_PACE).await;
                // The bus splits the flush into envelopes of at most
                // MAX_CREDITS_PER_ENVELOPE.
                while let Ok(credit) = rx.try_recv() {
                    batch.push(credit);
                }
                bus.stage_credits(batch.drain(..));
                bus.flush_credits();
                last_publish = tokio::time::Instant::now();
            }
            bus.flush_credits();
        });
        CreditFeed { tx, dropped }
    }

    pub fn push(&self, event: CreditEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.inc();
        }
    }
}
