//! Mock backend (being written).
