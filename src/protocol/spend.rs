//! The owner's side of spending: appending a payment link, depositing, spending allowance.

use rand_core::CryptoRng;

use super::coin::{
    allowance_binding, allowance_spend_message, AllowanceSpend, AllowanceToken, Coin, Link,
    PaymentContext,
};
use super::deposit::{CreditTarget, Deposit};
use super::keys::{OwnerKey, OwnerSecret};
use super::stealth::{one_time_key, one_time_key_for_own_wallet, Address};

/// Binding kind for allowance spends on a link.
pub(crate) const BIND_LINK: u8 = 1;
/// Binding kind for allowance spends on a deposit.
pub(crate) const BIND_DEPOSIT: u8 = 2;

/// A coin together with the secret of its current owner key.
#[derive(Clone, Debug)]
pub struct OwnedCoin {
    /// The coin.
    pub coin: Coin,
    /// Secret of `coin.owner_key()`.
    pub secret: OwnerSecret,
}

/// An allowance token with its secret.
#[derive(Clone, Debug)]
pub struct OwnedAllowance {
    /// The token.
    pub token: AllowanceToken,
    /// Secret of `token.key`.
    pub secret: OwnerSecret,
}

impl OwnedAllowance {
    /// Spends the token on whatever `binding` describes.
    pub fn spend<R: CryptoRng + ?Sized>(&self, binding: &[u8; 32], rng: &mut R) -> AllowanceSpend {
        let msg = allowance_spend_message(&self.token.serial(), binding);
        AllowanceSpend {
            token: self.token,
            signature: self.secret.sign(rng, &msg),
        }
    }
}

impl OwnedCoin {
    /// Whether this wallet received the coin in a link (so re-spending or depositing it
    /// needs allowance, where the class requires it).
    pub fn was_received(&self) -> bool {
        !self.coin.links.is_empty()
    }

    /// Pays the coin to `to`: appends a link signed with the current owner's secret. The
    /// result is the coin as the payee will hold it (without the payee's secret).
    pub fn pay<R: CryptoRng + ?Sized>(
        &self,
        to: &Address,
        context: PaymentContext,
        allowances: &[OwnedAllowance],
        rng: &mut R,
    ) -> Coin {
        let (ephemeral, one_time_key) = one_time_key(to, rng);
        self.link_to(ephemeral, one_time_key, context, allowances, rng)
    }

    /// [`OwnedCoin::pay`] to the wallet of `wallet_secret`, for simulations that play payer
    /// and payee (the dataset generator): the same coin `pay` makes from the same `rng`, and
    /// the payee's secret of it, without the stealth key exchange's two variable-base
    /// multiplications.
    pub fn pay_own_wallet<R: CryptoRng + ?Sized>(
        &self,
        wallet_secret: &OwnerSecret,
        context: PaymentContext,
        allowances: &[OwnedAllowance],
        rng: &mut R,
    ) -> OwnedCoin {
        let (ephemeral, secret) = one_time_key_for_own_wallet(wallet_secret, rng);
        OwnedCoin {
            coin: self.link_to(ephemeral, secret.public(), context, allowances, rng),
            secret,
        }
    }

    /// This coin with a link to `one_time_key`, signed by its owner.
    fn link_to<R: CryptoRng + ?Sized>(
        &self,
        ephemeral: OwnerKey,
        one_time_key: OwnerKey,
        context: PaymentContext,
        allowances: &[OwnedAllowance],
        rng: &mut R,
    ) -> Coin {
        let digests = self.coin.chain_digests();
        #[allow(clippy::expect_used, reason = "chain_digests always holds d₀")]
        let prev = digests.last().expect("d₀ always exists");
        let body = Link::body(
            &self.coin.serial(),
            prev,
            &ephemeral,
            &one_time_key,
            &context,
        );
        let binding = allowance_binding(BIND_LINK, &body);
        let spends: Vec<_> = allowances.iter().map(|a| a.spend(&binding, rng)).collect();
        let signature = self.secret.sign(rng, &Link::signed_message(&body, &spends));
        let mut coin = self.coin.clone();
        coin.links.push(Link {
            ephemeral,
            one_time_key,
            context,
            allowances: spends,
            signature,
        });
        coin
    }

    /// Deposits the coin to `target` (an account, or a swap's outputs).
    pub fn deposit<R: CryptoRng + ?Sized>(
        &self,
        target: CreditTarget,
        time: u64,
        allowances: &[OwnedAllowance],
        rng: &mut R,
    ) -> Deposit {
        let mut deposit_id = [0u8; 16];
        rng.fill_bytes(&mut deposit_id);
        let digests = self.coin.chain_digests();
        #[allow(clippy::expect_used, reason = "chain_digests always holds d₀")]
        let last = digests.last().expect("d₀ always exists");
        let body = Deposit::body(&self.coin.serial(), last, &target, &deposit_id, time);
        let binding = allowance_binding(BIND_DEPOSIT, &body);
        let spends: Vec<_> = allowances.iter().map(|a| a.spend(&binding, rng)).collect();
        let signature = self
            .secret
            .sign(rng, &Deposit::signed_message(&body, &spends));
        Deposit {
            coin: self.coin.clone(),
            target,
            deposit_id,
            time,
            allowances: spends,
            signature,
        }
    }
}
