//! Instance validation (being written).
