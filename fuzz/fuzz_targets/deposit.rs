//! A deposit as the clearing job and `POST /v1/deposits` see it, laid out like a kind-2
//! record's payload (u32 deposit length ‖ deposit ‖ decompression and serial hints): strict
//! decoding, and hints never change what decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::protocol::deposit::Deposit;
use microcash::protocol::encoding::Decode;
use microcash::protocol::hints::{issuer_signature_count, HintedDeposit};
use microcash_fuzz::decodes_canonically;

fuzz_target!(|data: &[u8]| {
    let Some(len) = data
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
    else {
        return;
    };
    let rest = &data[4..];
    let (deposit, hints) = rest.split_at(len.min(rest.len()));
    let plain = decodes_canonically::<Deposit>(deposit);
    if let Some(d) = &plain {
        // Digests are total on whatever decodes.
        let _ = (d.digest(), d.coin.serial());
    }
    if let Ok(hinted) = Deposit::from_bytes_with_hints(deposit, hints) {
        assert_eq!(Some(&hinted), plain.as_ref(), "hints changed what decodes");
    }
    // The engine's reading of a kind-2 payload: decompression hints then serial hints.
    // It decodes exactly what the plain bytes decode (hints that do not check out are
    // dropped), and keeps serial hints only at one per issuer signature.
    match HintedDeposit::decode(deposit, hints) {
        Ok(h) => {
            assert_eq!(
                Some(&h.deposit),
                plain.as_ref(),
                "hints changed what decodes"
            );
            if let Some(s) = &h.serial_hints {
                let n = issuer_signature_count(&h.deposit);
                assert!(s.get(n - 1).is_some() && s.get(n).is_none());
            }
        }
        Err(_) => assert!(
            plain.is_none(),
            "a decodable deposit was refused with hints"
        ),
    }
});
