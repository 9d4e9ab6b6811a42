//! Link figures of a finished run, against what each link is built for: every pair's p2p copy
//! against the pair's NVLink (or PCIe) rate, every host transfer against the device's PCIe
//! link, each collective's bus bandwidth against the slowest pair of its group. A figure below
//! what a healthy link reaches names its pair or GPU. `bench p2p` prints these after the
//! results; `validate` judges on them.
//!
//! Where the rest of the interconnect lives: the processes of a run and the rendezvous that
//! hands out the communicator id in [`crate::world`]; the links themselves (PCIe rates from
//! generation and width, NVLink per pair, the topology matrix) in [`crate::backend::topology`],
//! beside the device facts they are read from; the workloads (transfers, peer copies,
//! collectives) in [`crate::workload`]. What the figures mean is docs/interconnect.md.

use crate::backend::topology;
use crate::backend::DeviceInfo;
use crate::gpudb::{self, ExpectConfidence, Expectation};
use crate::plan::Placement;
use crate::report::{peak_for, Report, ResultRecord};
use crate::units::si;
use crate::workload::{Placing, Workload};
use std::collections::BTreeMap;

/// One verified link figure with what it is judged against.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkFigure {
    /// The test (`p2p.write`, `transfer.h2d.pinned`, `collective.all_reduce`).
    pub key: String,
    /// How the test is placed: a one-way copy between two devices has a direction (source
    /// first), a two-way copy or a collective does not.
    pub placing: Placing,
    pub placement: Placement,
    pub implementation: String,
    /// Bytes per second (busbw for a collective).
    pub value: f64,
    /// What the link carries at most (its peak), where known.
    pub link: Option<f64>,
    /// What a healthy link reaches (share × link), where known.
    pub expected: Option<f64>,
    pub expectation: Option<Expectation>,
    pub result_id: String,
    /// `value` at the fast end of the 95% interval of its median time
    /// ([`ResultRecord::rate_high`]).
    pub value_high: Option<f64>,
}

impl LinkFigure {
    /// `GPU 3→5`, `GPUs 0,1,2,3`, `GPU 2`.
    pub fn who(&self) -> String {
        let d = self.placement.devices();
        match d {
            [one] => format!("GPU {one}"),
            [a, b] if self.placing == Placing::OrderedPairs => {
                format!("GPU {a}→{b}")
            }
            [a, b] => format!("GPUs {a}↔{b}"),
            _ => format!("GPUs {}", self.placement),
        }
    }

    /// value / expected.
    pub fn ratio(&self) -> Option<f64> {
        self.expected.filter(|e| *e > 0.0).map(|e| self.value / e)
    }
}

/// The expectation of `key` for the lead device of a placement: its SKU's, else the database
/// default marked as an estimate.
pub fn expectation(lead: &DeviceInfo, key: &str) -> Option<Expectation> {
    if let Some(e) = gpudb::lookup(lead).and_then(|s| s.expectation(key).cloned()) {
        return Some(e);
    }
    let db = gpudb::database().ok()?;
    db.default_achievable.get(key).map(|e| Expectation {
        confidence: ExpectConfidence::Estimate,
        ..e.clone()
    })
}

/// The kinds whose figures are link figures.
fn is_link(w: &Workload) -> bool {
    matches!(
        w,
        Workload::Transfer(_) | Workload::P2p(_) | Workload::Collective(_)
    )
}

/// The best verified figure per (test, placement, implementation) of the link kinds, largest
/// size only (small messages measure latency, not the link).
pub fn figures(report: &Report) -> Vec<LinkFigure> {
    let mut best: BTreeMap<(String, Placement, String), &ResultRecord> = BTreeMap::new();
    for r in report
        .results
        .iter()
        .filter(|r| r.is_valid() && is_link(&r.workload))
    {
        let k = (
            r.workload.test_key(),
            r.device.clone(),
            r.implementation.clone(),
        );
        let bigger = |o: &&ResultRecord| r.workload.bytes() > o.workload.bytes();
        if best.get(&k).is_none_or(bigger) {
            best.insert(k, r);
        }
    }
    best.into_iter()
        .filter_map(|((key, placement, implementation), r)| {
            let value = r.throughput.as_ref()?.value;
            let link = peak_for(&report.devices, &placement, &r.workload);
            let expectation = report
                .devices
                .get(placement.lead())
                .and_then(|d| expectation(d, &key));
            let expected = link.zip(expectation.as_ref()).map(|(l, e)| l * e.share);
            Some(LinkFigure {
                key,
                placing: r.workload.placing(),
                placement,
                implementation,
                value,
                link,
                expected,
                expectation,
                result_id: r.id.clone(),
                value_high: r.rate_high(value),
            })
        })
        .collect()
}

/// Why `f` is below what a healthy link reaches (more than `tolerance` short), or `None`.
pub fn shortfall(f: &LinkFigure, tolerance: f64) -> Option<String> {
    let (ratio, link, e) = (f.ratio()?, f.link?, f.expectation.as_ref()?);
    (ratio < 1.0 - tolerance).then(|| {
        format!(
            "{} {} [{}]: {} is {:.0}% of the {} the link carries (a healthy link reaches \
             {:.0}%, {})",
            f.who(),
            f.key,
            f.implementation,
            si(f.value, "B/s"),
            100.0 * f.value / link,
            si(link, "B/s"),
            100.0 * e.share,
            e.confidence.name()
        )
    })
}

/// A matrix of one p2p test and implementation: a row per source, a column per destination,
/// GB/s each way (bidirectional figures in both cells of their pair).
pub fn p2p_matrix(report: &Report, key: &str, implementation: &str, color: bool) -> Option<String> {
    let n = report.devices.len();
    let figs: Vec<LinkFigure> = figures(report)
        .into_iter()
        .filter(|f| f.key == key && f.implementation == implementation)
        .collect();
    if figs.is_empty() {
        return None;
    }
    let mut t = crate::term::table(color);
    let mut header = vec![format!("{key} [{implementation}] GB/s")];
    header.extend((0..n).map(|i| format!("→GPU{i}")));
    t.set_header(header);
    for a in 0..n {
        let mut row = vec![format!("GPU{a}")];
        for b in 0..n {
            let cell = figs.iter().find(|f| match f.placement.devices() {
                [x, y] => (*x, *y) == (a, b) || (f.placing == Placing::Pairs && (*y, *x) == (a, b)),
                _ => false,
            });
            row.push(match (a == b, cell) {
                (true, _) => "-".into(),
                (false, Some(f)) => format!("{:.1}", f.value / 1e9),
                (false, None) => "".into(),
            });
        }
        t.add_row(row);
    }
    Some(format!("{t}\n"))
}

/// What a run over several devices prints after its results: the topology matrix, a matrix per
/// p2p test, and every link figure below what a healthy link reaches, named.
pub fn summary(report: &Report, color: bool) -> String {
    let mut out = String::new();
    if report.devices.len() > 1 {
        out.push_str(&matrix(&report.devices, color));
    }
    let figs = figures(report);
    let mut seen: Vec<(String, String)> = Vec::new();
    let between_two = |f: &&LinkFigure| matches!(f.placing, Placing::OrderedPairs | Placing::Pairs);
    for f in figs.iter().filter(between_two) {
        let k = (f.key.clone(), f.implementation.clone());
        if !seen.contains(&k) {
            out.push_str(&p2p_matrix(report, &k.0, &k.1, color).unwrap_or_default());
            seen.push(k);
        }
    }
    let low: Vec<String> = figs.iter().filter_map(|f| shortfall(f, 0.0)).collect();
    if !low.is_empty() {
        out.push_str("Below what a healthy link reaches:\n");
        for l in low {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

/// The topology as a matrix: a row and a column per device, `X` on the diagonal, `NV18` /
/// `PCIe` elsewhere (`-` after it where the row cannot map the column's memory), then the
/// PCIe link of each device.
pub fn matrix(devices: &[DeviceInfo], color: bool) -> String {
    let n = devices.len();
    let mut t = crate::term::table(color);
    let mut header = vec![String::new()];
    header.extend((0..n).map(|i| format!("GPU{i}")));
    header.push("PCIe (now / max)".into());
    t.set_header(header);
    for a in 0..n {
        let mut row = vec![format!("GPU{a}")];
        for b in 0..n {
            if a == b {
                row.push("X".into());
                continue;
            }
            let p = topology::pair(devices, a, b);
            let mark = if p.peer_access == Some(false) {
                "-"
            } else {
                ""
            };
            row.push(format!("{}{mark}", p.path.short()));
        }
        row.push(match topology::PcieLink::of(&devices[a]) {
            Some(l) => format!(
                "{} / {}",
                match (l.gen, l.width) {
                    (Some(g), Some(w)) => topology::pcie_label(g, w),
                    _ => "?".into(),
                },
                topology::pcie_label(l.gen_max, l.width_max)
            ),
            None => "?".into(),
        });
        t.add_row(row);
    }
    format!(
        "{t}\nNV<n>: n NVLink links (direct, or through NVSwitch); PCIe: no NVLink; `-`: peer \
         access not available from the row's device\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_marks_links_and_missing_peer_access() {
        use crate::backend::NvLinkPeerKind::{Gpu, Switch};
        use topology::tests::gpu;
        let sw: Vec<_> = (0..16).map(|_| (Switch, "0000:99:00.0")).collect();
        let devices = vec![
            gpu("0000:1b:00.0", &sw, &[1]),
            gpu("0000:2b:00.0", &sw, &[0]),
            gpu("0000:3b:00.0", &[(Gpu, "00000000:4B:00.0"); 2], &[]),
            gpu("0000:4b:00.0", &[(Gpu, "00000000:3B:00.0"); 2], &[2]),
        ];
        let m = matrix(&devices, false);
        assert!(m.contains("NV16") && m.contains("NV2-"), "{m}");
        assert!(m.contains("Gen5 x16 / Gen5 x16"), "{m}");
    }

    #[test]
    fn names_read_like_the_topology() {
        let f = |key: &str, placing: Placing, p: Placement| LinkFigure {
            key: key.into(),
            placing,
            placement: p,
            implementation: "memcpy".into(),
            value: 100e9,
            link: Some(450e9),
            expected: Some(337.5e9),
            expectation: Some(Expectation {
                share: 0.75,
                confidence: ExpectConfidence::Estimate,
                basis: String::new(),
            }),
            result_id: "x".into(),
            value_high: None,
        };
        let one = f(
            "p2p.write",
            Placing::OrderedPairs,
            Placement::ordered([3, 1]).unwrap(),
        );
        assert_eq!(one.who(), "GPU 3→1");
        let msg = shortfall(&one, 0.1).unwrap();
        assert!(
            msg.starts_with("GPU 3→1 p2p.write [memcpy]: 100.0 GB/s is 22% of the 450.0 GB/s"),
            "{msg}"
        );
        assert!(msg.contains("reaches 75%, estimate"), "{msg}");
        assert_eq!(
            f(
                "p2p.write.bidir",
                Placing::Pairs,
                Placement::set([0, 1]).unwrap()
            )
            .who(),
            "GPUs 0↔1"
        );
        let h2d = f(
            "transfer.h2d.pinned",
            Placing::EachDevice,
            Placement::one(2),
        );
        assert_eq!(h2d.who(), "GPU 2");
        let ok = LinkFigure {
            value: 330e9,
            ..one
        };
        assert!(shortfall(&ok, 0.1).is_none());
    }
}
