//! Hot arithmetic for microcash: curves and bits, no coins, no I/O.
//!
//! * [`bls`] — BLS12-381 through `blst`: RFC 9380 hash-to-G1, point encodings with explicit
//!   validation levels, blind signing of a G1 point, pairing verification.
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
