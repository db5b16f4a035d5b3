//! Allowance v2 messages: registrations and credential requests (`POST /v1/register`,
//! `POST /v1/allowance`), the issuer's credential answer (a wallet opens it), and
//! presentations (the issuer verifies them). Strict decoding; verification is total on
//! whatever decodes, and the batched verdict equals the single one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::protocol::credential::presentation::verify_batch;
use microcash::protocol::credential::{
    CredentialIssue, CredentialKey, CredentialRequest, CredentialSecret, Presentation,
    PresentationContext, Registration,
};
use microcash::protocol::keys::OwnerSecret;
use microcash_fuzz::decodes_canonically;

/// A fixed issuer key (small canonical scalars) and a fixed wallet.
fn fixed() -> (CredentialSecret, CredentialKey, OwnerSecret) {
    let mut raw = [0u8; 128];
    for (i, b) in raw.iter_mut().step_by(32).enumerate() {
        *b = 3 + i as u8;
    }
    let secret = CredentialSecret::from_bytes(&raw).expect("canonical");
    let key = CredentialKey::of(&secret, 2, "standard").expect("valid");
    let mut w = [0u8; 32];
    w[0] = 9;
    (secret, key, OwnerSecret::from_bytes(&w).expect("canonical"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Some(r) = decodes_canonically::<Registration>(rest) {
                let _ = r.authentic();
            }
        }
        1 => {
            if let Some(r) = decodes_canonically::<CredentialRequest>(rest) {
                let _ = r.authentic();
            }
        }
        2 => {
            if let Some(issue) = decodes_canonically::<CredentialIssue>(rest) {
                let (_, key, wallet) = fixed();
                let _ = issue.open(&key, &wallet, 20_000);
            }
        }
        _ => {
            // 32 bytes of stealth commitment, 8 of day, then the presentation.
            if rest.len() < 40 {
                return;
            }
            let (c_s, tail) = rest.split_at(32);
            let (day, body) = tail.split_at(8);
            let c_s: [u8; 32] = c_s.try_into().unwrap();
            let day = u64::from_le_bytes(day.try_into().unwrap());
            if let Some(mut p) = decodes_canonically::<Presentation>(body) {
                let (secret, key, wallet) = fixed();
                p.key_id = key.id;
                let receiving = wallet.public();
                let ctx = PresentationContext {
                    day,
                    receiving_key: &receiving,
                    stealth_commitment: &c_s,
                    binding: &[0; 32],
                };
                let single = p.verify(&key, &secret, &ctx).is_ok();
                let batch = verify_batch(&key, &secret, &[(&p, ctx)], &mut microcash::os_rng());
                assert_eq!(single, batch.is_empty(), "batch and single disagree");
            }
        }
    }
});
