//! The batched engine against the reference verifier: a mutated deposit between two valid
//! ones of the sample day is verified as one chunk (random linear combinations, bisection);
//! every verdict must equal what the reference verifier says of that deposit alone.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::engine::batch_verify::{verify_chunk, ChunkDeposit};
use microcash::protocol::deposit::Deposit;
use microcash::protocol::encoding::Decode;
use microcash::protocol::verify::Verifier;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Ok(mutated) = Deposit::from_bytes(data) else {
        return;
    };
    let day = microcash_fuzz::sample_day();
    let (a, b) = (data.len() % day.valid.len(), (data.len() + 1) % day.valid.len());
    let chunk: [ChunkDeposit<'_>; 3] = [(&day.valid[a]).into(), (&mutated).into(), (&day.valid[b]).into()];
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
