//! microcash: privacy- and regulation-friendly micropayments (cryptographic e-cash).
//!
//! * [`protocol`] — coins, keysets, blind issuance, stealth and chained payments, deposits,
//!   swaps, allowance tokens, the reference verifier. No threads, no files.
//! * [`issuer`] — the issuer's keys on disk and its state in an embedded crash-safe store
//!   (redb): accounts, registered wallets, allowance issued, spent serials with receipts.
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
