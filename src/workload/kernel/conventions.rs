//! The argument conventions of a user kernel that implements a known workload: which buffers
//! and scalars it can be handed, by name, with their default C types. docs/kernels.md shows
//! the same table; `args` in a spec or `--launch` picks from it in the kernel's order.
//!
//! | workload | buffers (row-major, contiguous) | scalars (default type) |
//! |---|---|---|
//! | matmul | `A` M×K, `B` K×N (`kn`) or N×K (`nk`), `C` M×N in the dtype's output type | `M`, `N`, `K`, `lda`=K, `ldb`=N (kn) or K (nk), `ldc`=N (i32); `alpha`=1, `beta`=0 (f32) |
//! | attention | `Q` [B,Hq,Lq,D], `K`, `V` [B,Hkv,Lkv,D], `O` like Q | `batch`, `heads`, `kv_heads`, `seq`, `kv_seq`, `head_dim`, `causal` (0/1) (i32); `scale` = 1/√D, `scale_log2` = scale·log₂e (f32) |
//! | memory copy | `src`, `dst` (f32) | `n` elements, `bytes` per array (u64) |
//! | memory read | `src`; `partials`: one f64 per block, summed on the host | `n`, `bytes` (u64) |
//! | memory write | `dst` | `n`, `bytes` (u64); `value` (f32) |
//! | memory triad | `a` (out), `b`, `c` | `n`, `bytes` (u64); `s` (f32): a = b + s·c |
//!
//! Every scalar is also a name in launch expressions (`grid=cdiv(N,128),cdiv(M,128)`), with
//! the kernel's own variables.

use super::expr::Names;
use super::launch::{ArgNames, Num, ScalarType};
use crate::error::{Error, Result};
use crate::workload::{BLayout, MemOp, Workload};
use std::collections::BTreeMap;

/// The names one workload offers a user kernel, with the kernel's variables.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadNames {
    /// Buffers, in the order the table lists them.
    pub buffers: Vec<&'static str>,
    /// Scalars with their default type and value.
    pub scalars: Vec<(&'static str, ScalarType, Num)>,
    /// The kernel's own variables.
    pub vars: BTreeMap<String, i64>,
}

/// The names `w` offers, or `None` for a workload kind a user kernel cannot implement.
pub fn of(w: &Workload) -> Option<WorkloadNames> {
    use ScalarType::{F32, I32, U64};
    let int = |v: u64| Num::Int(v as i128);
    let (buffers, scalars): (Vec<&'static str>, Vec<(&'static str, ScalarType, Num)>) = match w {
        Workload::Matmul(m) => {
            let ldb = match m.b_layout {
                BLayout::Kn => m.n,
                BLayout::Nk => m.k,
            };
            (
                vec!["A", "B", "C"],
                vec![
                    ("M", I32, int(m.m)),
                    ("N", I32, int(m.n)),
                    ("K", I32, int(m.k)),
                    ("lda", I32, int(m.k)),
                    ("ldb", I32, int(ldb)),
                    ("ldc", I32, int(m.n)),
                    ("alpha", F32, Num::Float(1.0)),
                    ("beta", F32, Num::Float(0.0)),
                ],
            )
        }
        Workload::Attention(a) => (
            vec!["Q", "K", "V", "O"],
            vec![
                ("batch", I32, int(a.batch)),
                ("heads", I32, int(a.q_heads)),
                ("kv_heads", I32, int(a.kv_heads)),
                ("seq", I32, int(a.q_len)),
                ("kv_seq", I32, int(a.kv_len)),
                ("head_dim", I32, int(a.head_dim)),
                ("causal", I32, int(a.causal as u64)),
                ("scale", F32, Num::Float(a.scale())),
                (
                    "scale_log2",
                    F32,
                    Num::Float(a.scale() * std::f64::consts::LOG2_E),
                ),
            ],
        ),
        Workload::Memory(m) => {
            let mut s = vec![("n", U64, int(m.elements())), ("bytes", U64, int(m.bytes))];
            let b = match m.op {
                MemOp::Copy => vec!["src", "dst"],
                MemOp::Read => vec!["src", "partials"],
                MemOp::Write => {
                    s.push(("value", F32, Num::Float(super::super::WRITE_VALUE as f64)));
                    vec!["dst"]
                }
                MemOp::Triad => {
                    s.push(("s", F32, Num::Float(super::super::TRIAD_SCALAR as f64)));
                    vec!["a", "b", "c"]
                }
            };
            (b, s)
        }
        // Copies between memories and collectives are library calls here, not kernels a user
        // can stand in for; a free-form kernel brings its own names.
        Workload::Kernel(_)
        | Workload::Transfer(_)
        | Workload::P2p(_)
        | Workload::Collective(_) => return None,
    };
    Some(WorkloadNames {
        buffers,
        scalars,
        vars: BTreeMap::new(),
    })
}

impl WorkloadNames {
    /// These names with the kernel's variables added; a variable may not hide a workload name.
    pub fn with_vars(mut self, vars: &BTreeMap<String, i64>) -> Result<WorkloadNames> {
        for k in vars.keys() {
            if self.buffers.contains(&k.as_str()) || self.scalars.iter().any(|s| s.0 == k) {
                return Err(Error::invalid(format!(
                    "variable `{k}` has the name of a {} of the workload; rename it",
                    if self.buffers.contains(&k.as_str()) {
                        "buffer"
                    } else {
                        "size"
                    }
                )));
            }
        }
        self.vars = vars.clone();
        Ok(self)
    }
}

impl Names for WorkloadNames {
    fn value(&self, name: &str) -> Option<i128> {
        if let Some(v) = self.vars.get(name) {
            return Some(*v as i128);
        }
        self.scalars.iter().find_map(|(n, _, v)| match v {
            Num::Int(i) if *n == name => Some(*i),
            _ => None,
        })
    }
    fn known(&self) -> Vec<String> {
        let ints = self.scalars.iter().filter(|s| matches!(s.2, Num::Int(_)));
        ints.map(|s| s.0.to_string())
            .chain(self.vars.keys().cloned())
            .collect()
    }
}

impl ArgNames for WorkloadNames {
    fn is_buffer(&self, name: &str) -> bool {
        self.buffers.contains(&name)
    }
    fn scalar(&self, name: &str) -> Option<(ScalarType, Num)> {
        self.scalars
            .iter()
            .find(|s| s.0 == name)
            .map(|&(_, t, v)| (t, v))
    }
    fn buffers(&self) -> Vec<String> {
        self.buffers.iter().map(|s| s.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::launch::{Arg, LaunchSpec};
    use super::*;
    use crate::dtype::DType;
    use crate::workload::{AttentionSpec, MatmulSpec, MemorySpec};

    #[test]
    fn a_gemm_launch_resolves_against_the_matmul_names() {
        let w = Workload::Matmul(MatmulSpec {
            m: 4097,
            n: 4096,
            k: 512,
            dtype: DType::Bf16,
            b_layout: BLayout::Nk,
        });
        let vars: BTreeMap<String, i64> = [("BM".to_string(), 128)].into();
        let names = of(&w).unwrap().with_vars(&vars).unwrap();
        let l = LaunchSpec::parse_flag(
            "grid=cdiv(N,128),cdiv(M,BM),block=256,args=A,B,C,M,N,K,ldb,f32:alpha",
        )
        .unwrap();
        let r = l.resolve(&names).unwrap();
        assert_eq!(r.grid, [32, 33, 1]);
        assert_eq!(r.args[6], Arg::Scalar(ScalarType::I32, Num::Int(512)));
        assert_eq!(r.args[7], Arg::Scalar(ScalarType::F32, Num::Float(1.0)));
        // a variable may not hide a workload name
        let clash: BTreeMap<String, i64> = [("K".to_string(), 1)].into();
        let e = of(&w).unwrap().with_vars(&clash).unwrap_err().to_string();
        assert!(e.contains("`K`") && e.contains("size"), "{e}");
    }

    #[test]
    fn every_workload_kind_offers_its_buffers() {
        let a = Workload::Attention(AttentionSpec {
            batch: 2,
            q_heads: 8,
            kv_heads: 2,
            q_len: 16,
            kv_len: 64,
            head_dim: 64,
            causal: true,
            dtype: DType::F16,
        });
        let n = of(&a).unwrap();
        assert_eq!(n.buffers, ["Q", "K", "V", "O"]);
        assert_eq!(n.value("causal"), Some(1));
        assert_eq!(
            n.scalar("scale"),
            Some((ScalarType::F32, Num::Float(0.125)))
        );
        let m = |op| Workload::Memory(MemorySpec { op, bytes: 1 << 20 });
        assert_eq!(of(&m(MemOp::Read)).unwrap().buffers, ["src", "partials"]);
        assert_eq!(of(&m(MemOp::Triad)).unwrap().buffers, ["a", "b", "c"]);
        let c = of(&m(MemOp::Copy)).unwrap();
        assert_eq!(c.value("n"), Some(1 << 18));
        assert_eq!(c.scalar("n").unwrap().0, ScalarType::U64);
    }
}
