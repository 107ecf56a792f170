//! Control socket framing and frame decoding on arbitrary bytes (a local
//! client can send anything; the TUI reads whatever the daemon sends).
//!
//! Properties: never panics; `split_frame` returns a newline-free frame
//! below the size bound and consumes exactly it and its newline; a frame
//! that decodes re-encodes to one line that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pooldesk_proto::control::{
    MAX_FRAME_BYTES, decode_client_frame, decode_server_frame, encode_frame, salvage_request_id,
    split_frame,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Walk the buffer frame by frame, as the server's reader does.
    while let Ok(Some((frame, used))) = split_frame(rest) {
        assert!(frame.len() < MAX_FRAME_BYTES);
        assert!(!frame.contains(&b'\n'));
        assert_eq!(used, frame.len() + 1);
        assert_eq!(rest[frame.len()], b'\n');
        check(frame);
        rest = &rest[used..];
    }
    check(rest);
});

fn check(line: &[u8]) {
    if let Ok(frame) = decode_client_frame(line) {
        let bytes = encode_frame(&frame).expect("a decoded frame encodes");
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1);
        let again = decode_client_frame(&bytes[..bytes.len() - 1]).expect("re-decodes");
        assert_eq!(again, frame);
    } else {
        let _ = salvage_request_id(line);
    }
    if let Ok(frame) = decode_server_frame(line)
        && let Ok(bytes) = encode_frame(&frame)
    {
        let again = decode_server_frame(&bytes[..bytes.len() - 1]).expect("re-decodes");
        assert_eq!(again, frame);
    }
}
