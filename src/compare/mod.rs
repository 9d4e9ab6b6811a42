//! Regression tracking: baselines and statistically sound comparison of two reports.
//! (Being written.)
