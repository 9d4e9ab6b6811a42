//! Instance validation (being written).

pub mod keys;
