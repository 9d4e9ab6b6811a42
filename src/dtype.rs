//! Data types gpuvet measures, and what each one means for storage, accumulation and tolerance.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An element type of a workload's inputs.
///
/// `Tf32` is stored as `f32` but carries only 10 mantissa bits into the multiply: inputs are
/// generated already rounded to TF32 so that the f64 reference sees exactly the values the
/// hardware multiplies. `Int8` accumulates in `i32` and is compared exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    F32,
    Tf32,
    F16,
    Bf16,
    Fp8E4m3,
    Fp8E5m2,
    Int8,
}

impl DType {
    pub const ALL: [DType; 7] = [
        DType::F32,
        DType::Tf32,
        DType::F16,
        DType::Bf16,
        DType::Fp8E4m3,
        DType::Fp8E5m2,
        DType::Int8,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::Tf32 => "tf32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::Fp8E4m3 => "fp8_e4m3",
            DType::Fp8E5m2 => "fp8_e5m2",
            DType::Int8 => "int8",
        }
    }

    /// Bytes per stored input element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 | DType::Tf32 => 4,
            DType::F16 | DType::Bf16 => 2,
            DType::Fp8E4m3 | DType::Fp8E5m2 | DType::Int8 => 1,
        }
    }

    /// The dtype a matmul with these inputs writes. fp8 writes bf16 (what inference stacks keep),
    /// int8 writes the i32 accumulator.
    pub fn matmul_output(self) -> OutType {
        match self {
            DType::F32 | DType::Tf32 => OutType::F32,
            DType::F16 => OutType::F16,
            DType::Bf16 | DType::Fp8E4m3 | DType::Fp8E5m2 => OutType::Bf16,
            DType::Int8 => OutType::I32,
        }
    }

    /// Largest accepted relative error against the f64 reference (see docs/verification.md).
    ///
    /// Inputs are exactly representable, so the error comes from accumulation order and from
    /// rounding the output: one unit of the output's precision, with headroom for accumulation.
    pub fn tolerance(self) -> f64 {
        match self {
            DType::F32 => 1e-5,
            DType::Tf32 => 1e-3,
            DType::F16 | DType::Bf16 => 1e-2,
            DType::Fp8E4m3 | DType::Fp8E5m2 => 2e-2,
            DType::Int8 => 0.0,
        }
    }

    /// Attention runs in f32, f16 and bf16 only.
    pub fn valid_for_attention(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::Bf16)
    }

    /// Rounds an f32 to the nearest value this dtype can hold (round to nearest even).
    pub fn quantize(self, x: f32) -> f32 {
        match self {
            DType::F32 => x,
            DType::Tf32 => round_mantissa(x, 10),
            DType::F16 => half::f16::from_f32(x).to_f32(),
            DType::Bf16 => half::bf16::from_f32(x).to_f32(),
            DType::Fp8E4m3 => float8::F8E4M3::from_f32(x).to_f32(),
            DType::Fp8E5m2 => float8::F8E5M2::from_f32(x).to_f32(),
            DType::Int8 => x.round().clamp(-128.0, 127.0),
        }
    }
}

/// Rounds the mantissa of `x` to `bits` bits, nearest-even, as TF32 conversion does.
fn round_mantissa(x: f32, bits: u32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let drop = 23 - bits;
    let u = x.to_bits();
    let half = 1u32 << (drop - 1);
    let lsb = (u >> drop) & 1;
    let rounded = u.wrapping_add(half - 1 + lsb) & !((1u32 << drop) - 1);
    f32::from_bits(rounded)
}

/// The element type of a result buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutType {
    F32,
    F16,
    Bf16,
    I32,
}

impl OutType {
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::Bf16 => "bf16",
            OutType::I32 => "i32",
        }
    }
    pub fn size(self) -> u64 {
        match self {
            OutType::F16 | OutType::Bf16 => 2,
            OutType::F32 | OutType::I32 => 4,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v = match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "f32" | "fp32" | "float32" => DType::F32,
            "tf32" => DType::Tf32,
            "f16" | "fp16" | "half" | "float16" => DType::F16,
            "bf16" | "bfloat16" => DType::Bf16,
            "fp8" | "fp8_e4m3" | "e4m3" | "f8e4m3" => DType::Fp8E4m3,
            "fp8_e5m2" | "e5m2" | "f8e5m2" => DType::Fp8E5m2,
            "int8" | "i8" => DType::Int8,
            _ => {
                return Err(format!(
                    "unknown dtype `{s}` (expected one of: f32, tf32, f16, bf16, fp8_e4m3, fp8_e5m2, int8)"
                ))
            }
        };
        Ok(v)
    }
}

/// Serde for maps keyed by [`DType`] (`Peaks::flops`): written by name in name order, as when
/// the key was the name itself, so reports stay byte-identical; names this version does not
/// know are skipped on reading rather than failing the whole report.
pub mod by_name {
    use super::DType;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<DType, f64>, s: S) -> Result<S::Ok, S::Error> {
        let named: BTreeMap<&str, f64> = m.iter().map(|(d, v)| (d.name(), *v)).collect();
        named.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<DType, f64>, D::Error> {
        let named = BTreeMap::<String, f64>::deserialize(d)?;
        Ok(named
            .into_iter()
            .filter_map(|(k, v)| k.parse::<DType>().ok().map(|d| (d, v)))
            .collect())
    }

    /// The entries in name order (what reports and tables show).
    pub fn entries(m: &BTreeMap<DType, f64>) -> Vec<(DType, f64)> {
        let mut v: Vec<(DType, f64)> = m.iter().map(|(d, v)| (*d, *v)).collect();
        v.sort_by_key(|(d, _)| d.name());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf32_keeps_ten_mantissa_bits() {
        let x = 1.0f32 + f32::EPSILON * 3.0;
        assert_eq!(DType::Tf32.quantize(x), 1.0);
        let y = 1.0 + 2f32.powi(-10);
        assert_eq!(DType::Tf32.quantize(y), y);
        // ties go to even
        assert_eq!(DType::Tf32.quantize(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(
            DType::Tf32.quantize(1.0 + 3.0 * 2f32.powi(-11)),
            1.0 + 2f32.powi(-9)
        );
    }

    #[test]
    fn quantize_is_idempotent() {
        for d in DType::ALL {
            for x in [-0.7f32, 0.123, 0.999, -1.0, 3.3] {
                let q = d.quantize(x);
                assert_eq!(d.quantize(q), q, "{d} {x}");
            }
        }
    }

    #[test]
    fn parses_aliases() {
        assert_eq!("BF16".parse::<DType>().unwrap(), DType::Bf16);
        assert_eq!("fp8".parse::<DType>().unwrap(), DType::Fp8E4m3);
        assert_eq!("fp32".parse::<DType>().unwrap(), DType::F32);
        assert!("f64".parse::<DType>().is_err());
    }

    #[test]
    fn maps_by_dtype_are_written_by_name_in_name_order() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct P {
            #[serde(with = "super::by_name")]
            flops: std::collections::BTreeMap<DType, f64>,
        }
        let p = P {
            flops: [(DType::F32, 1.0), (DType::Bf16, 2.0), (DType::Int8, 3.0)].into(),
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(text, r#"{"flops":{"bf16":2.0,"f32":1.0,"int8":3.0}}"#);
        let back: P = serde_json::from_str(r#"{"flops":{"bf16":2.0,"f64":9.0}}"#).unwrap();
        assert_eq!(back.flops, [(DType::Bf16, 2.0)].into());
    }
}
