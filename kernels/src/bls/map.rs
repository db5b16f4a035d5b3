//! RFC 9380 hash-to-G1 (`BLS12381G1_XMD:SHA-256_SSWU_RO_`) written out on blst's exported
//! field operations, so that its parts can be used apart: the point *before* cofactor
//! clearing (`Q₀ + Q₁`, on the curve but not necessarily in G1) and the clearing itself.
//!
//! Why: `Σ rᵢ·H(mᵢ) = h_eff·Σ rᵢ·(Q₀,ᵢ + Q₁,ᵢ)`, so a batch check can clear the cofactor once
//! per key after its MSM instead of once per message. This module is the first step: the
//! map, the 11-isogeny and the clearing, bit for bit equal to blst's `hash_to_g1` (tested on
//! RFC 9380's vectors and on random messages). It is not constant time; it hashes public
//! serials only.
//!
//! Constants: RFC 9380 §8.8.1 (E': A', B', Z = 11; h_eff) and Appendix E.2 (the 11-isogeny),
//! as big-endian hex.

use blst::{
    blst_bendian_from_fp, blst_expand_message_xmd, blst_fp, blst_fp_add, blst_fp_cneg,
    blst_fp_from_be_bytes, blst_fp_from_hexascii, blst_fp_inverse, blst_fp_mul, blst_fp_sqr,
    blst_fp_sqrt, blst_p1, blst_p1_add_or_double, blst_p1_affine, blst_p1_from_affine,
    blst_p1_mult, blst_p1_to_affine, blst_uint64_from_fp,
};

/// An element of the base field p, in blst's (Montgomery) representation.
#[derive(Clone, Copy)]
struct Fp(blst_fp);

impl Fp {
    /// Parses big-endian hex (`0x…`), reducing mod p.
    fn hex(h: &str) -> Fp {
        let mut z = String::from(h);
        z.push('\0');
        let mut out = blst_fp::default();
        // SAFETY: `z` is NUL-terminated ASCII; `out` is a valid out-pointer.
        unsafe { blst_fp_from_hexascii(&mut out, z.as_ptr()) };
        Fp(out)
    }
    /// A big-endian byte string reduced mod p (any length).
    fn from_be(bytes: &[u8]) -> Fp {
        let mut out = blst_fp::default();
        // SAFETY: `bytes` is readable for its length; `out` is a valid out-pointer.
        unsafe { blst_fp_from_be_bytes(&mut out, bytes.as_ptr(), bytes.len()) };
        Fp(out)
    }
    fn add(&self, o: &Fp) -> Fp {
        let mut out = blst_fp::default();
        // SAFETY: valid field elements in, a valid out-pointer.
        unsafe { blst_fp_add(&mut out, &self.0, &o.0) };
        Fp(out)
    }
    fn mul(&self, o: &Fp) -> Fp {
        let mut out = blst_fp::default();
        // SAFETY: as above.
        unsafe { blst_fp_mul(&mut out, &self.0, &o.0) };
        Fp(out)
    }
    fn sqr(&self) -> Fp {
        let mut out = blst_fp::default();
        // SAFETY: as above.
        unsafe { blst_fp_sqr(&mut out, &self.0) };
        Fp(out)
    }
    fn neg(&self) -> Fp {
        let mut out = blst_fp::default();
        // SAFETY: as above.
        unsafe { blst_fp_cneg(&mut out, &self.0, true) };
        Fp(out)
    }
    /// 1/self (0 for 0, as RFC 9380's inv0).
    fn inv0(&self) -> Fp {
        let mut out = blst_fp::default();
        // SAFETY: as above.
        unsafe { blst_fp_inverse(&mut out, &self.0) };
        Fp(out)
    }
    fn sqrt(&self) -> Option<Fp> {
        let mut out = blst_fp::default();
        // SAFETY: as above.
        unsafe { blst_fp_sqrt(&mut out, &self.0) }.then_some(Fp(out))
    }
    /// The canonical big-endian bytes.
    fn to_be(self) -> [u8; 48] {
        let mut out = [0u8; 48];
        // SAFETY: `out` is 48 writable bytes.
        unsafe { blst_bendian_from_fp(out.as_mut_ptr(), &self.0) };
        out
    }
    // blst keeps every element fully reduced (below p) in Montgomery form — its
    // multiplications end with a conditional subtraction, its negation keeps 0 at 0 — so a
    // value has one representation, and equality (zero included) is equality of limbs:
    // no conversion out of Montgomery form (which cost a fifth of the map).
    fn is_zero(&self) -> bool {
        self.0.l == [0; 6]
    }
    fn same(&self, o: &Fp) -> bool {
        self.0.l == o.0.l
    }
    /// RFC 9380 sgn0 for m = 1: the parity of the canonical value.
    fn sgn0(&self) -> bool {
        let mut limbs = [0u64; 6];
        // SAFETY: `limbs` is 6 writable words; a valid field element in.
        unsafe { blst_uint64_from_fp(limbs.as_mut_ptr(), &self.0) };
        limbs[0] & 1 == 1
    }
}

/// The curve E' isogenous to E, its SSWU constant Z, and the 11-isogeny E' → E.
struct Params {
    a: Fp,
    b: Fp,
    z: Fp,
    /// −B/A and B/(Z·A).
    minus_b_over_a: Fp,
    b_over_za: Fp,
    one: Fp,
    x_num: Vec<Fp>,
    x_den: Vec<Fp>,
    y_num: Vec<Fp>,
    y_den: Vec<Fp>,
    two_256: Fp,
}

fn params() -> &'static Params {
    static PARAMS: std::sync::OnceLock<Params> = std::sync::OnceLock::new();
    PARAMS.get_or_init(|| {
        let list = |l: &[&str]| l.iter().map(|h| Fp::hex(h)).collect::<Vec<_>>();
        let a = Fp::hex(A);
        let b = Fp::hex(B);
        let z = Fp::hex("0xb");
        let mut two_256 = [0u8; 33];
        two_256[0] = 1;
        Params {
            minus_b_over_a: b.mul(&a.inv0()).neg(),
            b_over_za: b.mul(&z.mul(&a).inv0()),
            a,
            b,
            z,
            one: Fp::hex("0x1"),
            x_num: list(&X_NUM),
            x_den: list(&X_DEN),
            y_num: list(&Y_NUM),
            y_den: list(&Y_DEN),
            two_256: Fp::from_be(&two_256),
        }
    })
}

/// RFC 9380 hash_to_field with count 2 (expand_message_xmd, SHA-256, L = 64).
fn hash_to_field(msg: &[u8], dst: &[u8]) -> [Fp; 2] {
    let mut uniform = [0u8; 128];
    // SAFETY: `uniform` is 128 writable bytes; `msg` and `dst` are readable for their lengths.
    unsafe {
        blst_expand_message_xmd(
            uniform.as_mut_ptr(),
            uniform.len(),
            msg.as_ptr(),
            msg.len(),
            dst.as_ptr(),
            dst.len(),
        )
    };
    let (first, second) = uniform.split_at(64);
    [reduce64(first), reduce64(second)]
}

/// A 64-byte big-endian integer mod p: hi·2²⁵⁶ + lo, each half below p.
fn reduce64(b: &[u8]) -> Fp {
    let (hi, lo) = b.split_at(32);
    Fp::from_be(hi).mul(&params().two_256).add(&Fp::from_be(lo))
}

/// g(x) = x³ + A·x + B on E'.
fn g(p: &Params, x: &Fp) -> Fp {
    x.sqr().add(&p.a).mul(x).add(&p.b)
}

/// The first SSWU candidate x₁ = (−B/A)·(1 + tv1), where tv1 = 1/(Z²u⁴ + Zu²) is
/// given (inverted by the caller, batched); x₁ = B/(Z·A) when the denominator is 0
/// (RFC 9380 §6.6.2).
fn sswu_x1(p: &Params, tv1: &Fp) -> Fp {
    if tv1.is_zero() {
        p.b_over_za
    } else {
        p.minus_b_over_a.mul(&p.one.add(tv1))
    }
}

/// Z·u² and the SSWU denominator Z²u⁴ + Zu² (to be inverted).
fn sswu_den(p: &Params, u: &Fp) -> (Fp, Fp) {
    let zu2 = p.z.mul(&u.sqr());
    (zu2, zu2.sqr().add(&zu2))
}

/// A hinted square root, checked by one squaring: `h` is accepted if h² = g(x₁) (then
/// x = x₁) or h² = g(x₂) = Z³u⁶·g(x₁) with g(x₁) ≠ 0 — Z is not a square, so the second
/// proves g(x₁) is not one, which is exactly when the map takes x₂. Anything else is `None`
/// and the caller computes the root itself: a hint changes the cost, never the point.
fn hinted_root(p: &Params, zu2: &Fp, x1: &Fp, gx1: &Fp, h: &Fp) -> Option<(Fp, Fp)> {
    let h2 = h.sqr();
    if h2.same(gx1) {
        return Some((*x1, *h));
    }
    let x2 = zu2.mul(x1);
    (!gx1.is_zero() && h2.same(&g(p, &x2))).then_some((x2, *h))
}

/// The rest of simplified SWU once x₁ is known: the root (from the hint when it checks out),
/// then y's sign from u's. Returns (x', y') on E'.
fn sswu_point(p: &Params, u: &Fp, zu2: &Fp, x1: &Fp, hint: Option<&Fp>) -> (Fp, Fp) {
    let gx1 = g(p, x1);
    let (x, y) = hint
        .and_then(|h| hinted_root(p, zu2, x1, &gx1, h))
        .unwrap_or_else(|| match gx1.sqrt() {
            Some(y1) => (*x1, y1),
            None => {
                let x2 = zu2.mul(x1);
                let gx2 = g(p, &x2);
                // g(x2) = Z³u⁶·g(x1) is a square whenever g(x1) is not.
                (x2, gx2.sqrt().unwrap_or(gx2))
            }
        });
    let y = if u.sgn0() != y.sgn0() { y.neg() } else { y };
    (x, y)
}

/// Montgomery's trick: every non-zero element of `xs` becomes its inverse for the price of
/// one field inversion and three multiplications each; zeros stay zero (RFC 9380's inv0).
fn batch_inv0(xs: &mut [Fp]) {
    let mut before = Vec::with_capacity(xs.len());
    let mut acc = params().one;
    for x in xs.iter() {
        before.push(acc);
        if !x.is_zero() {
            acc = acc.mul(x);
        }
    }
    let mut inv = acc.inv0();
    for (x, b) in xs.iter_mut().zip(before).rev() {
        if !x.is_zero() {
            let xi = inv.mul(&b);
            inv = inv.mul(x);
            *x = xi;
        }
    }
}

/// One SSWU hint: the square roots for u₀ and u₁, 48 bytes big-endian each.
pub type MapHint = [[u8; 48]; 2];

/// The two SSWU square roots of `msg`: the hint a wallet or generator attaches so that the
/// verifier's map needs no exponentiation.
pub fn sswu_hints(msg: &[u8], dst: &[u8]) -> MapHint {
    let p = params();
    let root = |u: &Fp| {
        let (zu2, den) = sswu_den(p, u);
        let x1 = sswu_x1(p, &den.inv0());
        sswu_point(p, u, &zu2, &x1, None).1.to_be()
    };
    let [u0, u1] = hash_to_field(msg, dst);
    [root(&u0), root(&u1)]
}

/// The 11-isogeny's four polynomials at x: (x_num, x_den, y_num, y_den) (RFC 9380 E.2).
fn iso_parts(p: &Params, x: &Fp) -> [Fp; 4] {
    [
        horner(&p.x_num, x),
        horner(&p.x_den, x),
        horner(&p.y_num, x),
        horner(&p.y_den, x),
    ]
}

/// Horner evaluation of a polynomial with coefficients in ascending order.
fn horner(coeffs: &[Fp], x: &Fp) -> Fp {
    let mut it = coeffs.iter().rev();
    let mut acc = it.next().copied().unwrap_or(Fp(blst_fp::default()));
    for c in it {
        acc = acc.mul(x).add(c);
    }
    acc
}

fn jacobian(a: &blst_p1_affine) -> blst_p1 {
    let mut out = blst_p1::default();
    // SAFETY: a valid affine point in, a valid out-pointer.
    unsafe { blst_p1_from_affine(&mut out, a) };
    out
}

/// A point in affine form (the identity as blst's all-zero point).
pub(super) fn affine(p: &blst_p1) -> blst_p1_affine {
    let mut out = blst_p1_affine::default();
    // SAFETY: a valid point in, a valid out-pointer.
    unsafe { blst_p1_to_affine(&mut out, p) };
    out
}

/// Q₀ + Q₁ for each message (a point of E, not necessarily in G1: the cofactor is not
/// cleared), as affine points; the identity is blst's all-zero affine point. `hints[i]` is
/// message i's SSWU hint, if it has one (`hints` is empty or one per message); a wrong hint
/// costs the square roots it meant to save and gives the same point.
///
/// Every inversion of the map is batched over the slice (Montgomery's trick): the SSWU
/// denominators, the isogeny's denominators, and the slopes of the final additions — three
/// field inversions for the whole slice instead of seven per message.
pub fn hash_to_curve_uncleared_many<M: AsRef<[u8]>>(
    msgs: &[M],
    hints: &[Option<&MapHint>],
    dst: &[u8],
) -> Vec<blst_p1_affine> {
    assert!(
        hints.is_empty() || hints.len() == msgs.len(),
        "one hint slot per message"
    );
    let p = params();
    // u₀, u₁ of message i at 2i, 2i + 1.
    let us: Vec<Fp> = msgs
        .iter()
        .flat_map(|m| hash_to_field(m.as_ref(), dst))
        .collect();
    let (zu2, mut tv1): (Vec<Fp>, Vec<Fp>) = us.iter().map(|u| sswu_den(p, u)).unzip();
    batch_inv0(&mut tv1);
    let on_e_prime: Vec<(Fp, Fp)> = us
        .iter()
        .zip(zu2.iter().zip(&tv1))
        .enumerate()
        .map(|(k, (u, (zu2, tv1)))| {
            let hint = hints
                .get(k / 2)
                .copied()
                .flatten()
                .and_then(|h| h.get(k % 2))
                .map(|h| Fp::from_be(h));
            sswu_point(p, u, zu2, &sswu_x1(p, tv1), hint.as_ref())
        })
        .collect();
    // The isogeny: x = x_num/x_den, y = y'·y_num/y_den; both denominators inverted at once.
    let parts: Vec<[Fp; 4]> = on_e_prime.iter().map(|(x, _)| iso_parts(p, x)).collect();
    let mut dens: Vec<Fp> = parts.iter().flat_map(|[_, xd, _, yd]| [*xd, *yd]).collect();
    batch_inv0(&mut dens);
    let on_e: Vec<blst_p1_affine> = parts
        .iter()
        .zip(&on_e_prime)
        .zip(dens.chunks_exact(2))
        .map(|(([xn, _, yn, _], (_, y)), inv)| match inv {
            [xd_inv, yd_inv] if !xd_inv.is_zero() && !yd_inv.is_zero() => blst_p1_affine {
                x: xn.mul(xd_inv).0,
                y: y.mul(yn).mul(yd_inv).0,
            },
            // A kernel point of the isogeny maps to the identity (RFC 9380 §6.6.3).
            _ => blst_p1_affine::default(),
        })
        .collect();
    add_pairs(&on_e)
}

/// The sums of consecutive pairs of affine points, (P₀ + P₁, P₂ + P₃, …), with the slopes'
/// inversions batched. Pairs the chord formula does not cover (an identity, equal or
/// opposite points: never seen for hashes, but defined) go through blst's complete addition.
fn add_pairs(points: &[blst_p1_affine]) -> Vec<blst_p1_affine> {
    let infinity = blst_p1_affine::default();
    let pairs: Vec<(&blst_p1_affine, &blst_p1_affine)> = points
        .chunks_exact(2)
        .filter_map(|pair| match pair {
            [a, b] => Some((a, b)),
            _ => None,
        })
        .collect();
    let generic = |a: &blst_p1_affine, b: &blst_p1_affine| {
        *a != infinity && *b != infinity && !Fp(a.x).same(&Fp(b.x))
    };
    let mut dx: Vec<Fp> = pairs
        .iter()
        .map(|(a, b)| {
            if generic(a, b) {
                Fp(b.x).add(&Fp(a.x).neg())
            } else {
                Fp(blst_fp::default())
            }
        })
        .collect();
    batch_inv0(&mut dx);
    pairs
        .iter()
        .zip(&dx)
        .map(|((a, b), dx_inv)| {
            if !generic(a, b) {
                let mut sum = blst_p1::default();
                // SAFETY: valid points in, a valid out-pointer.
                unsafe { blst_p1_add_or_double(&mut sum, &jacobian(a), &jacobian(b)) };
                return affine(&sum);
            }
            let (ax, ay, bx, by) = (Fp(a.x), Fp(a.y), Fp(b.x), Fp(b.y));
            let lambda = by.add(&ay.neg()).mul(dx_inv);
            let x = lambda.sqr().add(&ax.neg()).add(&bx.neg());
            let y = lambda.mul(&ax.add(&x.neg())).add(&ay.neg());
            blst_p1_affine { x: x.0, y: y.0 }
        })
        .collect()
}

/// Q₀ + Q₁ for `msg`: a point of E, not necessarily in G1 (the cofactor is not cleared).
pub fn hash_to_curve_uncleared(msg: &[u8], dst: &[u8]) -> blst_p1 {
    one(hash_to_curve_uncleared_many(&[msg], &[], dst))
}

/// [`hash_to_curve_uncleared`] with the square roots as a hint; a wrong hint falls back to
/// computing the roots, so the result is the same point whatever the hint.
pub fn hash_to_curve_uncleared_hinted(msg: &[u8], dst: &[u8], hint: &MapHint) -> blst_p1 {
    one(hash_to_curve_uncleared_many(&[msg], &[Some(hint)], dst))
}

fn one(points: Vec<blst_p1_affine>) -> blst_p1 {
    jacobian(points.first().unwrap_or(&blst_p1_affine::default()))
}

/// h_eff·P (RFC 9380 §8.8.1: h_eff = 0xd201000000010001 for G1). 64 bits: blst multiplies
/// by the plain window method below 176 bits (its GLV endomorphism path, wrong outside G1,
/// starts above), so this is right for any point of E.
pub fn clear_cofactor(p: &blst_p1) -> blst_p1 {
    let h_eff = 0xd201_0000_0001_0001u64.to_le_bytes();
    let mut out = blst_p1::default();
    // SAFETY: `h_eff` is 8 readable bytes holding 64 bits; valid point in and out.
    unsafe { blst_p1_mult(&mut out, p, h_eff.as_ptr(), 64) };
    out
}

const A: &str = "0x144698a3b8e9433d693a02c96d4982b0ea985383ee66a8d8e8981aefd881ac98936f8da0e0f97f5cf428082d584c1d";
const B: &str = "0x12e2908d11688030018b12e8753eee3b2016c1f0f24f4070a0b9c14fcef35ef55a23215a316ceaa5d1cc48e98e172be0";

const X_NUM: [&str; 12] = [
    "0x11a05f2b1e833340b809101dd99815856b303e88a2d7005ff2627b56cdb4e2c85610c2d5f2e62d6eaeac1662734649b7",
    "0x17294ed3e943ab2f0588bab22147a81c7c17e75b2f6a8417f565e33c70d1e86b4838f2a6f318c356e834eef1b3cb83bb",
    "0x0d54005db97678ec1d1048c5d10a9a1bce032473295983e56878e501ec68e25c958c3e3d2a09729fe0179f9dac9edcb0",
    "0x1778e7166fcc6db74e0609d307e55412d7f5e4656a8dbf25f1b33289f1b330835336e25ce3107193c5b388641d9b6861",
    "0x0e99726a3199f4436642b4b3e4118e5499db995a1257fb3f086eeb65982fac18985a286f301e77c451154ce9ac8895d9",
    "0x1630c3250d7313ff01d1201bf7a74ab5db3cb17dd952799b9ed3ab9097e68f90a0870d2dcae73d19cd13c1c66f652983",
    "0x0d6ed6553fe44d296a3726c38ae652bfb11586264f0f8ce19008e218f9c86b2a8da25128c1052ecaddd7f225a139ed84",
    "0x17b81e7701abdbe2e8743884d1117e53356de5ab275b4db1a682c62ef0f2753339b7c8f8c8f475af9ccb5618e3f0c88e",
    "0x080d3cf1f9a78fc47b90b33563be990dc43b756ce79f5574a2c596c928c5d1de4fa295f296b74e956d71986a8497e317",
    "0x169b1f8e1bcfa7c42e0c37515d138f22dd2ecb803a0c5c99676314baf4bb1b7fa3190b2edc0327797f241067be390c9e",
    "0x10321da079ce07e272d8ec09d2565b0dfa7dccdde6787f96d50af36003b14866f69b771f8c285decca67df3f1605fb7b",
    "0x06e08c248e260e70bd1e962381edee3d31d79d7e22c837bc23c0bf1bc24c6b68c24b1b80b64d391fa9c8ba2e8ba2d229",
];

const X_DEN: [&str; 11] = [
    "0x08ca8d548cff19ae18b2e62f4bd3fa6f01d5ef4ba35b48ba9c9588617fc8ac62b558d681be343df8993cf9fa40d21b1c",
    "0x12561a5deb559c4348b4711298e536367041e8ca0cf0800c0126c2588c48bf5713daa8846cb026e9e5c8276ec82b3bff",
    "0x0b2962fe57a3225e8137e629bff2991f6f89416f5a718cd1fca64e00b11aceacd6a3d0967c94fedcfcc239ba5cb83e19",
    "0x03425581a58ae2fec83aafef7c40eb545b08243f16b1655154cca8abc28d6fd04976d5243eecf5c4130de8938dc62cd8",
    "0x13a8e162022914a80a6f1d5f43e7a07dffdfc759a12062bb8d6b44e833b306da9bd29ba81f35781d539d395b3532a21e",
    "0x0e7355f8e4e667b955390f7f0506c6e9395735e9ce9cad4d0a43bcef24b8982f7400d24bc4228f11c02df9a29f6304a5",
    "0x0772caacf16936190f3e0c63e0596721570f5799af53a1894e2e073062aede9cea73b3538f0de06cec2574496ee84a3a",
    "0x14a7ac2a9d64a8b230b3f5b074cf01996e7f63c21bca68a81996e1cdf9822c580fa5b9489d11e2d311f7d99bbdcc5a5e",
    "0x0a10ecf6ada54f825e920b3dafc7a3cce07f8d1d7161366b74100da67f39883503826692abba43704776ec3a79a1d641",
    "0x095fc13ab9e92ad4476d6e3eb3a56680f682b4ee96f7d03776df533978f31c1593174e4b4b7865002d6384d168ecdd0a",
    "0x1",
];

const Y_NUM: [&str; 16] = [
    "0x090d97c81ba24ee0259d1f094980dcfa11ad138e48a869522b52af6c956543d3cd0c7aee9b3ba3c2be9845719707bb33",
    "0x134996a104ee5811d51036d776fb46831223e96c254f383d0f906343eb67ad34d6c56711962fa8bfe097e75a2e41c696",
    "0x00cc786baa966e66f4a384c86a3b49942552e2d658a31ce2c344be4b91400da7d26d521628b00523b8dfe240c72de1f6",
    "0x01f86376e8981c217898751ad8746757d42aa7b90eeb791c09e4a3ec03251cf9de405aba9ec61deca6355c77b0e5f4cb",
    "0x08cc03fdefe0ff135caf4fe2a21529c4195536fbe3ce50b879833fd221351adc2ee7f8dc099040a841b6daecf2e8fedb",
    "0x16603fca40634b6a2211e11db8f0a6a074a7d0d4afadb7bd76505c3d3ad5544e203f6326c95a807299b23ab13633a5f0",
    "0x04ab0b9bcfac1bbcb2c977d027796b3ce75bb8ca2be184cb5231413c4d634f3747a87ac2460f415ec961f8855fe9d6f2",
    "0x0987c8d5333ab86fde9926bd2ca6c674170a05bfe3bdd81ffd038da6c26c842642f64550fedfe935a15e4ca31870fb29",
    "0x09fc4018bd96684be88c9e221e4da1bb8f3abd16679dc26c1e8b6e6a1f20cabe69d65201c78607a360370e577bdba587",
    "0x0e1bba7a1186bdb5223abde7ada14a23c42a0ca7915af6fe06985e7ed1e4d43b9b3f7055dd4eba6f2bafaaebca731c30",
    "0x19713e47937cd1be0dfd0b8f1d43fb93cd2fcbcb6caf493fd1183e416389e61031bf3a5cce3fbafce813711ad011c132",
    "0x18b46a908f36f6deb918c143fed2edcc523559b8aaf0c2462e6bfe7f911f643249d9cdf41b44d606ce07c8a4d0074d8e",
    "0x0b182cac101b9399d155096004f53f447aa7b12a3426b08ec02710e807b4633f06c851c1919211f20d4c04f00b971ef8",
    "0x0245a394ad1eca9b72fc00ae7be315dc757b3b080d4c158013e6632d3c40659cc6cf90ad1c232a6442d9d3f5db980133",
    "0x05c129645e44cf1102a159f748c4a3fc5e673d81d7e86568d9ab0f5d396a7ce46ba1049b6579afb7866b1e715475224b",
    "0x15e6be4e990f03ce4ea50b3b42df2eb5cb181d8f84965a3957add4fa95af01b2b665027efec01c7704b456be69c8b604",
];

const Y_DEN: [&str; 16] = [
    "0x16112c4c3a9c98b252181140fad0eae9601a6de578980be6eec3232b5be72e7a07f3688ef60c206d01479253b03663c1",
    "0x1962d75c2381201e1a0cbd6c43c348b885c84ff731c4d59ca4a10356f453e01f78a4260763529e3532f6102c2e49a03d",
    "0x058df3306640da276faaae7d6e8eb15778c4855551ae7f310c35a5dd279cd2eca6757cd636f96f891e2538b53dbf67f2",
    "0x16b7d288798e5395f20d23bf89edb4d1d115c5dbddbcd30e123da489e726af41727364f2c28297ada8d26d98445f5416",
    "0x0be0e079545f43e4b00cc912f8228ddcc6d19c9f0f69bbb0542eda0fc9dec916a20b15dc0fd2ededda39142311a5001d",
    "0x08d9e5297186db2d9fb266eaac783182b70152c65550d881c5ecd87b6f0f5a6449f38db9dfa9cce202c6477faaf9b7ac",
    "0x166007c08a99db2fc3ba8734ace9824b5eecfdfa8d0cf8ef5dd365bc400a0051d5fa9c01a58b1fb93d1a1399126a775c",
    "0x16a3ef08be3ea7ea03bcddfabba6ff6ee5a4375efa1f4fd7feb34fd206357132b920f5b00801dee460ee415a15812ed9",
    "0x1866c8ed336c61231a1be54fd1d74cc4f9fb0ce4c6af5920abc5750c4bf39b4852cfe2f7bb9248836b233d9d55535d4a",
    "0x167a55cda70a6e1cea820597d94a84903216f763e13d87bb5308592e7ea7d4fbc7385ea3d529b35e346ef48bb8913f55",
    "0x04d2f259eea405bd48f010a01ad2911d9c6dd039bb61a6290e591b36e636a5c871a5c29f4f83060400f8b49cba8f6aa8",
    "0x0accbb67481d033ff5852c1e48c50c477f94ff8aefce42d28c0f9a88cea7913516f968986f7ebbea9684b529e2561092",
    "0x0ad6b9514c767fe3c3613144b45f1496543346d98adf02267d5ceef9a00d9b8693000763e3b90ac11e99b138573345cc",
    "0x02660400eb2e4f3b628bdd0d53cd76f2bf565b94e72927c1cb748df27942480e420517bd8714cc80d1fadc1326ed06f7",
    "0x0e0fa1d816ddc03e6b24255e0d7819c171c40f65e273b853324efcd6356caa205ca2f570f13497804415473a1d634b8f",
    "0x1",
];

#[cfg(test)]
mod tests {
    use super::*;
    use blst::{blst_p1_in_g1, blst_p1_is_equal};

    /// Whether `q` cleared is blst's `hash_to_g1(msg)`.
    fn cleared_is_blst(q: &blst_p1, msg: &[u8], dst: &[u8]) -> bool {
        super::super::to_affine_checked(&clear_cofactor(q)).ok()
            == Some(super::super::hash_to_g1(msg, dst))
    }

    fn same(a: &blst_p1, b: &blst_p1) -> bool {
        // SAFETY: valid points.
        unsafe { blst_p1_is_equal(a, b) }
    }

    /// Bit for bit blst's hash_to_g1 (RFC 9380 suite), on RFC 9380's messages and random
    /// ones; the uncleared sum is on the curve but in general outside G1.
    #[test]
    fn the_map_matches_blst_hash_to_g1() {
        let dst = b"QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
        let mut msgs: Vec<Vec<u8>> = ["", "abc", "abcdef0123456789"]
            .iter()
            .map(|m| m.as_bytes().to_vec())
            .collect();
        let mut x = 0x1234_5678_9abc_def0u64;
        for i in 0..2000usize {
            let len = i % 70;
            msgs.push(
                (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (x >> 56) as u8
                    })
                    .collect(),
            );
        }
        let mut outside = 0;
        for m in &msgs {
            let q = hash_to_curve_uncleared(m, dst);
            // SAFETY: a valid point.
            if !unsafe { blst_p1_in_g1(&q) } {
                outside += 1;
            }
            assert!(cleared_is_blst(&q, m, dst), "message {m:?}");
        }
        assert!(
            outside > msgs.len() / 2,
            "uncleared points are mostly outside G1"
        );
    }

    /// The long cross-check: 10⁵ random messages, with hints and without, against blst
    /// (`cargo test --release -p microcash-kernels -- --ignored map`; ~1 min).
    #[test]
    #[ignore = "long: 10^5 messages"]
    fn the_map_matches_blst_on_100_000_messages() {
        let dst = b"MICROCASH-V1-ISSUER-SIG-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
        let mut x = 0x0bad_cafe_dead_beefu64;
        for i in 0..100_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let msg = [x.to_le_bytes(), i.to_le_bytes()].concat();
            let plain = hash_to_curve_uncleared(&msg, dst);
            assert!(cleared_is_blst(&plain, &msg, dst), "message {i}");
            let hints = sswu_hints(&msg, dst);
            let hinted = hash_to_curve_uncleared_hinted(&msg, dst, &hints);
            assert!(same(&hinted, &plain), "message {i}");
        }
    }

    /// Right hints give the same point as no hints; wrong hints (flipped, swapped, the
    /// other root, zero, garbage) are refused by the check and fall back: same point.
    #[test]
    fn hints_change_the_cost_never_the_point() {
        let dst = b"MICROCASH-V1-ISSUER-SIG-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
        for i in 0u32..300 {
            let msg = i.to_le_bytes();
            let plain = hash_to_curve_uncleared(&msg, dst);
            let hints = sswu_hints(&msg, dst);
            // The right hints pass the check (no fallback was needed).
            let p = params();
            for (u, h) in hash_to_field(&msg, dst).iter().zip(&hints) {
                let (zu2, den) = sswu_den(p, u);
                let x1 = sswu_x1(p, &den.inv0());
                let gx1 = g(p, &x1);
                assert!(hinted_root(p, &zu2, &x1, &gx1, &Fp::from_be(h)).is_some());
            }
            assert!(same(
                &hash_to_curve_uncleared_hinted(&msg, dst, &hints),
                &plain
            ));
            let mut flipped = hints;
            flipped[0][47] ^= 1;
            let negated = [Fp::from_be(&hints[0]).neg().to_be(), hints[1]];
            let wrong = [
                flipped,
                [hints[1], hints[0]],
                negated,
                [[0u8; 48], [0u8; 48]],
                [[0xff; 48], [0x5a; 48]],
            ];
            for w in &wrong {
                assert!(
                    same(&hash_to_curve_uncleared_hinted(&msg, dst, w), &plain),
                    "{i}"
                );
            }
        }
    }

    /// Montgomery's trick gives each element's own inverse, and keeps zeros zero.
    #[test]
    fn batched_inversion_matches_one_at_a_time() {
        let mut x = 7u64;
        let mut xs: Vec<Fp> = (0..50)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                if i % 7 == 3 {
                    Fp(blst_fp::default())
                } else {
                    Fp::from_be(&x.to_be_bytes())
                }
            })
            .collect();
        let want: Vec<[u8; 48]> = xs.iter().map(|v| v.inv0().to_be()).collect();
        batch_inv0(&mut xs);
        let got: Vec<[u8; 48]> = xs.iter().map(|v| v.to_be()).collect();
        assert_eq!(got, want);
        batch_inv0(&mut []);
    }

    /// The pairwise sums equal blst's complete addition, the chord formula's exceptions
    /// (identity, doubling, opposite points) included.
    #[test]
    fn pairwise_sums_match_blst_addition_in_every_case() {
        let dst = b"pairs";
        let q: Vec<blst_p1_affine> = (0u8..4)
            .map(|i| affine(&hash_to_curve_uncleared(&[i], dst)))
            .collect();
        let mut neg = jacobian(&q[1]);
        // SAFETY: a valid point.
        unsafe { blst::blst_p1_cneg(&mut neg, true) };
        let o = blst_p1_affine::default();
        let cases = [
            (q[0], q[1]),
            (q[2], q[3]),
            (q[0], q[0]),
            (q[1], affine(&neg)),
            (o, q[2]),
            (q[3], o),
            (o, o),
        ];
        let flat: Vec<blst_p1_affine> = cases.iter().flat_map(|(a, b)| [*a, *b]).collect();
        for ((a, b), got) in cases.iter().zip(add_pairs(&flat)) {
            let mut want = blst_p1::default();
            // SAFETY: valid points.
            unsafe { blst_p1_add_or_double(&mut want, &jacobian(a), &jacobian(b)) };
            assert!(same(&jacobian(&got), &want));
        }
    }

    /// A slice mixing right, wrong and absent hints maps every message to blst's point.
    #[test]
    fn the_batched_map_with_mixed_hints_matches_blst() {
        let dst = b"MICROCASH-V1-ISSUER-SIG-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
        let msgs: Vec<[u8; 32]> = (0u32..200)
            .map(|i| {
                let mut m = [0u8; 32];
                m[..4].copy_from_slice(&i.to_le_bytes());
                m
            })
            .collect();
        let mut hints: Vec<MapHint> = msgs.iter().map(|m| sswu_hints(m, dst)).collect();
        for (i, h) in hints.iter_mut().enumerate() {
            match i % 4 {
                1 => h[0][47] ^= 1,
                2 => h.swap(0, 1),
                _ => {}
            }
        }
        let slots: Vec<Option<&MapHint>> = hints
            .iter()
            .enumerate()
            .map(|(i, h)| (i % 4 != 3).then_some(h))
            .collect();
        let many = hash_to_curve_uncleared_many(&msgs, &slots, dst);
        let plain = hash_to_curve_uncleared_many(&msgs, &[], dst);
        assert_eq!(many.len(), msgs.len());
        for ((m, a), b) in msgs.iter().zip(&many).zip(&plain) {
            assert!(cleared_is_blst(&jacobian(a), m, dst));
            assert_eq!(a, b);
        }
    }
}
