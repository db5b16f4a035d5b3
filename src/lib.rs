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
//! * [`cli`] — the `microcash` command line (thin).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod dataset;
pub mod engine;
pub mod issuer;
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

/// Current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
