//! Pallas: a Pippenger multi-scalar multiplication over `pasta_curves` (which has none) and
//! batched RedPallas (Orchard SpendAuth) verification on top of it; fixed-base keys and
//! signing.

pub mod lincomb;
pub mod msm;
pub mod redpallas;
pub mod signing;
