//! The `microcash` command line: argument parsing and printing over the library.

mod cluster;
mod store;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::issuer::{Issuer, IssuerApi};
use crate::protocol::coin::Payment;
use crate::protocol::encoding::Decode;
use crate::protocol::policy::Policy;
use crate::protocol::stealth::Address;
use crate::store::files::{load_keysets, policy_path};
use crate::wallet::Wallet;

/// Any error the CLI reports (the binary is the only place for a catch-all error).
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// microcash: privacy- and regulation-friendly micropayments.
#[derive(Parser, Debug)]
#[command(name = "microcash", version, about)]
pub struct Cli {
    /// Pretend the current time is this Unix timestamp (for tests and demos).
    #[arg(long, global = true, env = "MICROCASH_NOW")]
    pub now: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Issuer key management.
    #[command(subcommand)]
    Issuer(IssuerCmd),
    /// Issuer accounts (what withdrawals debit and deposits credit).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Wallet operations.
    #[command(subcommand)]
    Wallet(WalletCmd),
    /// Synthetic redemption batches.
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Clear a redemption batch file against a store (the back-office job).
    Clear(ClearArgs),
    /// Clearing across machines: set up, submit batches (`docs/cluster.md`).
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Run a cluster verifier worker (stateless; run as many as there are machines).
    Worker(cluster::WorkerArgs),
    /// Run the owner of one spent-set partition of the cluster.
    Partition(cluster::PartitionArgs),
    /// Verify or repair a store's durable files.
    #[command(subcommand)]
    Store(store::StoreCmd),
    /// The issuer's liability per key epoch and denomination, reconciled with the accounts.
    Audit {
        /// Store (issuer) directory.
        #[arg(long, env = "MICROCASH_STORE", default_value = "microcash-store")]
        store: PathBuf,
        /// Print the audit as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Batches on a server.
    #[command(subcommand)]
    Batch(BatchCmd),
    /// Clearing partners (who may upload batches to the server).
    #[command(subcommand)]
    Partner(PartnerCmd),
    /// Run the issuer's HTTP server.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Issuer directory.
        #[arg(long, env = "MICROCASH_ISSUER")]
        store: PathBuf,
        /// Back-office token allowing wallet registration over HTTP (off when unset). Prefer
        /// MICROCASH_ADMIN_TOKEN or --admin-token-file: a command-line argument shows in `ps`.
        #[arg(long, env = "MICROCASH_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Read the back-office token from this file (first line; keep it mode 0600).
        #[arg(long, conflicts_with = "admin_token")]
        admin_token_file: Option<PathBuf>,
        /// Records per clearing chunk (one fsync each).
        #[arg(long, default_value_t = crate::engine::pipeline::CHUNK_RECORDS_DEFAULT)]
        chunk: usize,
        /// Capacity of the single-deposit queue (503 beyond it; at most 1024).
        #[arg(long, default_value_t = crate::server::DEPOSIT_QUEUE_MAX)]
        deposit_queue: usize,
        /// Most connections open at once (beyond it new ones are closed at once).
        #[arg(long, default_value_t = crate::server::listen::MAX_CONNECTIONS_DEFAULT)]
        max_connections: usize,
        /// Milliseconds a client has to send a request's headers (and between requests on
        /// a kept-alive connection).
        #[arg(long, default_value_t = crate::server::listen::HEADER_TIMEOUT_DEFAULT.as_millis() as u64)]
        header_timeout_ms: u64,
        /// Milliseconds a request body may send nothing before it is cut.
        #[arg(long, default_value_t = crate::server::listen::BODY_IDLE_TIMEOUT_DEFAULT.as_millis() as u64)]
        body_idle_timeout_ms: u64,
        /// Bytes of uploads, verdicts and statuses one clearing partner may keep on the
        /// issuer's disk (403 quota_exceeded beyond it).
        #[arg(long, default_value_t = crate::server::batches::PARTNER_QUOTA_DEFAULT)]
        partner_quota_bytes: u64,
        /// Bytes of free disk an upload never eats into (507 insufficient_storage).
        #[arg(long, default_value_t = crate::server::batches::MIN_FREE_DEFAULT)]
        min_free_bytes: u64,
        /// Seconds a finished batch's uploaded file is kept.
        #[arg(long, default_value_t = crate::server::batches::UPLOAD_RETENTION_DEFAULT.as_secs())]
        upload_retention_secs: u64,
        /// Seconds a finished batch's verdicts and status are kept.
        #[arg(long, default_value_t = crate::server::batches::VERDICT_RETENTION_DEFAULT.as_secs())]
        verdict_retention_secs: u64,
    },
    /// Measure the engine against one-at-a-time verification (JSON for capacity planning).
    Bench {
        /// Coins in the generated batch.
        #[arg(long, default_value_t = 8192)]
        coins: u64,
        /// Threads for the all-threads runs (default: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum DatasetCmd {
    /// Generate batch files with their expected verdicts.
    Gen {
        /// Records per day.
        #[arg(long)]
        coins: u64,
        /// Output batch file, written exactly there (several days: NAME-dayK.EXT beside it).
        #[arg(long)]
        out: PathBuf,
        /// Seed for deterministic output.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Fraction of records re-depositing an earlier coin.
        #[arg(long, default_value_t = 0.0)]
        double_spend_rate: f64,
        /// Fraction of records with another injected fault.
        #[arg(long, default_value_t = 0.0)]
        invalid_rate: f64,
        /// Hop-count mix of valid coins, hops:weight.
        #[arg(long, default_value = "1:80,2:15,3:5")]
        hops_mix: String,
        /// Received coins carry allowance (the class requires it).
        #[arg(long)]
        allowance: bool,
        /// With --allowance: v1 bearer tokens, or v2 presentations by registered receiving
        /// wallets (docs/protocol.md §8.5).
        #[arg(long, default_value = "v1", value_parser = parse_allowance_scheme)]
        allowance_scheme: crate::protocol::policy::AllowanceScheme,
        /// Merchant accounts receiving the deposits.
        #[arg(long, default_value_t = 16)]
        accounts: u32,
        /// Days (one batch file per day; later days re-deposit earlier coins).
        #[arg(long, default_value_t = 1)]
        days: u32,
        /// Write plain deposit records (kind 1) without hints.
        #[arg(long)]
        no_hints: bool,
        /// Which clearing path confirms the expected verdicts: the batched engine, or the
        /// one-at-a-time reference (~30x slower; for golden samples).
        #[arg(long, value_enum, default_value_t = crate::dataset::GenCheck::Engine)]
        check: crate::dataset::GenCheck,
    },
}

#[derive(Subcommand, Debug)]
enum BatchCmd {
    /// Upload a batch file to a server (streamed) and print its id.
    Submit {
        /// The batch file.
        file: PathBuf,
        /// Server URL.
        #[arg(long, env = "MICROCASH_SERVER")]
        server: String,
        /// Wait for clearing to finish, showing progress, then print the summary.
        #[arg(long)]
        wait: bool,
        /// Clearing-partner upload token (`microcash partner create`).
        #[arg(long, env = "MICROCASH_PARTNER_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Show a batch's status.
    Status {
        /// Batch id.
        id: String,
        /// Server URL.
        #[arg(long, env = "MICROCASH_SERVER")]
        server: String,
        /// The uploading partner's token.
        #[arg(long, env = "MICROCASH_PARTNER_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Subcommand, Debug)]
enum PartnerCmd {
    /// Issue an upload token for a clearing partner (printed once; only its digest is
    /// stored). Each call adds a token.
    Create {
        #[command(flatten)]
        dir: IssuerDir,
        /// Partner name.
        name: String,
    },
}

#[derive(Args, Debug)]
struct ClearArgs {
    /// The batch file.
    batch: PathBuf,
    /// Store directory (an issuer directory, or a clearing store). Created from the
    /// batch's `NAME.params/` beside it when it does not exist yet.
    #[arg(long, env = "MICROCASH_STORE", default_value = "microcash-store")]
    store: PathBuf,
    /// Verification threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Records per chunk (one fsync per chunk).
    #[arg(long, default_value_t = crate::engine::pipeline::CHUNK_RECORDS_DEFAULT)]
    chunk: usize,
    /// Pin verification threads to cores.
    #[arg(long)]
    pin: bool,
    /// Write the settlement journal (JSON lines, one per accepted coin).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Write every record's verdict (JSON lines).
    #[arg(long)]
    verdicts: Option<PathBuf>,
    /// Print the summary as one JSON object on the last line.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug, Clone)]
struct IssuerDir {
    /// Issuer directory.
    #[arg(long, env = "MICROCASH_ISSUER")]
    issuer: PathBuf,
}

#[derive(Subcommand, Debug)]
enum IssuerCmd {
    /// Create an issuer: policy file, first key epoch, empty state.
    Init {
        #[command(flatten)]
        dir: IssuerDir,
        /// Policy file (TOML) to use instead of the default policy.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Key rotation: add the next epoch, open for withdrawal from now.
    Rotate {
        #[command(flatten)]
        dir: IssuerDir,
    },
    /// Print the published keyset list (JSON).
    Keysets {
        #[command(flatten)]
        dir: IssuerDir,
    },
}

#[derive(Subcommand, Debug)]
enum AccountCmd {
    /// Create an account.
    Create {
        #[command(flatten)]
        dir: IssuerDir,
        /// Account name.
        name: String,
        /// Merchant account (may receive deposits of merchant-only classes).
        #[arg(long)]
        merchant: bool,
    },
    /// Credit an account (money arriving from outside).
    Fund {
        #[command(flatten)]
        dir: IssuerDir,
        /// Account name.
        name: String,
        /// Amount in minor units.
        amount: u64,
    },
    /// Show an account's balance.
    Show {
        #[command(flatten)]
        dir: IssuerDir,
        /// Account name.
        name: String,
    },
}

#[derive(Args, Debug, Clone)]
struct WalletFileArg {
    /// Wallet file.
    #[arg(long, env = "MICROCASH_WALLET")]
    wallet: PathBuf,
}

/// Where the issuer is: a local directory, or a server.
#[derive(Args, Debug, Clone)]
struct IssuerAt {
    /// Issuer directory (local files).
    #[arg(
        long,
        env = "MICROCASH_ISSUER",
        required_unless_present = "server",
        conflicts_with = "server"
    )]
    issuer: Option<PathBuf>,
    /// Issuer server URL (`microcash serve`), e.g. http://127.0.0.1:8080.
    #[arg(long, env = "MICROCASH_SERVER")]
    server: Option<String>,
    /// Bearer token for the server: the account's API token (withdraw) or the issuer's
    /// admin token (register).
    #[arg(long, env = "MICROCASH_TOKEN")]
    token: Option<String>,
}

impl IssuerAt {
    fn connect(&self) -> Result<Box<dyn IssuerApi>, CliError> {
        match (&self.server, &self.issuer) {
            (Some(url), _) => Ok(Box::new(crate::client::HttpIssuer::connect(
                url,
                self.token.clone(),
            )?)),
            (None, Some(dir)) => Ok(Box::new(Issuer::open(dir)?)),
            (None, None) => Err("pass --issuer DIR or --server URL".into()),
        }
    }
}

#[derive(Subcommand, Debug)]
enum WalletCmd {
    /// Create a wallet file with a fresh address key.
    Create {
        #[command(flatten)]
        file: WalletFileArg,
        /// A label for the wallet.
        #[arg(long, default_value = "wallet")]
        name: String,
    },
    /// Print the wallet's payee address.
    Address {
        #[command(flatten)]
        file: WalletFileArg,
    },
    /// Register the wallet's address with the issuer (needed for allowance). With
    /// `--class` of an allowance v2 class: a registration signed by the wallet's key (one
    /// wallet per identity and class; registering a new one revokes the old).
    Register {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
        /// The identity the issuer records for this wallet.
        #[arg(long)]
        identity: String,
        /// An allowance v2 class to register for.
        #[arg(long)]
        class: Option<String>,
    },
    /// Allowance v2: fetch the wallet's credential for a class and day (today by default;
    /// up to 7 days back) — what lets it receive that day's coins of the class and move
    /// them on offline.
    Credential {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
        /// The class.
        #[arg(long, default_value = "standard")]
        class: String,
        /// UTC day number (Unix seconds / 86400); today if absent.
        #[arg(long)]
        day: Option<u64>,
    },
    /// Withdraw coins from an account.
    Withdraw {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
        /// Account to debit.
        #[arg(long)]
        account: String,
        /// Amount in minor units.
        #[arg(long)]
        amount: u64,
        /// Policy class of the coins.
        #[arg(long, default_value = "standard")]
        class: String,
    },
    /// Obtain today's allowance tokens (the receive limit).
    Allowance {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
        /// Amount in minor units.
        #[arg(long)]
        amount: u64,
    },
    /// Pay an address; writes the payment for the payee to a file.
    Pay {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
        /// The payee's address (mc1…).
        #[arg(long)]
        to: String,
        /// Amount in minor units.
        #[arg(long)]
        amount: u64,
        /// Where to write the payment.
        #[arg(long)]
        out: PathBuf,
    },
    /// Scan a payment file and keep the coins addressed to this wallet.
    Receive {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
        /// The payment file.
        payment: PathBuf,
    },
    /// Show the wallet's balance and allowance.
    Balance {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
    },
    /// Finish what a crash or a lost answer interrupted: re-send journalled requests (the
    /// issuer answers a repeat without a second charge), re-write journalled payments.
    /// Every command that reaches the issuer does this first.
    Recover {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
    },
    /// Deposit coins to an account (reference verification path).
    Deposit {
        #[command(flatten)]
        file: WalletFileArg,
        #[command(flatten)]
        dir: IssuerAt,
        /// Account to credit.
        #[arg(long)]
        account: String,
        /// Amount (default: every coin).
        #[arg(long)]
        amount: Option<u64>,
    },
}

fn public_view(dir: &Path) -> Result<(crate::protocol::keyset::KeysetList, Policy), CliError> {
    let keysets = load_keysets(&crate::store::files::keysets_path(dir))?;
    let policy = Policy::from_toml(&std::fs::read_to_string(policy_path(dir))?)?;
    Ok((keysets, policy))
}

#[allow(
    clippy::expect_used,
    reason = "the values printed are derived Serialize or JSON values"
)]
fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
}

/// Runs the CLI.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let cli_now = cli.now;
    let now = cli_now.unwrap_or_else(crate::unix_now);
    match cli.command {
        Command::Issuer(cmd) => match cmd {
            IssuerCmd::Init { dir, policy } => {
                let policy = match policy {
                    Some(p) => Policy::from_toml(&std::fs::read_to_string(&p)?)?,
                    None => Policy::default(),
                };
                let issuer = Issuer::init(&dir.issuer, policy, now)?;
                println!(
                    "issuer initialised in {} with {} keysets (epoch 1)",
                    dir.issuer.display(),
                    issuer.keysets().iter().count()
                );
            }
            IssuerCmd::Rotate { dir } => {
                let mut issuer = Issuer::open(&dir.issuer)?;
                let epoch = issuer.rotate(now)?;
                println!("epoch {epoch} created");
            }
            IssuerCmd::Keysets { dir } => {
                let (keysets, _) = public_view(&dir.issuer)?;
                print_json(&keysets.to_json());
            }
        },
        Command::Account(cmd) => match cmd {
            AccountCmd::Create {
                dir,
                name,
                merchant,
            } => {
                let issuer = Issuer::open(&dir.issuer)?;
                issuer.create_account(&name, merchant)?;
                let token = issuer.issue_account_token(&name)?;
                println!("account {name} created");
                println!("API token (for POST /v1/withdraw; shown once): {token}");
            }
            AccountCmd::Fund { dir, name, amount } => {
                let balance = Issuer::open(&dir.issuer)?.fund(&name, amount)?;
                println!("account {name} balance {balance}");
            }
            AccountCmd::Show { dir, name } => {
                let balance = Issuer::open(&dir.issuer)?.balance(&name)?;
                println!("account {name} balance {balance}");
            }
        },
        Command::Wallet(cmd) => run_wallet(cmd, now)?,
        Command::Dataset(DatasetCmd::Gen {
            coins,
            out,
            seed,
            double_spend_rate,
            invalid_rate,
            hops_mix,
            allowance,
            allowance_scheme,
            accounts,
            days,
            no_hints,
            check,
        }) => {
            let opts = crate::dataset::GenOptions {
                coins,
                seed,
                double_spend_rate,
                invalid_rate,
                hops_mix: crate::dataset::parse_hops_mix(&hops_mix)?,
                allowance,
                allowance_scheme,
                accounts,
                days,
                now,
                hints: !no_hints,
                check,
            };
            let report = crate::dataset::generate(&out, &opts)?;
            print_json(&report);
        }
        Command::Clear(args) => run_clear(args, now)?,
        Command::Cluster(cmd) => cluster::run(cmd)?,
        Command::Worker(args) => cluster::run_worker(args)?,
        Command::Partition(args) => cluster::run_partition(args)?,
        Command::Store(cmd) => store::run(cmd)?,
        Command::Audit { store, json } => store::run_audit(&store, json)?,
        Command::Batch(BatchCmd::Status { id, server, token }) => {
            print_json(&crate::client::batch_status(&server, &id, &token)?)
        }
        Command::Partner(PartnerCmd::Create { dir, name }) => {
            let token = Issuer::open(&dir.issuer)?.issue_partner_token(&name)?;
            println!("clearing partner {name}");
            println!("upload token (for POST /v1/batches; shown once): {token}");
        }
        Command::Batch(BatchCmd::Submit {
            file,
            server,
            wait,
            token,
        }) => {
            let id = crate::client::submit_batch(&server, &file, &token)?;
            println!("{id}");
            if wait {
                let bar = indicatif::ProgressBar::new(0);
                let status = loop {
                    let s = crate::client::batch_status(&server, &id, &token)?;
                    let count = |k: &str| s.get(k).and_then(serde_json::Value::as_u64);
                    bar.set_length(count("records_total").unwrap_or(0));
                    bar.set_position(count("records_done").unwrap_or(0));
                    match s.get("state").and_then(serde_json::Value::as_str) {
                        Some("done") | Some("failed") => break s,
                        _ => std::thread::sleep(std::time::Duration::from_millis(200)),
                    }
                };
                bar.finish_and_clear();
                print_json(&status);
                if status.get("state").and_then(serde_json::Value::as_str) != Some("done") {
                    return Err(format!("batch {id} failed").into());
                }
            }
        }
        Command::Serve {
            addr,
            store,
            admin_token,
            admin_token_file,
            chunk,
            deposit_queue,
            max_connections,
            header_timeout_ms,
            body_idle_timeout_ms,
            partner_quota_bytes,
            min_free_bytes,
            upload_retention_secs,
            verdict_retention_secs,
        } => {
            let admin_token = match admin_token_file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let token = text.lines().next().unwrap_or("").trim().to_owned();
                    if token.is_empty() {
                        return Err(format!("{}: no token in the file", path.display()).into());
                    }
                    Some(token)
                }
                None => admin_token,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::server::serve(crate::server::ServerConfig {
                addr,
                store,
                admin_token,
                chunk_records: chunk,
                deposit_queue,
                clock: crate::server::Clock(cli_now),
                limits: crate::server::listen::ConnLimits {
                    max_connections,
                    header_timeout: std::time::Duration::from_millis(header_timeout_ms),
                    body_idle_timeout: std::time::Duration::from_millis(body_idle_timeout_ms),
                },
                storage: crate::server::batches::StorageLimits {
                    partner_quota: partner_quota_bytes,
                    min_free: min_free_bytes,
                    upload_retention: std::time::Duration::from_secs(upload_retention_secs),
                    verdict_retention: std::time::Duration::from_secs(verdict_retention_secs),
                },
            }))?;
        }
        Command::Bench {
            coins,
            threads,
            json,
        } => {
            let work = std::env::temp_dir().join(format!("microcash-bench-{}", std::process::id()));
            std::fs::create_dir_all(&work)?;
            let report = crate::bench::run(&crate::bench::BenchOptions { coins, threads }, &work);
            let _ = std::fs::remove_dir_all(&work);
            let report = report?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_json(&report);
            }
        }
    }
    Ok(())
}

/// A progress bar (drawn only on a terminal) with `template`.
pub(crate) fn progress_bar(template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn run_clear(args: ClearArgs, now: u64) -> Result<(), CliError> {
    use crate::engine::{ClearOptions, Engine};
    // A bad batch path is reported before anything is created.
    crate::engine::check_batch_input(&args.batch)?;
    if !crate::store::files::keysets_path(&args.store).exists() {
        let params = crate::dataset::params_dir(&args.batch);
        if !params.join("keysets.json").exists() {
            return Err(format!(
                "store {} has no keysets.json and no {} exists beside the batch to create it from",
                args.store.display(),
                params.display()
            )
            .into());
        }
        if crate::dataset::init_store_from_params(&params, &args.store)? {
            eprintln!(
                "created store {} from {}",
                args.store.display(),
                params.display()
            );
        }
    }
    let replay =
        progress_bar("{spinner} checking the settlement journal [{bar:40}] {bytes}/{total_bytes}");
    let engine = Engine::open_with_progress(
        &args.store,
        crate::spentset::SpentSetConfig::default(),
        &|done, total| {
            replay.set_length(total);
            replay.set_position(done);
        },
    )?;
    replay.finish_and_clear();
    let options = ClearOptions {
        threads: args.threads,
        chunk_records: args.chunk,
        pin_cores: args.pin,
        now,
        journal: args.journal,
        verdicts: args.verdicts,
        collect_verdicts: false,
        stop: None,
    };
    let bar = progress_bar("{spinner} clearing [{bar:40}] {pos}/{len} coins {per_sec} eta {eta}");
    let summary = engine.clear(&args.batch, &options, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "batch {} cleared in {:.2} s ({:.0} coins/s, {} threads)",
        summary.batch_id, summary.elapsed_s, summary.coins_per_s, summary.threads
    );
    println!(
        "  records   {:>10}{}",
        summary.records,
        if summary.records != summary.header_records {
            format!("   (header announced {})", summary.header_records)
        } else {
            String::new()
        }
    );
    if summary.skipped_bytes > 0 {
        println!(
            "  skipped   {:>10} bytes between records (damage or inserted garbage)",
            summary.skipped_bytes
        );
    }
    println!(
        "  accepted  {:>10}   ({} replayed from an earlier run)",
        summary.accepted, summary.replayed
    );
    for (reason, n) in &summary.rejected {
        println!("  {reason:<34} {n:>6}");
    }
    println!(
        "  credited  {:>10} minor units to {} accounts ({} by this run)",
        summary.value_credited,
        summary.credited_by_account.len(),
        summary.value_credited_this_run
    );
    for (account, v) in summary.credited_by_account.iter().take(10) {
        println!("    {account:<30} {v:>10}");
    }
    if summary.credited_by_account.len() > 10 {
        println!("    … {} more", summary.credited_by_account.len() - 10);
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

/// Opens a wallet and finishes its journal first (reported on stderr), so a command never
/// starts over an interrupted operation it could complete.
fn open_wallet(path: &Path, issuer: &dyn IssuerApi, now: u64) -> Result<Wallet, CliError> {
    let mut w = Wallet::open(path)?;
    if w.pending_count() > 0 {
        let report = w.recover(issuer, now)?;
        eprintln!(
            "recovered the wallet journal first: {}",
            serde_json::to_string(&report).unwrap_or_default()
        );
    }
    Ok(w)
}

fn run_wallet(cmd: WalletCmd, now: u64) -> Result<(), CliError> {
    match cmd {
        WalletCmd::Create { file, name } => {
            let w = Wallet::create(&file.wallet, &name)?;
            println!("{}", w.address());
        }
        WalletCmd::Address { file } => println!("{}", Wallet::open(&file.wallet)?.address()),
        WalletCmd::Register {
            file,
            dir,
            identity,
            class,
        } => {
            let issuer = dir.connect()?;
            let mut w = open_wallet(&file.wallet, &*issuer, now)?;
            match class {
                None => {
                    w.register(&*issuer, &identity)?;
                    println!("registered {} as {identity:?}", w.address());
                }
                Some(class) => {
                    let revoked = w.register_v2(&*issuer, &class, &identity)?;
                    println!(
                        "registered {} as {identity:?} for class {class:?}{}",
                        w.address(),
                        revoked.map_or(String::new(), |a| format!("; revoked {a}"))
                    );
                }
            }
            w.save()?;
        }
        WalletCmd::Credential {
            file,
            dir,
            class,
            day,
        } => {
            let issuer = dir.connect()?;
            let mut w = open_wallet(&file.wallet, &*issuer, now)?;
            let day = day.unwrap_or(now / crate::protocol::policy::DAY_SECS);
            w.fetch_credential(&*issuer, &class, day, now)?;
            w.save()?;
            println!(
                "credential of class {class:?} for day {day}; receive limit left today {}",
                w.receive_limit_left(issuer.policy(), &class, now)
            );
        }
        WalletCmd::Withdraw {
            file,
            dir,
            account,
            amount,
            class,
        } => {
            let issuer = dir.connect()?;
            let mut w = open_wallet(&file.wallet, &*issuer, now)?;
            let got = w.withdraw(&*issuer, &account, amount, &class, now)?;
            println!(
                "withdrew {got} from {account}; wallet balance {}",
                w.balance(issuer.keysets())?
            );
        }
        WalletCmd::Allowance { file, dir, amount } => {
            let issuer = dir.connect()?;
            let mut w = open_wallet(&file.wallet, &*issuer, now)?;
            w.request_allowance(&*issuer, amount, now)?;
            println!(
                "allowance {amount} issued; allowance held {}",
                w.allowance_balance(issuer.keysets())
            );
        }
        WalletCmd::Pay {
            file,
            dir,
            to,
            amount,
            out,
        } => {
            let issuer = dir.connect()?;
            let to: Address = to.parse()?;
            let mut w = open_wallet(&file.wallet, &*issuer, now)?;
            // The coins are journalled in flight before the file is written (never paid
            // twice), and the wallet saved after; `wallet recover` finishes a crash.
            let payment = w.pay(&*issuer, &to, amount, &out, now)?;
            println!(
                "paid {amount} in {} coins to {to}; payment written to {}",
                payment.coins.len(),
                out.display()
            );
        }
        WalletCmd::Receive { file, dir, payment } => {
            let issuer = dir.connect()?;
            let (keysets, policy) = (issuer.keysets(), issuer.policy());
            let bytes = std::fs::read(&payment)?;
            let payment = Payment::from_bytes(&bytes)?;
            let mut w = open_wallet(&file.wallet, &*issuer, now)?;
            let report = w.receive(keysets, policy, issuer.credential_keys(), &payment, now);
            w.save()?;
            print_json(&report);
        }
        WalletCmd::Balance { file, dir } => {
            let issuer = dir.connect()?;
            let keysets = issuer.keysets();
            let w = Wallet::open(&file.wallet)?;
            // Allowance v2: what today's slots of each v2 class can still receive.
            let policy = issuer.policy();
            let receive_limit_left: serde_json::Map<String, serde_json::Value> = policy
                .class
                .iter()
                .filter(|(_, c)| c.allowance_scheme == crate::protocol::policy::AllowanceScheme::V2)
                .map(|(name, _)| {
                    (
                        name.clone(),
                        serde_json::json!(w.receive_limit_left(policy, name, now)),
                    )
                })
                .collect();
            print_json(&serde_json::json!({
                "address": w.address().to_string(),
                "balance": w.balance(keysets)?,
                "coins": w.coins().len(),
                "allowance": w.allowance_balance(keysets),
                "receive_limit_left": receive_limit_left,
                "in_flight": w.in_flight(keysets),
                "pending_operations": w.pending_count(),
            }));
        }
        WalletCmd::Recover { file, dir } => {
            let issuer = dir.connect()?;
            let mut w = Wallet::open(&file.wallet)?;
            let report = w.recover(&*issuer, now)?;
            let pending = w.pending_count();
            print_json(&serde_json::json!({ "operations": report, "still_pending": pending }));
            if pending > 0 {
                return Err(format!("{pending} operation(s) still pending").into());
            }
        }
        WalletCmd::Deposit {
            file,
            dir,
            account,
            amount,
        } => {
            let issuer = dir.connect()?;
            let mut w = open_wallet(&file.wallet, &*issuer, now)?;
            let outcomes = w.deposit(&*issuer, &account, amount, now)?;
            let credited: u64 = outcomes
                .iter()
                .filter(|o| o.receipt.is_some())
                .map(|o| o.value)
                .sum();
            let refused = outcomes.iter().filter(|o| o.error.is_some()).count();
            print_json(
                &serde_json::json!({ "credited": credited, "refused": refused, "coins": outcomes }),
            );
            if refused > 0 {
                return Err(format!("{refused} coin(s) refused").into());
            }
        }
    }
    Ok(())
}

/// `--allowance-scheme v1|v2`.
fn parse_allowance_scheme(s: &str) -> Result<crate::protocol::policy::AllowanceScheme, String> {
    match s {
        "v1" => Ok(crate::protocol::policy::AllowanceScheme::V1),
        "v2" => Ok(crate::protocol::policy::AllowanceScheme::V2),
        other => Err(format!("{other:?}: expected v1 or v2")),
    }
}
