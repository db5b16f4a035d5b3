//! Hot arithmetic for microcash: curves and bits, no coins, no I/O.
//!
//! * [`bls`] — BLS12-381 through `blst`: RFC 9380 hash-to-G1, point encodings with explicit
//!   validation levels, blind signing of a G1 point, pairing verification, and batched
//!   verification per key ([`bls::batch`], one multi-pairing per batch).
//! * [`pallas`] — a Pippenger MSM over `pasta_curves` and batched RedPallas (SpendAuth)
//!   verification on it, cross-checked against `reddsa`.
//! * [`weights`] — the 128-bit random batch weights; [`bisect`] — naming the bad items of a
//!   failed batch check.
//! * [`bloom`] — split-block bloom probes (AVX2 / NEON at run time, portable twin);
//!   [`prefetch`] — software prefetch for batched probes.
//!
//! Multi-scalar multiplications are variable time and named `vartime_…`: they take public
//! points and one-use batch weights, never secrets. Test helpers (`bls::testing`) compile
//! only for tests and under the `testing` feature.
//!
//! Everything here is generic over *messages* and *points*; what a serial or a keyset is
//! lives in the `microcash` crate's `protocol` module.
//!
//! `unsafe` is allowed in this crate only (FFI into blst); every block carries a
//! `// SAFETY:` line.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod bisect;
pub mod bloom;
pub mod bls;
pub mod pallas;
pub mod prefetch;
pub mod weights;
