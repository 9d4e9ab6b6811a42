//! How the devices of a report are connected, from what each recorded: the PCIe link (NVML
//! generation and width, now and at most), the far end of every active NVLink link (a GPU or
//! an NVSwitch), and which peers it can map (`cuDeviceCanAccessPeer`). From those: a rate each
//! way for every pair (what a peer copy is judged against) and the matrix `bench p2p` and
//! `info` print, like `nvidia-smi topo -m`.

use crate::backend::{DeviceInfo, NvLinkPeerKind};
use crate::units::pcie_rate;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// `Gen5 x16`.
pub fn pcie_label(gen: u32, width: u32) -> String {
    format!("Gen{gen} x{width}")
}

/// The PCIe link a device can reach (its maximum generation and width) and the one it was at
/// when last read, each with its rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PcieLink {
    pub gen_max: u32,
    pub width_max: u32,
    pub gen: Option<u32>,
    pub width: Option<u32>,
}

impl PcieLink {
    /// The device's link from its recorded state; `None` without the maximum gen and width.
    pub fn of(info: &DeviceInfo) -> Option<PcieLink> {
        let s = &info.details.state;
        Some(PcieLink {
            gen_max: s.pcie_gen_max?,
            width_max: s.pcie_width_max?,
            gen: s.pcie_gen,
            width: s.pcie_width,
        })
    }

    /// Rate each way at the maximum generation and width.
    pub fn capability(&self) -> Option<f64> {
        pcie_rate(self.gen_max, self.width_max)
    }
}

/// How one pair of devices reaches each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "path", rename_all = "lowercase")]
pub enum LinkPath {
    /// Direct NVLink links between the two.
    NvLink { links: u32 },
    /// Both reach the same NVSwitches: as many links as the one with fewer has.
    NvSwitch { links: u32 },
    /// No NVLink: through PCIe (and the host bridges between the two).
    Pcie,
    /// Nothing recorded (no NVML, another backend).
    Unknown,
}

impl LinkPath {
    /// `NV18`, `NV4`, `PCIe`, `?` as in `nvidia-smi topo -m`.
    pub fn short(&self) -> String {
        match self {
            LinkPath::NvLink { links } | LinkPath::NvSwitch { links } => format!("NV{links}"),
            LinkPath::Pcie => "PCIe".into(),
            LinkPath::Unknown => "?".into(),
        }
    }

    pub fn nvlinks(&self) -> u32 {
        match self {
            LinkPath::NvLink { links } | LinkPath::NvSwitch { links } => *links,
            _ => 0,
        }
    }
}

/// One ordered pair: how `a` reaches `b`, whether `a` may map `b`'s memory, and the rate each
/// way the path is built for.
#[skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairLink {
    pub a: usize,
    pub b: usize,
    pub path: LinkPath,
    /// `cuDeviceCanAccessPeer(a, b)`, where recorded.
    pub peer_access: Option<bool>,
    /// Bytes per second each way: NVLink links × one link's rate, or the slower PCIe link of
    /// the two (a peer copy over PCIe crosses both).
    pub rate: Option<f64>,
}

/// Lower-case, 4-digit domain: NVML writes `00000000:1B:00.0`, CUDA `0000:1b:00.0`.
pub fn normalize_pci(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    match id.split_once(':') {
        Some((domain, rest)) if domain.len() > 4 => {
            format!("{}:{rest}", &domain[domain.len() - 4..])
        }
        _ => id,
    }
}

/// How `devices[a]` reaches `devices[b]`.
pub fn pair(devices: &[DeviceInfo], a: usize, b: usize) -> PairLink {
    let (da, db) = (&devices[a], &devices[b]);
    let (sa, sb) = (&da.details.state, &db.details.state);
    let pci_b = db.pci_bus_id.as_deref().map(normalize_pci);
    let path = match (&sa.nvlink_peers, &sb.nvlink_peers) {
        (Some(pa), Some(pb)) => {
            // A link whose far end NVML could not type still counts as direct when that end is
            // the other GPU's bus.
            let direct = pa
                .iter()
                .filter(|p| p.kind != NvLinkPeerKind::Switch)
                .filter(|p| Some(normalize_pci(&p.pci_bus_id)) == pci_b)
                .count() as u32;
            let switched = |ps: &[crate::backend::NvLinkPeer]| {
                ps.iter()
                    .filter(|p| p.kind == NvLinkPeerKind::Switch)
                    .count() as u32
            };
            let via_switch = switched(pa).min(switched(pb));
            if direct > 0 {
                LinkPath::NvLink { links: direct }
            } else if via_switch > 0 {
                LinkPath::NvSwitch { links: via_switch }
            } else {
                LinkPath::Pcie
            }
        }
        _ if sa.nvlink_active_links == Some(0) || sb.nvlink_active_links == Some(0) => {
            LinkPath::Pcie
        }
        _ => LinkPath::Unknown,
    };
    let peer_access = sa.peer_access.as_ref().map(|v| v.contains(&(b as u32)));
    let link_rate = |d: &DeviceInfo| d.peaks.as_ref().and_then(|p| p.nvlink_link_bandwidth);
    let pcie = |d: &DeviceInfo| PcieLink::of(d).and_then(|l| l.capability());
    let rate = match path {
        LinkPath::NvLink { links } | LinkPath::NvSwitch { links } => {
            link_rate(da).or(link_rate(db)).map(|r| r * links as f64)
        }
        LinkPath::Pcie => match (pcie(da), pcie(db)) {
            (Some(x), Some(y)) => Some(x.min(y)),
            _ => None,
        },
        LinkPath::Unknown => None,
    };
    PairLink {
        a,
        b,
        path,
        peer_access,
        rate,
    }
}

/// Every ordered pair of distinct devices.
pub fn pairs(devices: &[DeviceInfo]) -> Vec<PairLink> {
    let n = devices.len();
    (0..n)
        .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b)))
        .map(|(a, b)| pair(devices, a, b))
        .collect()
}

/// The rate each way a collective over `group` is bound by (its bus bandwidth ceiling): the
/// slowest pair of the group, where every pair's rate is known.
pub fn group_rate(devices: &[DeviceInfo], group: &[usize]) -> Option<f64> {
    let mut slowest: Option<f64> = None;
    for &a in group {
        for &b in group.iter().filter(|&&b| b != a) {
            let r = pair(devices, a, b).rate?;
            slowest = Some(slowest.map_or(r, |s: f64| s.min(r)));
        }
    }
    slowest
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::{DeviceState, NvLinkPeer, Peaks};

    /// A GPU on `bus` with NVLink links to the given far ends and a Gen5 x16 link.
    pub(crate) fn gpu(bus: &str, links: &[(NvLinkPeerKind, &str)], access: &[u32]) -> DeviceInfo {
        let state = DeviceState {
            pcie_gen: Some(5),
            pcie_gen_max: Some(5),
            pcie_width: Some(16),
            pcie_width_max: Some(16),
            nvlink_active_links: Some(links.len() as u32),
            nvlink_peers: Some(
                links
                    .iter()
                    .map(|(k, b)| NvLinkPeer {
                        kind: *k,
                        pci_bus_id: b.to_string(),
                    })
                    .collect(),
            ),
            peer_access: Some(access.to_vec()),
            ..DeviceState::default()
        };
        DeviceInfo {
            pci_bus_id: Some(bus.into()),
            details: crate::backend::DeviceDetails {
                state,
                ..Default::default()
            },
            peaks: Some(Peaks {
                nvlink_link_bandwidth: Some(25e9),
                ..Peaks::default()
            }),
            ..DeviceInfo::default()
        }
    }

    #[test]
    fn pcie_rates_follow_the_generation() {
        let r = pcie_rate(5, 16).unwrap();
        assert!((r - 63.015e9).abs() < 0.01e9, "{r}");
        assert!((pcie_rate(4, 16).unwrap() - 31.508e9).abs() < 0.01e9);
        assert!((pcie_rate(3, 8).unwrap() - 7.877e9).abs() < 0.01e9);
        assert_eq!(pcie_rate(2, 16), Some(8e9));
        assert_eq!(pcie_rate(9, 16), None);
        assert_eq!(pcie_rate(5, 0), None);
        assert_eq!(normalize_pci("00000000:1B:00.0"), "0000:1b:00.0");
    }

    #[test]
    fn switched_direct_and_pcie_pairs() {
        use NvLinkPeerKind::{Gpu, Switch};
        let sw: Vec<(NvLinkPeerKind, &str)> = (0..18).map(|_| (Switch, "0000:99:00.0")).collect();
        let mut few = sw.clone();
        few.truncate(16);
        let devices = vec![
            gpu("0000:1b:00.0", &sw, &[1, 2]),
            gpu("0000:2b:00.0", &few, &[0]),
            gpu(
                "0000:3b:00.0",
                &[(Gpu, "00000000:4B:00.0"), (Gpu, "00000000:4B:00.0")],
                &[],
            ),
            gpu("0000:4b:00.0", &[(Gpu, "00000000:3B:00.0")], &[2]),
        ];
        let p = pair(&devices, 0, 1);
        assert_eq!(p.path, LinkPath::NvSwitch { links: 16 });
        assert_eq!(p.rate, Some(16.0 * 25e9));
        assert_eq!(p.peer_access, Some(true));
        let d = pair(&devices, 2, 3);
        assert_eq!(d.path, LinkPath::NvLink { links: 2 });
        assert_eq!(d.peer_access, Some(false));
        let x = pair(&devices, 0, 2);
        assert_eq!(x.path, LinkPath::Pcie);
        assert!((x.rate.unwrap() - 63.015e9).abs() < 0.01e9);
        assert_eq!(pairs(&devices).len(), 12);
        assert_eq!(group_rate(&devices, &[0, 1]), Some(16.0 * 25e9));
        let unknown = vec![DeviceInfo::default(), DeviceInfo::default()];
        assert_eq!(pair(&unknown, 0, 1).path, LinkPath::Unknown);
        assert_eq!(group_rate(&unknown, &[0, 1]), None);
    }
}
