//! CPU matmul: gpuvet's own AVX2+FMA f32 kernel ([`super::sgemm`]) where it is the faster
//! one (x86-64 with AVX2 and FMA, no AVX-512), the `gemm` crate otherwise and for f16/f64.
//!
//! f32 (and tf32, whose inputs are f32 values with short mantissas) and f16 run natively. bf16 and fp8 have no CPU arithmetic: their inputs are widened to f32 once, at
//! prepare time, so the timed loop is an f32 GEMM followed by rounding the result to the output
//! dtype. int8 is widened to f64: every product and partial sum of int8 values is an integer
//! far below 2^53, so f64 accumulates exactly what an i32 accumulator would (for K below the
//! i32 overflow point), and the result converts to i32 without rounding.
//!
//! B is read in place through strides in both layouts (K×N and N×K); there is no transposed
//! copy.

use super::pages::huge_copy;
use super::sgemm::{self, Sgemm};
use super::{chunk_len, rotating, Alloc, CpuBackend, CpuKernel, Run, SetKernel, MATMUL_IMPL};
use crate::backend::ImplInfo;
use crate::dtype::{Arith, ComputeType, DType, OutType};
use crate::error::{Error, Result};
use crate::tensor::{Data, Tensor};
use crate::workload::{BLayout, MatmulSpec};
use half::{bf16, f16};
use rayon::prelude::*;

/// How a dtype is computed on the CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// `gemm` in f32; the output is the f32 result (f32, tf32).
    F32,
    /// `gemm` in f16, output f16.
    F16,
    /// Inputs widened to f32, f32 `gemm`, result rounded to bf16 (bf16, fp8).
    ViaF32,
    /// Inputs widened to f64, f64 `gemm`, result converted to i32 (int8).
    ViaF64,
}

fn path(dtype: DType) -> Path {
    match dtype {
        DType::F32 | DType::Tf32 => Path::F32,
        DType::F16 => Path::F16,
        DType::Bf16 | DType::Fp8E4m3 | DType::Fp8E5m2 => Path::ViaF32,
        DType::Int8 => Path::ViaF64,
    }
}

/// What the CPU matmul is, where the `gemm` crate computes f32.
const ABOUT: &str = "gemm crate on rayon; f32/f16 native, bf16/tf32/fp8 via f32, int8 via f64";
/// What the CPU matmul is, where gpuvet's AVX2 kernel computes f32.
const ABOUT_OWN: &str = "gpuvet's AVX2+FMA f32 kernel and the gemm crate (f16, f64) on rayon; \
    bf16/tf32/fp8 via f32, int8 via f64";

impl CpuKernel for MatmulSpec {
    fn implementation(&self) -> Option<ImplInfo> {
        let about = if sgemm::preferred() { ABOUT_OWN } else { ABOUT };
        Some(ImplInfo::new(MATMUL_IMPL, about, true))
    }

    fn bytes_per_set(&self) -> u64 {
        bytes_per_set(self)
    }

    fn prepare<'a>(&self, cpu: &'a CpuBackend, a: Alloc) -> Run<'a> {
        let threads = cpu.threads;
        rotating(PreparedMatmul::new(&cpu.pool, threads, self, &a), &a)
    }
}

/// Bytes one buffer set occupies: the (possibly widened) inputs, the GEMM's own result and,
/// when the output dtype differs from the compute dtype, the output as well.
fn bytes_per_set(s: &MatmulSpec) -> u64 {
    let (m, n, k) = (s.m, s.n, s.k);
    let ins = m.saturating_mul(k).saturating_add(k.saturating_mul(n));
    let mn = m.saturating_mul(n);
    let (elem, extra_out) = match path(s.dtype) {
        Path::F32 => (4, 0),
        Path::F16 => (2, 0),
        Path::ViaF32 => (4, s.dtype.matmul_output().size()),
        Path::ViaF64 => (8, s.dtype.matmul_output().size()),
    };
    ins.saturating_add(mn)
        .saturating_mul(elem)
        .saturating_add(mn.saturating_mul(extra_out))
}

/// One buffer set. `c` is what `gemm` writes; `out` holds the converted result where the
/// output dtype differs from the compute dtype.
enum Set {
    F32 {
        a: Vec<f32>,
        b: Vec<f32>,
        c: Vec<f32>,
    },
    F16 {
        a: Vec<f16>,
        b: Vec<f16>,
        c: Vec<f16>,
    },
    ViaF32 {
        a: Vec<f32>,
        b: Vec<f32>,
        c: Vec<f32>,
        out: Vec<bf16>,
    },
    ViaF64 {
        a: Vec<f64>,
        b: Vec<f64>,
        c: Vec<f64>,
        out: Vec<i32>,
    },
}

/// A matmul ready to run: every buffer set allocated and filled.
struct PreparedMatmul<'a> {
    pool: &'a rayon::ThreadPool,
    threads: usize,
    spec: MatmulSpec,
    sets: Vec<Set>,
    /// gpuvet's own f32 GEMM with its packing buffers, where it is the preferred one.
    own: Option<Sgemm>,
}

impl<'a> PreparedMatmul<'a> {
    fn new(
        pool: &'a rayon::ThreadPool,
        threads: usize,
        spec: &MatmulSpec,
        a: &Alloc,
    ) -> Result<Self> {
        let (inputs, sets) = (a.inputs, a.count());
        let (a, b) = (&inputs[0], &inputs[1]);
        let mn = (spec.m * spec.n) as usize;
        let p = path(spec.dtype);
        let expected_out = spec.dtype.matmul_output();
        let ok = matches!(
            (p, expected_out),
            (Path::F32, OutType::F32)
                | (Path::F16, OutType::F16)
                | (Path::ViaF32, OutType::Bf16)
                | (Path::ViaF64, OutType::I32)
        );
        if !ok {
            return Err(Error::unsupported(format!(
                "cpu gemm cannot write {} output for {} inputs",
                expected_out.name(),
                spec.dtype
            )));
        }
        // Conversions happen once here, outside anything timed; each set then clones them.
        let sets = pool.install(|| -> Result<Vec<Set>> {
            let one = match p {
                Path::F32 | Path::ViaF32 => {
                    let (a32, b32) = (widen_f32(a), widen_f32(b));
                    if p == Path::F32 {
                        Set::F32 {
                            a: huge_copy(&a32),
                            b: huge_copy(&b32),
                            c: huge_copy(&vec![0.0; mn]),
                        }
                    } else {
                        Set::ViaF32 {
                            a: huge_copy(&a32),
                            b: huge_copy(&b32),
                            c: huge_copy(&vec![0.0; mn]),
                            out: vec![bf16::ZERO; mn],
                        }
                    }
                }
                Path::F16 => match (&a.data, &b.data) {
                    (Data::F16(a), Data::F16(b)) => Set::F16 {
                        a: huge_copy(a),
                        b: huge_copy(b),
                        c: huge_copy(&vec![f16::ZERO; mn]),
                    },
                    _ => return Err(Error::invalid("f16 matmul needs f16 inputs")),
                },
                Path::ViaF64 => Set::ViaF64 {
                    a: huge_copy(&a.to_f64()),
                    b: huge_copy(&b.to_f64()),
                    c: huge_copy(&vec![0.0; mn]),
                    out: vec![0; mn],
                },
            };
            let mut v = Vec::with_capacity(sets);
            for _ in 1..sets {
                v.push(one.duplicate());
            }
            v.push(one);
            Ok(v)
        })?;
        let own = match p {
            Path::F32 | Path::ViaF32 if sgemm::preferred() => {
                let (m, n, k) = (spec.m as usize, spec.n as usize, spec.k as usize);
                Sgemm::new(m, n, k, spec.b_layout, threads)
            }
            _ => None,
        };
        Ok(PreparedMatmul {
            pool,
            threads,
            spec: spec.clone(),
            sets,
            own,
        })
    }
}

impl Set {
    /// Another buffer set with the same contents, the GEMM operands on huge pages.
    fn duplicate(&self) -> Set {
        match self {
            Set::F32 { a, b, c } => Set::F32 {
                a: huge_copy(a),
                b: huge_copy(b),
                c: huge_copy(c),
            },
            Set::F16 { a, b, c } => Set::F16 {
                a: huge_copy(a),
                b: huge_copy(b),
                c: huge_copy(c),
            },
            Set::ViaF32 { a, b, c, out } => Set::ViaF32 {
                a: huge_copy(a),
                b: huge_copy(b),
                c: huge_copy(c),
                out: out.clone(),
            },
            Set::ViaF64 { a, b, c, out } => Set::ViaF64 {
                a: huge_copy(a),
                b: huge_copy(b),
                c: huge_copy(c),
                out: out.clone(),
            },
        }
    }

    /// Fills the output with a value no correct kernel writes.
    fn poison(&mut self) {
        match self {
            Set::F32 { c, .. } => c.fill(f32::NAN),
            Set::F16 { c, .. } => c.fill(f16::NAN),
            Set::ViaF32 { c, out, .. } => {
                c.fill(f32::NAN);
                out.fill(bf16::NAN);
            }
            Set::ViaF64 { c, out, .. } => {
                c.fill(f64::NAN);
                out.fill(i32::MIN);
            }
        }
    }

    fn output(&self) -> Data {
        match self {
            Set::F32 { c, .. } => Data::F32(c.clone()),
            Set::F16 { c, .. } => Data::F16(c.clone()),
            Set::ViaF32 { out, .. } => Data::Bf16(out.clone()),
            Set::ViaF64 { out, .. } => Data::I32(out.clone()),
        }
    }
}

/// Input values widened to f32 (exact for every float input dtype).
fn widen_f32(t: &Tensor) -> Vec<f32> {
    match &t.data {
        Data::F32(v) => v.clone(),
        Data::Bf16(v) => v.par_iter().map(|x| x.to_f32()).collect(),
        Data::F8E4M3(v) => v.par_iter().map(|x| x.to_f32()).collect(),
        Data::F8E5M2(v) => v.par_iter().map(|x| x.to_f32()).collect(),
        _ => t.to_f32(),
    }
}

/// `dst[i] = f(src[i])` in parallel chunks.
fn convert<S: Sync, D: Send>(dst: &mut [D], src: &[S], threads: usize, f: impl Fn(&S) -> D + Sync) {
    let ch = chunk_len(dst.len(), threads, 1 << 14);
    dst.par_chunks_mut(ch)
        .zip(src.par_chunks(ch))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d = f(s)));
}

/// C (M×N, row-major) = A (M×K, row-major) · B, with B read in place in either layout.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: 'static + Copy>(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [T],
    a: &[T],
    b: &[T],
    layout: BLayout,
    one: T,
    zero: T,
    par: gemm::Parallelism,
) {
    assert!(c.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    // Strides of B seen as the K×N right-hand side: (row stride, column stride).
    let (rhs_rs, rhs_cs) = match layout {
        BLayout::Kn => (n as isize, 1),
        BLayout::Nk => (1, k as isize),
    };
    // SAFETY: the slices hold at least the M×N, M×K and K×N elements the strides address (checked
    // above), `c` is borrowed mutably so nothing else reads or writes it, and `T` is one of the
    // types `gemm` implements (f32, f64, f16), so it does not panic.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            rhs_cs,
            rhs_rs,
            zero,
            one,
            false,
            false,
            false,
            par,
        )
    }
}

impl SetKernel for PreparedMatmul<'_> {
    /// Runs the product (and the output conversion) on buffer set `i`.
    fn run_set(&mut self, i: usize) {
        let spec = &self.spec;
        let par = gemm::Parallelism::Rayon(self.threads);
        let (m, n, k) = (spec.m as usize, spec.n as usize, spec.k as usize);
        let layout = spec.b_layout;
        let threads = self.threads;
        let set = &mut self.sets[i];
        let (pool, own) = (self.pool, &mut self.own);
        let mut f32_gemm = |c: &mut [f32], a: &[f32], b: &[f32]| match own {
            Some(g) => g.run(pool, c, a, b),
            None => gemm_into(m, n, k, c, a, b, layout, 1.0f32, 0.0, par),
        };
        pool.install(|| match set {
            Set::F32 { a, b, c } => f32_gemm(c, a, b),
            Set::F16 { a, b, c } => gemm_into(m, n, k, c, a, b, layout, f16::ONE, f16::ZERO, par),
            Set::ViaF32 { a, b, c, out } => {
                f32_gemm(c, a, b);
                convert(out, c, threads, |x| bf16::from_f32(*x));
            }
            Set::ViaF64 { a, b, c, out } => {
                gemm_into(m, n, k, c, a, b, layout, 1.0f64, 0.0, par);
                // Exact integers: the cast neither rounds nor (below i32 overflow) saturates.
                convert(out, c, threads, |x| *x as i32);
            }
        });
    }

    fn compute_dtype(&self) -> ComputeType {
        match path(self.spec.dtype) {
            Path::F32 | Path::ViaF32 => ComputeType::uniform(DType::F32),
            Path::F16 => ComputeType::uniform(DType::F16),
            Path::ViaF64 => ComputeType::Uniform(Arith::F64),
        }
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        self.sets[0].poison();
        self.run_set(0);
        Ok(Tensor {
            name: "C".into(),
            shape: vec![self.spec.m as usize, self.spec.n as usize],
            data: self.sets[0].output(),
        })
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = kind_notes(self.spec.dtype);
        if self.own.is_some() {
            notes.push(
                "f32 GEMM by gpuvet's AVX2+FMA kernel (GPUVET_CPU_SGEMM=gemm runs the gemm crate instead)"
                    .into(),
            );
        } else if matches!(path(self.spec.dtype), Path::F32 | Path::ViaF32) {
            // The README promises the note says which kernel ran, either way.
            notes.push(
                "f32 GEMM by the gemm crate (GPUVET_CPU_SGEMM=own runs gpuvet's AVX2+FMA kernel, on CPUs with AVX2 and FMA)"
                    .into(),
            );
        }
        notes
    }
}

/// What the dtype's path does, in words.
fn kind_notes(d: DType) -> Vec<String> {
    match d {
        DType::Tf32 => vec![
            "tf32 inputs (already rounded to 10 mantissa bits) multiplied in full f32".into(),
        ],
        DType::Bf16 | DType::Fp8E4m3 | DType::Fp8E5m2 => vec![format!(
            "{d} inputs converted to f32 once before timing; f32 GEMM, output rounded to bf16 inside the timed loop"
        )],
        DType::Int8 => vec![
            "int8 inputs converted to f64 once before timing; f64 GEMM (exact integer accumulation), output converted to i32 inside the timed loop".into(),
        ],
        DType::F32 | DType::F16 => Vec::new(),
    }
}
