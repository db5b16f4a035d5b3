//! Strict decoding of one payment link (the signed hand-over of a coin): whatever decodes re-encodes to exactly the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::protocol::coin::Link;
use microcash_fuzz::decodes_canonically;

fuzz_target!(|data: &[u8]| {
    let _ = decodes_canonically::<Link>(data);
});
