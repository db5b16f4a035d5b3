//! The issuer: its keys on disk ([`files`]), its state in an embedded crash-safe store
//! ([`store`], redb) and the operations wallets and back offices call ([`service`]).
//!
//! [`IssuerApi`] is the wallet's view of an issuer; [`Issuer`] implements it in-process
//! (local files), and [`crate::client::HttpIssuer`] over the network. Failures are sorted by
//! who is at fault ([`error`]).

pub mod error;
pub mod service;

pub use error::{
    CallError, IssuerError, Misuse, OutputFault, RemoteFailure, RequestRefusal, StorageFault,
};
pub use service::{Issuer, Receipt};

use microcash_kernels::bls::G1Affine;

use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::credential::{
    CredentialIssue, CredentialKeys, CredentialRequest, Registration,
};
use crate::protocol::deposit::{AccountName, BlindedOutput, Deposit, SwapRequest};
use crate::protocol::keyset::KeysetList;
use crate::protocol::policy::Policy;
use crate::protocol::stealth::Address;

/// What a wallet needs from an issuer.
pub trait IssuerApi {
    /// The published keysets.
    fn keysets(&self) -> &KeysetList;
    /// The published policy.
    fn policy(&self) -> &Policy;
    /// Signs blinded coins, debiting `account`.
    fn withdraw(
        &self,
        account: &AccountName,
        outputs: &[BlindedOutput],
        now: u64,
    ) -> Result<Vec<G1Affine>, CallError>;
    /// Spends the inputs and signs the outputs.
    fn swap(&self, request: &SwapRequest, now: u64) -> Result<Vec<G1Affine>, CallError>;
    /// Registers a wallet address under an identity.
    fn register_wallet(&self, address: &Address, identity: &str) -> Result<(), CallError>;
    /// Signs blinded allowance tokens within the daily cap.
    fn issue_allowance(
        &self,
        request: &AllowanceRequest,
        now: u64,
    ) -> Result<Vec<G1Affine>, CallError>;
    /// Deposits one coin.
    fn deposit(&self, deposit: &Deposit, now: u64) -> Result<Receipt, CallError>;
    /// Allowance v2: the published credential keys (public parameters; a wallet takes
    /// keys from here, never from an answer).
    fn credential_keys(&self) -> &CredentialKeys;
    /// Allowance v2: registers a wallet for a class (back office: admin token over HTTP).
    /// Returns the identity's previous wallet, now revoked.
    fn register_v2(&self, registration: &Registration) -> Result<Option<Address>, CallError>;
    /// Allowance v2: the wallet's credential for a class and day, with the id of the key
    /// that made it.
    fn issue_credential(
        &self,
        request: &CredentialRequest,
        now: u64,
    ) -> Result<([u8; 32], CredentialIssue), CallError>;
}
