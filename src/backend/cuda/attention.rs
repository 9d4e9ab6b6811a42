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
use super::matmul::{Alpha, GemmDesc, LtGemm, LtHandle, WORKSPACE_BYTES};
use super::run::{upload, CudaRun, Exec, Output};
use crate::backend::CachePolicy;
use crate::dtype::{AttentionPath, ComputeType, DType, OutType};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::AttentionSpec;
use cudarc::cublaslt::sys::{cublasComputeType_t as Compute, cudaDataType as Ty};

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

/// One buffer set of an attention run: Q, K, V (as the kernel reads them) and O. Shared by
/// the unfused and the flash runs.
pub struct Set {
    pub q: DevBuf,
    pub k: DevBuf,
    pub v: DevBuf,
    pub o: DevBuf,
}

/// Uploads `sets` copies of Q, K and V next to an output O (Q's size) each.
pub fn upload_sets(gpu: &Gpu, q: &[u8], k: &[u8], v: &[u8], sets: usize) -> Result<Vec<Set>> {
    (0..sets.max(1))
        .map(|_| {
            Ok(Set {
                q: upload(gpu, q)?,
                k: upload(gpu, k)?,
                v: upload(gpu, v)?,
                o: gpu.alloc(q.len())?,
            })
        })
        .collect()
}

/// O of `set`, shaped like Q, in `out`.
pub fn output<'s>(spec: &AttentionSpec, out: OutType, set: &'s Set) -> Output<'s> {
    Output::typed(&set.o, "O", spec.q_shape(), out)
}

pub struct AttentionRun<'a> {
    gpu: &'a Gpu,
    spec: AttentionSpec,
    handle: LtHandle,
    gemm_s: LtGemm,
    gemm_o: LtGemm,
    softmax: Kernel,
    s: DevBuf,
    p: DevBuf,
    workspace: DevBuf,
    out: OutType,
}

impl<'a> AttentionRun<'a> {
    pub fn new(
        gpu: &'a Gpu,
        spec: &AttentionSpec,
        inputs: &[Tensor],
        sets: usize,
        policy: CachePolicy,
    ) -> Result<CudaRun<'a, Self>> {
        let (gs, go) = plan(spec, gpu.props.cc)?;
        let (_, out, kid) = ty(spec.dtype)?;
        // The S and P matrices are what make unfused attention memory-hungry: refuse early.
        gpu.ensure_fits(memory_needed(spec, sets))?;
        let softmax = Kernel::load(gpu, kid)?;
        let pairs = (spec.batch * spec.q_heads * spec.q_len * spec.kv_len) as usize;
        let s = gpu.alloc(pairs * 4)?;
        let p = gpu.alloc(pairs * spec.dtype.size() as usize)?;
        let workspace = gpu.alloc(WORKSPACE_BYTES)?;
        let [q, k, v] = inputs else {
            return Err(Error::invalid("attention takes three inputs, Q, K and V"));
        };
        let all = upload_sets(gpu, q.as_bytes(), k.as_bytes(), v.as_bytes(), sets)?;
        gpu.bind()?;
        let handle = LtHandle::new()?;
        let gemm_s = LtGemm::new(&handle, &gs, None)?;
        let gemm_o = LtGemm::new(&handle, &go, None)?;
        let exec = AttentionRun {
            gpu,
            spec: spec.clone(),
            handle,
            gemm_s,
            gemm_o,
            softmax,
            s,
            p,
            workspace,
            out,
        };
        CudaRun::new(gpu, exec, all, policy)
    }
}

impl Exec for AttentionRun<'_> {
    type Set = Set;

    fn enqueue(&self, set: &Set) -> Result<()> {
        // SAFETY: buffers sized from the spec, alive as long as self; kernel parameters match
        // gv_softmax_*(const float*, T*, u64, u64, int).
        unsafe {
            self.gemm_s.enqueue(
                &self.handle,
                self.gpu,
                set.k.ptr,
                set.q.ptr,
                self.s.ptr,
                self.workspace.ptr,
            )?;
            let a = &self.spec;
            let args = Args::new()
                .buf(&self.s)
                .buf(&self.p)
                .u64(a.q_len)
                .u64(a.kv_len)
                .i32(a.causal as i32);
            let rows = (a.batch * a.q_heads * a.q_len) as u32;
            launch(self.gpu, &self.softmax, Dims::linear(rows, BLOCK), args)?;
            self.gemm_o.enqueue(
                &self.handle,
                self.gpu,
                set.v.ptr,
                self.p.ptr,
                set.o.ptr,
                self.workspace.ptr,
            )
        }
    }

    fn output<'s>(&'s self, set0: &'s Set) -> Output<'s> {
        output(&self.spec, self.out, set0)
    }

    fn compute_dtype(&self) -> ComputeType {
        self.gemm_s.label.clone()
    }

    fn notes(&self) -> Vec<String> {
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
