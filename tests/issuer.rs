//! Issuer-side behaviour through the library: allowance issuance limits, the spent set
//! (double deposit, idempotent resubmission, allowance reuse), swaps, withdrawals, and the
//! unlinkability of withdrawals to deposits.

use microcash::engine::Verdict;
use microcash::issuer::{Issuer, IssuerApi, IssuerError, Misuse, OutputFault, RequestRefusal};
use microcash::protocol::allowance::AllowanceRequest;
use microcash::protocol::coin::{issuer_message_point, Serial};
use microcash::protocol::deposit::{AccountName, BlindedOutput, CreditTarget, SwapRequest};
use microcash::protocol::encoding::Encode;
use microcash::protocol::keys::OwnerSecret;
use microcash::protocol::keyset::{Keyset, KeysetKind};
use microcash::protocol::policy::{Policy, PolicyRule, DAY_SECS};
use microcash::protocol::spend::{OwnedAllowance, OwnedCoin};
use microcash::protocol::stealth::{recognise, Address};
use microcash::protocol::withdraw::{blind, finish_allowance, finish_coin, PendingIssue};
use microcash::wallet::Wallet;

const NOW: u64 = 20_000 * DAY_SECS + 3600;

struct Env {
    _tmp: tempfile::TempDir,
    issuer: Issuer,
}

fn env_with(policy: Policy) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let issuer = Issuer::init(&tmp.path().join("issuer"), policy, NOW).unwrap();
    issuer.create_account("alice", false).unwrap();
    issuer.fund("alice", 100_000).unwrap();
    issuer.create_account("shop", true).unwrap();
    issuer.create_account("bob", false).unwrap();
    Env { _tmp: tmp, issuer }
}

fn env() -> Env {
    env_with(Policy::default())
}

fn account(name: &str) -> AccountName {
    AccountName::new(name).unwrap()
}

fn keyset(e: &Env, kind: KeysetKind, exp: u8) -> Keyset {
    let class = if kind == KeysetKind::Coin {
        "standard"
    } else {
        "allowance"
    };
    e.issuer
        .keysets()
        .withdrawable(kind, class, exp, NOW)
        .unwrap()
        .clone()
}

fn withdraw_coin(e: &Env, exp: u8) -> OwnedCoin {
    let ks = keyset(e, KeysetKind::Coin, exp);
    let (pending, out) = blind(&ks, &mut microcash::os_rng());
    let answer = e.issuer.withdraw(&account("alice"), &[out], NOW).unwrap();
    finish_coin(pending, &ks, &answer[0]).unwrap()
}

/// Whether the spent set holds the coin's serial.
fn spent(e: &Env, coin: &OwnedCoin) -> bool {
    let epoch = e.issuer.keysets().get(&coin.coin.keyset_id).unwrap().epoch;
    e.issuer
        .engine()
        .spent()
        .lookup(epoch, &coin.coin.serial().0)
        .is_some()
}

fn registered_wallet(e: &Env) -> OwnerSecret {
    let w = OwnerSecret::generate(&mut microcash::os_rng());
    e.issuer
        .register_wallet(&Address(w.public()), "someone")
        .unwrap();
    w
}

fn request_allowance(
    e: &Env,
    w: &OwnerSecret,
    exps: &[u8],
    now: u64,
) -> Result<Vec<OwnedAllowance>, IssuerError> {
    let mut pending: Vec<(PendingIssue, Keyset)> = Vec::new();
    let mut outputs = Vec::new();
    for &exp in exps {
        let ks = keyset(e, KeysetKind::Allowance, exp);
        let (p, o) = blind(&ks, &mut microcash::os_rng());
        pending.push((p, ks));
        outputs.push(o);
    }
    let req = AllowanceRequest::sign(w, now / DAY_SECS, outputs, &mut microcash::os_rng());
    let answers = e.issuer.issue_allowance(&req, now)?;
    Ok(pending
        .into_iter()
        .zip(answers)
        .map(|((p, ks), a)| finish_allowance(p, &ks, &a).unwrap())
        .collect())
}

fn pay(coin: &OwnedCoin, allowance: &[OwnedAllowance]) -> OwnedCoin {
    let w = OwnerSecret::generate(&mut microcash::os_rng());
    let ctx = microcash::protocol::coin::PaymentContext {
        payment_id: [1; 16],
        amount: 1 << 16,
        time: NOW,
    };
    let paid = coin.pay(
        &Address(w.public()),
        ctx,
        allowance,
        &mut microcash::os_rng(),
    );
    let last = paid.links.last().unwrap();
    let secret = recognise(&w, &last.ephemeral, &last.one_time_key).unwrap();
    OwnedCoin { coin: paid, secret }
}

fn deposit_to(
    coin: &OwnedCoin,
    to: &str,
    allowance: &[OwnedAllowance],
) -> microcash::protocol::deposit::Deposit {
    coin.deposit(
        CreditTarget::Account(account(to)),
        NOW,
        allowance,
        &mut microcash::os_rng(),
    )
}

#[test]
fn allowance_beyond_the_daily_cap_is_refused_at_issuance() {
    let e = env();
    let w = registered_wallet(&e);
    // 512 + 256 + 128 + 64 + 32 + 8 = 1000: exactly the default cap.
    request_allowance(&e, &w, &[9, 8, 7, 6, 5, 3], NOW).unwrap();
    match request_allowance(&e, &w, &[0], NOW).unwrap_err() {
        IssuerError::Refused(RequestRefusal::AllowanceCapExceeded {
            limit: 1000,
            issued: 1000,
            requested: 1,
        }) => {}
        other => panic!("{other:?}"),
    }
    // The next UTC day the wallet may ask again (keysets stay open for withdrawal).
    request_allowance(&e, &w, &[3], NOW + DAY_SECS).unwrap();
    // A request dated for another day than the issuer's today is refused.
    let ks = keyset(&e, KeysetKind::Allowance, 0);
    let (_, o) = blind(&ks, &mut microcash::os_rng());
    let req = AllowanceRequest::sign(&w, NOW / DAY_SECS - 1, vec![o], &mut microcash::os_rng());
    assert!(matches!(
        e.issuer.issue_allowance(&req, NOW),
        Err(IssuerError::Refused(RequestRefusal::WrongDay { .. }))
    ));
}

/// A replayed allowance request (the wallet after a lost answer, or anyone who saw it) gets
/// the same signatures and is not charged against the day's cap again.
#[test]
fn a_replayed_allowance_request_is_answered_without_a_second_charge() {
    let e = env();
    let w = registered_wallet(&e);
    let ks = keyset(&e, KeysetKind::Allowance, 9); // 512 of the 1000 cap
    let (_, o) = blind(&ks, &mut microcash::os_rng());
    let req = AllowanceRequest::sign(&w, NOW / DAY_SECS, vec![o], &mut microcash::os_rng());
    let first = e.issuer.issue_allowance(&req, NOW).unwrap();
    for _ in 0..3 {
        assert_eq!(e.issuer.issue_allowance(&req, NOW).unwrap(), first);
    }
    // Re-signed by the wallet (a fresh signature over the same request): the same request.
    let again = AllowanceRequest::sign(
        &w,
        NOW / DAY_SECS,
        req.outputs.clone(),
        &mut microcash::os_rng(),
    );
    assert_eq!(e.issuer.issue_allowance(&again, NOW).unwrap(), first);
    // Only 512 were charged: 488 more still fit (256 + 128 + 64 + 32 + 8), one more does not.
    request_allowance(&e, &w, &[8, 7, 6, 5, 3], NOW).unwrap();
    assert!(matches!(
        request_allowance(&e, &w, &[0], NOW),
        Err(IssuerError::Refused(RequestRefusal::AllowanceCapExceeded {
            issued: 1000,
            ..
        }))
    ));
    // And the original request is still answered, at the cap, without a charge.
    assert_eq!(e.issuer.issue_allowance(&req, NOW).unwrap(), first);
    // A wallet recovering days later still gets its answer (not "wrong day"), within the
    // documented horizon; after it the request is a new one, for a past day: refused.
    let later = NOW + microcash::store::state::ALLOWANCE_REPLAY_DAYS * DAY_SECS;
    assert_eq!(e.issuer.issue_allowance(&req, later).unwrap(), first);
    // (A request made on that later day prunes the horizon.)
    let ks_later = e
        .issuer
        .keysets()
        .withdrawable(KeysetKind::Allowance, "allowance", 0, later + DAY_SECS)
        .unwrap()
        .clone();
    let (_, o) = blind(&ks_later, &mut microcash::os_rng());
    let today = (later + DAY_SECS) / DAY_SECS;
    let fresh = AllowanceRequest::sign(&w, today, vec![o], &mut microcash::os_rng());
    e.issuer.issue_allowance(&fresh, later + DAY_SECS).unwrap();
    assert!(matches!(
        e.issuer.issue_allowance(&req, later + DAY_SECS),
        Err(IssuerError::Refused(RequestRefusal::WrongDay { .. }))
    ));
}

/// A repeated withdrawal (a retry after a lost answer, a wallet's recovery, a replay by
/// anyone with the account token) gets the same signatures and is debited once — even when
/// the balance no longer covers it; once its keysets stop issuing it is refused, unsigned
/// and undebited.
#[test]
fn a_repeated_withdrawal_is_answered_without_a_second_debit() {
    let e = env();
    let ks = keyset(&e, KeysetKind::Coin, 16); // 65 536 of alice's 100 000
    let (_, out) = blind(&ks, &mut microcash::os_rng());
    let first = e.issuer.withdraw(&account("alice"), &[out], NOW).unwrap();
    assert_eq!(e.issuer.balance("alice").unwrap(), 100_000 - 65_536);
    for _ in 0..3 {
        assert_eq!(
            e.issuer.withdraw(&account("alice"), &[out], NOW).unwrap(),
            first
        );
    }
    assert_eq!(e.issuer.balance("alice").unwrap(), 100_000 - 65_536);
    // The same outputs for another account are another withdrawal.
    e.issuer.fund("bob", 70_000).unwrap();
    e.issuer.withdraw(&account("bob"), &[out], NOW).unwrap();
    assert_eq!(e.issuer.balance("bob").unwrap(), 70_000 - 65_536);
    // Past the keyset's withdraw window: refused before any debit.
    let closed = ks.windows.withdraw_until;
    assert!(matches!(
        e.issuer.withdraw(&account("alice"), &[out], closed),
        Err(IssuerError::Refused(RequestRefusal::BadOutput {
            reason: OutputFault::NotIssuing,
            ..
        }))
    ));
    assert_eq!(e.issuer.balance("alice").unwrap(), 100_000 - 65_536);
}

#[test]
fn allowance_needs_a_registered_wallet_and_its_signature() {
    let e = env();
    let stranger = OwnerSecret::generate(&mut microcash::os_rng());
    assert!(matches!(
        request_allowance(&e, &stranger, &[0], NOW),
        Err(IssuerError::Refused(RequestRefusal::WalletNotRegistered(_)))
    ));
    let w = registered_wallet(&e);
    let ks = keyset(&e, KeysetKind::Allowance, 0);
    let (_, o) = blind(&ks, &mut microcash::os_rng());
    let mut req = AllowanceRequest::sign(&w, NOW / DAY_SECS, vec![o], &mut microcash::os_rng());
    req.address = stranger.public(); // claim to be someone else
    assert!(matches!(
        e.issuer.issue_allowance(&req, NOW),
        Err(IssuerError::Refused(RequestRefusal::BadRequestSignature))
    ));
    assert!(matches!(
        e.issuer.register_wallet(&Address(w.public()), "again"),
        Err(IssuerError::Refused(
            RequestRefusal::WalletAlreadyRegistered(_)
        ))
    ));
}

#[test]
fn allowance_token_is_spent_once_across_deposits() {
    let e = env();
    let w = registered_wallet(&e);
    let tokens = request_allowance(&e, &w, &[4], NOW).unwrap();
    let b1 = pay(&withdraw_coin(&e, 4), &[]);
    let b2 = pay(&withdraw_coin(&e, 4), &[]);
    e.issuer
        .deposit(&deposit_to(&b1, "bob", &tokens), NOW)
        .unwrap();
    let err = e
        .issuer
        .deposit(&deposit_to(&b2, "bob", &tokens), NOW)
        .unwrap_err();
    assert!(
        matches!(err, IssuerError::Refused(RequestRefusal::Settlement(Verdict::AllowanceReused { ref serial })) if *serial == tokens[0].token.serial().to_string()),
        "{err:?}"
    );
    // The refused deposit left no trace: its coin is still unspent.
    assert!(!spent(&e, &b2));
    assert_eq!(e.issuer.balance("bob").unwrap(), 16);
}

#[test]
fn double_deposit_is_refused_with_evidence_and_resubmission_is_idempotent() {
    let e = env();
    let coin = withdraw_coin(&e, 3);
    let d = deposit_to(&coin, "bob", &[]);
    let r1 = e.issuer.deposit(&d, NOW).unwrap();
    assert!(!r1.replayed);
    let r2 = e.issuer.deposit(&d, NOW).unwrap();
    assert!(r2.replayed);
    assert_eq!(r1.receipt_id, r2.receipt_id);
    assert_eq!(e.issuer.balance("bob").unwrap(), 8, "credited once");
    // The same coin deposited by a different deposit message (to another account).
    match e
        .issuer
        .deposit(&deposit_to(&coin, "shop", &[]), NOW)
        .unwrap_err()
    {
        IssuerError::Refused(RequestRefusal::Settlement(Verdict::DoubleSpent { evidence })) => {
            assert_eq!(evidence.first_receipt, r1.receipt_id);
            assert_eq!(evidence.diverges_at_link, 0);
            assert_eq!(
                evidence.double_signer,
                hex::encode(coin.coin.coin_key.to_bytes())
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.issuer.balance("shop").unwrap(), 0);
}

#[test]
fn double_spend_in_a_chain_names_the_key_that_signed_twice() {
    let e = env();
    let w = registered_wallet(&e);
    let a = withdraw_coin(&e, 2);
    let b = pay(&a, &[]);
    // B pays the coin to C and to D: two different second links signed by B's key.
    let t = request_allowance(&e, &w, &[2, 2, 2, 2], NOW).unwrap();
    let c = pay(&b, &t[0..1]);
    let d = pay(&b, &t[1..2]);
    e.issuer
        .deposit(&deposit_to(&c, "shop", &t[2..3]), NOW)
        .unwrap();
    match e
        .issuer
        .deposit(&deposit_to(&d, "bob", &t[3..4]), NOW)
        .unwrap_err()
    {
        IssuerError::Refused(RequestRefusal::Settlement(Verdict::DoubleSpent { evidence })) => {
            assert_eq!(evidence.diverges_at_link, 1);
            assert_eq!(
                evidence.double_signer,
                hex::encode(b.coin.owner_key().to_bytes())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn merchant_only_class_refuses_deposits_to_private_accounts() {
    let mut policy = Policy::default();
    policy
        .class
        .get_mut("standard")
        .unwrap()
        .merchant_only_deposit = true;
    let e = env_with(policy);
    let coin = withdraw_coin(&e, 0);
    match e
        .issuer
        .deposit(&deposit_to(&coin, "bob", &[]), NOW)
        .unwrap_err()
    {
        IssuerError::Refused(RequestRefusal::Settlement(Verdict::PolicyViolation {
            rule, ..
        })) => {
            assert_eq!(rule, PolicyRule::MerchantOnlyDeposit)
        }
        other => panic!("{other:?}"),
    }
    e.issuer
        .deposit(&deposit_to(&coin, "shop", &[]), NOW)
        .unwrap();
}

fn swap_request(
    e: &Env,
    inputs: &[&OwnedCoin],
    out_exps: &[u8],
) -> (SwapRequest, Vec<(PendingIssue, Keyset)>) {
    let mut pending = Vec::new();
    let mut outputs = Vec::new();
    for &exp in out_exps {
        let ks = keyset(e, KeysetKind::Coin, exp);
        let (p, o) = blind(&ks, &mut microcash::os_rng());
        pending.push((p, ks));
        outputs.push(o);
    }
    let digest = microcash::protocol::deposit::outputs_digest(
        microcash::protocol::tags::SWAP_OUTPUTS,
        &outputs,
    );
    let deposits = inputs
        .iter()
        .map(|c| {
            c.deposit(
                CreditTarget::Swap(digest),
                NOW,
                &[],
                &mut microcash::os_rng(),
            )
        })
        .collect();
    (
        SwapRequest {
            inputs: deposits,
            outputs,
        },
        pending,
    )
}

#[test]
fn swap_splits_and_merges_at_equal_value() {
    let e = env();
    let big = withdraw_coin(&e, 4); // 16
    let (req, pending) = swap_request(&e, &[&big], &[3, 2, 1, 1]); // 8 + 4 + 2 + 2
    let answers = e.issuer.swap(&req, NOW).unwrap();
    let coins: Vec<OwnedCoin> = pending
        .into_iter()
        .zip(&answers)
        .map(|((p, ks), a)| finish_coin(p, &ks, a).unwrap())
        .collect();
    assert!(spent(&e, &big), "input durably spent");
    // Resubmitting the same swap returns the same signatures (deterministic) and spends nothing new.
    assert_eq!(e.issuer.swap(&req, NOW).unwrap(), answers);
    // Merge two of the outputs back.
    let (req, _) = swap_request(&e, &[&coins[2], &coins[3]], &[2]);
    e.issuer.swap(&req, NOW).unwrap();
    // The swapped-away coin cannot be deposited.
    assert!(matches!(
        e.issuer.deposit(&deposit_to(&big, "bob", &[]), NOW),
        Err(IssuerError::Refused(RequestRefusal::Settlement(
            Verdict::DoubleSpent { .. }
        )))
    ));
    // The fresh coins deposit.
    e.issuer
        .deposit(&deposit_to(&coins[0], "bob", &[]), NOW)
        .unwrap();
    assert_eq!(e.issuer.balance("bob").unwrap(), 8);
}

#[test]
fn swap_outputs_worth_more_than_inputs_are_refused() {
    let e = env();
    let coin = withdraw_coin(&e, 3);
    let (req, _) = swap_request(&e, &[&coin], &[3, 0]);
    assert!(matches!(
        e.issuer.swap(&req, NOW),
        Err(IssuerError::Refused(
            RequestRefusal::SwapOutputsExceedInputs {
                inputs: 8,
                outputs: 9,
                fee: 0
            }
        ))
    ));
    let (req, _) = swap_request(&e, &[&coin], &[2]);
    assert!(matches!(
        e.issuer.swap(&req, NOW),
        Err(IssuerError::Refused(
            RequestRefusal::SwapOutputsBelowInputs {
                inputs: 8,
                outputs: 4,
                fee: 0
            }
        ))
    ));
    // Nothing was spent by the refused swaps.
    assert!(!spent(&e, &coin));
    // An input that names other outputs cannot be swapped into these.
    let (mut req, _) = swap_request(&e, &[&coin], &[2, 2]);
    req.outputs[0] = swap_request(&e, &[&coin], &[2]).0.outputs[0];
    assert!(matches!(
        e.issuer.swap(&req, NOW),
        Err(IssuerError::Refused(RequestRefusal::SwapTargetMismatch {
            index: 0
        }))
    ));
    // The same coin twice.
    let (req, _) = swap_request(&e, &[&coin, &coin], &[4]);
    assert!(matches!(
        e.issuer.swap(&req, NOW),
        Err(IssuerError::Refused(RequestRefusal::SwapDuplicateInput {
            index: 1
        }))
    ));
    // A forged input among good ones (the inputs are verified as one batch): refused with
    // the reference verifier's reason and its position; nothing spent.
    let other = withdraw_coin(&e, 2);
    let (mut req, _) = swap_request(&e, &[&coin, &other], &[4]);
    req.inputs[1].signature.bytes_mut()[3] ^= 1;
    assert!(matches!(
        e.issuer.swap(&req, NOW),
        Err(IssuerError::Refused(RequestRefusal::SwapInputRejected {
            index: 1,
            rejection: microcash::protocol::verify::Rejection::BadDepositSignature,
        }))
    ));
    assert!(!spent(&e, &coin) && !spent(&e, &other));
}

#[test]
fn swap_fee_is_kept_by_the_issuer() {
    let mut policy = Policy::default();
    policy.swap.fee = 1;
    let e = env_with(policy);
    let coin = withdraw_coin(&e, 3);
    let (req, _) = swap_request(&e, &[&coin], &[2, 1, 0]); // 7 + fee 1 = 8
    e.issuer.swap(&req, NOW).unwrap();
}

#[test]
fn withdrawal_is_debited_and_bounded_by_the_balance() {
    let e = env();
    let ks = keyset(&e, KeysetKind::Coin, 16);
    let outs: Vec<BlindedOutput> = (0..2)
        .map(|_| blind(&ks, &mut microcash::os_rng()).1)
        .collect();
    match e
        .issuer
        .withdraw(&account("alice"), &outs, NOW)
        .unwrap_err()
    {
        IssuerError::Refused(RequestRefusal::InsufficientFunds {
            balance: 100_000,
            needed: 131_072,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(e.issuer.balance("alice").unwrap(), 100_000);
    assert!(matches!(
        e.issuer.withdraw(&account("nobody"), &outs[..1], NOW),
        Err(IssuerError::Refused(RequestRefusal::UnknownAccount(_)))
    ));
    // A blinded message outside G1 is never signed.
    let t = microcash_kernels::bls::testing::order_three_point();
    let bad = BlindedOutput {
        keyset_id: ks.id,
        blinded: outs[0].blinded.add(&t).unwrap(),
    };
    assert!(matches!(
        e.issuer.withdraw(&account("alice"), &[bad], NOW),
        Err(IssuerError::Refused(RequestRefusal::BadOutput {
            index: 0,
            ..
        }))
    ));
    // An expired keyset is closed for issuance.
    let late = NOW + 400 * DAY_SECS;
    assert!(matches!(
        e.issuer.withdraw(&account("alice"), &outs[..1], late),
        Err(IssuerError::Refused(RequestRefusal::BadOutput {
            index: 0,
            reason: OutputFault::NotIssuing
        }))
    ));
}

#[test]
fn blinded_messages_are_unrelated_to_the_serial() {
    // Two withdrawals of the same serial material (same coin key) give unrelated blinded
    // messages, neither of which is H1(serial) or reveals it.
    let e = env();
    let ks = keyset(&e, KeysetKind::Coin, 0);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let (_, o) = blind(&ks, &mut microcash::os_rng());
        assert!(seen.insert(o.blinded.to_compressed()));
    }
    // Same serial, fresh ρ each time: blind() draws x too, so build the same serial by hand.
    let x = OwnerSecret::generate(&mut microcash::os_rng());
    let serial = Serial::derive(KeysetKind::Coin, &ks.id, &x.public());
    let h = issuer_message_point(&serial);
    let b1 = h
        .mul(&microcash_kernels::bls::Scalar::random(
            &mut microcash::os_rng(),
        ))
        .unwrap();
    let b2 = h
        .mul(&microcash_kernels::bls::Scalar::random(
            &mut microcash::os_rng(),
        ))
        .unwrap();
    assert_ne!(b1, b2);
    assert_ne!(b1, h);
    assert_ne!(b2, h);
}

#[test]
fn nothing_in_the_issuer_store_links_a_withdrawal_to_its_deposit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("issuer");
    let e = Env {
        issuer: Issuer::init(&dir, Policy::default(), NOW).unwrap(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    e.issuer.create_account("alice", false).unwrap();
    e.issuer.fund("alice", 1000).unwrap();
    e.issuer.create_account("bob", false).unwrap();
    let ks = keyset(&e, KeysetKind::Coin, 5);
    let (pending, out) = blind(&ks, &mut microcash::os_rng());
    let blinded = out.blinded.to_compressed();
    let answer = e.issuer.withdraw(&account("alice"), &[out], NOW).unwrap();
    let coin = finish_coin(pending, &ks, &answer[0]).unwrap();
    e.issuer
        .deposit(&deposit_to(&coin, "bob", &[]), NOW)
        .unwrap();
    drop(e);
    // Everything the issuer keeps, except its secret keys.
    let mut store = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("secrets") {
                    stack.push(path);
                }
            } else {
                store.extend(std::fs::read(&path).unwrap());
            }
        }
    }
    let contains = |needle: &[u8]| store.windows(needle.len()).any(|w| w == needle);
    // The deposit side is recorded (serial as key) …
    assert!(contains(&coin.coin.serial().0));
    // … but nothing the issuer saw at withdrawal is kept to match it against: neither the
    // blinded message nor its signature.
    assert!(!contains(&blinded));
    assert!(!contains(&answer[0].to_compressed()));
    // And the withdrawal log holds only (account, amount, time).
    let issuer = Issuer::open(&dir).unwrap();
    assert_eq!(issuer.balance("alice").unwrap(), 1000 - 32);
}

#[test]
fn wallet_pays_any_amount_by_splitting() {
    let tmp = tempfile::tempdir().unwrap();
    let e = env();
    let mut a = Wallet::create(&tmp.path().join("a.json"), "a").unwrap();
    let mut b = Wallet::create(&tmp.path().join("b.json"), "b").unwrap();
    a.withdraw(&e.issuer, "alice", 1000, "standard", NOW)
        .unwrap();
    for amount in [1u64, 3, 299, 77] {
        let before = a.balance(e.issuer.keysets()).unwrap();
        let out = tmp.path().join(format!("pay-{amount}.mcp"));
        let p = a.pay(&e.issuer, &b.address(), amount, &out, NOW).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), p.to_bytes());
        let report = b.receive(
            e.issuer.keysets(),
            e.issuer.policy(),
            IssuerApi::credential_keys(&e.issuer),
            &p,
            NOW,
        );
        assert_eq!(report.value, amount);
        assert_eq!(a.balance(e.issuer.keysets()).unwrap(), before - amount);
    }
    assert!(matches!(
        a.pay(
            &e.issuer,
            &b.address(),
            10_000,
            &tmp.path().join("no.mcp"),
            NOW
        ),
        Err(microcash::wallet::WalletError::InsufficientFunds { .. })
    ));
}

#[test]
fn redeemed_value_can_be_withdrawn_again() {
    let e = env();
    let coin = withdraw_coin(&e, 4);
    e.issuer
        .deposit(&deposit_to(&coin, "bob", &[]), NOW)
        .unwrap();
    assert_eq!(e.issuer.balance("bob").unwrap(), 16);
    let ks = keyset(&e, KeysetKind::Coin, 4);
    let (_, out) = blind(&ks, &mut microcash::os_rng());
    e.issuer.withdraw(&account("bob"), &[out], NOW).unwrap();
    assert_eq!(e.issuer.balance("bob").unwrap(), 0);
    let (_, out) = blind(&ks, &mut microcash::os_rng());
    assert!(matches!(
        e.issuer.withdraw(&account("bob"), &[out], NOW),
        Err(IssuerError::Refused(RequestRefusal::InsufficientFunds {
            balance: 0,
            needed: 16,
            ..
        }))
    ));
}

/// Operator mistakes are misuse, not refusals of a peer and not storage failures; a balance
/// that would overflow is refused naming the account.
#[test]
fn account_misuse_and_overflow_are_told_apart() {
    let e = env();
    assert!(matches!(
        e.issuer.create_account("alice", false),
        Err(IssuerError::Misuse(Misuse::AccountExists(ref a))) if a == "alice"
    ));
    assert!(matches!(
        e.issuer.create_account("no spaces", false),
        Err(IssuerError::Misuse(Misuse::BadAccountName(_)))
    ));
    assert!(matches!(
        e.issuer.withdraw(&account("alice"), &[], NOW),
        Err(IssuerError::Misuse(Misuse::OutputCount { got: 0, .. }))
    ));
    assert!(matches!(
        e.issuer.fund("alice", u64::MAX),
        Err(IssuerError::Refused(RequestRefusal::BalanceOverflow { ref account })) if account == "alice"
    ));
    assert_eq!(e.issuer.balance("alice").unwrap(), 100_000);
    assert!(matches!(
        e.issuer.fund("nobody", 1),
        Err(IssuerError::Refused(RequestRefusal::UnknownAccount(_)))
    ));
    // A second issuer in the same directory is refused before anything is touched.
    let dir = e._tmp.path().join("issuer");
    assert!(matches!(
        Issuer::init(&dir, Policy::default(), NOW),
        Err(IssuerError::Misuse(Misuse::AlreadyInitialised(_)))
    ));
}

/// The answer to a request is lost on the way back (the issuer did the work): a transport
/// fault, injected around the real issuer.
struct LostAnswers<'a>(&'a Issuer);

#[derive(Debug, thiserror::Error)]
#[error("connection reset before the answer arrived")]
struct Lost;

impl microcash::issuer::RemoteFailure for Lost {
    fn code(&self) -> Option<&str> {
        None
    }
    fn status(&self) -> Option<u16> {
        None
    }
}

fn lost<T>(r: Result<T, microcash::issuer::CallError>) -> Result<T, microcash::issuer::CallError> {
    r.and_then(|_| Err(microcash::issuer::CallError::Remote(Box::new(Lost))))
}

impl IssuerApi for LostAnswers<'_> {
    fn keysets(&self) -> &microcash::protocol::keyset::KeysetList {
        IssuerApi::keysets(self.0)
    }
    fn policy(&self) -> &Policy {
        IssuerApi::policy(self.0)
    }
    fn withdraw(
        &self,
        account: &AccountName,
        outputs: &[BlindedOutput],
        now: u64,
    ) -> Result<Vec<microcash_kernels::bls::G1Affine>, microcash::issuer::CallError> {
        lost(IssuerApi::withdraw(self.0, account, outputs, now))
    }
    fn swap(
        &self,
        request: &SwapRequest,
        now: u64,
    ) -> Result<Vec<microcash_kernels::bls::G1Affine>, microcash::issuer::CallError> {
        lost(IssuerApi::swap(self.0, request, now))
    }
    fn register_wallet(
        &self,
        address: &Address,
        identity: &str,
    ) -> Result<(), microcash::issuer::CallError> {
        IssuerApi::register_wallet(self.0, address, identity)
    }
    fn issue_allowance(
        &self,
        request: &AllowanceRequest,
        now: u64,
    ) -> Result<Vec<microcash_kernels::bls::G1Affine>, microcash::issuer::CallError> {
        lost(IssuerApi::issue_allowance(self.0, request, now))
    }
    fn deposit(
        &self,
        deposit: &microcash::protocol::deposit::Deposit,
        now: u64,
    ) -> Result<microcash::issuer::Receipt, microcash::issuer::CallError> {
        lost(IssuerApi::deposit(self.0, deposit, now))
    }
    fn credential_keys(&self) -> &microcash::protocol::credential::CredentialKeys {
        IssuerApi::credential_keys(self.0)
    }
    fn register_v2(
        &self,
        registration: &microcash::protocol::credential::Registration,
    ) -> Result<Option<Address>, microcash::issuer::CallError> {
        IssuerApi::register_v2(self.0, registration)
    }
    fn issue_credential(
        &self,
        request: &microcash::protocol::credential::CredentialRequest,
        now: u64,
    ) -> Result<
        ([u8; 32], microcash::protocol::credential::CredentialIssue),
        microcash::issuer::CallError,
    > {
        lost(IssuerApi::issue_credential(self.0, request, now))
    }
}

/// Every answer lost: each operation stays journalled with its coins in flight (never
/// selected again), and recovery against the issuer finishes it with one charge.
#[test]
fn lost_answers_are_recovered_with_one_charge() {
    use microcash::wallet::WalletError;
    let tmp = tempfile::tempdir().unwrap();
    let e = env();
    let flaky = LostAnswers(&e.issuer);
    let mut a = Wallet::create(&tmp.path().join("a.json"), "a").unwrap();
    a.register(&e.issuer, "alice").unwrap();
    assert!(matches!(
        a.withdraw(&flaky, "alice", 1000, "standard", NOW),
        Err(WalletError::Interrupted { op: "withdraw", .. })
    ));
    assert_eq!(a.pending_count(), 1);
    assert_eq!(
        e.issuer.balance("alice").unwrap(),
        99_000,
        "debited once, answer lost"
    );
    let report = a.recover(&e.issuer, NOW).unwrap();
    assert_eq!(report[0].outcome, "completed");
    assert_eq!(report[0].value_in, 1000);
    assert_eq!(
        e.issuer.balance("alice").unwrap(),
        99_000,
        "not debited again"
    );
    assert_eq!(a.balance(e.issuer.keysets()).unwrap(), 1000);

    assert!(a.request_allowance(&flaky, 100, NOW).is_err());
    a.recover(&e.issuer, NOW).unwrap();
    assert_eq!(a.allowance_balance(e.issuer.keysets()), 100);

    // A deposit whose answer is lost: its coins are in flight, not spendable, until recovered.
    let outcomes = a.deposit(&flaky, "bob", Some(8), NOW).unwrap();
    assert!(outcomes.iter().all(|o| o.receipt.is_none()));
    assert_eq!(a.pending_count(), 1);
    assert_eq!(a.in_flight(e.issuer.keysets()), 8);
    assert_eq!(a.balance(e.issuer.keysets()).unwrap(), 992);
    // Recovering while answers are still lost keeps the deposit journalled, coins in flight.
    let report = a.recover(&flaky, NOW).unwrap();
    assert_eq!(a.pending_count(), 1, "{report:?}");
    assert_eq!(a.in_flight(e.issuer.keysets()), 8);
    a.recover(&e.issuer, NOW).unwrap();
    assert_eq!(e.issuer.balance("bob").unwrap(), 8, "credited once");
    assert_eq!(a.pending_count(), 0);
    assert_eq!(a.in_flight(e.issuer.keysets()), 0);
    assert_eq!(a.balance(e.issuer.keysets()).unwrap(), 992);

    // A split whose swap answer is lost: the payment is not made; the swap finishes later.
    let b = Wallet::create(&tmp.path().join("b.json"), "b").unwrap();
    let out = tmp.path().join("p.mcp");
    assert!(matches!(
        a.pay(&flaky, &b.address(), 3, &out, NOW),
        Err(WalletError::Interrupted { op: "swap", .. })
    ));
    assert!(!out.exists());
    a.recover(&e.issuer, NOW).unwrap();
    assert_eq!(
        a.balance(e.issuer.keysets()).unwrap(),
        992,
        "swapped at equal value"
    );
    a.pay(&e.issuer, &b.address(), 3, &out, NOW).unwrap();
    assert_eq!(a.balance(e.issuer.keysets()).unwrap(), 989);
}

/// One process holds a wallet at a time; a version-1 file (before the journal) opens.
#[test]
fn a_wallet_is_held_by_one_process_and_old_files_open() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("w.json");
    let w = Wallet::create(&path, "w").unwrap();
    assert!(matches!(
        Wallet::open(&path),
        Err(microcash::wallet::WalletError::Busy(_))
    ));
    drop(w);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["version"] = 1.into();
    v.as_object_mut().unwrap().remove("pending");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let w = Wallet::open(&path).unwrap();
    assert_eq!(w.pending_count(), 0);
}

/// A damaged journal entry (a flipped hex digit, a zero blinding factor) is refused at open
/// with an error naming the journal — never a panic, never a silently dropped operation.
#[test]
fn a_damaged_wallet_journal_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let e = env();
    let path = tmp.path().join("a.json");
    let mut a = Wallet::create(&path, "a").unwrap();
    // Leave a withdrawal journalled: its answer is lost.
    assert!(a
        .withdraw(&LostAnswers(&e.issuer), "alice", 5, "standard", NOW)
        .is_err());
    drop(a);
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let issue = good["pending"][0]["issues"][0].as_str().unwrap().to_owned();
    let zero_rho = format!("{}{}", &issue[..issue.len() - 64], "0".repeat(64));
    let mut flipped = issue.clone().into_bytes();
    flipped[1] = b'7'; // the kind byte: 0x07 is no keyset kind
    for bad in [zero_rho, String::from_utf8(flipped).unwrap(), "zz".into()] {
        let mut v = good.clone();
        v["pending"][0]["issues"][0] = bad.into();
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        match Wallet::open(&path) {
            Err(microcash::wallet::WalletError::Corrupt { reason, .. }) => {
                assert!(reason.contains("journal"), "{reason}")
            }
            other => panic!("{:?}", other.map(|w| w.pending_count())),
        }
    }
    // Truncated (a torn copy): an error too.
    let bytes = serde_json::to_vec(&good).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Wallet::open(&path),
        Err(microcash::wallet::WalletError::Corrupt { .. })
    ));
    // The intact file recovers the withdrawal with one debit.
    std::fs::write(&path, &bytes).unwrap();
    let mut a = Wallet::open(&path).unwrap();
    a.recover(&e.issuer, NOW).unwrap();
    assert_eq!(a.balance(e.issuer.keysets()).unwrap(), 5);
    assert_eq!(e.issuer.balance("alice").unwrap(), 100_000 - 5);
}

/// The wallet file cannot be written when a payment is journalled (a full disk, here a
/// directory in its place): nothing is paid, no payment file appears, the coins stay.
#[test]
fn a_wallet_that_cannot_journal_pays_nothing_and_keeps_its_coins() {
    let tmp = tempfile::tempdir().unwrap();
    let e = env();
    let path = tmp.path().join("a.json");
    let mut a = Wallet::create(&path, "a").unwrap();
    let b = Wallet::create(&tmp.path().join("b.json"), "b").unwrap();
    a.withdraw(&e.issuer, "alice", 12, "standard", NOW).unwrap(); // 8 + 4
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("blocker"), b"x").unwrap(); // rename over it fails
    let out = tmp.path().join("p.mcp");
    assert!(a.pay(&e.issuer, &b.address(), 4, &out, NOW).is_err());
    assert!(!out.exists());
    assert_eq!(a.pending_count(), 0);
    assert_eq!(a.balance(e.issuer.keysets()).unwrap(), 12);
}
