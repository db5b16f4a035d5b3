//! Single deposits over HTTP, coalesced: requests arriving together are verified as one
//! batch (the engine's kernels) and settled as one commit group (one fsync), then each
//! caller gets its own verdict. The queue is bounded; when it is full the caller gets 503.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::engine::batch_verify::{self, ChunkDeposit};
use crate::engine::settle::{self, BatchMemory};
use crate::engine::Verdict;
use crate::issuer::Issuer;
use crate::protocol::deposit::{CreditTarget, Deposit};
use crate::protocol::verify::VerifiedDeposit;

/// Deposits waiting to be coalesced, at most (the default and the ceiling).
pub const DEPOSIT_QUEUE_MAX: usize = 1024;
/// Deposits settled in one group, at most.
pub const DEPOSIT_GROUP_MAX: usize = 256;
/// How long the coalescer waits for more deposits once it has one.
const GATHER: Duration = Duration::from_millis(2);

/// One deposit and where its verdict goes.
pub struct Job {
    /// The deposit.
    pub deposit: Deposit,
    /// The caller.
    pub reply: oneshot::Sender<Result<Verdict, String>>,
}

/// Starts the coalescer on its own thread; returns its queue.
pub fn start(
    issuer: Arc<Issuer>,
    capacity: usize,
    clock: super::Clock,
) -> std::io::Result<mpsc::Sender<Job>> {
    let (tx, mut rx) = mpsc::channel::<Job>(capacity.clamp(1, DEPOSIT_QUEUE_MAX));
    std::thread::Builder::new()
        .name("microcash-deposits".into())
        .spawn(move || {
            let mut rng = crate::seeded_rng();
            while let Some(first) = rx.blocking_recv() {
                let mut group = vec![first];
                let deadline = std::time::Instant::now() + GATHER;
                while group.len() < DEPOSIT_GROUP_MAX && std::time::Instant::now() < deadline {
                    match rx.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => std::thread::sleep(Duration::from_micros(200)),
                    }
                }
                metrics::histogram!("microcash_deposit_group_size").record(group.len() as f64);
                settle_group(&issuer, group, clock.now(), &mut rng);
            }
        })?;
    Ok(tx)
}

fn settle_group(issuer: &Issuer, group: Vec<Job>, now: u64, rng: &mut rand::rngs::StdRng) {
    let params = issuer.engine().params();
    let verifier = params.verifier();
    let deposits: Vec<ChunkDeposit<'_>> = group.iter().map(|j| (&j.deposit).into()).collect();
    let verified = batch_verify::verify_chunk(&verifier, &params.keysets, &deposits, now, rng);
    let items: Vec<(u64, Result<VerifiedDeposit, Verdict>)> = verified
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.map_err(Verdict::from).and_then(|v| match v.target() {
                CreditTarget::Account(_) => Ok(v),
                CreditTarget::Swap(_) => Err(Verdict::Malformed {
                    offset: 0,
                    reason: "a swap input belongs in POST /v1/swap".into(),
                }),
            });
            (i as u64, r)
        })
        .collect();
    let result = {
        let engine = issuer.engine();
        let mut spent = engine.spent();
        settle::plan(
            &*spent,
            engine.accounts(),
            &mut BatchMemory::default(),
            items,
            false,
            now,
        )
        .and_then(|plan| Ok(settle::commit(&mut spent, plan)?))
    };
    match result {
        Ok(verdicts) => {
            for (job, v) in group.into_iter().zip(verdicts) {
                let _ = job.reply.send(Ok(v));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "settling a deposit group failed");
            for job in group {
                let _ = job.reply.send(Err(e.to_string()));
            }
        }
    }
}
