//! `microcash cluster init | submit`, `microcash worker`, `microcash partition`: the
//! multi-machine clearing mode (`docs/cluster.md`). Argument parsing only; the work is in
//! `crate::cluster`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::CliError;
use crate::cluster::{owner, settlement, submit, telemetry, transport, worker};

/// Where the cluster's services are.
#[derive(Args, Debug, Clone)]
pub struct Endpoints {
    /// NATS server URLs, comma-separated (any one will do).
    #[arg(long, env = "MICROCASH_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// PostgreSQL connection string.
    #[arg(
        long,
        env = "MICROCASH_POSTGRES",
        default_value = "host=127.0.0.1 user=postgres dbname=microcash"
    )]
    postgres: String,
}

/// Cluster administration.
#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Create the streams, buckets and tables, and load the store's accounts.
    Init {
        #[command(flatten)]
        at: Endpoints,
        /// Store directory (keysets, policy, accounts). Created from `--params` when
        /// missing.
        #[arg(long, env = "MICROCASH_STORE", default_value = "microcash-store")]
        store: PathBuf,
        /// A dataset's `NAME.params/` to create the store from.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Spent-set partitions (fixed once set).
        #[arg(long, default_value_t = 4)]
        partitions: u32,
        /// Copies of every stream and bucket (3 on a three-node NATS cluster).
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Seconds a partition lease lasts without renewal (how long a dead owner's
        /// partition waits for a replacement).
        #[arg(long, default_value_t = 6)]
        lease_secs: u64,
    },
    /// Put a batch file into the cluster; with --wait, wait for its verdicts.
    Submit {
        #[command(flatten)]
        at: Endpoints,
        /// The batch file.
        batch: PathBuf,
        /// Records per work chunk.
        #[arg(long, default_value_t = submit::CHUNK_RECORDS_DEFAULT)]
        chunk: usize,
        /// Wait for every verdict (at most this many seconds) and print the summary.
        #[arg(long)]
        wait: Option<u64>,
        /// With --wait: write every record's verdict here (JSON lines, record order).
        #[arg(long)]
        verdicts: Option<PathBuf>,
        /// Queue the chunks but publish no announce: what an uploader killed mid-way
        /// leaves (fault drills).
        #[arg(long, hide = true)]
        chunks_only: bool,
    },
}

/// `microcash worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    at: Endpoints,
    /// Store directory with the issuer's public parameters and credential secrets.
    #[arg(long, env = "MICROCASH_STORE", default_value = "microcash-store")]
    store: PathBuf,
    /// Verification threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Worker name (metrics label).
    #[arg(long, default_value = "worker")]
    name: String,
    /// Serve Prometheus metrics here.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
}

/// `microcash partition`.
#[derive(Args, Debug)]
pub struct PartitionArgs {
    #[command(flatten)]
    at: Endpoints,
    /// The partition this process owns.
    #[arg(long)]
    id: u32,
    /// The owner's directory (spent set, position).
    #[arg(long)]
    dir: PathBuf,
    /// Owner name (lease holder).
    #[arg(long)]
    name: Option<String>,
    /// Serve Prometheus metrics here.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs a `cluster` subcommand.
pub fn run(cmd: ClusterCmd) -> Result<(), CliError> {
    match cmd {
        ClusterCmd::Init {
            at,
            store,
            params,
            partitions,
            replicas,
            lease_secs,
        } => {
            if partitions == 0 || partitions > 4096 {
                return Err("--partitions must be 1 … 4096".into());
            }
            if let Some(params) = params {
                if crate::dataset::init_store_from_params(&params, &store)? {
                    eprintln!(
                        "created store {} from {}",
                        store.display(),
                        params.display()
                    );
                }
            }
            // The store's files must load as a worker will load them.
            crate::engine::PublicParams::load(&store)?;
            let accounts: Vec<(String, bool)> =
                crate::store::state::Store::open(&crate::store::files::state_path(&store))?
                    .accounts()?
                    .into_iter()
                    .map(|(name, rec)| (name, rec.merchant))
                    .collect();
            runtime()?.block_on(async {
                let nats = transport::connect(&at.nats, "microcash-init").await?;
                nats.set_up(replicas, partitions, Duration::from_secs(lease_secs.max(1)))
                    .await?;
                let pg = settlement::connect(&at.postgres).await?;
                settlement::migrate(&pg).await?;
                let added = settlement::add_accounts(&pg, &accounts).await?;
                println!(
                    "cluster ready: {partitions} partitions, {replicas} replicas, {added} accounts added ({} in the store)",
                    accounts.len()
                );
                Ok::<(), CliError>(())
            })
        }
        ClusterCmd::Submit {
            at,
            batch,
            chunk,
            wait,
            verdicts,
            chunks_only,
        } => {
            let options = submit::SubmitOptions {
                nats: at.nats,
                postgres: at.postgres,
                batch,
                chunk_records: chunk,
                wait: wait.map(Duration::from_secs),
                verdicts,
                chunks_only,
            };
            let submitted = runtime()?.block_on(submit::run(&options))?;
            println!("{}", serde_json::to_string(&submitted)?);
            Ok(())
        }
    }
}

/// Runs `microcash worker`.
pub fn run_worker(args: WorkerArgs) -> Result<(), CliError> {
    let options = worker::WorkerOptions {
        nats: args.at.nats,
        postgres: args.at.postgres,
        store: args.store,
        threads: args.threads,
        name: args.name,
    };
    serve(args.metrics_addr, worker::run(options))
}

/// Runs `microcash partition`.
pub fn run_partition(args: PartitionArgs) -> Result<(), CliError> {
    let options = owner::OwnerOptions {
        nats: args.at.nats,
        postgres: args.at.postgres,
        dir: args.dir,
        partition: args.id,
        name: args
            .name
            .unwrap_or_else(|| format!("owner-{}-{}", args.id, std::process::id())),
    };
    serve(args.metrics_addr, owner::run(options))
}

/// Runs a cluster service with its metrics endpoint.
fn serve(
    metrics_addr: Option<SocketAddr>,
    service: impl std::future::Future<Output = Result<(), crate::cluster::ClusterError>>,
) -> Result<(), CliError> {
    runtime()?.block_on(async {
        if let Some(addr) = metrics_addr {
            telemetry::serve(addr).await?;
        }
        service.await?;
        Ok(())
    })
}
