//! A swap request (`POST /v1/swap`): strict decoding; the outputs digest its inputs must
//! name is total on whatever decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::protocol::deposit::SwapRequest;
use microcash_fuzz::decodes_canonically;

fuzz_target!(|data: &[u8]| {
    if let Some(request) = decodes_canonically::<SwapRequest>(data) {
        let _ = request.outputs_digest();
        for input in &request.inputs {
            let _ = input.digest();
        }
    }
});
