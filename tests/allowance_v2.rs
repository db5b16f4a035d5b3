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

/// A deposit at every v2 maximum at once: 64 links, each receiver presenting 8 slots, and
/// 8 more on the deposit — 64 presentations, 512 tags — cleared by the issuer and, as a
/// kind-2 record with every decompression hint, by the engine, with the same verdict.
#[test]
fn a_deposit_at_every_v2_maximum_clears() {
    use microcash::engine::batch_verify::{verify_chunk, ChunkDeposit};
    use microcash::protocol::coin::LINKS_MAX;
    use microcash::protocol::deposit::DEPOSIT_BYTES_MAX;
    use microcash::protocol::encoding::Encode;
    use microcash::protocol::hints::HintedDeposit;
    let tmp = tempfile::tempdir().unwrap();
    let mut policy = Policy::default();
    let class = policy.class.get_mut("standard").unwrap();
    class.allowance_scheme = AllowanceScheme::V2;
    class.max_hops = LINKS_MAX as u8;
    policy.allowance.daily_limit = 8;
    policy.allowance.slots = vec![(1, 8)];
    let issuer = Issuer::init(&tmp.path().join("issuer"), policy, NOW).unwrap();
    issuer.create_account("alice", false).unwrap();
    issuer.fund("alice", 1000).unwrap();
    issuer.create_account("shop", true).unwrap();
    let members: Vec<Member> = (0..LINKS_MAX)
        .map(|i| credential(&issuer, &register(&issuer, &format!("m{i}")), TODAY).unwrap())
        .collect();
    let slots: Vec<u16> = (0..8).collect();
    let mut coin = pay(&withdraw(&issuer), &members[0].w, None);
    for i in 1..LINKS_MAX {
        coin = pay(
            &coin,
            &members[i].w,
            Some(&presenter(&members[i - 1], &slots)),
        );
    }
    let d = deposit(&coin, &presenter(&members[LINKS_MAX - 1], &slots));
    assert_eq!(d.coin.links.len(), LINKS_MAX);
    assert!(d.to_bytes().len() <= DEPOSIT_BYTES_MAX);
    let (payload, hints) = HintedDeposit::encode(&d);
    let hinted = HintedDeposit::decode(&payload, &hints).unwrap();
    let params = issuer.engine().params();
    let verifier = params.verifier();
    let batched = verify_chunk(
        &verifier,
        &params.keysets,
        &[ChunkDeposit::from(&hinted)],
        NOW,
        &mut microcash::seeded_rng(),
    );
    let v = batched[0].as_ref().unwrap();
    assert_eq!(v.allowance_serials().len(), 64 * 8);
    let receipt = issuer.deposit(&d, NOW).unwrap();
    assert_eq!((receipt.value, receipt.replayed), (4, false));
    // The same deposit again is a replay, not an allowance reuse.
    assert!(issuer.deposit(&d, NOW).unwrap().replayed);
    clears_on_four_partitions(v);
}

/// The cluster's path for one verified deposit (worker message, votes of four partition
/// owners, the decision, each owner's writes), twice: it fits one stream message, is
/// accepted once and replayed the second time, and each of its keys is held by exactly
/// the owner of its range.
fn clears_on_four_partitions(v: &microcash::protocol::verify::VerifiedDeposit) {
    use microcash::cluster::messages::{self, TypedChunk};
    use microcash::cluster::{partition, transport::MESSAGE_BYTES_MAX, worker};
    use microcash::engine::pipeline::VerifiedRecord;
    use microcash::engine::Verdict;
    use microcash::spentset::{SpentSet, SpentSetConfig};
    let record = VerifiedRecord {
        index: 0,
        offset: 0,
        serial: Some(v.serial()),
        outcome: Ok(v.clone()),
    };
    let facts = worker::credited_accounts(std::slice::from_ref(&record))
        .into_iter()
        .map(|a| (a, Some(true)))
        .collect();
    let chunk = worker::verified_chunk(1, 0, NOW, vec![record], facts).unwrap();
    let bytes = messages::encode(&chunk).unwrap();
    assert!(bytes.len() <= MESSAGE_BYTES_MAX, "{} bytes", bytes.len());
    let typed = || TypedChunk::from_wire("max", messages::decode("max", &bytes).unwrap()).unwrap();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut owners: Vec<SpentSet> = dirs
        .iter()
        .map(|d| {
            SpentSet::open(d.path(), SpentSetConfig::default())
                .unwrap()
                .0
        })
        .collect();
    for replayed in [false, true] {
        let votes: Vec<_> = (0..4u32)
            .map(|p| partition::vote(&owners[p as usize], &typed(), p, 4).unwrap())
            .collect();
        let decision = partition::decide(typed(), &votes, [9u8; 16], 4).unwrap();
        match &decision.verdicts[0].verdict {
            Verdict::Accepted {
                value, replayed: r, ..
            } => assert_eq!((*value, *r), (4, replayed)),
            other => panic!("{other:?}"),
        }
        for (p, owner) in owners.iter_mut().enumerate() {
            let writes = partition::own_writes(owner, &decision.fresh, p as u32, 4);
            owner.commit(&writes).unwrap();
        }
    }
    let keys = std::iter::once((v.epoch(), v.serial().0))
        .chain(v.allowance_serials().iter().map(|(s, e)| (*e, s.0)));
    for (epoch, serial) in keys {
        let holders: Vec<u32> = (0..4u32)
            .filter(|p| owners[*p as usize].lookup(epoch, &serial).is_some())
            .collect();
        assert_eq!(holders, vec![partition::partition_of(&serial, 4)]);
    }
}

/// The credential secrets file and the published credential keys, damaged: a flipped or
/// truncated secret, a key whose id does not match its parameters — the issuer refuses to
/// open and names the file; the secrets file missing — it opens, issues no credential and
/// refuses every presentation rather than accept it unchecked.
#[test]
fn damaged_or_missing_credential_secrets_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("issuer");
    let a = {
        let issuer = issuer(&tmp);
        let a = credential(&issuer, &register(&issuer, "anna"), TODAY).unwrap();
        let at_a = pay(&withdraw(&issuer), &a.w, None);
        let d = deposit(&at_a, &presenter(&a, &[0]));
        std::fs::write(
            tmp.path().join("d.bin"),
            microcash::protocol::encoding::Encode::to_bytes(&d),
        )
        .unwrap();
        a
    };
    let secrets = dir.join("secrets/credentials-0001.json");
    let original = std::fs::read(&secrets).unwrap();
    let open_err = |what: &str| match Issuer::open(&dir) {
        Ok(_) => panic!("{what}: opened"),
        Err(e) => e.to_string(),
    };
    // A flipped hex digit of the secret: it no longer matches its published key.
    let mut flipped = original.clone();
    let at = flipped.iter().rposition(|b| b.is_ascii_hexdigit()).unwrap() - 5;
    flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&secrets, &flipped).unwrap();
    let e = open_err("flipped");
    assert!(e.contains("credentials-0001.json"), "{e}");
    // Torn (truncated) file.
    std::fs::write(&secrets, &original[..original.len() / 2]).unwrap();
    let e = open_err("truncated");
    assert!(e.contains("credentials-0001.json"), "{e}");
    std::fs::write(&secrets, &original).unwrap();
    // A published key whose id does not match its parameters.
    let keysets = dir.join("keysets.json");
    let published = std::fs::read_to_string(&keysets).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&published).unwrap();
    let id = doc["credential_keys"][0]["id"].as_str().unwrap().to_owned();
    let other = format!(
        "{}{}",
        if id.starts_with('0') { "1" } else { "0" },
        &id[1..]
    );
    doc["credential_keys"][0]["id"] = serde_json::json!(other);
    std::fs::write(&keysets, serde_json::to_vec(&doc).unwrap()).unwrap();
    let e = open_err("id");
    assert!(
        e.contains("keysets.json") && e.contains("does not match"),
        "{e}"
    );
    std::fs::write(&keysets, &published).unwrap();
    // Missing: the issuer opens, but cannot check or issue.
    std::fs::remove_file(&secrets).unwrap();
    let issuer = Issuer::open(&dir).unwrap();
    let bytes = std::fs::read(tmp.path().join("d.bin")).unwrap();
    let d = <Deposit as microcash::protocol::encoding::Decode>::from_bytes(&bytes).unwrap();
    let e = refusal(issuer.deposit(&d, NOW));
    assert!(e.contains("secret is not held"), "{e}");
    let req = CredentialRequest::sign(&a.w, "standard", TODAY, &mut microcash::os_rng());
    assert!(matches!(
        issuer.issue_credential(&req, NOW),
        Err(IssuerError::Refused(RequestRefusal::NoCredentialKey { .. }))
    ));
}
