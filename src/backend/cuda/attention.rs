//! Unfused attention: S = Q·Kᵀ/√D (cuBLASLt, f32 scores), a softmax kernel writing P in the
//! input dtype, then O = P·V (cuBLASLt). The reference the fused kernels of a later issue are
//! verified against, and the baseline they are measured against.
//!
//! Grouped-query attention without copies: the `group = Hq/Hkv` query heads that share a KV
//! head are contiguous in Q [B, Hq, Lq, D], so for each (batch, KV head) they form one
//! (group·Lq)×D matrix. Both GEMMs are then strided-batched over B·Hkv.

use super::device::{DevBuf, Gpu};
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel};
use super::matmul::{Alpha, GemmDesc, Lt, LtGemm, WORKSPACE_BYTES};
use super::registry::{Built, PrepareCtx};
use super::run::{check_len, Buffers, Exec, Output, SetLayout};
use crate::dtype::{AttentionPath, ComputeType, DType, OutType};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::AttentionSpec;
use cudarc::cublaslt::sys::{cublasComputeType_t as Compute, cudaDataType as Ty};
use std::borrow::Cow;

const BLOCK: u32 = 256;

fn ty(d: DType) -> Result<(Ty, OutType, KernelId)> {
    match d {
        DType::F32 => Ok((Ty::CUDA_R_32F, OutType::F32, KernelId::SoftmaxF32)),
        DType::F16 => Ok((Ty::CUDA_R_16F, OutType::F16, KernelId::SoftmaxF16)),
        DType::Bf16 => Ok((Ty::CUDA_R_16BF, OutType::Bf16, KernelId::SoftmaxBf16)),
        other => Err(Error::unsupported(format!("attention in {other}"))),
    }
}

/// Bytes of the score matrix S (f32) and of P (input dtype): B·Hq·Lq·Lkv each.
pub fn scratch_bytes(a: &AttentionSpec) -> u64 {
    let pairs = a.batch * a.q_heads * a.q_len * a.kv_len;
    pairs * 4 + pairs * a.dtype.size()
}

/// Device bytes a run allocates.
pub fn memory_needed(a: &AttentionSpec, sets: usize) -> u64 {
    a.bytes() * sets.max(1) as u64 + scratch_bytes(a) + WORKSPACE_BYTES as u64
}

/// The two GEMMs of the unfused attention, in cuBLASLt's column-major terms. Pure.
pub fn plan(a: &AttentionSpec, cc: (i32, i32)) -> Result<(GemmDesc, GemmDesc)> {
    let (t, _, _) = ty(a.dtype)?;
    if a.dtype == DType::Bf16 && cc.0 < 8 {
        return Err(Error::unsupported(format!(
            "bf16 attention needs compute capability 8.0 or newer; this GPU is {}.{}",
            cc.0, cc.1
        )));
    }
    let group = (a.q_heads / a.kv_heads) as i64;
    let (lq, lkv, d) = (a.q_len as i64, a.kv_len as i64, a.head_dim as i64);
    let rows = group * lq;
    let count = i32::try_from(a.batch * a.kv_heads)
        .map_err(|_| Error::unsupported("attention: batch × kv heads exceeds 2^31"))?;
    let label = ComputeType::Attention {
        inputs: a.dtype,
        path: AttentionPath::LibraryGemms,
    };
    // S (row-major rows×Lkv) = Qg (rows×D) · Kᵀ, K stored Lkv×D: the `nk` case.
    let s = GemmDesc {
        a_type: t,
        b_type: t,
        d_type: Ty::CUDA_R_32F,
        compute: Compute::CUBLAS_COMPUTE_32F,
        scale_type: Ty::CUDA_R_32F,
        transa: true,
        transb: false,
        m: lkv as u64,
        n: rows as u64,
        k: d as u64,
        lda: d,
        ldb: d,
        ldd: lkv,
        batch: Some((count, lkv * d, rows * d, rows * lkv)),
        alpha: Alpha::F32(a.scale() as f32),
        fp8_scales: false,
        label: label.clone(),
        transpose_b_on_host: false,
    };
    // O (row-major rows×D) = P (rows×Lkv) · V, V stored Lkv×D: the `kn` case.
    let o = GemmDesc {
        a_type: t,
        b_type: t,
        d_type: t,
        compute: Compute::CUBLAS_COMPUTE_32F,
        scale_type: Ty::CUDA_R_32F,
        transa: false,
        transb: false,
        m: d as u64,
        n: rows as u64,
        k: lkv as u64,
        lda: d,
        ldb: lkv,
        ldd: d,
        batch: Some((count, lkv * d, rows * lkv, rows * d)),
        alpha: Alpha::F32(1.0),
        fp8_scales: false,
        label,
        transpose_b_on_host: false,
    };
    if a.batch * a.q_heads * a.q_len > i32::MAX as u64 {
        return Err(Error::unsupported(
            "attention: more than 2^31 query rows for the softmax grid",
        ));
    }
    Ok((s, o))
}

/// Q, K and V of `inputs`, each checked to hold the bytes `spec` says.
pub fn qkv<'h>(spec: &AttentionSpec, inputs: &'h [Tensor]) -> Result<[&'h [u8]; 3]> {
    let [q, k, v] = inputs else {
        return Err(Error::invalid("attention takes three inputs, Q, K and V"));
    };
    let sizes = [
        spec.elem_bytes_q(),
        spec.elem_bytes_kv(),
        spec.elem_bytes_kv(),
    ];
    let bytes = [q.as_bytes(), k.as_bytes(), v.as_bytes()];
    for (i, (b, n)) in bytes.iter().zip(sizes).enumerate() {
        check_len(i, b, n)?;
    }
    Ok(bytes)
}

/// The buffer set of an attention run, shared by the unfused and the flash runs: Q, then K and
/// V as the kernels read them (`kv_bytes` each: contiguous, or a paged pool), and O shaped
/// like Q.
pub fn set_layout<'h>(
    spec: &AttentionSpec,
    q: &'h [u8],
    [k, v]: [Cow<'h, [u8]>; 2],
    kv_bytes: u64,
) -> Result<SetLayout<'h>> {
    let q_bytes = spec.elem_bytes_q();
    SetLayout::new(q_bytes)
        .input(q, q_bytes)?
        .input(k, kv_bytes)?
        .input(v, kv_bytes)
}

/// O, shaped like Q, in `out`.
pub fn output(spec: &AttentionSpec, out: OutType) -> Output {
    Output::typed("O", spec.q_shape(), out)
}

/// The prepared unfused attention of `spec`.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, spec: &AttentionSpec) -> Built<'a> {
    let gpu = ctx.gpu;
    let (gs, go) = plan(spec, gpu.props.cc)?;
    let (_, out, kid) = ty(spec.dtype)?;
    // The S and P matrices are what make unfused attention memory-hungry: refuse early.
    gpu.ensure_fits(memory_needed(spec, ctx.sets))?;
    let softmax = Kernel::load(gpu, kid)?;
    let pairs = (spec.batch * spec.q_heads * spec.q_len * spec.kv_len) as usize;
    let s = gpu.alloc(pairs * 4)?;
    let p = gpu.alloc(pairs * spec.dtype.size() as usize)?;
    let lt = Lt::new(gpu)?;
    let (gemm_s, gemm_o) = (lt.gemm(&gs, None)?, lt.gemm(&go, None)?);
    let [q, k, v] = qkv(spec, ctx.inputs)?;
    let layout = set_layout(spec, q, [k.into(), v.into()], spec.elem_bytes_kv())?;
    let exec = AttentionRun {
        spec: spec.clone(),
        lt,
        gemms: [gemm_s, gemm_o],
        softmax,
        scratch: [s, p],
        out,
    };
    ctx.run(exec, layout)
}

/// A prepared unfused attention.
pub struct AttentionRun {
    spec: AttentionSpec,
    lt: Lt,
    /// S = Q·Kᵀ and O = P·V.
    gemms: [LtGemm; 2],
    softmax: Kernel,
    /// S (f32 scores) and P (input dtype).
    scratch: [DevBuf; 2],
    out: OutType,
}

impl Exec for AttentionRun {
    fn enqueue(&self, gpu: &Gpu, set: &Buffers) -> Result<()> {
        let ([q, k, v], o) = (inputs3(set), set.output.ptr);
        let ([gemm_s, gemm_o], [s, p]) = (&self.gemms, &self.scratch);
        let a = &self.spec;
        let args = Args::new()
            .buf(s)
            .buf(p)
            .u64(a.q_len)
            .u64(a.kv_len)
            .i32(a.causal as i32);
        let rows = (a.batch * a.q_heads * a.q_len) as u32;
        // SAFETY: buffers sized from the spec, alive as long as the run; kernel parameters
        // match gv_softmax_*(const float*, T*, u64, u64, int).
        unsafe {
            self.lt.enqueue(gpu, gemm_s, k, q, s.ptr)?;
            launch(gpu, &self.softmax, Dims::linear(rows, BLOCK), args)?;
            self.lt.enqueue(gpu, gemm_o, v, p.ptr, o)
        }
    }

    fn output(&self) -> Output {
        output(&self.spec, self.out)
    }

    fn compute_dtype(&self) -> ComputeType {
        self.gemms[0].label.clone()
    }

    fn notes(&self, _gpu: &Gpu) -> Vec<String> {
        let mut n = Vec::new();
        if self.spec.causal {
            n.push(
                "causal: the GEMMs compute every score and the softmax zeroes the masked ones; FLOP/s counts visible pairs only"
                    .to_string(),
            );
        }
        n.push(format!(
            "unfused: S ({}) and P materialised in device memory; 2 strided-batched cuBLASLt GEMMs + softmax kernel",
            crate::units::Bytes(scratch_bytes(&self.spec))
        ));
        n
    }
}

/// The device addresses of Q, K and V in `set`.
pub fn inputs3(set: &Buffers) -> [u64; 3] {
    [0, 1, 2].map(|i| set.inputs[i].ptr)
}

/// The first note of a fused attention kernel's result: the launch (grid, threads, shared
/// memory per block) and `what` else describes it.
pub fn launch_note(name: &str, d: &Dims, what: &str) -> String {
    let g = d.grid;
    format!(
        "{name}: {}×{}×{} blocks × {} threads, {} KiB shared memory per block, {what}",
        g.0,
        g.1,
        g.2,
        d.block,
        d.smem / 1024
    )
}

/// The arguments every fused attention kernel takes after its pointers: q heads, kv heads, q
/// length, kv length (each checked to fit i32 by the kernel's plan), causal, and the softmax
/// scale in base 2.
pub fn dim_args(args: Args, a: &AttentionSpec, scale_log2: f32) -> Args {
    let dims = [a.q_heads, a.kv_heads, a.q_len, a.kv_len];
    let args = dims.iter().fold(args, |x, &d| x.i32(d as i32));
    args.i32(a.causal as i32).f32(scale_log2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AttentionSpec {
        AttentionSpec {
            batch: 2,
            q_heads: 8,
            kv_heads: 2,
            q_len: 16,
            kv_len: 48,
            head_dim: 64,
            causal: true,
            dtype: DType::Bf16,
        }
    }

    #[test]
    fn gqa_becomes_batched_gemms_over_kv_heads() {
        let (s, o) = plan(&spec(), (9, 0)).unwrap();
        // 4 query heads per KV head, 16 rows each: 64 rows per batch entry, 4 batch entries.
        assert_eq!((s.m, s.n, s.k), (48, 64, 64));
        assert_eq!(s.batch, Some((4, 48 * 64, 64 * 64, 64 * 48)));
        assert!(s.transa && !s.transb);
        assert_eq!(s.d_type, Ty::CUDA_R_32F);
        assert_eq!(s.alpha, Alpha::F32(0.125));
        assert_eq!((o.m, o.n, o.k), (64, 64, 48));
        assert_eq!(o.batch, Some((4, 48 * 64, 64 * 48, 64 * 64)));
        assert_eq!(o.d_type, Ty::CUDA_R_16BF);
    }

    #[test]
    fn compute_types_are_the_labels_reports_carry() {
        let label = |dtype| {
            plan(&AttentionSpec { dtype, ..spec() }, (9, 0))
                .unwrap()
                .0
                .label
        };
        assert_eq!(
            label(DType::F32),
            "f32 (CUBLAS_COMPUTE_32F GEMMs, f32 softmax)"
        );
        assert_eq!(
            label(DType::Bf16),
            "bf16 GEMMs with f32 accumulate, f32 scores and softmax, P in bf16"
        );
    }

    #[test]
    fn scratch_is_counted() {
        let a = spec();
        let pairs = 2 * 8 * 16 * 48;
        assert_eq!(scratch_bytes(&a), pairs * 4 + pairs * 2);
        assert!(memory_needed(&a, 2) > 2 * a.bytes() + scratch_bytes(&a));
        let mut f = spec();
        f.dtype = DType::Fp8E4m3;
        assert!(plan(&f, (9, 0)).is_err());
        assert!(plan(&spec(), (7, 5)).is_err());
    }
}
