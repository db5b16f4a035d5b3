//! Allowance v2 at the issuer: registration with proof of possession, one credential per
//! identity and day, chained payments within the cap, an over-cap receipt refused at
//! redemption, a lent credential refused, and re-registration of a lost wallet.

use microcash::issuer::{Issuer, IssuerApi, IssuerError, RequestRefusal};
use microcash::protocol::coin::PaymentContext;
use microcash::protocol::credential::{Credential, CredentialKey, CredentialRequest, Registration};
use microcash::protocol::deposit::{AccountName, CreditTarget, Deposit};
use microcash::protocol::keys::OwnerSecret;
use microcash::protocol::keyset::KeysetKind;
use microcash::protocol::policy::{AllowanceScheme, Policy, DAY_SECS};
use microcash::protocol::spend::{OwnedCoin, Presenter};
use microcash::protocol::withdraw::{blind, finish_coin};

const NOW: u64 = 20_000 * DAY_SECS + 3600;
const TODAY: u64 = NOW / DAY_SECS;

/// An issuer whose `standard` class is v2 with a day of two slots worth 4 each.
fn issuer(tmp: &tempfile::TempDir) -> Issuer {
    let mut policy = Policy::default();
    policy.class.get_mut("standard").unwrap().allowance_scheme = AllowanceScheme::V2;
    policy.allowance.daily_limit = 8;
    policy.allowance.slots = vec![(4, 2)];
    // The epoch began three days ago, so it issues credentials for the past days too.
    let issuer = Issuer::init(&tmp.path().join("issuer"), policy, NOW - 3 * DAY_SECS).unwrap();
    issuer.create_account("alice", false).unwrap();
    issuer.fund("alice", 1000).unwrap();
    issuer.create_account("shop", true).unwrap();
    issuer
}

struct Member {
    w: OwnerSecret,
    key: CredentialKey,
    credential: Credential,
}

fn register(issuer: &Issuer, identity: &str) -> OwnerSecret {
    let w = OwnerSecret::generate(&mut microcash::os_rng());
    let reg = Registration::sign(&w, "standard", identity, &mut microcash::os_rng());
    issuer.register_v2(&reg).unwrap();
    w
}

fn credential(issuer: &Issuer, w: &OwnerSecret, day: u64) -> Result<Member, IssuerError> {
    let req = CredentialRequest::sign(w, "standard", day, &mut microcash::os_rng());
    let (key, issue) = issuer.issue_credential(&req, NOW)?;
    // The wallet takes the key from the published list, not from the answer.
    let params = issuer.engine().params();
    let (published, _) = params.credentials.get(&key.id).unwrap();
    assert_eq!(published, &key);
    let credential = issue.open(published, w, day).unwrap();
    Ok(Member {
        w: w.clone(),
        key,
        credential,
    })
}

fn withdraw(issuer: &Issuer) -> OwnedCoin {
    let ks = issuer
        .keysets()
        .withdrawable(KeysetKind::Coin, "standard", 2, NOW)
        .unwrap()
        .clone();
    let (pending, out) = blind(&ks, &mut microcash::os_rng());
    let answer = issuer
        .withdraw(&AccountName::new("alice").unwrap(), &[out], NOW)
        .unwrap();
    finish_coin(pending, &ks, &answer[0]).unwrap()
}

fn ctx() -> PaymentContext {
    PaymentContext {
        payment_id: [1; 16],
        amount: 4,
        time: NOW,
    }
}

fn presenter<'a>(m: &'a Member, slots: &'a [u16]) -> Presenter<'a> {
    Presenter {
        key: &m.key,
        credential: &m.credential,
        wallet: &m.w,
        slots,
    }
}

fn pay(coin: &OwnedCoin, to: &OwnerSecret, from: Option<&Presenter<'_>>) -> OwnedCoin {
    coin.pay_own_wallet_v2(to, ctx(), from, &mut microcash::os_rng())
        .unwrap()
}

fn deposit(coin: &OwnedCoin, p: &Presenter<'_>) -> Deposit {
    coin.deposit_v2(
        CreditTarget::Account(AccountName::new("shop").unwrap()),
        NOW,
        Some(p),
        &mut microcash::os_rng(),
    )
    .unwrap()
}

fn refusal(r: Result<microcash::issuer::Receipt, IssuerError>) -> String {
    match r {
        Ok(receipt) => panic!("accepted: {receipt:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_v2_day_chains_within_the_cap_and_refuses_an_over_cap_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let issuer = issuer(&tmp);
    let a = credential(&issuer, &register(&issuer, "anna"), TODAY).unwrap();
    let b = credential(&issuer, &register(&issuer, "ben"), TODAY).unwrap();
    // Chained: alice's coin → A → B → the shop, each receipt presented by its receiver.
    let at_a = pay(&withdraw(&issuer), &a.w, None);
    let at_b = pay(&at_a, &b.w, Some(&presenter(&a, &[0])));
    let receipt = issuer
        .deposit(&deposit(&at_b, &presenter(&b, &[0])), NOW)
        .unwrap();
    assert_eq!(receipt.value, 4);
    // A's second receipt of the day uses its second slot.
    let second = pay(&withdraw(&issuer), &a.w, None);
    issuer
        .deposit(&deposit(&second, &presenter(&a, &[1])), NOW)
        .unwrap();
    // A third receipt is over the cap: a used slot is refused by the spent set, a slot
    // beyond the day's schedule by the verifier.
    let third = pay(&withdraw(&issuer), &a.w, None);
    let reused = refusal(issuer.deposit(&deposit(&third, &presenter(&a, &[0])), NOW));
    assert!(reused.contains("allowance"), "{reused}");
    let beyond = refusal(issuer.deposit(&deposit(&third, &presenter(&a, &[2])), NOW));
    assert!(beyond.contains("slot 2"), "{beyond}");
    // A credential is worth nothing on another day: yesterday's credential cannot present
    // for today's receipt (the prover refuses; a forced one would fail the MAC).
    let yesterday = credential(&issuer, &a.w, TODAY - 1).unwrap();
    assert!(third
        .deposit_v2(
            CreditTarget::Account(AccountName::new("shop").unwrap()),
            NOW,
            Some(&presenter(&yesterday, &[0])),
            &mut microcash::os_rng()
        )
        .is_err());
}

#[test]
fn a_lent_credential_is_refused_at_redemption() {
    let tmp = tempfile::tempdir().unwrap();
    let issuer = issuer(&tmp);
    let a = credential(&issuer, &register(&issuer, "anna"), TODAY).unwrap();
    // C never registered; it holds A's credential but not A's secret.
    let c_secret = OwnerSecret::generate(&mut microcash::os_rng());
    let lent = Member {
        w: c_secret.clone(),
        key: a.key.clone(),
        credential: a.credential.clone(),
    };
    let at_c = pay(&withdraw(&issuer), &c_secret, None);
    let e = refusal(issuer.deposit(&deposit(&at_c, &presenter(&lent, &[0])), NOW));
    assert!(e.contains("presentation"), "{e}");
    // C cannot get a credential of its own either.
    let req = CredentialRequest::sign(&c_secret, "standard", TODAY, &mut microcash::os_rng());
    assert!(matches!(
        issuer.issue_credential(&req, NOW),
        Err(IssuerError::Refused(RequestRefusal::WalletNotRegistered(_)))
    ));
}

#[test]
fn registration_proves_possession_and_one_identity_holds_one_wallet() {
    let tmp = tempfile::tempdir().unwrap();
    let issuer = issuer(&tmp);
    let w = OwnerSecret::generate(&mut microcash::os_rng());
    // A registration not signed by the address's secret.
    let mut forged = Registration::sign(&w, "standard", "anna", &mut microcash::os_rng());
    forged.address = OwnerSecret::generate(&mut microcash::os_rng()).public();
    assert!(matches!(
        issuer.register_v2(&forged),
        Err(IssuerError::Refused(RequestRefusal::BadRequestSignature))
    ));
    // A class that is not v2.
    let mut p = Registration::sign(&w, "allowance", "anna", &mut microcash::os_rng());
    assert!(matches!(
        issuer.register_v2(&p),
        Err(IssuerError::Refused(RequestRefusal::NotAV2Class(_)))
    ));
    p = Registration::sign(&w, "standard", "anna", &mut microcash::os_rng());
    assert_eq!(issuer.register_v2(&p).unwrap(), None);
    // Again: nothing changes. Under another identity: refused.
    assert_eq!(issuer.register_v2(&p).unwrap(), None);
    let other = Registration::sign(&w, "standard", "ben", &mut microcash::os_rng());
    assert!(matches!(
        issuer.register_v2(&other),
        Err(IssuerError::Refused(
            RequestRefusal::WalletOfAnotherIdentity(_)
        ))
    ));
    let first = credential(&issuer, &w, TODAY).unwrap();
    // The same request again gets the same credential.
    let again = credential(&issuer, &w, TODAY).unwrap();
    assert_eq!(again.credential, first.credential);
    // Days: not tomorrow, not more than a week back.
    for day in [TODAY + 1, TODAY - 8] {
        let req = CredentialRequest::sign(&w, "standard", day, &mut microcash::os_rng());
        assert!(matches!(
            issuer.issue_credential(&req, NOW),
            Err(IssuerError::Refused(RequestRefusal::WrongDay { .. }))
        ));
    }
    // Anna loses her wallet and registers a new one: the old one is revoked, the new one
    // gets no second credential for a day the old one was served, but does for other days.
    let w2 = OwnerSecret::generate(&mut microcash::os_rng());
    let re = Registration::sign(&w2, "standard", "anna", &mut microcash::os_rng());
    assert_eq!(
        issuer.register_v2(&re).unwrap().map(|a| a.0),
        Some(w.public())
    );
    assert!(matches!(
        credential(&issuer, &w2, TODAY),
        Err(IssuerError::Refused(RequestRefusal::CredentialTaken {
            day: TODAY
        }))
    ));
    credential(&issuer, &w2, TODAY - 1).unwrap();
    assert!(matches!(
        credential(&issuer, &w, TODAY - 2),
        Err(IssuerError::Refused(RequestRefusal::WalletNotRegistered(_)))
    ));
}

/// The engine's batched verification (presentations judged with the RedPallas
/// signatures) gives the reference verifier's verdict for every deposit of a chunk: honest
/// ones, a lent credential, a presentation with a flipped byte in each of several fields,
/// a slot outside the schedule, a missing presentation.
#[test]
fn batched_verdicts_equal_the_reference_on_v2_deposits() {
    use microcash::engine::batch_verify::{verify_chunk, ChunkDeposit};
    let tmp = tempfile::tempdir().unwrap();
    let issuer = issuer(&tmp);
    let members: Vec<Member> = (0..3)
        .map(|i| credential(&issuer, &register(&issuer, &format!("m{i}")), TODAY).unwrap())
        .collect();
    let outsider = OwnerSecret::generate(&mut microcash::os_rng());
    let mut deposits = Vec::new();
    for round in 0..4 {
        for (i, m) in members.iter().enumerate() {
            let at = pay(&withdraw(&issuer), &m.w, None);
            let slot = [((round + i) % 2) as u16];
            let mut d = deposit(&at, &presenter(m, &slot));
            match (round * 3 + i) % 7 {
                1 => {
                    let p = d.presentation.as_mut().unwrap();
                    p.responses[(round + i) % 5][0] ^= 1;
                }
                2 => {
                    let p = d.presentation.as_mut().unwrap();
                    p.c_v[1] ^= 2;
                }
                3 => {
                    let lent = Member {
                        w: outsider.clone(),
                        key: m.key.clone(),
                        credential: m.credential.clone(),
                    };
                    let at = pay(&withdraw(&issuer), &outsider, None);
                    d = deposit(&at, &presenter(&lent, &slot));
                }
                4 => d = deposit(&at, &presenter(m, &[5])),
                5 => {
                    d = at
                        .deposit_v2(
                            CreditTarget::Account(AccountName::new("shop").unwrap()),
                            NOW,
                            None,
                            &mut microcash::os_rng(),
                        )
                        .unwrap()
                }
                _ => {}
            }
            deposits.push(d);
        }
    }
    let params = issuer.engine().params();
    let verifier = params.verifier();
    let chunk: Vec<ChunkDeposit<'_>> = deposits.iter().map(ChunkDeposit::from).collect();
    let mut rng = microcash::seeded_rng();
    let batched = verify_chunk(&verifier, &params.keysets, &chunk, NOW, &mut rng);
    let mut refused = 0;
    for (d, b) in deposits.iter().zip(&batched) {
        let reference = verifier.verify_deposit(d, NOW);
        assert_eq!(
            b.as_ref().map(|v| v.digest()).map_err(|e| e.to_string()),
            reference
                .as_ref()
                .map(|v| v.digest())
                .map_err(|e| e.to_string())
        );
        refused += usize::from(reference.is_err());
    }
    assert!(
        refused >= 5 && refused < deposits.len(),
        "{refused} refused"
    );
}

/// A swap keeps the class: a v2 coin cannot be swapped into a class with other rules, and
/// swaps within the class work as before.
#[test]
fn a_swap_keeps_the_class() {
    use microcash::protocol::deposit::SwapRequest;
    let tmp = tempfile::tempdir().unwrap();
    let mut policy = Policy::default();
    policy.class.get_mut("standard").unwrap().allowance_scheme = AllowanceScheme::V2;
    let mut open = policy.class["standard"].clone();
    open.allowance_scheme = AllowanceScheme::V1;
    open.allowance_required = false;
    policy.class.insert("open".into(), open);
    let issuer = Issuer::init(&tmp.path().join("issuer"), policy, NOW).unwrap();
    issuer.create_account("alice", false).unwrap();
    issuer.fund("alice", 1000).unwrap();
    let swap = |coin: &OwnedCoin, class: &str| {
        let ks = issuer
            .keysets()
            .withdrawable(KeysetKind::Coin, class, 1, NOW)
            .unwrap()
            .clone();
        let outputs: Vec<_> = (0..2)
            .map(|_| blind(&ks, &mut microcash::os_rng()).1)
            .collect();
        let digest = microcash::protocol::deposit::outputs_digest(
            microcash::protocol::tags::SWAP_OUTPUTS,
            &outputs,
        );
        let input = coin
            .deposit_v2(
                CreditTarget::Swap(digest),
                NOW,
                None,
                &mut microcash::os_rng(),
            )
            .unwrap();
        issuer.swap(
            &SwapRequest {
                inputs: vec![input],
                outputs,
            },
            NOW,
        )
    };
    let coin = withdraw(&issuer);
    assert!(matches!(
        swap(&coin, "open"),
        Err(IssuerError::Refused(RequestRefusal::SwapChangesClass {
            index: 0,
            ..
        }))
    ));
    assert_eq!(swap(&coin, "standard").unwrap().len(), 2);
}

/// A clearing store that lacks a credential secret refuses the presentations it cannot
/// check — it never accepts them on their public equations alone — and with the secret
/// the same day clears as generated.
#[test]
fn a_store_without_the_credential_secret_refuses_v2_presentations() {
    use microcash::dataset::{self, GenOptions};
    use microcash::engine::{ClearOptions, Engine};
    use microcash::spentset::SpentSetConfig;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("v2.mcb");
    let opts = GenOptions {
        coins: 24,
        hops_mix: vec![(1, 1)],
        allowance: true,
        allowance_scheme: AllowanceScheme::V2,
        now: NOW,
        ..GenOptions::default()
    };
    dataset::generate(&out, &opts).unwrap();
    let params = dataset::params_dir(&out);
    let clear = |store: &std::path::Path| {
        let engine = Engine::open(store, SpentSetConfig::default()).unwrap();
        let options = ClearOptions {
            collect_verdicts: true,
            now: NOW,
            ..ClearOptions::default()
        };
        engine
            .clear(&out, &options, &|_, _| {})
            .unwrap()
            .verdicts
            .iter()
            .map(|v| v.verdict.code())
            .collect::<Vec<_>>()
    };
    let with = tmp.path().join("with");
    dataset::init_store_from_params(&params, &with).unwrap();
    assert!(clear(&with).iter().all(|c| c == "accepted"));
    let without = tmp.path().join("without");
    dataset::init_store_from_params(&params, &without).unwrap();
    for f in std::fs::read_dir(without.join("secrets")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    assert!(
        clear(&without).iter().all(|c| c == "bad_allowance"),
        "{:?}",
        clear(&without)
    );
}

mod properties {
    use super::*;
    use microcash::engine::batch_verify::{verify_chunk, ChunkDeposit};
    use proptest::prelude::*;

    /// What happens to one deposit of the chunk.
    #[derive(Clone, Copy, Debug)]
    enum Fault {
        None,
        /// A byte of one response, commitment, tag or point flipped (index picks which).
        Flip(usize),
        /// Presented with another wallet's credential.
        Lent,
        /// No presentation.
        Missing,
        /// A slot beyond the schedule.
        Outside,
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            4 => Just(Fault::None),
            3 => (0usize..64).prop_map(Fault::Flip),
            1 => Just(Fault::Lent),
            1 => Just(Fault::Missing),
            1 => Just(Fault::Outside),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

        /// For any mix of faults, the engine's batched verdict of every deposit equals the
        /// reference verifier's.
        #[test]
        fn engine_verdicts_equal_the_reference(faults in proptest::collection::vec(fault(), 1..7)) {
            let tmp = tempfile::tempdir().unwrap();
            let issuer = issuer(&tmp);
            let a = credential(&issuer, &register(&issuer, "a"), TODAY).unwrap();
            let b = credential(&issuer, &register(&issuer, "b"), TODAY).unwrap();
            let mut deposits = Vec::new();
            for (i, f) in faults.iter().enumerate() {
                let m = if i % 2 == 0 { &a } else { &b };
                let at = pay(&withdraw(&issuer), &m.w, None);
                let slot = [(i / 2 % 2) as u16];
                let d = match f {
                    Fault::None => deposit(&at, &presenter(m, &slot)),
                    Fault::Flip(k) => {
                        let mut d = deposit(&at, &presenter(m, &slot));
                        let p = d.presentation.as_mut().unwrap();
                        let field: &mut [u8; 32] = match k % 8 {
                            0 => &mut p.u,
                            1 => &mut p.c_k,
                            2 => &mut p.c_v,
                            3 => &mut p.slots[0].tag,
                            4 => &mut p.slots[0].commitment,
                            5 => &mut p.commitments[k % 4],
                            _ => &mut p.responses[k % 5],
                        };
                        field[k % 32] ^= 1 << (k % 8);
                        d
                    }
                    Fault::Lent => {
                        let other = if i % 2 == 0 { &b } else { &a };
                        let lent = Member {
                            w: m.w.clone(),
                            key: other.key.clone(),
                            credential: other.credential.clone(),
                        };
                        deposit(&at, &presenter(&lent, &slot))
                    }
                    Fault::Missing => at
                        .deposit_v2(
                            CreditTarget::Account(AccountName::new("shop").unwrap()),
                            NOW,
                            None,
                            &mut microcash::os_rng(),
                        )
                        .unwrap(),
                    Fault::Outside => deposit(&at, &presenter(m, &[7])),
                };
                deposits.push(d);
            }
            let params = issuer.engine().params();
            let verifier = params.verifier();
            let chunk: Vec<ChunkDeposit<'_>> = deposits.iter().map(ChunkDeposit::from).collect();
            let batched = verify_chunk(&verifier, &params.keysets, &chunk, NOW, &mut microcash::seeded_rng());
            for (d, got) in deposits.iter().zip(&batched) {
                let want = verifier.verify_deposit(d, NOW);
                prop_assert_eq!(
                    got.as_ref().map(|v| v.digest()).map_err(|e| e.to_string()),
                    want.as_ref().map(|v| v.digest()).map_err(|e| e.to_string())
                );
            }
        }
    }
}
