//! Clearing across machines (`docs/cluster.md`): NATS JetStream carries the work and the
//! one global order, stateless verifier workers run the engine's verification, partition
//! owners hold the spent set cut by serial range and decide every chunk from all
//! partitions' votes with the engine's own settlement rules, and PostgreSQL holds the
//! verdicts, receipts and balances, written insert-if-absent.
//!
//! ```text
//! submit ─▶ MC_SEQ mc.batch (announce: the batch's number and clock)
//!        ─▶ MC_WORK mc.work.B.i ─▶ workers ─▶ MC_SEQ mc.seq.B.i (verified chunk)
//!                                                    │ owners, in (B, i) order
//!                         MC_VOTES mc.vote.B.i.P ◀───┤ each its keys: fresh or seen
//!                                                    ▼
//!                      every owner decides the chunk from all votes (settle::plan),
//!                      writes its home records to PostgreSQL, applies its own keys
//! ```
//!
//! Layering: this module composes the engine (verification, settlement rules), the spent
//! set and the store's files; the CLI only parses arguments and calls it.

pub mod messages;
pub mod owner;
pub mod partition;
pub mod settlement;
pub mod submit;
pub mod telemetry;
pub mod transport;
pub mod worker;

use crate::engine::settle::SettleError;
use crate::engine::EngineError;
use crate::spentset::SpentSetError;
use crate::store::files::FilesError;
use crate::store::state::StoreError;

/// Why a cluster process stopped or refused a message.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS refused or failed an operation.
    #[error("nats: {context}: {reason}")]
    Nats {
        /// What was being done.
        context: String,
        /// The client's error.
        reason: String,
    },
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A message that does not decode or is out of bounds.
    #[error("message on {subject}: {reason}")]
    Message {
        /// Its subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A vote that cannot be used for the chunk.
    #[error("vote of partition {partition} on batch {batch_seq} chunk {chunk}: {reason}")]
    Vote {
        /// Batch number.
        batch_seq: u64,
        /// Chunk index.
        chunk: u32,
        /// Voter.
        partition: u32,
        /// Why.
        reason: String,
    },
    /// Settlement left a record without a verdict (a bug: never a made-up verdict).
    #[error("record {record} left undecided")]
    Undecided {
        /// Record number.
        record: u64,
    },
    /// Settlement rules failed (storage).
    #[error(transparent)]
    Settle(#[from] SettleError),
    /// The partition's spent set failed.
    #[error(transparent)]
    SpentSet(#[from] SpentSetError),
    /// The engine failed (reading a batch, verification pool).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store's files (keysets, policy, credential secrets) failed to load.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The store's accounts failed to load.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// This owner no longer holds its partition's lease (another owner took it).
    #[error("partition {partition}: lease lost: {reason}")]
    LeaseLost {
        /// Partition.
        partition: u32,
        /// Why.
        reason: String,
    },
    /// The cluster is not set up as the command expects.
    #[error("cluster configuration: {0}")]
    Config(String),
}

impl ClusterError {
    /// Whether running again cannot help (the cluster or the command is set up wrong, or a
    /// local file is damaged): the process stops with the error instead of restarting.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ClusterError::Config(_) | ClusterError::Files(_) | ClusterError::SpentSet(_)
        )
    }
}

/// Runs a worker's or owner's loop again after a fault it could not ride out (NATS or
/// PostgreSQL gone longer than the retries, a lost lease: the new run waits for the lease
/// like any replacement), a second later; stops on a fatal one. What a supervisor such as
/// systemd's `Restart=always` would do, kept in the process so a local cluster needs none.
pub(crate) async fn supervise<F, Fut>(role: &str, mut run: F) -> Result<(), ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ClusterError>>,
{
    loop {
        match run().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, "{role} stopped; starting again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Maps any NATS client error into [`ClusterError::Nats`] with what was being done.
pub(crate) fn nats_err<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> ClusterError + '_ {
    move |e| ClusterError::Nats {
        context: context.to_owned(),
        reason: e.to_string(),
    }
}
