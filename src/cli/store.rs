//! `microcash store check | rebuild`: the operator's view of a store's durable files.

use std::path::PathBuf;

use clap::Subcommand;

use super::CliError;
use crate::engine::maintenance;

/// Store maintenance commands.
#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Verify journal frames, durable mark, checkpoint, maps against the journal, state.redb
    /// and every balance; change nothing. Exits 1 with a report when anything is wrong.
    Check {
        /// Store directory.
        #[arg(long, env = "MICROCASH_STORE", default_value = "microcash-store")]
        store: PathBuf,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Derive again everything the journal determines: maps, checkpoint, an unreadable mark.
    Rebuild {
        /// Store directory.
        #[arg(long, env = "MICROCASH_STORE", default_value = "microcash-store")]
        store: PathBuf,
        /// Last resort for a journal damaged at this byte (from `store check`), when no
        /// replica or backup holds it: move the journal from here on aside to
        /// `journal.wal.damaged-OFFSET`. The receipts in that tail are lost to the store.
        #[arg(long)]
        cut_journal_at: Option<u64>,
    },
}

/// `microcash audit`: prints the liability table and the reconciliation; exits 1 on any
/// mismatch.
pub fn run_audit(store: &std::path::Path, json: bool) -> Result<(), CliError> {
    let audit = crate::engine::audit::audit(store)?;
    if json {
        println!("{}", serde_json::to_string(&audit)?);
    } else {
        println!(
            "{:>5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>12} {:>14}",
            "epoch",
            "denomination",
            "withdrawn",
            "swap out",
            "deposited",
            "swap in",
            "outstanding",
            "value"
        );
        for l in &audit.coins {
            println!(
                "{:>5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>12} {:>14}",
                l.epoch,
                l.denomination,
                l.withdrawn,
                l.swapped_out,
                l.deposited,
                l.swapped_in,
                l.outstanding,
                l.outstanding_value
            );
        }
        for a in &audit.allowances {
            println!(
                "allowance epoch {:>4}: {} tokens signed ({} units), {} spent",
                a.epoch, a.issued, a.issued_value, a.spent
            );
        }
        println!(
            "issued {}  redeemed {}  outstanding (liability) {}  swap fees {}",
            audit.issued_value, audit.redeemed_value, audit.outstanding_value, audit.swap_fees
        );
        let balances: i128 = audit.accounts.iter().map(|a| a.balance).sum();
        println!("{} accounts, balances {balances}", audit.accounts.len());
        for p in &audit.problems {
            println!("MISMATCH {p}");
        }
    }
    if !audit.problems.is_empty() {
        return Err(format!(
            "audit of {}: {} mismatch(es)",
            store.display(),
            audit.problems.len()
        )
        .into());
    }
    Ok(())
}

/// Runs a store command.
pub fn run(cmd: StoreCmd) -> Result<(), CliError> {
    match cmd {
        StoreCmd::Check { store, json } => {
            let report = maintenance::check_store(&store)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let s = &report.spent;
                println!(
                    "journal   {} bytes, {} frames, {} receipts, acknowledged to byte {}{}",
                    s.journal_bytes,
                    s.frames,
                    s.entries,
                    s.durable,
                    s.torn_tail_at
                        .map(|t| format!(", torn tail from byte {t} (cut on next open)"))
                        .unwrap_or_default()
                );
                for (epoch, state) in &s.maps {
                    println!("epoch {epoch:<4} maps {state}");
                }
                for a in &report.accounts {
                    println!(
                        "account {:<24} funded {:>12} withdrawn {:>12} credited {:>12} balance {:>12}",
                        a.name, a.funded, a.withdrawn, a.credited, a.balance
                    );
                }
                for p in &report.problems {
                    println!("PROBLEM {p}");
                }
            }
            if !report.problems.is_empty() {
                return Err(format!(
                    "store {} has {} problem(s); see docs/engine.md, \"When a store refuses to open\"",
                    store.display(),
                    report.problems.len()
                )
                .into());
            }
            if !json {
                println!("store {} is sound", store.display());
            }
        }
        StoreCmd::Rebuild {
            store,
            cut_journal_at,
        } => {
            let bar = super::progress_bar(
                "{spinner} replaying the settlement journal [{bar:40}] {bytes}/{total_bytes}",
            );
            let report = maintenance::rebuild_store(&store, cut_journal_at, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            if let Some(to) = &report.moved_tail_to {
                println!("moved {} damaged journal bytes to {to}", report.moved_bytes);
            }
            println!(
                "rebuilt maps of epochs {:?} from {} receipts",
                report.epochs, report.entries
            );
        }
    }
    Ok(())
}
