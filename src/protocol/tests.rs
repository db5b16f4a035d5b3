//! Protocol-level tests of the reference verifier: the accepted flows and every rejection.

use microcash_kernels::bls;

use super::coin::{Coin, PaymentContext};
use super::deposit::{AccountName, CreditTarget, Deposit};
use super::encoding::{Decode, DecodeReason, Encode};
use super::keys::OwnerSecret;
use super::keyset::{Keyset, KeysetKind, KeysetList, Windows};
use super::policy::{Policy, PolicyRule, DAY_SECS};
use super::spend::{OwnedAllowance, OwnedCoin};
use super::stealth::{recognise, Address};
use super::verify::{AllowanceFault, Rejection, SpendSite, Verifier};
use super::withdraw::{blind, finish_allowance, finish_coin, sign_blinded};

const T0: u64 = 1_000 * DAY_SECS;
const NOW: u64 = T0 + DAY_SECS;

struct Fixture {
    keysets: KeysetList,
    secrets: Vec<bls::SecretKey>,
    policy: Policy,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_policy(Policy::default())
    }

    fn with_policy(policy: Policy) -> Fixture {
        let mut rng = crate::os_rng();
        let windows = Windows {
            withdraw_from: T0,
            withdraw_until: T0 + 30 * DAY_SECS,
            deposit_until: T0 + 120 * DAY_SECS,
        };
        let mut keysets = Vec::new();
        let mut secrets = Vec::new();
        for (kind, class) in [
            (KeysetKind::Coin, "standard"),
            (KeysetKind::Allowance, "allowance"),
        ] {
            for exp in 0..=10u8 {
                let sk = bls::SecretKey::generate(&mut rng);
                keysets.push(Keyset::new(kind, 1, exp, class, windows, sk.public_key()).unwrap());
                secrets.push(sk);
            }
        }
        Fixture {
            keysets: KeysetList::new(keysets).unwrap(),
            secrets,
            policy,
        }
    }

    fn keyset(&self, kind: KeysetKind, exp: u8) -> (&Keyset, &bls::SecretKey) {
        let i = self
            .keysets
            .iter()
            .position(|k| k.kind == kind && k.denomination_exp == exp)
            .unwrap();
        (self.keysets.iter().nth(i).unwrap(), &self.secrets[i])
    }

    fn coin(&self, exp: u8) -> OwnedCoin {
        let (ks, sk) = self.keyset(KeysetKind::Coin, exp);
        let (pending, out) = blind(ks, &mut crate::os_rng());
        finish_coin(pending, ks, &sign_blinded(sk, 0, &out).unwrap()).unwrap()
    }

    fn allowance(&self, exp: u8) -> OwnedAllowance {
        let (ks, sk) = self.keyset(KeysetKind::Allowance, exp);
        let (pending, out) = blind(ks, &mut crate::os_rng());
        finish_allowance(pending, ks, &sign_blinded(sk, 0, &out).unwrap()).unwrap()
    }

    fn verifier(&self) -> Verifier<'_> {
        Verifier::new(&self.keysets, &self.policy)
    }
}

fn ctx(amount: u64) -> PaymentContext {
    PaymentContext {
        payment_id: [7; 16],
        amount,
        time: NOW,
    }
}

fn wallet() -> (OwnerSecret, Address) {
    let w = OwnerSecret::generate(&mut crate::os_rng());
    let a = Address(w.public());
    (w, a)
}

/// Pays `coin` to a fresh wallet and returns the coin as that wallet owns it.
fn pay_to_new_wallet(coin: &OwnedCoin, amount: u64, allowance: &[OwnedAllowance]) -> OwnedCoin {
    let (w, addr) = wallet();
    let paid = coin.pay(&addr, ctx(amount), allowance, &mut crate::os_rng());
    let last = paid.links.last().unwrap();
    let secret = recognise(&w, &last.ephemeral, &last.one_time_key).expect("payee recognises");
    OwnedCoin { coin: paid, secret }
}

fn account_deposit(coin: &OwnedCoin, allowance: &[OwnedAllowance]) -> Deposit {
    coin.deposit(
        CreditTarget::Account(AccountName::new("shop").unwrap()),
        NOW,
        allowance,
        &mut crate::os_rng(),
    )
}

#[test]
fn withdrawn_coin_verifies_and_deposits() {
    let f = Fixture::new();
    let coin = f.coin(3);
    let v = f
        .verifier()
        .verify_deposit(&account_deposit(&coin, &[]), NOW)
        .unwrap();
    assert_eq!(v.value(), 8);
    assert_eq!(v.serial(), coin.coin.serial());
    assert!(v.allowance_serials().is_empty());
}

#[test]
fn chained_payment_with_allowance_verifies() {
    let f = Fixture::new();
    let a = f.coin(2);
    let b = pay_to_new_wallet(&a, 4, &[]); // first hop: the withdrawer pays, no allowance
    let allowance_b = f.allowance(2);
    let c = pay_to_new_wallet(&b, 4, &[allowance_b.clone()]); // B re-spends received value
    assert_eq!(c.coin.links.len(), 2);
    let allowance_c = f.allowance(2);
    let v = f
        .verifier()
        .verify_deposit(&account_deposit(&c, &[allowance_c.clone()]), NOW)
        .unwrap();
    assert_eq!(
        v.allowance_serials(),
        &[
            (allowance_b.token.serial(), 1),
            (allowance_c.token.serial(), 1)
        ]
    );
    assert_eq!(v.owner_keys().len(), 3);
}

#[test]
fn forged_issuer_signature_is_rejected() {
    let f = Fixture::new();
    let mut coin = f.coin(1);
    let rogue = bls::SecretKey::generate(&mut crate::os_rng());
    coin.coin.sigma = rogue.sign(&coin.coin.serial().0, super::tags::H1_DST);
    let e = f
        .verifier()
        .verify_deposit(&account_deposit(&coin, &[]), NOW)
        .unwrap_err();
    assert_eq!(e, Rejection::BadIssuerSignature("pairing check failed"));
}

#[test]
fn sigma_from_another_keyset_is_rejected() {
    let f = Fixture::new();
    let mut coin = f.coin(1);
    // Claim the coin is worth 1024 while σ was made under the keyset for 2.
    coin.coin.keyset_id = f.keyset(KeysetKind::Coin, 10).0.id;
    let e = f
        .verifier()
        .verify_deposit(&account_deposit(&coin, &[]), NOW)
        .unwrap_err();
    assert_eq!(e, Rejection::BadIssuerSignature("pairing check failed"));
    // A coin keyset id where an allowance token is expected is refused by kind.
    let mut token = f.allowance(1);
    token.token.keyset_id = f.keyset(KeysetKind::Coin, 1).0.id;
    let b = pay_to_new_wallet(&f.coin(1), 2, &[]);
    let e = f
        .verifier()
        .verify_deposit(&account_deposit(&b, &[token]), NOW)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Rejection::BadAllowance {
                site: SpendSite::Deposit,
                reason: AllowanceFault::Keyset(ref r),
            } if matches!(**r, Rejection::WrongKeysetKind(_))
        ),
        "{e:?}"
    );
}

#[test]
fn cofactor_component_of_sigma_is_harmless_and_only_its_owner_can_add_it() {
    // Decision (docs/protocol.md): σ + T (T of small order) passes the pairing, which is all
    // the verifier checks — unforgeability is untouched (σ's G1 part is a genuine signature)
    // and serials come from the keyset and X, never from σ. Because σ is bound into the
    // chain digest d₀, only the coin's owner can choose that form: a third party tweaking σ
    // in someone's deposit breaks the owner's signature.
    let f = Fixture::new();
    let coin = f.coin(1);
    let t = order_three_point();
    let tweaked_sigma = coin.coin.sigma.add(&t).unwrap();
    assert!(!tweaked_sigma.in_subgroup());
    // A third party tweaks σ in transit: refused.
    let mut d = account_deposit(&coin, &[]);
    d.coin.sigma = tweaked_sigma;
    assert_eq!(
        f.verifier().verify_deposit(&d, NOW).unwrap_err(),
        Rejection::BadDepositSignature
    );
    // The owner tweaks its own coin and signs it: accepted, and worth exactly the same.
    let mut own = coin.clone();
    own.coin.sigma = tweaked_sigma;
    let v = f
        .verifier()
        .verify_deposit(&account_deposit(&own, &[]), NOW)
        .unwrap();
    assert_eq!((v.serial(), v.value()), (coin.coin.serial(), 2));
    // A σ that is *only* torsion, or a tweaked forgery, still fails the pairing.
    let mut forged = coin.clone();
    forged.coin.sigma = t;
    assert_eq!(
        f.verifier().verify_coin(&forged.coin, NOW).unwrap_err(),
        Rejection::BadIssuerSignature("pairing check failed")
    );
}

fn order_three_point() -> bls::G1Affine {
    bls::testing::order_three_point()
}

#[test]
fn keyset_windows_bound_validity() {
    let f = Fixture::new();
    let coin = f.coin(0);
    let d = account_deposit(&coin, &[]);
    let id = coin.coin.keyset_id;
    assert_eq!(
        f.verifier().verify_deposit(&d, T0 - 1).unwrap_err(),
        Rejection::KeysetNotYetValid(id)
    );
    assert_eq!(
        f.verifier()
            .verify_deposit(&d, T0 + 120 * DAY_SECS)
            .unwrap_err(),
        Rejection::KeysetExpired(id)
    );
}

#[test]
fn deposit_deadline_is_a_policy_rule() {
    let f = Fixture::new();
    let coin = f.coin(0);
    let d = account_deposit(&coin, &[]);
    // Withdraw window ends at T0 + 30 d; the standard class allows 60 more days.
    let late = T0 + 91 * DAY_SECS;
    match f.verifier().verify_deposit(&d, late).unwrap_err() {
        Rejection::PolicyViolation { rule, .. } => assert_eq!(rule, PolicyRule::DepositDeadline),
        e => panic!("{e:?}"),
    }
}

#[test]
fn link_signed_by_a_non_owner_is_rejected() {
    let f = Fixture::new();
    let coin = f.coin(1);
    let thief = OwnedCoin {
        coin: coin.coin.clone(),
        secret: OwnerSecret::generate(&mut crate::os_rng()),
    };
    let stolen = pay_to_new_wallet(&thief, 2, &[]);
    let e = f.verifier().verify_coin(&stolen.coin, NOW).unwrap_err();
    assert_eq!(e, Rejection::BadLinkSignature { index: 0 });
}

#[test]
fn tampered_link_is_rejected() {
    let f = Fixture::new();
    let b = pay_to_new_wallet(&f.coin(1), 2, &[]);
    for tamper in 0..3 {
        let mut coin = b.coin.clone();
        match tamper {
            0 => coin.links[0].context.amount = 3,
            1 => coin.links[0].one_time_key = OwnerSecret::generate(&mut crate::os_rng()).public(),
            _ => coin.links[0].signature.bytes_mut()[40] ^= 1,
        }
        assert_eq!(
            f.verifier().verify_coin(&coin, NOW).unwrap_err(),
            Rejection::BadLinkSignature { index: 0 }
        );
    }
}

#[test]
fn hop_cap_is_enforced() {
    let mut policy = Policy::default();
    policy.class.get_mut("standard").unwrap().max_hops = 2;
    policy.class.get_mut("standard").unwrap().allowance_required = false;
    let f = Fixture::with_policy(policy);
    let mut c = f.coin(0);
    for _ in 0..2 {
        c = pay_to_new_wallet(&c, 1, &[]);
    }
    f.verifier().verify_coin(&c.coin, NOW).unwrap();
    let c3 = pay_to_new_wallet(&c, 1, &[]);
    assert_eq!(
        f.verifier().verify_coin(&c3.coin, NOW).unwrap_err(),
        Rejection::HopCapExceeded { hops: 3, max: 2 }
    );
}

#[test]
fn intercepted_coin_cannot_be_spent_without_the_stealth_secret() {
    let f = Fixture::new();
    let b = pay_to_new_wallet(&f.coin(1), 2, &[]);
    // An eavesdropper sees the coin but not w: it does not recognise it …
    let (eve_w, _) = wallet();
    let last = b.coin.links.last().unwrap();
    assert!(recognise(&eve_w, &last.ephemeral, &last.one_time_key).is_none());
    // … and whatever key it signs with, the next link or a deposit fails.
    let eve = OwnedCoin {
        coin: b.coin.clone(),
        secret: eve_w,
    };
    let onward = pay_to_new_wallet(&eve, 2, &[f.allowance(1)]);
    assert_eq!(
        f.verifier().verify_coin(&onward.coin, NOW).unwrap_err(),
        Rejection::BadLinkSignature { index: 1 }
    );
    let e = f
        .verifier()
        .verify_deposit(&account_deposit(&eve, &[f.allowance(1)]), NOW)
        .unwrap_err();
    assert_eq!(e, Rejection::BadDepositSignature);
}

#[test]
fn received_value_needs_allowance_to_move_on() {
    let f = Fixture::new();
    let b = pay_to_new_wallet(&f.coin(3), 8, &[]);
    // Deposit without allowance.
    let e = f
        .verifier()
        .verify_deposit(&account_deposit(&b, &[]), NOW)
        .unwrap_err();
    assert_eq!(
        e,
        Rejection::AllowanceMissing {
            site: SpendSite::Deposit,
            need: 8
        }
    );
    // Deposit with too little.
    let e = f
        .verifier()
        .verify_deposit(&account_deposit(&b, &[f.allowance(2)]), NOW)
        .unwrap_err();
    assert_eq!(
        e,
        Rejection::AllowanceShort {
            site: SpendSite::Deposit,
            need: 8,
            have: 4
        }
    );
    // Re-spend without allowance.
    let c = pay_to_new_wallet(&b, 8, &[]);
    assert_eq!(
        f.verifier().verify_coin(&c.coin, NOW).unwrap_err(),
        Rejection::AllowanceMissing {
            site: SpendSite::Link(1),
            need: 8
        }
    );
    // Two tokens that together cover it are fine.
    f.verifier()
        .verify_deposit(&account_deposit(&b, &[f.allowance(2), f.allowance(2)]), NOW)
        .unwrap();
}

#[test]
fn allowance_token_cannot_be_used_twice_in_one_coin() {
    let f = Fixture::new();
    let b = pay_to_new_wallet(&f.coin(2), 4, &[]);
    let token = f.allowance(2);
    let c = pay_to_new_wallet(&b, 4, &[token.clone()]);
    let e = f
        .verifier()
        .verify_deposit(&account_deposit(&c, &[token.clone()]), NOW)
        .unwrap_err();
    assert_eq!(
        e,
        Rejection::AllowanceReused {
            serial: token.token.serial()
        }
    );
}

#[test]
fn allowance_spend_is_bound_to_its_link() {
    let f = Fixture::new();
    let b = pay_to_new_wallet(&f.coin(2), 4, &[]);
    let d1 = account_deposit(&b, &[f.allowance(2)]);
    // Move the (valid) allowance spend of one deposit onto another deposit of the same coin.
    let mut d2 = account_deposit(&b, &[f.allowance(2)]);
    d2.allowances = d1.allowances.clone();
    let e = f.verifier().verify_deposit(&d2, NOW).unwrap_err();
    // The owner signature covers the allowance list, so that fails first.
    assert_eq!(e, Rejection::BadDepositSignature);
}

#[test]
fn payment_policy_rules_are_reported_by_name() {
    let mut policy = Policy::default();
    policy.class.get_mut("standard").unwrap().min_payment = 2;
    policy.class.get_mut("standard").unwrap().max_payment = 100;
    let f = Fixture::with_policy(policy);
    let rule_of = |c: &OwnedCoin| match f.verifier().verify_coin(&c.coin, NOW).unwrap_err() {
        Rejection::PolicyViolation { rule, .. } => rule,
        e => panic!("{e:?}"),
    };
    assert_eq!(
        rule_of(&pay_to_new_wallet(&f.coin(0), 1, &[])),
        PolicyRule::MinPayment
    );
    assert_eq!(
        rule_of(&pay_to_new_wallet(&f.coin(0), 101, &[])),
        PolicyRule::MaxPayment
    );
    assert_eq!(
        rule_of(&pay_to_new_wallet(&f.coin(4), 8, &[])),
        PolicyRule::CoinExceedsPayment
    );
}

#[test]
fn deposit_to_a_different_target_breaks_the_signature() {
    let f = Fixture::new();
    let coin = f.coin(1);
    let mut d = account_deposit(&coin, &[]);
    d.target = CreditTarget::Account(AccountName::new("mallory").unwrap());
    assert_eq!(
        f.verifier().verify_deposit(&d, NOW).unwrap_err(),
        Rejection::BadDepositSignature
    );
}

// ---------------------------------------------------------------------------------------
// Encodings

fn sample_deposit(f: &Fixture) -> Deposit {
    let b = pay_to_new_wallet(&f.coin(2), 4, &[]);
    let c = pay_to_new_wallet(&b, 4, &[f.allowance(2)]);
    account_deposit(&c, &[f.allowance(1), f.allowance(1)])
}

#[test]
fn encodings_round_trip() {
    let f = Fixture::new();
    let d = sample_deposit(&f);
    assert_eq!(Deposit::from_bytes(&d.to_bytes()).unwrap(), d);
    assert_eq!(Coin::from_bytes(&d.coin.to_bytes()).unwrap(), d.coin);
}

#[test]
fn malformed_encodings_are_rejected_with_their_reason() {
    let f = Fixture::new();
    let d = sample_deposit(&f);
    let bytes = d.to_bytes();
    let reason = |b: &[u8]| Deposit::from_bytes(b).unwrap_err().reason;
    // Version.
    let mut v = bytes.clone();
    v[0] = 9;
    assert_eq!(
        reason(&v),
        DecodeReason::UnsupportedVersion {
            what: "deposit",
            version: 9
        }
    );
    // Truncation and trailing bytes.
    assert!(matches!(
        reason(&bytes[..bytes.len() - 1]),
        DecodeReason::UnexpectedEnd(_)
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(reason(&long), DecodeReason::TrailingBytes(1));
    // Coin key X (offset: deposit version 1 + coin version 1 + keyset id 32).
    let mut x = bytes.clone();
    x[34..66].copy_from_slice(&[0u8; 32]);
    assert!(matches!(
        reason(&x),
        DecodeReason::BadPoint {
            what: "coin key X",
            ..
        }
    ));
    // σ not a valid compressed point.
    let mut s = bytes.clone();
    s[66] &= 0x7f;
    assert!(matches!(
        reason(&s),
        DecodeReason::BadPoint {
            what: "issuer signature",
            ..
        }
    ));
    // Link count above the maximum.
    let mut n = bytes.clone();
    n[114] = 200;
    assert!(matches!(
        reason(&n),
        DecodeReason::TooMany {
            what: "links",
            count: 200,
            ..
        }
    ));
    // Credit target: unknown tag and bad account name.
    let coin_len = d.coin.to_bytes().len();
    let mut t = bytes.clone();
    t[1 + coin_len] = 7;
    assert!(matches!(
        reason(&t),
        DecodeReason::BadValue {
            what: "credit target",
            ..
        }
    ));
    let mut a = bytes.clone();
    a[1 + coin_len + 2] = b' ';
    assert!(matches!(
        reason(&a),
        DecodeReason::BadValue {
            what: "account name",
            ..
        }
    ));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        /// Strictness: any byte string that decodes re-encodes to exactly itself, so every
        /// message has one encoding. Mutations of a real deposit either fail or stay canonical.
        #[test]
        fn decoding_is_canonical(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
                                 cut in any::<prop::sample::Index>()) {
            let f = FIXTURE.with(|f| f.clone());
            let mut bytes = f.to_bytes();
            for (i, x) in &flips {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            if let Ok(d) = Deposit::from_bytes(&bytes) {
                prop_assert_eq!(d.to_bytes(), bytes.clone());
            }
            let cut = cut.index(bytes.len());
            prop_assert!(Deposit::from_bytes(&bytes[..cut]).is_err());
        }
    }

    thread_local! {
        static FIXTURE: Deposit = sample_deposit(&Fixture::new());
    }
}

#[test]
fn decompression_hints_decode_to_the_same_message_and_wrong_hints_are_refused() {
    let f = Fixture::new();
    let d = sample_deposit(&f);
    let (bytes, hints) = d.to_bytes_with_hints();
    assert_eq!(
        bytes,
        d.to_bytes(),
        "hints never change the canonical encoding"
    );
    assert_eq!(Deposit::from_bytes_with_hints(&bytes, &hints).unwrap(), d);
    // Hints follow decode order: X (32 bytes), then σ (48 bytes), then the links.
    // σ: another y is off the curve.
    let mut bad = hints.clone();
    bad[47] ^= 1;
    assert!(matches!(
        Deposit::from_bytes_with_hints(&bytes, &bad)
            .unwrap_err()
            .reason,
        DecodeReason::BadPoint { .. }
    ));
    // A Pallas key hint: the negated y (the other square root) has the wrong sign.
    let x_key = d.coin.coin_key;
    let neg_y = ff::PrimeField::to_repr(
        &-Option::<pasta_curves::pallas::Base>::from(ff::PrimeField::from_repr(x_key.y_bytes()))
            .unwrap(),
    );
    let mut bad = hints.clone();
    bad[..32].copy_from_slice(&neg_y);
    assert!(matches!(
        Deposit::from_bytes_with_hints(&bytes, &bad)
            .unwrap_err()
            .reason,
        DecodeReason::BadPoint {
            what: "coin key X",
            ..
        }
    ));
    // R hints only accelerate: a wrong one (here the deposit signature's, the last hint)
    // falls back to decompressing R, and the message is the same.
    let mut bad = hints.clone();
    let n = bad.len();
    bad[n - 5] ^= 1;
    let decoded = Deposit::from_bytes_with_hints(&bytes, &bad).unwrap();
    assert_eq!(decoded, d);
    assert!(decoded.signature.r_point().is_none());
    assert!(Deposit::from_bytes_with_hints(&bytes, &hints)
        .unwrap()
        .signature
        .r_point()
        .is_some());
    // Missing and surplus hints.
    assert!(Deposit::from_bytes_with_hints(&bytes, &hints[..hints.len() - 1]).is_err());
    let mut long = hints.clone();
    long.push(0);
    assert!(Deposit::from_bytes_with_hints(&bytes, &long).is_err());
}

/// A kind-2 record's hints: decompression hints then one serial hint per issuer signature
/// (the coin's σ, the link's token, the deposit's two tokens), in the verifier's order.
/// The deposit decodes the same whatever follows; serial hints count only when complete.
#[test]
fn serial_hints_follow_the_verifiers_order_and_never_change_the_deposit() {
    use super::hints::{issuer_serials, HintedDeposit, SerialHints, SERIAL_HINT_LEN};
    use microcash_kernels::bls::map::sswu_hints;

    let f = Fixture::new();
    let d = sample_deposit(&f);
    let serials = issuer_serials(&d);
    assert_eq!(serials.len(), 4);
    assert_eq!(serials[0], d.coin.serial());
    assert_eq!(serials[1], d.coin.links[1].allowances[0].token.serial());
    assert_eq!(serials[3], d.allowances[1].token.serial());
    let (bytes, hints) = HintedDeposit::encode(&d);
    let (_, decompression) = d.to_bytes_with_hints();
    assert_eq!(hints.len(), decompression.len() + 4 * SERIAL_HINT_LEN);
    let decoded = HintedDeposit::decode(&bytes, &hints).unwrap();
    assert_eq!(decoded.deposit, d);
    let serial_hints = decoded
        .serial_hints
        .expect("complete serial hints are kept");
    assert_eq!(serial_hints, SerialHints::of(&d));
    for (i, s) in serials.iter().enumerate() {
        assert_eq!(
            serial_hints.get(i),
            Some(&sswu_hints(&s.0, super::tags::H1_DST))
        );
    }
    // Too few, too many, none, or damaged decompression hints: the same deposit, no
    // serial hints; wrong values are kept (the kernel checks each one where it is used).
    for cut in [
        &hints[..hints.len() - 1],
        &hints[..decompression.len()],
        &hints[..decompression.len() + SERIAL_HINT_LEN],
    ] {
        let h = HintedDeposit::decode(&bytes, cut).unwrap();
        assert_eq!(h.deposit, d);
        assert!(h.serial_hints.is_none());
    }
    let long = [hints.as_slice(), &[0u8; SERIAL_HINT_LEN]].concat();
    assert!(HintedDeposit::decode(&bytes, &long)
        .unwrap()
        .serial_hints
        .is_none());
    let mut damaged = hints.clone();
    damaged[47] ^= 1; // σ's y: the decompression hints no longer check out
    let h = HintedDeposit::decode(&bytes, &damaged).unwrap();
    assert_eq!((h.deposit, h.serial_hints), (d.clone(), None));
    let mut wrong = hints.clone();
    let n = wrong.len();
    wrong[n - 1] ^= 1;
    let h = HintedDeposit::decode(&bytes, &wrong).unwrap();
    assert_eq!(h.deposit, d);
    assert!(h.serial_hints.is_some_and(|s| s != SerialHints::of(&d)));
    // An undecodable deposit is an error whatever the hints.
    assert!(HintedDeposit::decode(&bytes[..bytes.len() - 1], &hints).is_err());
}

/// Allowance v2 classes through the reference verifier: chains within the cap, and every
/// refusal the v2 rules add.
mod allowance_v2 {
    use super::*;
    use crate::protocol::coin::LinkV2;
    use crate::protocol::credential::{
        Credential, CredentialKey, CredentialKeys, CredentialSecret, PresentationError,
    };
    use crate::protocol::policy::AllowanceScheme;
    use crate::protocol::spend::{Presenter, V2SpendError};

    const DAY: u64 = NOW / DAY_SECS;

    struct V2 {
        f: Fixture,
        /// With the issuer's secrets (the issuer's verifier).
        issuer_keys: CredentialKeys,
        /// Public keys only (a payee's verifier).
        public_keys: CredentialKeys,
        key: CredentialKey,
        secret: CredentialSecret,
        schedule: Vec<u64>,
    }

    fn v2_policy() -> Policy {
        let mut p = Policy::default();
        p.class.get_mut("standard").unwrap().allowance_scheme = AllowanceScheme::V2;
        p
    }

    fn setup() -> V2 {
        let f = Fixture::with_policy(v2_policy());
        let secret = CredentialSecret::generate(&mut crate::os_rng());
        let copy = || CredentialSecret::from_bytes(&secret.to_bytes()).unwrap();
        let key = CredentialKey::of(&secret, 1, "standard").unwrap();
        let mut issuer_keys = CredentialKeys::default();
        issuer_keys.insert_secret(key.clone(), copy());
        let mut public_keys = CredentialKeys::default();
        public_keys.insert_public(key.clone());
        let schedule = f.policy.slot_schedule();
        V2 {
            f,
            issuer_keys,
            public_keys,
            key,
            secret: copy(),
            schedule,
        }
    }

    struct Member {
        w: OwnerSecret,
        credential: Credential,
    }

    impl V2 {
        fn issuer(&self) -> Verifier<'_> {
            self.f
                .verifier()
                .with_credentials(&self.issuer_keys, &self.schedule)
                .redeeming()
        }
        fn payee(&self) -> Verifier<'_> {
            self.f
                .verifier()
                .with_credentials(&self.public_keys, &self.schedule)
        }
        fn member(&self) -> Member {
            let w = OwnerSecret::generate(&mut crate::os_rng());
            let credential = self
                .secret
                .issue(&self.key, &w.public(), DAY, &mut crate::os_rng())
                .open(&self.key, &w, DAY)
                .unwrap();
            Member { w, credential }
        }
        /// A slot worth exactly `value` (the schedule has every power of two up to 64).
        fn slot(&self, value: u64, nth: usize) -> u16 {
            self.schedule
                .iter()
                .enumerate()
                .filter(|(_, v)| **v == value)
                .nth(nth)
                .unwrap()
                .0 as u16
        }
    }

    fn presenter<'a>(v: &'a V2, m: &'a Member, slots: &'a [u16]) -> Presenter<'a> {
        Presenter {
            key: &v.key,
            credential: &m.credential,
            wallet: &m.w,
            slots,
        }
    }

    /// Pays `coin` to `to` (with `p`'s presentation for the payer's own receipt).
    fn pay(coin: &OwnedCoin, to: &Member, p: Option<&Presenter<'_>>) -> OwnedCoin {
        coin.pay_own_wallet_v2(&to.w, ctx(4), p, &mut crate::os_rng())
            .unwrap()
    }

    fn deposit(coin: &OwnedCoin, p: Option<&Presenter<'_>>) -> Deposit {
        coin.deposit_v2(
            CreditTarget::Account(AccountName::new("shop").unwrap()),
            NOW,
            p,
            &mut crate::os_rng(),
        )
        .unwrap()
    }

    #[test]
    fn a_v2_chain_within_the_cap_verifies_for_the_issuer_and_the_payee() {
        let v = setup();
        let (a, b, c) = (v.member(), v.member(), v.member());
        let coin = v.f.coin(2);
        let at_a = pay(&coin, &a, None);
        let slot_a = [v.slot(4, 0)];
        let at_b = pay(&at_a, &b, Some(&presenter(&v, &a, &slot_a)));
        let slots_b = [v.slot(2, 3), v.slot(1, 7), v.slot(1, 8)];
        let d = deposit(&at_b, Some(&presenter(&v, &b, &slots_b)));
        assert_eq!(Deposit::from_bytes(&d.to_bytes()).unwrap(), d);
        let verified = v.issuer().verify_deposit(&d, NOW).unwrap();
        // One tag per slot, in the credential key's epoch partition.
        assert_eq!(verified.allowance_serials().len(), 4);
        assert!(verified.allowance_serials().iter().all(|(_, e)| *e == 1));
        // The payee checks everything but the MAC.
        v.payee().verify_coin(&at_b.coin, NOW).unwrap();
        // A wallet's receipts of one day reuse tags only for the same slot: A's slot on
        // another coin gives the same tag (the spent set refuses the second).
        let other = pay(
            &pay(&v.f.coin(2), &a, None),
            &c,
            Some(&presenter(&v, &a, &slot_a)),
        );
        let tag = |coin: &Coin| {
            coin.links[1]
                .v2
                .as_ref()
                .unwrap()
                .presentation
                .as_ref()
                .unwrap()
                .slots[0]
                .tag
        };
        assert_eq!(tag(&other.coin), tag(&at_b.coin));
        // An unspent withdrawn coin deposits without presentation.
        v.issuer()
            .verify_deposit(&deposit(&v.f.coin(2), None), NOW)
            .unwrap();
    }

    #[test]
    fn missing_short_unknown_or_reused_allowance_is_refused() {
        let v = setup();
        let (a, b) = (v.member(), v.member());
        let at_a = pay(&v.f.coin(2), &a, None);
        // No presentation.
        let d = deposit(&at_a, None);
        assert_eq!(
            v.issuer().verify_deposit(&d, NOW).unwrap_err(),
            Rejection::AllowanceMissing {
                site: SpendSite::Deposit,
                need: 4
            }
        );
        // Worth less than the coin.
        let short = [v.slot(2, 0)];
        let d = deposit(&at_a, Some(&presenter(&v, &a, &short)));
        assert_eq!(
            v.issuer().verify_deposit(&d, NOW).unwrap_err(),
            Rejection::AllowanceShort {
                site: SpendSite::Deposit,
                need: 4,
                have: 2
            }
        );
        // A slot outside the schedule.
        let outside = [v.schedule.len() as u16];
        let d = deposit(&at_a, Some(&presenter(&v, &a, &outside)));
        assert!(matches!(
            v.issuer().verify_deposit(&d, NOW).unwrap_err(),
            Rejection::BadAllowance {
                reason: AllowanceFault::Slot(_),
                ..
            }
        ));
        // A verifier without the credential keys refuses the key as unknown.
        let ok = [v.slot(4, 0)];
        let d = deposit(&at_a, Some(&presenter(&v, &a, &ok)));
        assert!(matches!(
            v.f.verifier().verify_deposit(&d, NOW).unwrap_err(),
            Rejection::BadAllowance {
                reason: AllowanceFault::CredentialKey("unknown"),
                ..
            }
        ));
        // The same wallet using one slot twice in one coin: A → B → A → deposit.
        let at_b = pay(&at_a, &b, Some(&presenter(&v, &a, &ok)));
        let slot_b = [v.slot(4, 1)];
        let back = pay(&at_b, &a, Some(&presenter(&v, &b, &slot_b)));
        let d = deposit(&back, Some(&presenter(&v, &a, &ok)));
        assert!(matches!(
            v.issuer().verify_deposit(&d, NOW).unwrap_err(),
            Rejection::AllowanceReused { .. }
        ));
        // With another slot it is fine.
        let other = [v.slot(4, 2)];
        v.issuer()
            .verify_deposit(&deposit(&back, Some(&presenter(&v, &a, &other))), NOW)
            .unwrap();
    }

    /// A credential lent to another wallet (without its secret) makes presentations that
    /// the payee cannot tell apart, and the issuer refuses; a coin received outside v2
    /// (no commitment) cannot be presented for at all.
    #[test]
    fn a_lent_credential_is_refused_by_the_issuer() {
        let v = setup();
        let (a, b) = (v.member(), v.member());
        let at_b = pay(&v.f.coin(2), &b, None);
        let lent = Member {
            w: b.w.clone(),
            credential: a.credential.clone(),
        };
        let ok = [v.slot(4, 0)];
        let d = deposit(&at_b, Some(&presenter(&v, &lent, &ok)));
        assert_eq!(
            v.issuer().verify_deposit(&d, NOW).unwrap_err(),
            Rejection::BadAllowance {
                site: SpendSite::Deposit,
                reason: AllowanceFault::Presentation(PresentationError::BadProof)
            }
        );
        // The payee's public check cannot see the MAC (docs/protocol.md §8.5).
        let onward = pay(&at_b, &a, Some(&presenter(&v, &lent, &ok)));
        v.payee().verify_coin(&onward.coin, NOW).unwrap();
        assert!(v.issuer().verify_coin(&onward.coin, NOW).is_err());
        // A redeeming verifier without the key's secret refuses rather than half-checks,
        // honest presentations included.
        let honest = deposit(&at_b, Some(&presenter(&v, &b, &ok)));
        v.issuer().verify_deposit(&honest, NOW).unwrap();
        let keyless =
            v.f.verifier()
                .with_credentials(&v.public_keys, &v.schedule)
                .redeeming();
        assert!(matches!(
            keyless.verify_deposit(&honest, NOW).unwrap_err(),
            Rejection::BadAllowance {
                reason: AllowanceFault::CredentialKey(_),
                ..
            }
        ));
        // The wallet's own credential presenting for a coin paid to another wallet: the
        // prover cannot even make it.
        let not_mine = Member {
            w: a.w.clone(),
            credential: a.credential.clone(),
        };
        assert!(matches!(
            at_b.deposit_v2(
                CreditTarget::Account(AccountName::new("shop").unwrap()),
                NOW,
                Some(&presenter(&v, &not_mine, &ok)),
                &mut crate::os_rng()
            ),
            Err(V2SpendError::Presentation(
                PresentationError::CannotPresent(_)
            ))
        ));
    }

    #[test]
    fn the_scheme_and_the_receipt_days_are_the_classes() {
        let v = setup();
        let a = v.member();
        // A v1 link (no commitment) on a v2 class.
        let (w, addr) = wallet();
        let v1_link = v.f.coin(2).pay(&addr, ctx(4), &[], &mut crate::os_rng());
        assert!(matches!(
            v.issuer().verify_coin(&v1_link, NOW).unwrap_err(),
            Rejection::BadAllowance {
                reason: AllowanceFault::Scheme(_),
                ..
            }
        ));
        // v1 tokens on a v2 class deposit.
        let at_a = pay(&v.f.coin(2), &a, None);
        let with_tokens = at_a.deposit(
            CreditTarget::Account(AccountName::new("shop").unwrap()),
            NOW,
            &[v.f.allowance(2)],
            &mut crate::os_rng(),
        );
        assert!(matches!(
            v.issuer().verify_deposit(&with_tokens, NOW).unwrap_err(),
            Rejection::BadAllowance {
                reason: AllowanceFault::Scheme(_),
                ..
            }
        ));
        // v2 data on a v1 class: the same coin under the default (v1) policy.
        let v1 = Fixture {
            keysets: v.f.keysets.clone(),
            secrets: vec![],
            policy: Policy::default(),
        };
        assert!(matches!(
            v1.verifier().verify_coin(&at_a.coin, NOW).unwrap_err(),
            Rejection::BadAllowance {
                reason: AllowanceFault::Scheme(_),
                ..
            }
        ));
        let _ = w;
        // A link dated after the verifier's day, or before the link that paid its signer.
        let future = PaymentContext {
            time: NOW + DAY_SECS,
            ..ctx(4)
        };
        let c =
            v.f.coin(2)
                .pay_own_wallet_v2(&a.w, future, None, &mut crate::os_rng())
                .unwrap();
        assert!(matches!(
            v.issuer().verify_coin(&c.coin, NOW).unwrap_err(),
            Rejection::PolicyViolation {
                rule: PolicyRule::ReceiptDay,
                ..
            }
        ));
        let earlier = PaymentContext {
            time: NOW - DAY_SECS,
            ..ctx(4)
        };
        let ok = [v.slot(4, 0)];
        let (b, _) = (v.member(), ());
        let back = at_a
            .pay_own_wallet_v2(
                &b.w,
                earlier,
                Some(&presenter(&v, &a, &ok)),
                &mut crate::os_rng(),
            )
            .unwrap();
        assert!(matches!(
            v.issuer().verify_coin(&back.coin, NOW).unwrap_err(),
            Rejection::PolicyViolation {
                rule: PolicyRule::ReceiptDay,
                ..
            }
        ));
        // A link whose commitment was stripped breaks the payer's signature.
        let mut stripped = at_a.coin.clone();
        stripped.links[0].v2 = Some(LinkV2 {
            stealth_commitment: [0; 32],
            presentation: None,
        });
        assert_eq!(
            v.issuer().verify_coin(&stripped, NOW).unwrap_err(),
            Rejection::BadLinkSignature { index: 0 }
        );
    }
}
