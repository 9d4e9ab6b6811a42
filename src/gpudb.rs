//! GPU database (being written).
