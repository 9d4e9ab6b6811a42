//! Byte sizes and rates: parsing (`1GiB`, `512M`, `4096`) and printing.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A number of bytes, printed with binary prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut v = self.0 as f64;
        let mut i = 0;
        while v >= 1024.0 && i + 1 < UNITS.len() {
            v /= 1024.0;
            i += 1;
        }
        if i == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{v:.2} {}", UNITS[i])
        }
    }
}

impl FromStr for Bytes {
    type Err = String;

    /// Accepts a plain integer or a number with a suffix: K/KB/KiB (1024), M/MiB, G/GiB, T/TiB
    /// (binary), and kB/MB/GB/TB spelled with a capital B after an SI prefix as decimal. Plain
    /// `K`, `M`, `G` are binary because that is what people mean when sizing buffers.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size (try 256MiB, 1GiB or 4096)"))?;
        let mult: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "K" | "k" | "KiB" | "Ki" => 1024.0,
            "M" | "MiB" | "Mi" => 1024.0f64.powi(2),
            "G" | "GiB" | "Gi" => 1024.0f64.powi(3),
            "T" | "TiB" | "Ti" => 1024.0f64.powi(4),
            "kB" | "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            other => return Err(format!("unknown size unit `{other}` in `{s}`")),
        };
        let bytes = value * mult;
        if !bytes.is_finite() || !(1.0..=1e18).contains(&bytes) {
            return Err(format!("size `{s}` is out of range"));
        }
        Ok(Bytes(bytes.round() as u64))
    }
}

/// Parses a run length such as `90s`, `10m` or `1h` (humantime syntax), between 1 s and 7 days.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (try 90s, 10m, 1h)"))?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(7 * 86_400) {
        return Err(format!("duration `{s}` must be between 1 s and 7 days"));
    }
    Ok(d)
}

/// Formats a rate with an SI prefix: `412.3 GFLOP/s`, `3.81 TB/s`.
pub fn si(value: f64, unit: &str) -> String {
    // The prefix is chosen for the value as shown (four significant digits): chosen before
    // rounding, 999.96 G came out as "1000.0 G" rather than "1.000 T".
    let value = round_significant(value, 4);
    let (scaled, prefix) = if value >= 1e15 {
        (value / 1e15, "P")
    } else if value >= 1e12 {
        (value / 1e12, "T")
    } else if value >= 1e9 {
        (value / 1e9, "G")
    } else if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let digits = if scaled >= 100.0 {
        1
    } else if scaled >= 10.0 {
        2
    } else {
        3
    };
    format!("{scaled:.digits$} {prefix}{unit}")
}

/// `v` rounded to `digits` significant digits (0 and non-finite values as they are).
fn round_significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let f = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * f).round() / f
}

/// Formats a duration in seconds with a unit that keeps three significant digits. The unit is
/// chosen for the value as shown, to three decimals: 0.9999999 s is "1.000 s", not
/// "1000.000 ms".
pub fn seconds(s: f64) -> String {
    let shown = |x: f64| (x * 1e3).round() / 1e3;
    if shown(s) >= 1.0 {
        format!("{s:.3} s")
    } else if shown(s * 1e3) >= 1.0 {
        format!("{:.3} ms", s * 1e3)
    } else if shown(s * 1e6) >= 1.0 {
        format!("{:.3} µs", s * 1e6)
    } else {
        format!("{:.1} ns", s * 1e9)
    }
}

/// Bytes per second each way of one PCIe lane of generation `gen`, after line encoding: 8b/10b
/// for Gen 1–2, 128b/130b for Gen 3–5, 242B/256B flits for Gen 6.
pub fn pcie_lane_rate(gen: u32) -> Option<f64> {
    let (gt_s, efficiency) = match gen {
        1 => (2.5, 0.8),
        2 => (5.0, 0.8),
        3 => (8.0, 128.0 / 130.0),
        4 => (16.0, 128.0 / 130.0),
        5 => (32.0, 128.0 / 130.0),
        6 => (64.0, 242.0 / 256.0),
        _ => return None,
    };
    Some(gt_s * 1e9 / 8.0 * efficiency)
}

/// A PCIe link's rate each way: lanes × the lane rate of its generation (x16 Gen5: 63.0 GB/s).
pub fn pcie_rate(gen: u32, width: u32) -> Option<f64> {
    (width > 0).then_some(())?;
    Some(pcie_lane_rate(gen)? * width as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefix and the time unit are those of the value as shown: no "1000.0 GFLOP/s".
    #[test]
    fn a_value_rounding_up_takes_the_next_prefix() {
        assert_eq!(si(999.96e9, "FLOP/s"), "1.000 TFLOP/s");
        assert_eq!(si(999.94e9, "FLOP/s"), "999.9 GFLOP/s");
        assert_eq!(si(0.0, "B/s"), "0.000 B/s");
        assert_eq!(seconds(0.9999999), "1.000 s");
        assert_eq!(seconds(0.999), "999.000 ms");
        assert_eq!(seconds(0.99999999e-3), "1.000 ms");
        assert_eq!(seconds(0.9999999e-6), "1.000 µs");
        assert_eq!(seconds(5e-9), "5.0 ns");
    }

    #[test]
    fn parses_sizes() {
        assert_eq!("4096".parse::<Bytes>().unwrap(), Bytes(4096));
        assert_eq!("1GiB".parse::<Bytes>().unwrap(), Bytes(1 << 30));
        assert_eq!("256M".parse::<Bytes>().unwrap(), Bytes(256 << 20));
        assert_eq!("1.5KiB".parse::<Bytes>().unwrap(), Bytes(1536));
        assert_eq!("2GB".parse::<Bytes>().unwrap(), Bytes(2_000_000_000));
        assert!("0".parse::<Bytes>().is_err());
        assert!("12XB".parse::<Bytes>().is_err());
        assert!("abc".parse::<Bytes>().is_err());
        assert!("1e30".parse::<Bytes>().is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("30d").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn prints_rates_and_sizes() {
        assert_eq!(si(1.234e12, "FLOP/s"), "1.234 TFLOP/s");
        assert_eq!(si(412.3e9, "B/s"), "412.3 GB/s");
        assert_eq!(Bytes(1 << 30).to_string(), "1.00 GiB");
        assert_eq!(Bytes(10).to_string(), "10 B");
        assert_eq!(seconds(0.0012), "1.200 ms");
    }
}
