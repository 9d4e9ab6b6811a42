//! Is the device what it claims to be, or what `--expect` says it should be?
//!
//! An H100 PCIe sold as an SXM part, a card capped at 400 W, a MIG slice or a vGPU all run the
//! same kernels; only their identity tells them apart. Every mismatch comes with the figure the
//! device reports, the figure the SKU should have, and what the difference usually means.

use super::verdict::{Check, CheckKind, Finding, Verdict};
use crate::backend::{DeviceInfo, DeviceState};
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
    let Some(sku) = sku else {
        let reason = format!(
            "`{}` is not in the GPU database: identity not checked (add it to data/gpus.toml)",
            info.name
        );
        // Partition findings (MIG, vGPU) were still judged: then the check is not skipped.
        if f.is_empty() {
            return Check::skipped(CheckKind::Identity, reason);
        }
        f.push(Finding::pass(reason));
        return Check::new(CheckKind::Identity, f);
    };
    sku_findings(info, sku, detected, expected, &mut f);
    Check::new(CheckKind::Identity, f)
}

/// MIG and virtualisation: checks that need no SKU.
fn partition_findings(info: &DeviceInfo, f: &mut Vec<Finding>) {
    let d = &info.details.state;
    let name_says_mig = info.name.split_whitespace().any(|w| w == "MIG");
    if d.mig_device == Some(true) || name_says_mig {
        f.push(Finding::fail(format!(
            "`{}` is a MIG slice, not a whole GPU: its SMs and memory are a fraction of the card",
            info.name
        )));
    } else if d.mig_mode == Some(true) {
        f.push(Finding::fail(
            "MIG mode is enabled on this GPU: it is partitioned, not one whole GPU",
        ));
    }
    match d
        .virtualization_mode
        .as_deref()
        .map(str::to_ascii_lowercase)
    {
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
    shape_findings(info, sku, f);
    let d = &info.details.state;
    power_findings(d, sku, f);
    clock_and_link_findings(d, sku, f);
    nvlink_findings(d, sku, f);
}

/// A mismatch on a field the database marks unverified is a warning: the entry may be wrong.
fn sev(sku: &Sku, field: &str) -> Verdict {
    if sku.is_unverified(field) {
        Verdict::Warn
    } else {
        Verdict::Fail
    }
}

fn unverified_note(sku: &Sku, field: &str) -> &'static str {
    if sku.is_unverified(field) {
        " (the database figure is unverified)"
    } else {
        ""
    }
}

/// Compute capability, SM count and memory size against the SKU's.
fn shape_findings(info: &DeviceInfo, sku: &Sku, f: &mut Vec<Finding>) {
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
                sev(sku, "sms"),
                format!(
                    "{sms} SMs, but {} has {}{}{}",
                    sku.name,
                    sku.sms,
                    unverified_note(sku, "sms"),
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
                sev(sku, "memory_gib"),
                format!(
                    "{:.1} GiB of memory, but {} has {} GiB{}",
                    bytes as f64 / (1u64 << 30) as f64,
                    sku.name,
                    sku.memory_gib,
                    unverified_note(sku, "memory_gib")
                ),
            ));
        }
    }
}

/// The power limit in force, else the board default, against the SKU's.
fn power_findings(d: &DeviceState, sku: &Sku, f: &mut Vec<Finding>) {
    let floor = sku.power_limit_w * (1.0 - POWER_CAP_TOLERANCE);
    if let Some(w) = d.power_limit_w.filter(|&w| w < floor) {
        f.push(Finding::new(
            sev(sku, "power_limit_w"),
            format!(
                "power limit {w:.0} W, but {} runs at {:.0} W{}: the card is power-capped and \
                 will not reach its throughput",
                sku.name,
                sku.power_limit_w,
                unverified_note(sku, "power_limit_w")
            ),
        ));
    } else if let Some(w) = d.power_limit_default_w.filter(|&w| w < floor) {
        f.push(Finding::new(
            sev(sku, "power_limit_w"),
            format!(
                "board default power limit {w:.0} W, but {} is a {:.0} W part{}",
                sku.name,
                sku.power_limit_w,
                unverified_note(sku, "power_limit_w")
            ),
        ));
    }
}

/// Maximum SM clock and the most the PCIe link can reach.
fn clock_and_link_findings(d: &DeviceState, sku: &Sku, f: &mut Vec<Finding>) {
    if let Some(mhz) = d.max_sm_clock_mhz() {
        if mhz < sku.max_sm_clock_mhz * (1.0 - CLOCK_TOLERANCE) {
            f.push(Finding::new(
                sev(sku, "max_sm_clock_mhz"),
                format!(
                    "maximum SM clock {mhz:.0} MHz, but {} boosts to {:.0} MHz{}",
                    sku.name,
                    sku.max_sm_clock_mhz,
                    unverified_note(sku, "max_sm_clock_mhz")
                ),
            ));
        }
    }
    if let Some(gen) = d.pcie_gen_max {
        if gen < sku.pcie_gen {
            f.push(Finding::warn(format!(
                "PCIe Gen{gen} at most, but {} is a Gen{} card: the slot, riser or host \
                 limits the link",
                sku.name, sku.pcie_gen
            )));
        }
    }
    if let Some(w) = d.pcie_width_max {
        if w < sku.pcie_width {
            f.push(Finding::warn(format!(
                "PCIe link x{w} at most, but {} is an x{} card",
                sku.name, sku.pcie_width
            )));
        }
    }
}

/// Active NVLink links against the SKU's.
fn nvlink_findings(d: &DeviceState, sku: &Sku, f: &mut Vec<Finding>) {
    if sku.nvlink_links == 0 {
        return;
    }
    let Some(n) = d.nvlink_active_links else {
        return;
    };
    if n == 0 && sku.form_factor == FormFactor::Sxm {
        f.push(Finding::new(
            sev(sku, "nvlink_links"),
            format!(
                "no active NVLink, but {} has {} links: a PCIe card, or NVLink is down",
                sku.name, sku.nvlink_links
            ),
        ));
    } else if n == 0 {
        f.push(Finding::pass(format!(
            "no NVLink bridge active ({} can be bridged)",
            sku.name
        )));
    } else if n < sku.nvlink_links {
        f.push(Finding::warn(format!(
            "{n} of {} NVLink links active{}",
            sku.nvlink_links,
            unverified_note(sku, "nvlink_links")
        )));
    }
}
