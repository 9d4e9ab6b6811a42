//! gpuvet measures what a GPU really delivers for inference work — matrix multiply, attention
//! and memory bandwidth — checks every result against an f64 reference before its time counts,
//! and reports it in forms people and CI systems read.
//!
//! | stage | module | job |
//! |---|---|---|
//! | what to run | [`workload`], [`dtype`] | workloads as data: shapes, dtypes, FLOPs, bytes |
//! | inputs | [`inputs`], [`tensor`] | seeded random host tensors |
//! | where it runs | [`backend`] | the `Backend` seam: CPU, CUDA, mock |
//! | is it right | [`verify`] | f64 references, Freivalds, sampled rows |
//! | how fast | [`measure`], [`stats`] | warm-up, batching, stopping rule, statistics |
//! | the record | [`report`], [`env`] | one struct every output reads |
//! | output | [`export`], [`output`], [`term`] | one `Exporter` per file format, stdout vs stderr and atomic files, terminal tables |
//! | fleet formats | [`prometheus`], [`junit`], [`price`] | node-exporter textfile metrics, JUnit XML for CI reporters, price-performance |
//! | orchestration | [`plan`], [`runner`] | workloads → validated plan → results |
//! | commands | [`cli`], [`commands`] | clap flags → domain options → one workflow module per command |
//! | comparisons | [`compare`] | baselines, bootstrap verdicts, CI exports |
//! | links and processes | [`interconnect`] | PCIe/NVLink topology, the world of processes, the rendezvous |
//! | instance checks | [`gpudb`], [`validate`], [`stress`] | SKU database, verdicts, sustained load |
//! | inference view | [`suite`], [`sweep`], [`plot`], [`html`] | model presets, sweeps, SVG charts, HTML report |

pub mod backend;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod dtype;
pub mod env;
pub mod error;
pub mod export;
pub mod files;
pub mod gpudb;
pub mod html;
pub mod inputs;
pub mod interconnect;
pub mod junit;
pub mod label;
pub mod markup;
pub mod measure;
pub mod npy;
pub mod output;
pub mod plan;
pub mod plot;
pub mod price;
pub mod prometheus;
pub mod report;
pub mod runner;
pub mod stats;
pub mod stress;
pub mod suite;
pub mod sweep;
pub mod tensor;
pub mod term;
pub mod units;
pub mod validate;
pub mod verify;
pub mod workload;
pub mod world;

pub use error::{Error, Result};

#[cfg(test)]
mod tests {
    /// The tests are built with debug assertions and overflow checks in either profile they run
    /// in: `cargo test` (dev) has them by default, and the `checked` profile (the README's test
    /// command, and CI's) turns them back on over its release base in Cargo.toml. Without them a
    /// wrapped size or a broken invariant would pass unnoticed; this test fails if that goes.
    #[test]
    fn tests_run_with_overflow_checks_and_debug_assertions() {
        const HOW: &str = "run the tests with `cargo test --profile checked` or `cargo test`, \
                           not `--release` (Cargo.toml, [profile.checked])";
        let asserted = std::panic::catch_unwind(|| debug_assert!(std::hint::black_box(false)));
        assert!(asserted.is_err(), "built without debug-assertions: {HOW}");
        let wrapped = std::panic::catch_unwind(|| std::hint::black_box(u8::MAX) + 1);
        assert!(wrapped.is_err(), "built without overflow-checks: {HOW}");
    }
}
