//! The daemon's block report parser (`POST /v1/ingest/block` bodies, after
//! the signature check) on arbitrary bytes.
//!
//! Properties: never panics; an accepted report's `work_score` is the
//! literal text of a JSON number from the body, its `block_hash` and
//! `event_id` are non-empty and bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pooldeskd::ingest::{MAX_EVENT_ID_LEN, parse_block};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(block) = parse_block(data, &value) {
        assert!((1..=128).contains(&block.block_hash.len()));
        assert!((1..=MAX_EVENT_ID_LEN).contains(&block.event_id.len()));
        let literal: serde_json::Value =
            serde_json::from_str(&block.work_score).expect("work_score is JSON text");
        assert!(literal.is_number(), "{}", block.work_score);
    }
});
