//! The owner's side of spending: appending a payment link, depositing, spending allowance.

use rand_core::CryptoRng;

use super::coin::{
    allowance_binding, allowance_spend_message, AllowanceSpend, AllowanceToken, Coin, Link, LinkV2,
    PaymentContext,
};
use super::credential::{
    Credential, CredentialKey, Presentation, PresentationContext, PresentationError,
};
use super::deposit::{CreditTarget, Deposit};
use super::keys::{OwnerKey, OwnerSecret};
use super::policy::DAY_SECS;
use super::stealth::{
    one_time_key, one_time_key_committed, one_time_key_committed_for_own_wallet,
    one_time_key_for_own_wallet, stealth_opening, Address,
};

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

/// What a wallet needs to present allowance v2 for a coin it received: the class's
/// credential key, its credential for the receipt day, its address secret k, and the slots
/// of that day's schedule to use.
#[derive(Clone, Copy, Debug)]
pub struct Presenter<'a> {
    /// The credential key of the coin's class and the credential's epoch.
    pub key: &'a CredentialKey,
    /// The wallet's credential for the day of the coin's receipt.
    pub credential: &'a Credential,
    /// The receiving wallet's address secret k (W = k·G).
    pub wallet: &'a OwnerSecret,
    /// Distinct slots of the day's schedule, worth at least the coin's value.
    pub slots: &'a [u16],
}

/// Why a v2 link or deposit could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V2SpendError {
    /// The coin was not received in a v2 link (no payer's commitment to present against).
    #[error("the coin's last link carries no allowance v2 commitment")]
    NotReceivedInV2,
    /// The presentation could not be made.
    #[error(transparent)]
    Presentation(#[from] PresentationError),
}

impl OwnedCoin {
    /// The presentation for this coin's receipt, bound to `binding`.
    fn present<R: CryptoRng + ?Sized>(
        &self,
        presenter: &Presenter<'_>,
        binding: &[u8; 32],
        rng: &mut R,
    ) -> Result<Box<Presentation>, V2SpendError> {
        let link = self
            .coin
            .links
            .last()
            .ok_or(V2SpendError::NotReceivedInV2)?;
        let v2 = link.v2.as_ref().ok_or(V2SpendError::NotReceivedInV2)?;
        let opening = stealth_opening(presenter.wallet, &link.ephemeral);
        let ctx = PresentationContext {
            day: link.context.time / DAY_SECS,
            receiving_key: &link.one_time_key,
            stealth_commitment: &v2.stealth_commitment,
            binding,
        };
        Ok(Box::new(Presentation::create(
            presenter.key,
            presenter.credential,
            presenter.wallet,
            &opening,
            &ctx,
            presenter.slots,
            rng,
        )?))
    }

    /// Pays the coin of an allowance v2 class to `to`: the link carries the commitment to
    /// the payee's stealth tweak, and — when this wallet received the coin — `presenter`'s
    /// presentation for that receipt.
    pub fn pay_v2<R: CryptoRng + ?Sized>(
        &self,
        to: &Address,
        context: PaymentContext,
        presenter: Option<&Presenter<'_>>,
        rng: &mut R,
    ) -> Result<Coin, V2SpendError> {
        let (ephemeral, one_time_key, commitment) = one_time_key_committed(to, rng);
        self.link_v2(ephemeral, one_time_key, commitment, context, presenter, rng)
    }

    /// [`OwnedCoin::pay_v2`] to the wallet of `wallet_secret` (simulations playing payer
    /// and payee), with the payee's secret.
    pub fn pay_own_wallet_v2<R: CryptoRng + ?Sized>(
        &self,
        wallet_secret: &OwnerSecret,
        context: PaymentContext,
        presenter: Option<&Presenter<'_>>,
        rng: &mut R,
    ) -> Result<OwnedCoin, V2SpendError> {
        let (ephemeral, secret, commitment) =
            one_time_key_committed_for_own_wallet(wallet_secret, rng);
        Ok(OwnedCoin {
            coin: self.link_v2(
                ephemeral,
                secret.public(),
                commitment,
                context,
                presenter,
                rng,
            )?,
            secret,
        })
    }

    fn link_v2<R: CryptoRng + ?Sized>(
        &self,
        ephemeral: OwnerKey,
        one_time_key: OwnerKey,
        stealth_commitment: [u8; 32],
        context: PaymentContext,
        presenter: Option<&Presenter<'_>>,
        rng: &mut R,
    ) -> Result<Coin, V2SpendError> {
        let body = self.link_body(&ephemeral, &one_time_key, &context);
        let presentation = match presenter {
            Some(p) => Some(self.present(p, &allowance_binding(BIND_LINK, &body), rng)?),
            None => None,
        };
        let v2 = LinkV2 {
            stealth_commitment,
            presentation,
        };
        Ok(self.signed_link(
            body,
            ephemeral,
            one_time_key,
            context,
            Vec::new(),
            Some(v2),
            rng,
        ))
    }

    /// Deposits a coin of an allowance v2 class: with `presenter`'s presentation when this
    /// wallet received the coin.
    pub fn deposit_v2<R: CryptoRng + ?Sized>(
        &self,
        target: CreditTarget,
        time: u64,
        presenter: Option<&Presenter<'_>>,
        rng: &mut R,
    ) -> Result<Deposit, V2SpendError> {
        let (deposit_id, body) = self.deposit_body(&target, time, rng);
        let presentation = match presenter {
            Some(p) => Some(self.present(p, &allowance_binding(BIND_DEPOSIT, &body), rng)?),
            None => None,
        };
        Ok(self.signed_deposit(
            body,
            target,
            deposit_id,
            time,
            Vec::new(),
            presentation,
            rng,
        ))
    }

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
        let body = self.link_body(&ephemeral, &one_time_key, &context);
        let binding = allowance_binding(BIND_LINK, &body);
        let spends: Vec<_> = allowances.iter().map(|a| a.spend(&binding, rng)).collect();
        self.signed_link(body, ephemeral, one_time_key, context, spends, None, rng)
    }

    /// The body of the next link.
    fn link_body(
        &self,
        ephemeral: &OwnerKey,
        one_time_key: &OwnerKey,
        context: &PaymentContext,
    ) -> Vec<u8> {
        let digests = self.coin.chain_digests();
        #[allow(clippy::expect_used, reason = "chain_digests always holds d₀")]
        let prev = digests.last().expect("d₀ always exists");
        Link::body(&self.coin.serial(), prev, ephemeral, one_time_key, context)
    }

    /// The coin with the signed link appended.
    #[allow(
        clippy::too_many_arguments,
        reason = "the link's fields, each needed once"
    )]
    fn signed_link<R: CryptoRng + ?Sized>(
        &self,
        body: Vec<u8>,
        ephemeral: OwnerKey,
        one_time_key: OwnerKey,
        context: PaymentContext,
        spends: Vec<AllowanceSpend>,
        v2: Option<LinkV2>,
        rng: &mut R,
    ) -> Coin {
        let signature = self
            .secret
            .sign(rng, &Link::signed_message(&body, &spends, v2.as_ref()));
        let mut coin = self.coin.clone();
        coin.links.push(Link {
            ephemeral,
            one_time_key,
            context,
            allowances: spends,
            v2,
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
        let (deposit_id, body) = self.deposit_body(&target, time, rng);
        let binding = allowance_binding(BIND_DEPOSIT, &body);
        let spends: Vec<_> = allowances.iter().map(|a| a.spend(&binding, rng)).collect();
        self.signed_deposit(body, target, deposit_id, time, spends, None, rng)
    }

    /// A fresh deposit id and the deposit body.
    fn deposit_body<R: CryptoRng + ?Sized>(
        &self,
        target: &CreditTarget,
        time: u64,
        rng: &mut R,
    ) -> ([u8; 16], Vec<u8>) {
        let mut deposit_id = [0u8; 16];
        rng.fill_bytes(&mut deposit_id);
        let digests = self.coin.chain_digests();
        #[allow(clippy::expect_used, reason = "chain_digests always holds d₀")]
        let last = digests.last().expect("d₀ always exists");
        let body = Deposit::body(&self.coin.serial(), last, target, &deposit_id, time);
        (deposit_id, body)
    }

    /// The signed deposit.
    #[allow(
        clippy::too_many_arguments,
        reason = "the deposit's fields, each needed once"
    )]
    fn signed_deposit<R: CryptoRng + ?Sized>(
        &self,
        body: Vec<u8>,
        target: CreditTarget,
        deposit_id: [u8; 16],
        time: u64,
        spends: Vec<AllowanceSpend>,
        presentation: Option<Box<Presentation>>,
        rng: &mut R,
    ) -> Deposit {
        let signature = self.secret.sign(
            rng,
            &Deposit::signed_message(&body, &spends, presentation.as_deref()),
        );
        Deposit {
            coin: self.coin.clone(),
            target,
            deposit_id,
            time,
            allowances: spends,
            presentation,
            signature,
        }
    }
}
