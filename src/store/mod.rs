//! The store's files below the engine: the issuer directory's keys and public parameters
//! ([`files`]) and its state in redb ([`state`]: accounts, wallets, tokens, the issuance
//! record). The spent set and its journal (`crate::spentset`) sit beside it. `engine`,
//! `issuer`, `dataset` and the CLI use these through methods; nothing here knows about
//! them.

pub mod files;
pub mod state;
