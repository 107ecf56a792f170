//! Credit events for live streams. Handlers hand their committed credits to
//! a small aggregator task, which publishes everything that queued up as
//! one bus envelope: under load the bus carries one envelope per burst
//! rather than one per report, so thousands of SSE subscribers are woken
//! per burst, not per report.

use pooldesk_proto::model::CreditEvent;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use crate::events::{BusEvent, EventBus, MAX_CREDITS_PER_ENVELOPE};

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
            while rx.recv_many(&mut batch, MAX_CREDITS_PER_ENVELOPE).await > 0 {
                bus.publish(BusEvent::Credits(std::mem::take(&mut batch)));
            }
        });
        CreditFeed { tx, dropped }
    }

    pub fn push(&self, event: CreditEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.inc();
        }
    }
}
