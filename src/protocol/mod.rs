//! Protocol v1: coins, keysets, blind issuance, stealth payments, chained transfers,
//! deposits, swaps and allowance tokens. Knows coins; knows nothing of threads or files.
//!
//! See `docs/protocol.md` for byte layouts, flows and the security arguments.

pub mod allowance;
pub mod coin;
pub mod credential;
pub mod deposit;
pub mod encoding;
pub mod hints;
pub mod keys;
pub mod keyset;
pub mod policy;
pub mod spend;
pub mod stealth;
pub mod tags;
pub mod verify;
pub mod withdraw;

#[cfg(test)]
mod tests;
