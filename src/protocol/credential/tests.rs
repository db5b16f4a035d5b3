//! Allowance v2 credentials: completeness, the issuer's proof, soundness against a tampered
//! presentation in every field and context, the receiver binding, tags, re-randomisation,
//! and batched verification against single verification.

use ff::Field;
use group::{Curve, GroupEncoding};
use pasta_curves::pallas;

use super::issuance::CredentialError;
use super::presentation::{presentation_len, StealthOpening};
use super::*;
use crate::protocol::encoding::{Decode, Encode};
use crate::protocol::keys::OwnerSecret;

const DAY: u64 = 20_000;

struct Issuer {
    secret: CredentialSecret,
    key: CredentialKey,
}

fn issuer() -> Issuer {
    let secret = CredentialSecret::generate(&mut crate::os_rng());
    let key = CredentialKey::of(&secret, 1, "standard").unwrap();
    Issuer { secret, key }
}

/// A wallet with its day-`DAY` credential.
struct Wallet {
    k: OwnerSecret,
    credential: Credential,
}

fn wallet(issuer: &Issuer) -> Wallet {
    let k = OwnerSecret::generate(&mut crate::os_rng());
    let issue = issuer
        .secret
        .issue(&issuer.key, &k.public(), DAY, &mut crate::os_rng());
    let credential = issue.open(&issuer.key, &k, DAY).unwrap();
    Wallet { k, credential }
}

/// A coin paid to `w`: P = W + s·G and the payer's C_s = s·G + t·H.
struct Received {
    p: OwnerKey,
    c_s: [u8; 32],
    opening: StealthOpening,
}

use crate::protocol::keys::OwnerKey;

fn receive(w: &OwnerSecret) -> Received {
    let mut rng = crate::os_rng();
    let opening = StealthOpening {
        s: sigma::random_scalar(&mut rng),
        t: sigma::random_scalar(&mut rng),
    };
    Received {
        p: w.public().randomize(&opening.s),
        c_s: presentation::stealth_commitment(&opening),
        opening,
    }
}

const BINDING: [u8; 32] = [7u8; 32];

fn ctx(r: &Received) -> PresentationContext<'_> {
    PresentationContext {
        day: DAY,
        receiving_key: &r.p,
        stealth_commitment: &r.c_s,
        binding: &BINDING,
    }
}

fn present(issuer: &Issuer, w: &Wallet, r: &Received, slots: &[u16]) -> Presentation {
    Presentation::create(
        &issuer.key,
        &w.credential,
        &w.k,
        &r.opening,
        &ctx(r),
        slots,
        &mut crate::os_rng(),
    )
    .unwrap()
}

/// Batch verdicts: the positions the batched check refuses (prepare failures included).
fn batch_refuses(issuer: &Issuer, items: &[(Presentation, PresentationContext<'_>)]) -> Vec<usize> {
    let refs: Vec<(&Presentation, PresentationContext<'_>)> =
        items.iter().map(|(p, c)| (p, *c)).collect();
    presentation::verify_batch(&issuer.key, &issuer.secret, &refs, &mut crate::os_rng())
        .into_iter()
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn an_honest_presentation_verifies_singly_publicly_and_in_a_batch() {
    let iss = issuer();
    let w = wallet(&iss);
    for slots in [vec![0u16], vec![3, 1, 200], (0..8).collect::<Vec<u16>>()] {
        let r = receive(&w.k);
        let p = present(&iss, &w, &r, &slots);
        assert_eq!(p.to_bytes().len(), presentation_len(slots.len()));
        assert_eq!(Presentation::from_bytes(&p.to_bytes()).unwrap(), p);
        p.verify(&iss.key, &iss.secret, &ctx(&r)).unwrap();
        p.verify_public(&iss.key, &ctx(&r)).unwrap();
        assert!(batch_refuses(&iss, &[(p, ctx(&r))]).is_empty());
    }
}

#[test]
fn the_issuers_proof_binds_the_credential_to_the_published_key_wallet_and_day() {
    let iss = issuer();
    let k = OwnerSecret::generate(&mut crate::os_rng());
    let issue = iss
        .secret
        .issue(&iss.key, &k.public(), DAY, &mut crate::os_rng());
    assert!(issue.open(&iss.key, &k, DAY).is_ok());
    // Deterministic: the same request gets the same credential (a fresh proof).
    let again = iss
        .secret
        .issue(&iss.key, &k.public(), DAY, &mut crate::os_rng());
    assert_eq!((again.u, again.v), (issue.u, issue.v));
    // Another wallet, another day, another published key: refused.
    let other = OwnerSecret::generate(&mut crate::os_rng());
    assert_eq!(
        issue.open(&iss.key, &other, DAY),
        Err(CredentialError::BadIssuanceProof)
    );
    assert_eq!(
        issue.open(&iss.key, &k, DAY + 1),
        Err(CredentialError::BadIssuanceProof)
    );
    let other_key = issuer().key;
    assert_eq!(
        issue.open(&other_key, &k, DAY),
        Err(CredentialError::BadIssuanceProof)
    );
    // An issuer tagging one wallet with its own x₀ cannot prove it under the published key.
    let tagging = CredentialSecret::generate(&mut crate::os_rng());
    let tagged = tagging.issue(&iss.key, &k.public(), DAY, &mut crate::os_rng());
    assert_eq!(
        tagged.open(&iss.key, &k, DAY),
        Err(CredentialError::BadIssuanceProof)
    );
    // Every field tampered: refused.
    let g = generator_g();
    let bump = |b: &[u8; 32]| {
        (pallas::Point::from_bytes(b).unwrap() + g)
            .to_affine()
            .to_bytes()
    };
    let mut cases = vec![];
    let mut t = issue.clone();
    t.u = bump(&t.u);
    cases.push(t);
    let mut t = issue.clone();
    t.v = bump(&t.v);
    cases.push(t);
    for i in 0..4 {
        let mut t = issue.clone();
        t.commitments[i] = bump(&t.commitments[i]);
        cases.push(t);
        let mut t = issue.clone();
        let s = sigma::scalar_from_bytes(&t.responses[i]).unwrap() + pallas::Scalar::ONE;
        t.responses[i] = ff::PrimeField::to_repr(&s);
        cases.push(t);
    }
    for (i, t) in cases.iter().enumerate() {
        assert!(t.open(&iss.key, &k, DAY).is_err(), "tampered field {i}");
    }
    let mut t = issue.clone();
    t.responses[0] = [0xff; 32];
    assert_eq!(
        t.open(&iss.key, &k, DAY),
        Err(CredentialError::BadScalar("issuance response"))
    );
    let mut t = issue;
    t.u = [0; 32];
    assert_eq!(
        t.open(&iss.key, &k, DAY),
        Err(CredentialError::BadPoint("U"))
    );
}

/// Every byte field of a presentation, changed to another valid value, and every piece of
/// its context: refused singly and named by the batch, while the untouched ones pass.
#[test]
fn a_presentation_tampered_in_any_field_or_context_is_refused() {
    let iss = issuer();
    let w = wallet(&iss);
    let r = receive(&w.k);
    let honest = present(&iss, &w, &r, &[2, 5]);
    let g = generator_g();
    let bump = |b: &[u8; 32]| {
        (pallas::Point::from_bytes(b).unwrap() + g)
            .to_affine()
            .to_bytes()
    };
    let bump_scalar = |b: &[u8; 32]| {
        ff::PrimeField::to_repr(&(sigma::scalar_from_bytes(b).unwrap() + pallas::Scalar::ONE))
    };
    let mut tampered: Vec<(&str, Presentation)> = Vec::new();
    let mut push = |name, f: &dyn Fn(&mut Presentation)| {
        let mut p = honest.clone();
        f(&mut p);
        tampered.push((name, p));
    };
    push("key id", &|p| p.key_id[0] ^= 1);
    push("U'", &|p| p.u = bump(&p.u));
    push("C_k", &|p| p.c_k = bump(&p.c_k));
    push("C_V", &|p| p.c_v = bump(&p.c_v));
    for i in 0..4 {
        push("commitment", &move |p| {
            p.commitments[i] = bump(&p.commitments[i])
        });
    }
    for i in 0..5 {
        push("response", &move |p| {
            p.responses[i] = bump_scalar(&p.responses[i])
        });
    }
    for j in 0..2 {
        push("slot", &move |p| p.slots[j].slot += 1);
        push("tag", &move |p| p.slots[j].tag = bump(&p.slots[j].tag));
        push("slot commitment", &move |p| {
            p.slots[j].commitment = bump(&p.slots[j].commitment)
        });
    }
    push("slot dropped", &|p| {
        p.slots.pop();
    });
    push("slots swapped", &|p| p.slots.swap(0, 1));
    push("duplicate slot", &|p| {
        let s = p.slots[0].clone();
        p.slots[1] = s;
    });
    push("identity U'", &|p| p.u = [0; 32]);
    push("non-canonical response", &|p| p.responses[0] = [0xff; 32]);
    let mut items: Vec<(Presentation, PresentationContext<'_>)> = Vec::new();
    for (name, p) in &tampered {
        assert!(p.verify(&iss.key, &iss.secret, &ctx(&r)).is_err(), "{name}");
        items.push((p.clone(), ctx(&r)));
    }
    // The context: another day, receiving key, stealth commitment or binding.
    let other = receive(&w.k);
    let other_binding = [8u8; 32];
    let base = ctx(&r);
    let contexts = [
        PresentationContext {
            day: DAY + 1,
            ..base
        },
        PresentationContext {
            receiving_key: &other.p,
            ..base
        },
        PresentationContext {
            stealth_commitment: &other.c_s,
            ..base
        },
        PresentationContext {
            binding: &other_binding,
            ..base
        },
    ];
    for c in contexts {
        assert!(honest.verify(&iss.key, &iss.secret, &c).is_err(), "{c:?}");
        items.push((honest.clone(), c));
    }
    // Honest ones among them pass; the batch names exactly the tampered ones.
    let n_bad = items.len();
    for _ in 0..3 {
        let r2 = receive(&w.k);
        let p = present(&iss, &w, &r2, &[9]);
        items.push((p, ctx(&r)));
    }
    // (Those three were made for r2's context: give them theirs.)
    let r2s: Vec<Received> = (0..3).map(|_| receive(&w.k)).collect();
    items.truncate(n_bad);
    for r2 in &r2s {
        items.push((present(&iss, &w, r2, &[9]), ctx(r2)));
    }
    assert_eq!(batch_refuses(&iss, &items), (0..n_bad).collect::<Vec<_>>());
}

/// A credential works only for coins its own wallet received: another wallet's credential
/// (lent without its secret k, or with it but for someone else's coin) fails the MAC or the
/// binding; a fake binding needs the payer's collusion *and* the coin's secret.
#[test]
fn a_credential_is_bound_to_its_wallet() {
    let iss = issuer();
    let a = wallet(&iss);
    let b = wallet(&iss);
    // B's coin, B's secret, A's credential (lent): the MAC is on k_A, not k_B.
    let rb = receive(&b.k);
    let lent = Presentation::create(
        &iss.key,
        &a.credential,
        &b.k,
        &rb.opening,
        &ctx(&rb),
        &[0],
        &mut crate::os_rng(),
    )
    .unwrap();
    assert_eq!(
        lent.verify(&iss.key, &iss.secret, &ctx(&rb)),
        Err(PresentationError::BadProof)
    );
    // The public part still holds: a payee cannot tell (docs/protocol.md §8.5).
    lent.verify_public(&iss.key, &ctx(&rb)).unwrap();
    assert!(!batch_refuses(&iss, &[(lent, ctx(&rb))]).is_empty());

    // A presents for B's coin with its own credential and k_A, knowing B's coin secret
    // x_B = k_B + s: it needs s' = x_B − k_A with C_s = s'·G + t'·H, but the honest payer
    // committed to s. A proof made for a commitment it can open does not verify for the
    // payer's.
    let x_b = b.k.randomize(&rb.opening.s);
    let s_fake = x_b.scalar() - a.k.scalar();
    let fake = StealthOpening {
        s: s_fake,
        t: pallas::Scalar::ONE,
    };
    let c_fake = presentation::stealth_commitment(&fake);
    let fake_ctx = PresentationContext {
        stealth_commitment: &c_fake,
        ..ctx(&rb)
    };
    let forged = Presentation::create(
        &iss.key,
        &a.credential,
        &a.k,
        &fake,
        &fake_ctx,
        &[0],
        &mut crate::os_rng(),
    )
    .unwrap();
    // Against the payer's real commitment: refused.
    assert_eq!(
        forged.verify(&iss.key, &iss.secret, &ctx(&rb)),
        Err(PresentationError::BadProof)
    );
    // Only a colluding payer who put c_fake in the link makes it verify — and then A had to
    // know x_B, the secret that spends B's coin.
    forged.verify(&iss.key, &iss.secret, &fake_ctx).unwrap();
    // The prover refuses to present for a key that is not its own.
    assert!(matches!(
        Presentation::create(
            &iss.key,
            &a.credential,
            &a.k,
            &rb.opening,
            &ctx(&rb),
            &[0],
            &mut crate::os_rng()
        ),
        Err(PresentationError::CannotPresent(_))
    ));
}

/// Tags are the PRF of (k, day, slot): equal for the same slot (the spent set refuses the
/// second), different for another slot, day or wallet. Everything else is fresh each time.
#[test]
fn tags_repeat_only_per_wallet_day_and_slot_and_nothing_else_links() {
    let iss = issuer();
    let w = wallet(&iss);
    let r1 = receive(&w.k);
    let r2 = receive(&w.k);
    let p1 = present(&iss, &w, &r1, &[4, 6]);
    let p2 = present(&iss, &w, &r2, &[4, 7]);
    assert_eq!(p1.slots[0].tag, p2.slots[0].tag, "same slot, same day");
    assert_ne!(p1.slots[1].tag, p2.slots[1].tag, "another slot");
    let other = wallet(&iss);
    let r3 = receive(&other.k);
    let p3 = present(&iss, &other, &r3, &[4]);
    assert_ne!(p3.slots[0].tag, p1.slots[0].tag, "another wallet");
    // Another day's credential gives another tag for the same slot.
    let day2 = DAY + 1;
    let cred2 = iss
        .secret
        .issue(&iss.key, &w.k.public(), day2, &mut crate::os_rng())
        .open(&iss.key, &w.k, day2)
        .unwrap();
    let c2 = PresentationContext {
        day: day2,
        ..ctx(&r1)
    };
    let p4 = Presentation::create(
        &iss.key,
        &cred2,
        &w.k,
        &r1.opening,
        &c2,
        &[4],
        &mut crate::os_rng(),
    )
    .unwrap();
    p4.verify(&iss.key, &iss.secret, &c2).unwrap();
    assert_ne!(p4.slots[0].tag, p1.slots[0].tag, "another day");
    // A credential used on another day: refused by the prover, and by the verifier if forced.
    assert!(Presentation::create(
        &iss.key,
        &w.credential,
        &w.k,
        &r1.opening,
        &c2,
        &[4],
        &mut crate::os_rng()
    )
    .is_err());
    // Re-randomisation: two presentations of one credential share no element but the key
    // id and the repeated slot's tag, and U' is not the credential's U.
    let fields = |p: &Presentation| {
        let mut v = vec![p.u, p.c_k, p.c_v];
        v.extend(p.commitments);
        v.extend(p.responses);
        v.extend(p.slots.iter().map(|s| s.commitment));
        v
    };
    let (f1, f2) = (fields(&p1), fields(&p2));
    for x in &f1 {
        assert!(!f2.contains(x));
        assert_ne!(*x, w.credential.u);
        assert_ne!(*x, w.credential.v);
    }
    // Two presentations for the very same coin and slots still differ everywhere but tags.
    let p5 = present(&iss, &w, &r1, &[4, 6]);
    for x in fields(&p5) {
        assert!(!f1.contains(&x));
    }
}

#[test]
fn decoding_bounds_the_slot_count() {
    let iss = issuer();
    let w = wallet(&iss);
    let r = receive(&w.k);
    let p = present(&iss, &w, &r, &[1]);
    let mut bytes = p.to_bytes();
    // The count byte sits after key id, U', C_k, C_V and four commitments.
    bytes[32 * 8] = 9;
    assert!(Presentation::from_bytes(&bytes).is_err());
    bytes[32 * 8] = 0;
    assert!(Presentation::from_bytes(&bytes).is_err(), "trailing bytes");
    let empty = Presentation {
        slots: vec![],
        ..p.clone()
    };
    let decoded = Presentation::from_bytes(&empty.to_bytes()).unwrap();
    assert_eq!(
        decoded.verify(&iss.key, &iss.secret, &ctx(&r)),
        Err(PresentationError::SlotCount(0))
    );
    assert!(Presentation::from_bytes(&p.to_bytes()[..100]).is_err());
}

#[test]
fn secrets_round_trip_and_key_ids_commit_to_epoch_class_and_parameters() {
    let secret = CredentialSecret::generate(&mut crate::os_rng());
    let a = secret.params();
    let copy = CredentialSecret::from_bytes(&secret.to_bytes()).unwrap();
    assert_eq!(copy.params(), a);
    assert!(
        CredentialSecret::from_bytes(&[0xff; 128]).is_none(),
        "non-canonical"
    );
    assert_ne!(CredentialSecret::generate(&mut crate::os_rng()).params(), a);
    let k1 = CredentialKey::new(1, "standard", a).unwrap();
    let k2 = CredentialKey::new(2, "standard", a).unwrap();
    let k3 = CredentialKey::new(1, "merchant", a).unwrap();
    assert_ne!(k1.id, k2.id, "the id commits to the epoch");
    assert_ne!(k1.id, k3.id, "the id commits to the class");
    assert!(CredentialKey::new(1, "", a).is_err());
    let mut bad = a;
    bad[1] = [0; 32];
    assert_eq!(
        CredentialKey::new(1, "standard", bad),
        Err(CredentialError::BadPoint("X1"))
    );
    assert_eq!(format!("{secret:?}"), "CredentialSecret(..)");
}

/// Random mixtures of honest and broken presentations: the batch refuses exactly what the
/// single (reference) verifier refuses.
#[test]
fn batched_verdicts_equal_single_verdicts_on_random_mixtures() {
    use rand::RngExt;
    let iss = issuer();
    let wallets: Vec<Wallet> = (0..3).map(|_| wallet(&iss)).collect();
    let mut rng = crate::os_rng();
    for _round in 0..4 {
        let received: Vec<(usize, Received)> = (0..12)
            .map(|i| (i % 3, receive(&wallets[i % 3].k)))
            .collect();
        let mut items = Vec::new();
        for (wi, r) in &received {
            let n: usize = rng.random_range(1..=3);
            let slots: Vec<u16> = (0..n as u16)
                .map(|j| j * 3 + rng.random_range(0..3u16))
                .collect();
            let mut p = present(&iss, &wallets[*wi], r, &slots);
            match rng.random_range(0..4u8) {
                0 => p.responses[rng.random_range(0..5usize)][0] ^= 1,
                1 => p.slots[0].tag[3] ^= 4,
                _ => {}
            }
            items.push((p, ctx(r)));
        }
        let single: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, (p, c))| p.verify(&iss.key, &iss.secret, c).is_err())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(batch_refuses(&iss, &items), single);
    }
}

#[test]
fn the_generators_are_independent_of_g() {
    assert_ne!(generator_h(), generator_g());
    assert_ne!(tag_base(&[0; 32], 1), tag_base(&[0; 32], 2));
    assert_ne!(tag_base(&[0; 32], 1), tag_base(&[1; 32], 1));
    assert!(decode_point(&[0; 32]).is_none(), "identity refused");
    let _ = pallas::Scalar::ONE;
}

/// Decompression hints only accelerate: a presentation read with its hints is the same
/// message with the same verdict, and a wrong hint is ignored (the point is decompressed).
#[test]
fn hints_decode_the_same_presentation_and_wrong_ones_are_ignored() {
    let iss = issuer();
    let w = wallet(&iss);
    let r = receive(&w.k);
    let p = present(&iss, &w, &r, &[1, 4]);
    let (bytes, hints) = p.to_bytes_with_hints();
    assert_eq!(hints.len(), 32 * (7 + 2 * 2), "one y per point");
    let hinted = Presentation::from_bytes_with_hints(&bytes, &hints).unwrap();
    assert_eq!(hinted, p);
    hinted.verify(&iss.key, &iss.secret, &ctx(&r)).unwrap();
    for i in 0..hints.len() / 32 {
        let mut wrong = hints.clone();
        wrong[32 * i] ^= 1;
        let q = Presentation::from_bytes_with_hints(&bytes, &wrong).unwrap();
        assert_eq!(q, p);
        q.verify(&iss.key, &iss.secret, &ctx(&r)).unwrap();
    }
    // A tampered presentation stays refused with its hints.
    let mut bad = p.clone();
    bad.responses[0][0] ^= 1;
    let (b2, h2) = bad.to_bytes_with_hints();
    let q = Presentation::from_bytes_with_hints(&b2, &h2).unwrap();
    assert!(q.verify(&iss.key, &iss.secret, &ctx(&r)).is_err());
}
