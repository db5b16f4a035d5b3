//! microcash: privacy- and regulation-friendly micropayments (cryptographic e-cash).
//!
//! * [`protocol`] — coins, keysets, blind issuance, stealth and chained payments, deposits,
//!   swaps, allowance tokens, the reference verifier. No threads, no files.
//! * [`spentset`], [`store`] — durable state below the engine: the spent set behind its
//!   settlement journal (the one source of truth for redemptions), and the issuer
//!   directory's keys and redb state (accounts, wallets, allowance issued, issuance record).
//! * [`engine`] — batched verification, settlement and the clearing pipeline; `store check`,
//!   `store rebuild` and the audit.
//! * [`issuer`] — the issuer's operations (withdraw, deposit, swap, allowance) over the
//!   engine and the store.
//! * [`wallet`] — a wallet file and the wallet operations over an [`issuer::IssuerApi`].
//! * [`client`] — the HTTP [`issuer::IssuerApi`] a wallet uses against `microcash serve`.
//! * [`server`] — the issuer's HTTP server (thin over [`issuer`] and [`engine`]): its own
//!   accept loop with connection limits and timeouts, the deposit coalescer, batch uploads
//!   and their worker, metrics.
//! * [`dataset`] — synthetic redemption days with their expected verdicts.
//! * [`bench`] — `microcash bench`: the engine against one-at-a-time verification (JSON).
//! * [`cli`] — the `microcash` command line (thin).
//!
//! `mmap` (private) is the memory-mapped file layer under the spent set; it and the
//! `microcash-kernels` crate are the only places with `unsafe`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod dataset;
pub mod engine;
pub mod issuer;
mod le;
mod mmap;
pub mod protocol;
pub mod server;
pub mod spentset;
pub mod store;
pub mod wallet;

/// The OS CSPRNG (`getrandom`), infallible form: key material, blinding factors and batch
/// weights come from here and nowhere else.
pub fn os_rng() -> rand_core::UnwrapErr<rand::rngs::SysRng> {
    rand_core::UnwrapErr(rand::rngs::SysRng)
}

/// A fast CSPRNG seeded from the OS (one per worker: batch weights are drawn per chunk).
pub fn seeded_rng() -> rand::rngs::StdRng {
    rand::SeedableRng::from_rng(&mut os_rng())
}

/// Current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
