//! Price-performance: what a dollar buys on the device that was measured.
//!
//! A price is **USD per device-hour**: one GPU (or, on the CPU backend, the whole CPU) rented
//! for one hour. It comes from `--price-per-hour USD` (every device), or per SKU from a TOML
//! file (`--price-file PATH`):
//!
//! ```toml
//! # USD per GPU-hour, by SKU id (`gpuvet list --skus`)
//! [price]
//! h100-sxm = 2.49
//! a100-sxm-80gb = 1.29
//! default = 3.10    # optional: devices whose SKU is not listed or not known
//! ```
//!
//! From it gpuvet derives, where it has the figures:
//!
//! | where | figure | meaning |
//! |---|---|---|
//! | each result | `price_performance` | throughput ÷ price: **TFLOP-hours per USD** (TOP-hours for int8, **TB-hours** for bandwidth): how many hours one dollar keeps 1 TFLOP/s (1 TB/s) going at this rate |
//! | `suite llm` | `usd_per_million_{input,output}_tokens` | the tensor-parallel group's price (tp × price) over the tokens it processes in prefill and decode |
//! | `aggregate` | `lost_capacity` | what the GPUs of the nodes to drain cost per hour while they cannot serve |
//!
//! One TFLOP-hour is 1 TFLOP/s for an hour, 3.6 × 10¹⁵ FLOP; one TB-hour of bandwidth is
//! 1 TB/s for an hour, 3.6 PB moved.

use crate::error::{Error, Result};
use crate::workload::Metric;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A price above this is refused as a typo (a monthly price, cents, or a whole cluster).
pub const MAX_USD_PER_HOUR: f64 = 10_000.0;

/// A price below this is refused as a typo too (a price per second, or thousands of dollars
/// taken for millions): a tenth of a cent an hour is below any GPU rental, and smaller prices
/// make the per-dollar figures overflow into `inf`, which JSON cannot carry.
pub const MIN_USD_PER_HOUR: f64 = 0.001;

/// The key of a price file's `[price]` table that prices every device it does not list.
pub const DEFAULT_KEY: &str = "default";

/// Prices per device-hour, as given on the command line or in a price file.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    /// `--price-per-hour`, or the file's path: recorded in the report.
    pub source: String,
    /// The price of a device whose SKU is not in `by_sku` (or not known).
    pub default: Option<f64>,
    /// Prices by SKU id (lower case, as `gpuvet list --skus` prints them).
    pub by_sku: BTreeMap<String, f64>,
}

/// The file's shape: one table, nothing else (a typo is an error, not an unpriced device).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    price: BTreeMap<String, toml::Value>,
}

/// Checks one price: a finite number of dollars from [`MIN_USD_PER_HOUR`] to
/// [`MAX_USD_PER_HOUR`].
pub fn check_usd_per_hour(v: f64, what: &str) -> Result<f64> {
    // 1e-300 or 1e300 written out is three hundred digits.
    let shown = if v.is_finite() && v != 0.0 && !(1e-3..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    };
    if !v.is_finite() || v <= 0.0 {
        return Err(Error::invalid(format!(
            "{what}: {shown} is not a price; give USD per GPU-hour as a positive number (e.g. 2.49)"
        )));
    }
    if v < MIN_USD_PER_HOUR {
        return Err(Error::invalid(format!(
            "{what}: {shown} USD per GPU-hour is below {MIN_USD_PER_HOUR} (a tenth of a cent); the \
             price is in dollars per GPU and per hour"
        )));
    }
    if v > MAX_USD_PER_HOUR {
        return Err(Error::invalid(format!(
            "{what}: {shown} USD per GPU-hour is above {MAX_USD_PER_HOUR}; the price is per GPU \
             and per hour (not per month, per node or in cents)"
        )));
    }
    Ok(v)
}

impl PriceTable {
    /// One price for every device (`--price-per-hour`).
    pub fn flat(usd_per_hour: f64) -> Result<PriceTable> {
        Ok(PriceTable {
            source: "--price-per-hour".into(),
            default: Some(check_usd_per_hour(usd_per_hour, "--price-per-hour")?),
            by_sku: BTreeMap::new(),
        })
    }

    /// Parses a price file (see the module docs). Every key must be a known SKU id or
    /// `default`, every value a price [`check_usd_per_hour`] accepts.
    pub fn parse(text: &str, source: &str) -> Result<PriceTable> {
        let bad = |reason: String| Error::invalid(format!("price file {source}: {reason}"));
        let file: PriceFile =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().to_string()))?;
        let mut table = PriceTable {
            source: source.to_string(),
            default: None,
            by_sku: BTreeMap::new(),
        };
        for (key, value) in &file.price {
            let usd = match value {
                toml::Value::Float(f) => *f,
                toml::Value::Integer(i) => *i as f64,
                other => {
                    return Err(bad(format!(
                        "[price] {key} = {other}: expected a number of USD per GPU-hour"
                    )))
                }
            };
            let usd = check_usd_per_hour(usd, &format!("price file {source}: [price] {key}"))?;
            if key == DEFAULT_KEY {
                table.default = Some(usd);
                continue;
            }
            let Some(sku) = crate::gpudb::by_id(key) else {
                return Err(bad(format!(
                    "[price] {key}: unknown SKU; known: {}, or `{DEFAULT_KEY}`",
                    crate::gpudb::ids().join(", ")
                )));
            };
            if table.by_sku.insert(sku.id.clone(), usd).is_some() {
                return Err(bad(format!("[price] {key}: SKU {} priced twice", sku.id)));
            }
        }
        if table.default.is_none() && table.by_sku.is_empty() {
            return Err(bad("[price] is empty: nothing is priced".into()));
        }
        Ok(table)
    }

    /// Reads and parses a price file.
    pub fn load(path: &Path) -> Result<PriceTable> {
        let text = crate::files::read_text_bounded(path, crate::files::MAX_SMALL_FILE_BYTES)
            .map_err(|e| {
                Error::invalid(format!("cannot read price file {}: {e}", path.display()))
            })?;
        PriceTable::parse(&text, &path.display().to_string())
    }

    /// The price of a device of SKU `sku` (`None`: not known), or `None` when nothing prices it.
    pub fn for_sku(&self, sku: Option<&str>) -> Option<f64> {
        sku.and_then(|s| self.by_sku.get(&s.to_ascii_lowercase()).copied())
            .or(self.default)
    }

    /// The prices of a run's devices, for the report.
    pub fn for_devices(&self, devices: &[crate::backend::DeviceInfo]) -> PriceInfo {
        PriceInfo {
            source: self.source.clone(),
            usd_per_hour: devices
                .iter()
                .map(|d| self.for_sku(crate::gpudb::lookup(d).map(|s| s.id).as_deref()))
                .collect(),
        }
    }
}

/// The prices a run was given, recorded in the report (`config.price`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceInfo {
    /// `--price-per-hour`, or the path of the price file.
    pub source: String,
    /// USD per device-hour of each device of the report, by index (`null`: the file prices
    /// neither its SKU nor a default).
    pub usd_per_hour: Vec<Option<f64>>,
}

impl PriceInfo {
    /// The price of device `i`, where known.
    pub fn of_device(&self, i: usize) -> Option<f64> {
        self.usd_per_hour.get(i).copied().flatten()
    }
}

/// What a dollar buys at one result's throughput (`results[].price_performance`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricePerformance {
    /// USD per device-hour the result was priced at.
    pub usd_per_hour: f64,
    /// Throughput ÷ price, in `unit`.
    pub value: f64,
    /// `TFLOP-h/USD`, `TOP-h/USD` (int8) or `TB-h/USD` (bandwidth).
    pub unit: String,
}

impl PricePerformance {
    /// `throughput` (in FLOP/s, OP/s or B/s, per `metric` and `unit`) at `usd_per_hour`.
    pub fn of(throughput: f64, rate_unit: &str, metric: Metric, usd_per_hour: f64) -> Self {
        let unit = match (metric, rate_unit) {
            (Metric::Bytes, _) => "TB-h/USD",
            (Metric::Flops, "OP/s") => "TOP-h/USD",
            (Metric::Flops, _) => "TFLOP-h/USD",
        };
        PricePerformance {
            usd_per_hour,
            value: throughput / 1e12 / usd_per_hour,
            unit: unit.into(),
        }
    }

    /// The work one dollar buys, in the rate's base unit (FLOP, OP or bytes).
    pub fn work_per_usd(&self) -> f64 {
        self.value * 1e12 * 3600.0
    }
}

/// USD per million tokens when a group of `gpus` devices at `usd_per_hour` each takes
/// `seconds` for `tokens` tokens. `None` when a figure is missing or zero.
pub fn usd_per_million_tokens(
    usd_per_hour: f64,
    gpus: u64,
    seconds: f64,
    tokens: f64,
) -> Option<f64> {
    (seconds > 0.0 && tokens > 0.0 && usd_per_hour > 0.0)
        .then(|| usd_per_hour * gpus as f64 * seconds / 3600.0 / tokens * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_file_prices_skus_and_a_default() {
        let t = PriceTable::parse("[price]\nH100-SXM = 2.5\ndefault = 1\n", "p.toml").unwrap();
        assert_eq!(t.for_sku(Some("h100-sxm")), Some(2.5));
        assert_eq!(t.for_sku(Some("a10g")), Some(1.0));
        assert_eq!(t.for_sku(None), Some(1.0));
        let only = PriceTable::parse("[price]\nh100-sxm = 2\n", "p.toml").unwrap();
        assert_eq!(only.for_sku(None), None);
    }

    #[test]
    fn bad_price_files_say_what_is_wrong() {
        let err = |text: &str| PriceTable::parse(text, "p.toml").unwrap_err().to_string();
        assert!(err("[price]\nh100-sxmm = 2\n").contains("unknown SKU"));
        assert!(err("[price]\nh100-sxm = -2\n").contains("not a price"));
        assert!(err("[price]\nh100-sxm = nan\n").contains("not a price"));
        assert!(err("[price]\nh100-sxm = \"2\"\n").contains("expected a number"));
        assert!(err("[price]\nh100-sxm = 20000\n").contains("per GPU and per hour"));
        assert!(err("[prices]\nh100-sxm = 2\n").contains("p.toml"));
        assert!(err("[price]\n").contains("empty"));
        assert!(err("[price]\nh100-sxm = 2\nH100-SXM = 3\n").contains("twice"));
        // toml's own refusals keep their place: a key written twice names its line.
        let twice = err("[price]\nh100-sxm = 2\nh100-sxm = 3\n");
        assert!(
            twice.contains("duplicate key") && twice.contains("line 3"),
            "{twice}"
        );
        assert!(PriceTable::flat(0.0).is_err() && PriceTable::flat(f64::INFINITY).is_err());
        // Tiny prices overflow the per-dollar figures to inf (null in JSON); refused.
        assert!(err("[price]\ndefault = 1e-300\n").contains("a tenth of a cent"));
        assert!(PriceTable::flat(5e-324).is_err() && PriceTable::flat(0.001).is_ok());
    }

    #[test]
    fn price_performance_is_throughput_over_price() {
        // 800 TFLOP/s at $2/h: 400 TFLOP-hours per dollar, 1.44e18 FLOP per dollar.
        let p = PricePerformance::of(800e12, "FLOP/s", Metric::Flops, 2.0);
        assert_eq!((p.value, p.unit.as_str()), (400.0, "TFLOP-h/USD"));
        assert!((p.work_per_usd() - 1.44e18).abs() < 1e6);
        let b = PricePerformance::of(3e12, "B/s", Metric::Bytes, 3.0);
        assert_eq!((b.value, b.unit.as_str()), (1.0, "TB-h/USD"));
        assert_eq!(
            PricePerformance::of(1e12, "OP/s", Metric::Flops, 1.0).unit,
            "TOP-h/USD"
        );
        // 8 GPUs at $2/h for 1 s per 1000 tokens: $16/h × 1/3600 h / 1000 tok × 1e6.
        let usd = usd_per_million_tokens(2.0, 8, 1.0, 1000.0).unwrap();
        assert!((usd - 16.0 / 3.6).abs() < 1e-9);
        assert!(usd_per_million_tokens(2.0, 8, 0.0, 1000.0).is_none());
    }
}
