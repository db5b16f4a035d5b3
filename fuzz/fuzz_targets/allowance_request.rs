//! An allowance request (`POST /v1/allowance`): strict decoding; the signature check and
//! the request id are total on whatever decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::protocol::allowance::AllowanceRequest;
use microcash_fuzz::decodes_canonically;

fuzz_target!(|data: &[u8]| {
    if let Some(request) = decodes_canonically::<AllowanceRequest>(data) {
        let _ = (request.authentic(), request.request_id());
    }
});
