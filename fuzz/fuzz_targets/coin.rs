//! Strict decoding of a coin (inside deposits, swaps and payment files): whatever decodes re-encodes to exactly the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::protocol::coin::Coin;
use microcash_fuzz::decodes_canonically;

fuzz_target!(|data: &[u8]| {
    let _ = decodes_canonically::<Coin>(data);
});
