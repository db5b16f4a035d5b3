//! Strict decoding of a payment file, as `wallet receive` reads it from the payer: whatever decodes re-encodes to exactly the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::protocol::coin::Payment;
use microcash_fuzz::decodes_canonically;

fuzz_target!(|data: &[u8]| {
    let _ = decodes_canonically::<Payment>(data);
});
