//! Data types gpuvet measures, and what each one means for storage, accumulation and tolerance.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

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

    /// The unit of this dtype's compute rate: integer multiply-adds are operations, not
    /// floating-point ones.
    pub fn rate_unit(self) -> &'static str {
        match self {
            DType::Int8 => "OP/s",
            _ => "FLOP/s",
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

crate::label::display_name!(DType);

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

/// A number format arithmetic runs in: an input dtype, or a wider format work is widened to
/// or summed in (`f64` for exact int8 on a CPU, `i32` for int8 tensor cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arith {
    Of(DType),
    F64,
    I32,
}

impl Arith {
    pub const F32: Arith = Arith::Of(DType::F32);

    /// Every format, for [`ComputeType`]'s table of known labels.
    const ALL: [Arith; 9] = [
        Arith::Of(DType::F32),
        Arith::Of(DType::Tf32),
        Arith::Of(DType::F16),
        Arith::Of(DType::Bf16),
        Arith::Of(DType::Fp8E4m3),
        Arith::Of(DType::Fp8E5m2),
        Arith::Of(DType::Int8),
        Arith::F64,
        Arith::I32,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arith::Of(d) => d.name(),
            Arith::F64 => "f64",
            Arith::I32 => "i32",
        }
    }
}

/// How an fp8 matmul scales its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fp8Scaling {
    /// Per-tensor scales of 1.0 handed to the library (`scales 1`).
    Unit,
    /// No scale factors at all (`no scales`).
    Unscaled,
}

/// How attention's two products and its softmax are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionPath {
    /// Two library GEMMs (cuBLASLt, `CUBLAS_COMPUTE_32F`) around a softmax kernel: f32 scores,
    /// P rounded to the input dtype in memory.
    LibraryGemms,
    /// One fused `mma.sync` kernel with an f32 online softmax; P rounded to the input dtype in
    /// registers.
    FusedMma,
    /// One fused Hopper kernel: `wgmma` for both products (f32 accumulate), an f32 online
    /// softmax, P rounded to the input dtype in registers.
    FusedWgmma,
}

/// The arithmetic one result really ran: what its inputs were converted to, the format
/// products are summed in, and the library compute mode where one applies
/// (`ResultRecord.compute_dtype`).
///
/// Serialised as the labels reports have always held (`f32`, `bf16 (f32 accumulate)`,
/// `int8 (i32 accumulate)`, ...); a label this version does not know (an older or newer
/// file) is kept verbatim in [`ComputeType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ComputeType {
    /// Nothing ran (a result whose preparation failed): the empty label.
    #[default]
    Unrecorded,
    /// One format throughout: `f32` (also bf16 widened to f32 on a CPU), `f64` (int8 on a CPU).
    Uniform(Arith),
    /// Products of `inputs` summed in `accumulate`: `bf16 (f32 accumulate)`. An fp8 matmul also
    /// says what it writes and how it scales: `fp8_e4m3 (f32 accumulate, bf16 out, scales 1)`.
    Accumulated {
        inputs: DType,
        accumulate: Arith,
        fp8: Option<(OutType, Fp8Scaling)>,
    },
    /// Attention over `inputs` along `path`, scores and softmax in f32.
    Attention { inputs: DType, path: AttentionPath },
    /// The mock backend: exact reference values, computed in no device format (`mock`).
    Mock,
    /// Bytes moved as they are, nothing computed (transfers, peer copies): `bytes`.
    Bytes,
    /// A user's own kernel: what it computes in is its own business; the label says whose
    /// kernel ran, on which input format where a workload gave one (`bf16 (user kernel)`).
    User { inputs: Option<DType> },
    /// Any other label, kept verbatim.
    Other(String),
}

impl ComputeType {
    /// The input dtype a label starts with (`bf16 (f32 accumulate)`, `bf16 GEMMs with …`,
    /// `bf16 (user kernel)`), where it names one.
    pub fn inputs(&self) -> Option<DType> {
        match self {
            ComputeType::Accumulated { inputs, .. }
            | ComputeType::Attention { inputs, .. }
            | ComputeType::User {
                inputs: Some(inputs),
            } => Some(*inputs),
            _ => None,
        }
    }

    /// `dtype` throughout.
    pub fn uniform(dtype: DType) -> ComputeType {
        ComputeType::Uniform(Arith::Of(dtype))
    }

    /// Products of `inputs` summed in `accumulate`; `inputs` throughout when the two agree (an
    /// f32 GEMM is labelled `f32`, not `f32 (f32 accumulate)`).
    pub fn accumulated(inputs: DType, accumulate: Arith) -> ComputeType {
        if accumulate == Arith::Of(inputs) {
            ComputeType::uniform(inputs)
        } else {
            ComputeType::Accumulated {
                inputs,
                accumulate,
                fp8: None,
            }
        }
    }

    /// An fp8 matmul of `inputs` summed in f32, writing `out`, scaled as `scaling` says.
    pub fn fp8(inputs: DType, out: OutType, scaling: Fp8Scaling) -> ComputeType {
        ComputeType::Accumulated {
            inputs,
            accumulate: Arith::F32,
            fp8: Some((out, scaling)),
        }
    }

    /// True when the label says nothing the result's `dtype` does not already say (nothing
    /// recorded, or that dtype throughout): readers then show the dtype alone.
    pub fn adds_nothing_to(&self, dtype: DType) -> bool {
        *self == ComputeType::Unrecorded || *self == ComputeType::uniform(dtype)
    }

    /// Every structured value: what parsing a label is looked up in, so that a label and its
    /// value can never disagree.
    fn structured() -> Vec<ComputeType> {
        let outs = [OutType::F32, OutType::F16, OutType::Bf16, OutType::I32];
        let mut fp8 = vec![None];
        for o in outs {
            fp8.extend([Fp8Scaling::Unit, Fp8Scaling::Unscaled].map(|s| Some((o, s))));
        }
        let mut all = vec![
            ComputeType::Unrecorded,
            ComputeType::Mock,
            ComputeType::Bytes,
            ComputeType::User { inputs: None },
        ];
        all.extend(Arith::ALL.map(ComputeType::Uniform));
        for inputs in DType::ALL {
            all.push(ComputeType::User {
                inputs: Some(inputs),
            });
            for path in [
                AttentionPath::LibraryGemms,
                AttentionPath::FusedMma,
                AttentionPath::FusedWgmma,
            ] {
                all.push(ComputeType::Attention { inputs, path });
            }
            for accumulate in Arith::ALL {
                all.extend(fp8.iter().map(|&fp8| ComputeType::Accumulated {
                    inputs,
                    accumulate,
                    fp8,
                }));
            }
        }
        all
    }

    /// [`ComputeType::structured`] by label, built once.
    fn known() -> &'static HashMap<String, ComputeType> {
        static KNOWN: OnceLock<HashMap<String, ComputeType>> = OnceLock::new();
        KNOWN.get_or_init(|| {
            ComputeType::structured()
                .into_iter()
                .map(|c| (c.to_string(), c))
                .collect()
        })
    }
}

impl fmt::Display for ComputeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeType::Unrecorded => Ok(()),
            ComputeType::Uniform(a) => f.write_str(a.name()),
            ComputeType::Accumulated {
                inputs,
                accumulate,
                fp8,
            } => {
                write!(f, "{inputs} ({} accumulate", accumulate.name())?;
                if let Some((out, scaling)) = fp8 {
                    let scales = match scaling {
                        Fp8Scaling::Unit => "scales 1",
                        Fp8Scaling::Unscaled => "no scales",
                    };
                    write!(f, ", {} out, {scales}", out.name())?;
                }
                f.write_str(")")
            }
            ComputeType::Attention {
                inputs: DType::F32,
                path: AttentionPath::LibraryGemms,
            } => f.write_str("f32 (CUBLAS_COMPUTE_32F GEMMs, f32 softmax)"),
            ComputeType::Attention { inputs: d, path } => match path {
                AttentionPath::LibraryGemms => write!(
                    f,
                    "{d} GEMMs with f32 accumulate, f32 scores and softmax, P in {d}"
                ),
                AttentionPath::FusedMma => write!(
                    f,
                    "{d} mma.sync with f32 accumulate, f32 online softmax, P in {d}"
                ),
                AttentionPath::FusedWgmma => write!(
                    f,
                    "{d} wgmma with f32 accumulate, f32 online softmax, P in {d}"
                ),
            },
            ComputeType::Mock => f.write_str("mock"),
            ComputeType::Bytes => f.write_str("bytes"),
            ComputeType::User { inputs: None } => f.write_str("user kernel"),
            ComputeType::User { inputs: Some(d) } => write!(f, "{d} (user kernel)"),
            ComputeType::Other(s) => f.write_str(s),
        }
    }
}

impl From<&str> for ComputeType {
    /// Never fails: a label that names no known value becomes [`ComputeType::Other`].
    fn from(s: &str) -> ComputeType {
        ComputeType::known()
            .get(s)
            .cloned()
            .unwrap_or_else(|| ComputeType::Other(s.to_string()))
    }
}

impl From<String> for ComputeType {
    fn from(s: String) -> ComputeType {
        ComputeType::from(s.as_str())
    }
}

crate::label::text_label!(ComputeType);

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

    #[test]
    fn compute_types_keep_every_label_reports_carry() {
        // Labels written by every backend so far, and text from an unknown version.
        crate::label::assert_round_trips::<ComputeType>(&[
            "",
            "f32",
            "f16",
            "f64",
            "mock",
            "tf32 (f32 accumulate)",
            "bf16 (f32 accumulate)",
            "int8 (i32 accumulate)",
            "fp8_e4m3 (f32 accumulate, bf16 out, scales 1)",
            "fp8_e4m3 (f32 accumulate, bf16 out, no scales)",
            "f32 (CUBLAS_COMPUTE_32F GEMMs, f32 softmax)",
            "bf16 GEMMs with f32 accumulate, f32 scores and softmax, P in bf16",
            "f16 mma.sync with f32 accumulate, f32 online softmax, P in f16",
            "bf16 wgmma with f32 accumulate, f32 online softmax, P in bf16",
            "something newer (e8m0 scales)",
        ]);
        assert_eq!(
            ComputeType::from("int8 (i32 accumulate)"),
            ComputeType::accumulated(DType::Int8, Arith::I32)
        );
        assert_eq!(
            ComputeType::from("fp8_e4m3 (f32 accumulate, bf16 out, scales 1)"),
            ComputeType::fp8(DType::Fp8E4m3, OutType::Bf16, Fp8Scaling::Unit)
        );
        assert_eq!(ComputeType::from(""), ComputeType::Unrecorded);
        assert_eq!(
            ComputeType::from("f32 (f32 accumulate, bf16)"),
            ComputeType::Other("f32 (f32 accumulate, bf16)".into())
        );
        // An f32 GEMM is f32 throughout, not "f32 (f32 accumulate)".
        assert_eq!(
            ComputeType::accumulated(DType::F32, Arith::F32),
            ComputeType::uniform(DType::F32)
        );
        assert!(ComputeType::uniform(DType::Bf16).adds_nothing_to(DType::Bf16));
        assert!(ComputeType::Unrecorded.adds_nothing_to(DType::Int8));
        assert!(!ComputeType::uniform(DType::F32).adds_nothing_to(DType::Bf16));
    }

    #[test]
    fn every_structured_compute_type_has_its_own_label() {
        // Parsing looks labels up: two values with one label would collapse into one.
        let all = ComputeType::structured();
        assert_eq!(ComputeType::known().len(), all.len());
        for value in all {
            let label = value.to_string();
            assert_eq!(ComputeType::from(label.as_str()), value, "{label}");
        }
    }
}
