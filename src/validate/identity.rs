//! Is the device what it claims to be, or what `--expect` says it should be?
//!
//! An H100 PCIe sold as an SXM part, a card capped at 400 W, a MIG slice or a vGPU all run the
//! same kernels; only their identity tells them apart. Every mismatch comes with the figure the
//! device reports, the figure the SKU should have, and what the difference usually means.

use super::keys;
use super::verdict::{Check, CheckKind, Finding, Verdict};
use crate::backend::DeviceInfo;
use crate::gpudb::{FormFactor, Sku};

/// A power limit this far below the SKU's default counts as capped (providers round limits).
pub const POWER_CAP_TOLERANCE: f64 = 0.05;
/// A maximum SM clock this far below the SKU's counts as a different part or a clock cap.
pub const CLOCK_TOLERANCE: f64 = 0.03;

/// The identity check of one device.
///
/// `sku` is what the device is judged against: the one named by `--expect` when `expected`,
/// else the detected one. `detected` is what the database recognised from the device itself.
pub fn check(
    info: &DeviceInfo,
    sku: Option<&Sku>,
    detected: Option<&Sku>,
    expected: bool,
) -> Check {
    let mut f = Vec::new();
    partition_findings(info, &mut f);
    match sku {
        None => f.push(Finding::pass(format!(
            "`{}` is not in the GPU database: identity not checked (add it to data/gpus.toml)",
            info.name
        ))),
        Some(sku) => sku_findings(info, sku, detected, expected, &mut f),
    }
    Check::new(CheckKind::Identity, f)
}

/// MIG and virtualisation: checks that need no SKU.
fn partition_findings(info: &DeviceInfo, f: &mut Vec<Finding>) {
    let d = &info.details;
    let name_says_mig = info.name.split_whitespace().any(|w| w == "MIG");
    if keys::flag(d, keys::MIG_DEVICE) == Some(true) || name_says_mig {
        f.push(Finding::fail(format!(
            "`{}` is a MIG slice, not a whole GPU: its SMs and memory are a fraction of the card",
            info.name
        )));
    } else if keys::flag(d, keys::MIG_MODE) == Some(true) {
        f.push(Finding::fail(
            "MIG mode is enabled on this GPU: it is partitioned, not one whole GPU",
        ));
    }
    match keys::text(d, keys::VIRTUALIZATION_MODE).map(|s| s.to_ascii_lowercase()) {
        Some(m) if m.contains("vgpu") || m.contains("vsga") => f.push(Finding::warn(format!(
            "virtualised ({m}): the physical GPU may be shared with other tenants (time-sliced)"
        ))),
        Some(m) if m.contains("passthrough") => f.push(Finding::pass(
            "PCI passthrough to a virtual machine (whole GPU)",
        )),
        _ => {}
    }
}

fn sku_findings(
    info: &DeviceInfo,
    sku: &Sku,
    detected: Option<&Sku>,
    expected: bool,
    f: &mut Vec<Finding>,
) {
    let d = &info.details;
    // A mismatch on a field the database marks unverified is a warning: the entry may be wrong.
    let sev = |field: &str| {
        if sku.is_unverified(field) {
            Verdict::Warn
        } else {
            Verdict::Fail
        }
    };
    let unverified_note = |field: &str| {
        if sku.is_unverified(field) {
            " (the database figure is unverified)"
        } else {
            ""
        }
    };
    if expected {
        match detected {
            Some(det) if det.id != sku.id => f.push(Finding::fail(format!(
                "expected {} ({}) but the device reports itself as {} ({})",
                sku.name, sku.id, det.name, det.id
            ))),
            None if !sku.matches_name(&info.name) => f.push(Finding::warn(format!(
                "expected {}, but `{}` is not a name that SKU reports",
                sku.name, info.name
            ))),
            _ => {}
        }
    }
    if let Some(cc) = &info.compute_capability {
        if cc.trim() != sku.compute_capability {
            f.push(Finding::fail(format!(
                "compute capability {cc}, but {} is {}",
                sku.name, sku.compute_capability
            )));
        }
    }
    if let Some(sms) = info.multiprocessors {
        if sms != sku.sms {
            f.push(Finding::new(
                sev("sms"),
                format!(
                    "{sms} SMs, but {} has {}{}{}",
                    sku.name,
                    sku.sms,
                    unverified_note("sms"),
                    if sms < sku.sms {
                        ": a cut-down part (PCIe rather than SXM?) or a MIG slice"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    if let Some(bytes) = info.memory_bytes {
        if !sku.memory_matches(bytes) {
            f.push(Finding::new(
                sev("memory_gib"),
                format!(
                    "{:.1} GiB of memory, but {} has {} GiB{}",
                    bytes as f64 / (1u64 << 30) as f64,
                    sku.name,
                    sku.memory_gib,
                    unverified_note("memory_gib")
                ),
            ));
        }
    }
    let limit = keys::number(d, keys::POWER_LIMIT_W);
    let default_limit = keys::number(d, keys::DEFAULT_POWER_LIMIT_W);
    let floor = sku.power_limit_w * (1.0 - POWER_CAP_TOLERANCE);
    if let Some(w) = limit.filter(|&w| w < floor) {
        f.push(Finding::new(
            sev("power_limit_w"),
            format!(
                "power limit {w:.0} W, but {} runs at {:.0} W{}: the card is power-capped and \
                 will not reach its throughput",
                sku.name,
                sku.power_limit_w,
                unverified_note("power_limit_w")
            ),
        ));
    } else if let Some(w) = default_limit.filter(|&w| w < floor) {
        f.push(Finding::new(
            sev("power_limit_w"),
            format!(
                "board default power limit {w:.0} W, but {} is a {:.0} W part{}",
                sku.name,
                sku.power_limit_w,
                unverified_note("power_limit_w")
            ),
        ));
    }
    if let Some(mhz) = keys::max_sm_clock_mhz(d) {
        if mhz < sku.max_sm_clock_mhz * (1.0 - CLOCK_TOLERANCE) {
            f.push(Finding::new(
                sev("max_sm_clock_mhz"),
                format!(
                    "maximum SM clock {mhz:.0} MHz, but {} boosts to {:.0} MHz{}",
                    sku.name,
                    sku.max_sm_clock_mhz,
                    unverified_note("max_sm_clock_mhz")
                ),
            ));
        }
    }
    if let Some(gen) = keys::number(d, keys::PCIE_GEN_MAX) {
        if gen < sku.pcie_gen as f64 {
            f.push(Finding::warn(format!(
                "PCIe Gen{gen:.0} at most, but {} is a Gen{} card: the slot, riser or host \
                 limits the link",
                sku.name, sku.pcie_gen
            )));
        }
    }
    if let Some(w) = keys::number(d, keys::PCIE_WIDTH_MAX) {
        if w < sku.pcie_width as f64 {
            f.push(Finding::warn(format!(
                "PCIe link x{w:.0} at most, but {} is an x{} card",
                sku.name, sku.pcie_width
            )));
        }
    }
    if sku.nvlink_links > 0 {
        if let Some(n) = keys::number(d, keys::NVLINK_ACTIVE_LINKS) {
            let want = sku.nvlink_links as f64;
            if n == 0.0 && sku.form_factor == FormFactor::Sxm {
                f.push(Finding::new(
                    sev("nvlink_links"),
                    format!(
                        "no active NVLink, but {} has {} links: a PCIe card, or NVLink is down",
                        sku.name, sku.nvlink_links
                    ),
                ));
            } else if n == 0.0 {
                f.push(Finding::pass(format!(
                    "no NVLink bridge active ({} can be bridged)",
                    sku.name
                )));
            } else if n < want {
                f.push(Finding::warn(format!(
                    "{n:.0} of {} NVLink links active{}",
                    sku.nvlink_links,
                    unverified_note("nvlink_links")
                )));
            }
        }
    }
}
