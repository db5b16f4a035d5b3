//! The batched engine against the reference verifier: a mutated deposit between two valid
//! ones of the sample day is verified as one chunk (random linear combinations, bisection);
//! every verdict must equal what the reference verifier says of that deposit alone, with
//! the mutated deposit's serial hints right or wrong.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::engine::batch_verify::{verify_chunk, ChunkDeposit};
use microcash::protocol::deposit::Deposit;
use microcash::protocol::encoding::Decode;
use microcash::protocol::hints::SerialHints;
use microcash::protocol::verify::Verifier;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Ok(mutated) = Deposit::from_bytes(data) else {
        return;
    };
    let day = microcash_fuzz::sample_day();
    let (a, b) = (
        data.len() % day.valid.len(),
        (data.len() + 1) % day.valid.len(),
    );
    // The mutated deposit carries serial hints, right or (for even lengths) with one bit
    // flipped: hints change the cost, never the verdict.
    let mut hint_bytes = SerialHints::of(&mutated).to_bytes();
    if data.len() % 2 == 0 && !hint_bytes.is_empty() {
        let i = data.len() % hint_bytes.len();
        hint_bytes[i] ^= 1;
    }
    let hints = SerialHints::parse(&hint_bytes, &mutated);
    let chunk: [ChunkDeposit<'_>; 3] = [
        (&day.valid[a]).into(),
        ChunkDeposit {
            deposit: &mutated,
            serial_hints: hints.as_ref(),
        },
        (&day.valid[b]).into(),
    ];
    let verifier = Verifier::new(&day.params.keysets, &day.params.policy);
    let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(data.len() as u64);
    let batched = verify_chunk(&verifier, &day.params.keysets, &chunk, day.now, &mut rng);
    // The valid neighbours' reference verdicts were taken once, when the day was loaded.
    let wants = [
        Ok(day.accepted[a].clone()),
        verifier.verify_deposit(&mutated, day.now),
        Ok(day.accepted[b].clone()),
    ];
    for (got, want) in batched.iter().zip(&wants) {
        match (got, want) {
            (Ok(g), Ok(w)) => {
                assert_eq!(g.digest(), w.digest());
                assert_eq!(g.serial(), w.serial());
                assert_eq!(g.value(), w.value());
                assert_eq!(g.allowance_serials(), w.allowance_serials());
                assert_eq!(g.chain_digests(), w.chain_digests());
            }
            (Err(g), Err(w)) => assert_eq!(g, w),
            _ => panic!("engine {got:?} != reference {want:?}"),
        }
    }
});
