use super::*;

fn rng() -> rand::rngs::SysRng {
    rand::rngs::SysRng
}

fn os() -> rand_core::UnwrapErr<rand::rngs::SysRng> {
    rand_core::UnwrapErr(rng())
}

const RFC_DST: &[u8] = b"QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";

/// RFC 9380, appendix J.9.1 (BLS12381G1_XMD:SHA-256_SSWU_RO_): msg, P.x ‖ P.y.
const RFC_9380_G1_RO: &[(&str, &str)] = &[
    ("", "052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a108ba738453bfed09cb546dbb0783dbb3a5f1f566ed67bb6be0e8c67e2e81a4cc68ee29813bb7994998f3eae0c9c6a265"),
    ("abc", "03567bc5ef9c690c2ab2ecdf6a96ef1c139cc0b2f284dca0a9a7943388a49a3aee664ba5379a7655d3c68900be2f69030b9c15f3fe6e5cf4211f346271d7b01c8f3b28be689c8429c85b67af215533311f0b8dfaaa154fa6b88176c229f2885d"),
    ("abcdef0123456789", "11e0b079dea29a68f0383ee94fed1b940995272407e3bb916bbf268c263ddd57a6a27200a784cbc248e84f357ce82d9803a87ae2caf14e8ee52e51fa2ed8eefe80f02457004ba4d486d6aa1f517c0889501dc7413753f9599b099ebcbbd2d709"),
    ("q128_qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "15f68eaa693b95ccb85215dc65fa81038d69629f70aeee0d0f677cf22285e7bf58d7cb86eefe8f2e9bc3f8cb84fac4881807a1d50c29f430b8cafc4f8638dfeeadf51211e1602a5f184443076715f91bb90a48ba1e370edce6ae1062f5e6dd38"),
];

#[test]
fn hash_to_g1_matches_rfc_9380_vectors() {
    for (msg, expected) in RFC_9380_G1_RO {
        let p = hash_to_g1(msg.as_bytes(), RFC_DST);
        assert_eq!(hex::encode(p.to_uncompressed()), *expected, "msg {msg:?}");
        assert!(p.in_subgroup());
    }
    // The a512 vector: 'a512_' followed by 512 'a'.
    let msg = format!("a512_{}", "a".repeat(512));
    let p = hash_to_g1(msg.as_bytes(), RFC_DST);
    assert_eq!(
        hex::encode(p.to_uncompressed()),
        "082aabae8b7dedb0e78aeb619ad3bfd9277a2f77ba7fad20ef6aabdc6c31d19ba5a6d12283553294c1825c4b3ca2dcfe05b84ae5a942248eea39e1d91030458c40153f3b654ab7872d779ad1e942856a20c438e8d99bc8abfbf74729ce1f7ac8"
    );
}

#[test]
fn hash_to_g1_separates_domains() {
    assert_ne!(hash_to_g1(b"m", b"DST-A"), hash_to_g1(b"m", b"DST-B"));
}

#[test]
fn blind_signature_unblinds_to_an_ordinary_signature() {
    let mut rng = os();
    let sk = SecretKey::generate(&mut rng);
    let pk = sk.public_key();
    let dst = b"TEST-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
    let msg = b"serial";
    let rho = Scalar::random(&mut rng);
    let blinded = hash_to_g1(msg, dst).mul(&rho).unwrap();
    assert!(blinded.in_subgroup());
    let signed = sk.sign_point(&blinded).unwrap();
    let sigma = signed.mul(&rho.invert()).unwrap();
    assert_eq!(sigma, sk.sign(msg, dst));
    assert!(verify(&pk, &sigma, msg, dst));
    assert!(!verify(&pk, &sigma, b"other", dst));
    let other = SecretKey::generate(&mut rng).public_key();
    assert!(!verify(&other, &sigma, msg, dst));
    // blst's own verifier agrees.
    let blst_sig = blst::min_sig::Signature::from_bytes(&sigma.to_compressed()).unwrap();
    let blst_pk = blst::min_sig::PublicKey::from_bytes(&pk.to_bytes()).unwrap();
    assert_eq!(
        blst_sig.verify(true, msg, dst, &[], &blst_pk, true),
        BLST_ERROR::BLST_SUCCESS
    );
}

use super::testing::order_three_point;

/// Pins the behaviour `docs/protocol.md` argues from: the pairing ignores a cofactor
/// component of σ, so only an explicit subgroup check makes σ canonical.
#[test]
fn pairing_ignores_cofactor_component_subgroup_check_does_not() {
    let mut rng = os();
    let sk = SecretKey::generate(&mut rng);
    let pk = sk.public_key();
    let dst = b"TEST-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
    let sigma = sk.sign(b"m", dst);
    let t = order_three_point();
    assert!(!t.in_subgroup());
    let tweaked = sigma.add(&t).unwrap();
    assert_ne!(tweaked, sigma);
    assert!(!tweaked.in_subgroup());
    // The compressed form of the tweaked point decodes (it is on the curve) without complaint.
    let decoded = G1Affine::from_compressed(&tweaked.to_compressed()).unwrap();
    assert!(!decoded.in_subgroup());
    // A pairing-only check (blst's safe API with its group check off) accepts it ...
    let blst_sig = blst::min_sig::Signature::from_bytes(&tweaked.to_compressed()).unwrap();
    let blst_pk = blst::min_sig::PublicKey::from_bytes(&pk.to_bytes()).unwrap();
    assert_eq!(
        blst_sig.verify(false, b"m", dst, &[], &blst_pk, true),
        BLST_ERROR::BLST_SUCCESS,
        "the pairing cannot see the order-3 part"
    );
    // ... while the group-checked paths, ours included, refuse it.
    assert_ne!(
        blst_sig.verify(true, b"m", dst, &[], &blst_pk, true),
        BLST_ERROR::BLST_SUCCESS
    );
    assert!(!verify(&pk, &tweaked, b"m", dst));
    assert!(verify(&pk, &sigma, b"m", dst));
}

#[test]
fn signing_a_point_outside_g1_exposes_more_than_sk_times_b() {
    // A blinded message with a small-order component makes the issuer's answer depend on sk
    // modulo that order (how exactly depends on blst's endomorphism-based ladder): the answer
    // leaves G1 for about two keys in three. This is why the issuer checks blinded messages
    // for subgroup membership before signing. Over 16 fresh keys at least one must show it
    // (all 16 missing has probability 3⁻¹⁶).
    let mut rng = os();
    let b = hash_to_g1(b"x", b"D");
    let tweaked = b.add(&order_three_point()).unwrap();
    let leaks = (0..16)
        .filter(|_| {
            let sk = SecretKey::generate(&mut rng);
            let answer = sk.sign_point(&tweaked).unwrap();
            answer != sk.sign_point(&b).unwrap() && !answer.in_subgroup()
        })
        .count();
    assert!(
        leaks >= 1,
        "answers on a non-G1 point carry a key-dependent torsion part"
    );
}

#[test]
fn decoding_rejects_bad_points() {
    let g = hash_to_g1(b"x", b"D");
    let c = g.to_compressed();
    assert_eq!(G1Affine::from_compressed(&c).unwrap(), g);
    // Compression flag missing.
    let mut no_flag = c;
    no_flag[0] &= 0x7f;
    assert_eq!(
        G1Affine::from_compressed(&no_flag),
        Err(PointError::BadEncoding)
    );
    // Infinity.
    let mut inf = [0u8; 48];
    inf[0] = 0xc0;
    assert_eq!(G1Affine::from_compressed(&inf), Err(PointError::Identity));
    // x ≥ p (all ones below the flags).
    let mut big = [0xffu8; 48];
    big[0] = 0x9f;
    assert!(G1Affine::from_compressed(&big).is_err());
    // Uncompressed: off-curve y.
    let mut u = g.to_uncompressed();
    u[95] ^= 1;
    assert_eq!(G1Affine::from_uncompressed(&u), Err(PointError::NotOnCurve));
    // Public keys: wrong bytes refused, round trip holds.
    let pk = SecretKey::generate(&mut os()).public_key();
    assert_eq!(PublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
    let mut bad = pk.to_bytes();
    bad[5] ^= 0x55;
    assert!(PublicKey::from_bytes(&bad).is_err());
}

#[test]
fn scalar_inverse_round_trips() {
    let mut rng = os();
    let p = hash_to_g1(b"p", b"D");
    let s = Scalar::random(&mut rng);
    assert_eq!(p.mul(&s).unwrap().mul(&s.invert()).unwrap(), p);
}

#[test]
fn secret_key_round_trips_and_hides_in_debug() {
    let sk = SecretKey::generate(&mut os());
    let again = SecretKey::from_bytes(&sk.to_bytes()).unwrap();
    assert_eq!(again.public_key(), sk.public_key());
    assert_eq!(format!("{sk:?}"), "SecretKey(..)");
    assert!(SecretKey::from_bytes(&[0u8; 32]).is_err());
}

mod batch_tests {
    use super::super::batch::{
        hash_to_curve_uncleared_many, random_weights, vartime_msm, verify, BlsItem, MessageForm,
    };
    use super::*;

    const DST: &[u8] = b"TEST-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";

    fn items(n: usize, keys: &[SecretKey]) -> Vec<BlsItem> {
        (0..n)
            .map(|i| {
                let k = i % keys.len();
                let msg = (i as u64).to_le_bytes();
                BlsItem {
                    key: k as u32,
                    signature: keys[k].sign(&msg, DST),
                    message: hash_to_g1(&msg, DST),
                }
            })
            .collect()
    }

    #[test]
    fn batch_agrees_with_single_verification_and_names_bad_items() {
        let mut rng = os();
        let sks: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate(&mut rng)).collect();
        let pks: Vec<PublicKey> = sks.iter().map(|s| s.public_key()).collect();
        for n in [1usize, 2, 5, 40, 700] {
            let mut its = items(n, &sks);
            let w = random_weights(&mut rng, n);
            assert!(
                verify(&pks, &its, &w, MessageForm::Hashed).is_empty(),
                "valid batch of {n}"
            );
            // Forge a few: wrong key, wrong message, swapped signatures.
            let mut bad = vec![];
            if n >= 2 {
                its[0].signature =
                    sks[(its[0].key as usize + 1) % 3].sign(&0u64.to_le_bytes(), DST);
                bad.push(0);
                let last = n - 1;
                its[last].message = hash_to_g1(b"other", DST);
                bad.push(last);
            }
            let found = verify(&pks, &its, &w, MessageForm::Hashed);
            let mut found_sorted = found.clone();
            found_sorted.sort();
            assert_eq!(found_sorted, bad);
            // Single verification agrees item by item.
            for (i, it) in its.iter().enumerate() {
                let single = pairing_check(&pks[it.key as usize], &it.signature, &it.message);
                assert_eq!(single, !bad.contains(&i));
            }
        }
    }

    #[test]
    fn batch_ignores_cofactor_components_like_the_single_pairing_check() {
        let mut rng = os();
        let sks = vec![SecretKey::generate(&mut rng)];
        let pks = vec![sks[0].public_key()];
        let mut its = items(16, &sks);
        let t = order_three_point();
        its[3].signature = its[3].signature.add(&t).unwrap();
        assert!(pairing_check(&pks[0], &its[3].signature, &its[3].message));
        let w = random_weights(&mut rng, its.len());
        assert!(verify(&pks, &its, &w, MessageForm::Hashed).is_empty());
    }

    /// Items whose message points are uncleared (Q₀ + Q₁): valid ones pass when the check
    /// clears per key, a bad one is named, and the same points taken as hashed fail — the
    /// clearing is what makes them right.
    #[test]
    fn uncleared_messages_are_cleared_once_per_key() {
        let mut rng = os();
        let sks: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate(&mut rng)).collect();
        let pks: Vec<PublicKey> = sks.iter().map(|s| s.public_key()).collect();
        let msgs: Vec<[u8; 32]> = (0..40u8).map(|i| [i; 32]).collect();
        let hints: Vec<map::MapHint> = msgs.iter().map(|m| map::sswu_hints(m, DST)).collect();
        let slots: Vec<Option<&map::MapHint>> = hints
            .iter()
            .enumerate()
            .map(|(i, h)| (i % 2 == 0).then_some(h))
            .collect();
        let points = hash_to_curve_uncleared_many(&msgs, &slots, DST);
        assert!(points.iter().any(|p| !p.in_subgroup()));
        let mut its: Vec<BlsItem> = msgs
            .iter()
            .zip(&points)
            .enumerate()
            .map(|(i, (m, q))| BlsItem {
                key: (i % 3) as u32,
                signature: sks[i % 3].sign(m, DST),
                message: *q,
            })
            .collect();
        let w = random_weights(&mut rng, its.len());
        assert!(verify(&pks, &its, &w, MessageForm::Uncleared).is_empty());
        assert!(!verify(&pks, &its, &w, MessageForm::Hashed).is_empty());
        its[17].signature = sks[0].sign(b"other", DST);
        assert_eq!(verify(&pks, &its, &w, MessageForm::Uncleared), vec![17]);
    }

    /// Σ wᵢ·Pᵢ over points outside G1 equals plain double-and-add, for the small-batch
    /// path and Pippenger alike: neither may use G1's endomorphism on these inputs.
    #[test]
    fn an_msm_is_right_outside_g1() {
        let mut rng = os();
        for n in [1usize, 2, 3, 5, 600] {
            let points: Vec<G1Affine> = (0..n as u32)
                .map(|i| {
                    let q = map::hash_to_curve_uncleared(&i.to_le_bytes(), DST);
                    to_affine_checked(&q).unwrap()
                })
                .collect();
            assert!(points.iter().any(|p| !p.in_subgroup()));
            let w = random_weights(&mut rng, n);
            let mut want = blst_p1::default();
            for (p, w) in points.iter().zip(&w) {
                let mut base = blst_p1::default();
                let mut acc = blst_p1::default();
                // SAFETY: valid points and out-pointers throughout.
                unsafe {
                    blst::blst_p1_from_affine(&mut base, &p.0);
                    for bit in (0..128).rev() {
                        blst::blst_p1_double(&mut acc, &acc);
                        if (w[bit / 8] >> (bit % 8)) & 1 == 1 {
                            blst_p1_add_or_double(&mut acc, &acc, &base);
                        }
                    }
                    blst_p1_add_or_double(&mut want, &want, &acc);
                }
            }
            let got = vartime_msm(&points, &w);
            // SAFETY: valid points.
            assert!(unsafe { blst::blst_p1_is_equal(&got, &want) }, "n = {n}");
        }
    }
}

/// The map written on blst's field operations gives RFC 9380's points once cleared.
#[test]
fn the_map_gives_rfc_9380_vectors() {
    for (msg, expected) in RFC_9380_G1_RO {
        let q = map::hash_to_curve_uncleared(msg.as_bytes(), RFC_DST);
        let p = to_affine_checked(&map::clear_cofactor(&q)).unwrap();
        assert_eq!(hex::encode(p.to_uncompressed()), *expected, "msg {msg:?}");
        let hint = map::sswu_hints(msg.as_bytes(), RFC_DST);
        let q = map::hash_to_curve_uncleared_hinted(msg.as_bytes(), RFC_DST, &hint);
        let p = to_affine_checked(&map::clear_cofactor(&q)).unwrap();
        assert_eq!(
            hex::encode(p.to_uncompressed()),
            *expected,
            "hinted msg {msg:?}"
        );
    }
}

/// A blinding factor survives a wallet file: canonical big-endian bytes round-trip; zero,
/// the group order r and anything above are refused.
#[test]
fn scalar_bytes_round_trip_and_reject_non_canonical() {
    let mut rng = os();
    for _ in 0..100 {
        let s = Scalar::random(&mut rng);
        let b = s.to_bytes();
        let back = Scalar::from_bytes(&b).unwrap();
        assert_eq!(back.to_bytes(), b);
        // Same scalar: the same multiple of a point.
        let p = hash_to_g1(b"m", b"dst");
        assert_eq!(
            p.mul(&s).unwrap().to_compressed(),
            p.mul(&back).unwrap().to_compressed()
        );
    }
    let mut one = [0u8; 32];
    one[31] = 1;
    assert_eq!(
        Scalar::from_bytes(&one).unwrap().invert().to_bytes(),
        one,
        "big-endian"
    );
    assert!(Scalar::from_bytes(&[0u8; 32]).is_none());
    // r = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001
    let r =
        hex::decode("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001").unwrap();
    let r: [u8; 32] = r.try_into().unwrap();
    assert!(Scalar::from_bytes(&r).is_none());
    assert!(Scalar::from_bytes(&[0xff; 32]).is_none());
    let mut r_minus_one = r;
    r_minus_one[31] = 0;
    assert!(Scalar::from_bytes(&r_minus_one).is_some());
}
