//! Matmul through cuBLASLt: the vendor reference every own kernel is compared with.
//!
//! gpuvet's matrices are row-major; cuBLASLt is column-major. A row-major M×N result C is the
//! column-major N×M matrix Cᵀ = op(B)ᵀ·Aᵀ, so cuBLASLt's "A" is our B and its "B" is our A,
//! with m = N, n = M, k = K:
//!
//! | our B layout | cuBLASLt A (= our B) | transa | lda |
//! |---|---|---|---|
//! | `kn` (K×N row-major) | N×K column-major | N | N |
//! | `nk` (N×K row-major) | K×N column-major | T | K |
//!
//! and cuBLASLt's B (= our A, M×K row-major = K×M column-major) is never transposed, ldb = K.
//! fp8 and int8 run in cuBLASLt only in the "TN" form (transa = T, transb = N), i.e. with B
//! stored N×K (`--layout nk`, how weights are stored). For `kn`, B is transposed on the host
//! before upload (as an inference engine pre-packs weights once), the TN GEMM is what is timed,
//! and the result says so in its notes; C = A·B is the same either way.
//!
//! Descriptors, layouts, the heuristic's algorithm and the workspace are prepared once; the
//! timed loop only calls `cublasLtMatmul`.

use super::device::{DevBuf, Gpu};
use super::row::{Built, PrepareCtx};
use super::run::{check_len, upload, Buffers, Exec, Output, Readback, SetLayout};
use crate::dtype::{Arith, ComputeType, DType, Fp8Scaling};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::{BLayout, MatmulSpec};
use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys::{
    self as lts, cublasComputeType_t as Compute, cublasLtMatmulDescAttributes_t as DescAttr,
    cublasLtMatrixLayoutAttribute_t as LayoutAttr, cudaDataType as Ty,
};
use std::borrow::Cow;
use std::ffi::c_void;

/// Workspace offered to cuBLASLt (NVIDIA recommends 32 MiB on Hopper).
pub const WORKSPACE_BYTES: usize = 32 << 20;

/// A cuBLASLt failure as the crate's error: an allocation that failed is an out-of-memory
/// (callers tell it from a fault, as a driver's), anything else the library's own status.
fn lt_err(what: &str, e: lt::CublasError) -> Error {
    match e.0 {
        cudarc::cublaslt::sys::cublasStatus_t::CUBLAS_STATUS_ALLOC_FAILED => Error::Driver {
            what: format!("cuBLASLt {what}"),
            kind: crate::error::DriverErrorKind::OutOfMemory,
            detail: format!("{:?}", e.0),
        },
        status => Error::backend("cuda", format!("cuBLASLt {what}: {status:?}")),
    }
}

/// The scalar type of alpha and beta.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Alpha {
    F32(f32),
    I32(i32),
}

/// Everything cuBLASLt needs to know about one (batched) GEMM, in its column-major terms.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmDesc {
    pub a_type: Ty,
    pub b_type: Ty,
    pub d_type: Ty,
    pub compute: Compute,
    pub scale_type: Ty,
    pub transa: bool,
    pub transb: bool,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub lda: i64,
    pub ldb: i64,
    pub ldd: i64,
    /// (count, stride of A, stride of B, stride of D) in elements.
    pub batch: Option<(i32, i64, i64, i64)>,
    pub alpha: Alpha,
    /// fp8: per-tensor scales of A and B (device pointers to an f32).
    pub fp8_scales: bool,
    /// The arithmetic, as reports name it.
    pub label: ComputeType,
    /// B must be uploaded transposed (K×N → N×K) to reach the TN form.
    pub transpose_b_on_host: bool,
}

/// The cuBLASLt description of `spec` on a device of compute capability `cc`, or why it
/// cannot run there. Pure: testable without a GPU.
pub fn plan(spec: &MatmulSpec, cc: (i32, i32)) -> Result<GemmDesc> {
    let (ab, d, compute, scale, label) = types_for(spec.dtype, cc)?;
    let tn_only = matches!(spec.dtype, DType::Fp8E4m3 | DType::Int8);
    let transpose_b_on_host = tn_only && spec.b_layout == BLayout::Kn;
    // Leading dimensions must be multiples of 16 bytes for the tensor-core paths of these types.
    if tn_only {
        let elem = spec.dtype.size();
        let out = spec.dtype.matmul_output().size();
        if (spec.k * elem) % 16 != 0 || (spec.n * out) % 16 != 0 {
            return Err(Error::unsupported(format!(
                "cuBLASLt {} needs K×{elem} and N×{out} bytes to be multiples of 16 (K = {}, N = {})",
                spec.dtype, spec.k, spec.n
            )));
        }
    }
    let (transa, lda) = match (spec.b_layout, transpose_b_on_host) {
        (BLayout::Kn, false) => (false, spec.n as i64),
        _ => (true, spec.k as i64),
    };
    Ok(GemmDesc {
        a_type: ab,
        b_type: ab,
        d_type: d,
        compute,
        scale_type: scale,
        transa,
        transb: false,
        m: spec.n,
        n: spec.m,
        k: spec.k,
        lda,
        ldb: spec.k as i64,
        ldd: spec.n as i64,
        batch: None,
        alpha: if spec.dtype == DType::Int8 {
            Alpha::I32(1)
        } else {
            Alpha::F32(1.0)
        },
        fp8_scales: spec.dtype == DType::Fp8E4m3,
        label,
        transpose_b_on_host,
    })
}

/// cuBLASLt's A/B type, D type, compute type, scale type and a label for `dtype`, or why a GPU
/// of compute capability `cc` cannot run it.
type GemmTypes = (Ty, Ty, Compute, Ty, ComputeType);

/// How cuBLASLt runs each input dtype: (dtype, its name in refusals, A/B type, D type, compute
/// type, the compute capability it needs ×10). Products are summed in i32 for int8 (scale type
/// i32) and in f32 otherwise; fp8 e5m2 has no row.
const LT_TYPES: [(DType, &str, Ty, Ty, Compute, i32); 6] = {
    use Compute::CUBLAS_COMPUTE_32I as C32I;
    use Compute::{CUBLAS_COMPUTE_32F as C32F, CUBLAS_COMPUTE_32F_FAST_TF32 as TF32};
    use Ty::{CUDA_R_16BF as BF16, CUDA_R_16F as F16, CUDA_R_32F as F32, CUDA_R_32I as I32};
    use Ty::{CUDA_R_8F_E4M3 as E4M3, CUDA_R_8I as I8};
    [
        (DType::F32, "f32", F32, F32, C32F, 0),
        (DType::Tf32, "tf32", F32, F32, TF32, 80),
        (DType::F16, "f16", F16, F16, C32F, 0),
        (DType::Bf16, "bf16", BF16, BF16, C32F, 80),
        (DType::Fp8E4m3, "fp8", E4M3, BF16, C32F, 89),
        (DType::Int8, "int8", I8, I32, C32I, 75),
    ]
};

fn types_for(dtype: DType, cc: (i32, i32)) -> Result<GemmTypes> {
    if dtype == DType::Fp8E5m2 {
        return Err(Error::unsupported(
            "cuBLASLt has no e5m2 × e5m2 matmul (e5m2 is for gradients; use fp8_e4m3)",
        ));
    }
    let &(_, what, ab, d, compute, min) = LT_TYPES
        .iter()
        .find(|row| row.0 == dtype)
        .ok_or_else(|| Error::unsupported(format!("cuBLASLt matmul in {dtype} is not wired")))?;
    if cc.0 * 10 + cc.1 < min {
        return Err(Error::unsupported(format!(
            "{what} matmul needs compute capability {}.{} or newer; this GPU is {}.{}",
            min / 10,
            min % 10,
            cc.0,
            cc.1
        )));
    }
    let int = compute == Compute::CUBLAS_COMPUTE_32I;
    let label = match dtype {
        DType::Fp8E4m3 => ComputeType::fp8(dtype, dtype.matmul_output(), Fp8Scaling::Unit),
        _ if int => ComputeType::accumulated(dtype, Arith::I32),
        _ => ComputeType::accumulated(dtype, Arith::F32),
    };
    let scale = if int { Ty::CUDA_R_32I } else { Ty::CUDA_R_32F };
    Ok((ab, d, compute, scale, label))
}

/// A cuBLASLt handle, destroyed on drop.
pub struct LtHandle(lts::cublasLtHandle_t);

impl LtHandle {
    pub fn new() -> Result<LtHandle> {
        lt::create_handle()
            .map(LtHandle)
            .map_err(|e| lt_err("create handle", e))
    }
}

impl Drop for LtHandle {
    fn drop(&mut self) {
        // SAFETY: created by cublasLtCreate, destroyed once.
        let _ = unsafe { lt::destroy_handle(self.0) };
    }
}

/// A GEMM made ready: descriptors, layouts and algorithm, reused for every launch.
pub struct LtGemm {
    desc: lts::cublasLtMatmulDesc_t,
    la: lts::cublasLtMatrixLayout_t,
    lb: lts::cublasLtMatrixLayout_t,
    ld: lts::cublasLtMatrixLayout_t,
    algo: lts::cublasLtMatmulAlgo_t,
    alpha: Alpha,
    beta: Alpha,
    pub workspace_size: usize,
    pub label: ComputeType,
}

fn layout(
    ty: Ty,
    rows: u64,
    cols: u64,
    ld: i64,
    batch: Option<(i32, i64)>,
) -> Result<lts::cublasLtMatrixLayout_t> {
    let l = lt::create_matrix_layout(ty, rows, cols, ld).map_err(|e| lt_err("matrix layout", e))?;
    if let Some((count, stride)) = batch {
        // SAFETY: attributes of the documented types (int32 count, int64 stride).
        unsafe {
            lt::set_matrix_layout_attribute(
                l,
                LayoutAttr::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                &count as *const i32 as *const c_void,
                4,
            )
            .and_then(|_| {
                lt::set_matrix_layout_attribute(
                    l,
                    LayoutAttr::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                    &stride as *const i64 as *const c_void,
                    8,
                )
            })
            .map_err(|e| lt_err("batch layout", e))?;
        }
    }
    Ok(l)
}

impl LtGemm {
    /// Builds descriptors and asks the heuristic for the best algorithm within the workspace.
    /// `scales` is a device pointer to two f32 1.0 values (fp8 only).
    pub fn new(h: &LtHandle, g: &GemmDesc, scales: Option<u64>) -> Result<LtGemm> {
        let desc = lt::create_matmul_desc(g.compute, g.scale_type)
            .map_err(|e| lt_err("matmul descriptor", e))?;
        let mut me = LtGemm {
            desc,
            la: std::ptr::null_mut(),
            lb: std::ptr::null_mut(),
            ld: std::ptr::null_mut(),
            algo: lts::cublasLtMatmulAlgo_t { data: [0; 8] },
            alpha: g.alpha,
            beta: match g.alpha {
                Alpha::F32(_) => Alpha::F32(0.0),
                Alpha::I32(_) => Alpha::I32(0),
            },
            workspace_size: 0,
            label: g.label.clone(),
        };
        let set = |attr: DescAttr, v: *const c_void, n: usize| -> Result<()> {
            // SAFETY: attribute values of the documented sizes, alive for the call.
            unsafe { lt::set_matmul_desc_attribute(desc, attr, v, n) }
                .map_err(|e| lt_err(&format!("{attr:?}"), e))
        };
        for (attr, t) in [
            (DescAttr::CUBLASLT_MATMUL_DESC_TRANSA, g.transa),
            (DescAttr::CUBLASLT_MATMUL_DESC_TRANSB, g.transb),
        ] {
            let t = t as i32; // int32 attributes
            set(attr, &t as *const i32 as *const c_void, 4)?;
        }
        if g.fp8_scales {
            let base =
                scales.ok_or_else(|| Error::backend("cuda", "fp8 matmul without scale buffer"))?;
            for (attr, p) in [
                (DescAttr::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, base),
                (DescAttr::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, base + 4),
            ] {
                set(attr, &p as *const u64 as *const c_void, 8)?; // device addresses
            }
        }
        let (ar, ac) = if g.transa { (g.k, g.m) } else { (g.m, g.k) };
        let (br, bc) = if g.transb { (g.n, g.k) } else { (g.k, g.n) };
        let bt = g.batch;
        me.la = layout(g.a_type, ar, ac, g.lda, bt.map(|b| (b.0, b.1)))?;
        me.lb = layout(g.b_type, br, bc, g.ldb, bt.map(|b| (b.0, b.2)))?;
        me.ld = layout(g.d_type, g.m, g.n, g.ldd, bt.map(|b| (b.0, b.3)))?;
        let pref = lt::create_matmul_pref().map_err(|e| lt_err("preference", e))?;
        let ws = WORKSPACE_BYTES as u64;
        // SAFETY: a u64 attribute; the preference is destroyed right after the query.
        let heur = unsafe {
            let r = lt::set_matmul_pref_attribute(
                pref,
                lts::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &ws as *const u64 as *const c_void,
                8,
            )
            .and_then(|_| {
                lt::get_matmul_algo_heuristic(h.0, desc, me.la, me.lb, me.ld, me.ld, pref)
            });
            let _ = lt::destroy_matmul_pref(pref);
            r
        };
        let heur = heur.map_err(|e| {
            if e.0 == lts::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED {
                Error::unsupported(format!(
                    "cuBLASLt has no algorithm for {} with m={} n={} k={} on this GPU",
                    g.label, g.m, g.n, g.k
                ))
            } else {
                lt_err("algorithm heuristic", e)
            }
        })?;
        me.algo = heur.algo;
        me.workspace_size = heur.workspaceSize;
        Ok(me)
    }

    /// Enqueues D = alpha·op(A)·op(B) on `gpu`'s stream.
    ///
    /// # Safety
    /// The pointers must hold matrices of the described layouts and stay allocated
    /// until the stream has finished; `ws` must hold `WORKSPACE_BYTES`.
    pub unsafe fn enqueue(
        &self,
        h: &LtHandle,
        gpu: &Gpu,
        a: u64,
        b: u64,
        d: u64,
        ws: u64,
    ) -> Result<()> {
        let (alpha, beta): (*const c_void, *const c_void) = match (&self.alpha, &self.beta) {
            (Alpha::F32(x), Alpha::F32(y)) => (x as *const f32 as _, y as *const f32 as _),
            (Alpha::I32(x), Alpha::I32(y)) => (x as *const i32 as _, y as *const i32 as _),
            _ => unreachable!("alpha and beta share a type"),
        };
        lt::matmul(
            h.0,
            self.desc,
            alpha,
            beta,
            a as *const c_void,
            self.la,
            b as *const c_void,
            self.lb,
            d as *const c_void,
            self.ld,
            d as *mut c_void,
            self.ld,
            &self.algo,
            ws as *mut c_void,
            WORKSPACE_BYTES,
            gpu.stream.cu_stream() as lts::cudaStream_t,
        )
        .map_err(|e| lt_err("matmul", e))
    }
}

impl Drop for LtGemm {
    fn drop(&mut self) {
        // SAFETY: each object was created once by cuBLASLt and is destroyed once.
        unsafe {
            for l in [self.la, self.lb, self.ld] {
                if !l.is_null() {
                    let _ = lt::destroy_matrix_layout(l);
                }
            }
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

/// Device bytes a matmul run allocates.
pub fn memory_needed(spec: &MatmulSpec, sets: usize) -> u64 {
    spec.bytes() * sets.max(1) as u64 + WORKSPACE_BYTES as u64 + 256
}

/// Transposes a row-major `rows`×`cols` matrix of `elem`-byte elements.
pub fn transpose_bytes(src: &[u8], rows: usize, cols: usize, elem: usize) -> Vec<u8> {
    let mut out = vec![0u8; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            let from = (r * cols + c) * elem;
            let to = (c * rows + r) * elem;
            out[to..to + elem].copy_from_slice(&src[from..from + elem]);
        }
    }
    out
}

/// The buffer set of a matmul, shared by cuBLASLt and the own kernels: A, B (transposed
/// K×N → N×K first when the GEMM needs it) and C, in the dtype's matmul output type.
pub fn set_layout<'h>(
    spec: &MatmulSpec,
    inputs: &'h [Tensor],
    transpose_b: bool,
) -> Result<SetLayout<'h>> {
    let [a, b] = inputs else {
        return Err(Error::invalid("matmul takes two inputs, A and B"));
    };
    let elem = spec.dtype.size();
    check_len(1, b.as_bytes(), spec.k * spec.n * elem)?;
    let b: Cow<[u8]> = if transpose_b {
        let (k, n) = (spec.k as usize, spec.n as usize);
        Cow::Owned(transpose_bytes(b.as_bytes(), k, n, elem as usize))
    } else {
        Cow::Borrowed(b.as_bytes())
    };
    let out = spec.m * spec.n * spec.dtype.matmul_output().size();
    SetLayout::new(out)
        .input(a.as_bytes(), spec.m * spec.k * elem)?
        .input(b, spec.k * spec.n * elem)
}

/// C, an M×N matrix of the dtype's matmul output type.
pub fn output(spec: &MatmulSpec) -> Output {
    let shape = vec![spec.m as usize, spec.n as usize];
    Readback::Typed(spec.dtype.matmul_output()).output("C", shape)
}

/// A cuBLASLt handle and the workspace every GEMM of one run shares.
pub struct Lt {
    handle: LtHandle,
    workspace: DevBuf,
}

impl Lt {
    pub fn new(gpu: &Gpu) -> Result<Lt> {
        let workspace = gpu.alloc(WORKSPACE_BYTES)?;
        gpu.bind()?;
        Ok(Lt {
            handle: LtHandle::new()?,
            workspace,
        })
    }

    /// `g` made ready on this handle (`scales`: see [`LtGemm::new`]).
    pub fn gemm(&self, g: &GemmDesc, scales: Option<u64>) -> Result<LtGemm> {
        LtGemm::new(&self.handle, g, scales)
    }

    /// Enqueues `gemm` on `gpu`'s stream, cuBLASLt's A, B and D at `a`, `b`, `d`.
    ///
    /// # Safety
    /// As [`LtGemm::enqueue`].
    pub unsafe fn enqueue(&self, gpu: &Gpu, gemm: &LtGemm, a: u64, b: u64, d: u64) -> Result<()> {
        // SAFETY: the caller's guarantee; the workspace holds WORKSPACE_BYTES.
        unsafe { gemm.enqueue(&self.handle, gpu, a, b, d, self.workspace.ptr) }
    }
}

/// The prepared cuBLASLt matmul of `spec`.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, spec: &MatmulSpec) -> Built<'a> {
    let gpu = ctx.gpu;
    let g = plan(spec, gpu.props.cc)?;
    gpu.ensure_fits(memory_needed(spec, ctx.sets))?;
    let scales = if g.fp8_scales {
        let ones: Vec<u8> = [1.0f32, 1.0f32]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        Some(upload(gpu, &ones)?)
    } else {
        None
    };
    let lt = Lt::new(gpu)?;
    let gemm = lt.gemm(&g, scales.as_ref().map(|s| s.ptr))?;
    let layout = set_layout(spec, ctx.inputs, g.transpose_b_on_host)?;
    let exec = MatmulRun {
        spec: spec.clone(),
        lt,
        gemm,
        b_transposed: g.transpose_b_on_host,
        _scales: scales,
    };
    ctx.run(exec, layout)
}

/// A prepared cuBLASLt matmul.
pub struct MatmulRun {
    spec: MatmulSpec,
    lt: Lt,
    gemm: LtGemm,
    b_transposed: bool,
    _scales: Option<DevBuf>,
}

impl Exec for MatmulRun {
    fn enqueue(&self, gpu: &Gpu, s: &Buffers) -> Result<()> {
        // cuBLASLt's A is our B and its B is our A (see the module comment).
        let (a, b) = (s.inputs[0].ptr, s.inputs[1].ptr);
        // SAFETY: buffers sized by spec, alive as long as the run.
        unsafe { self.lt.enqueue(gpu, &self.gemm, b, a, s.output.ptr) }
    }

    fn output(&self) -> Output {
        output(&self.spec)
    }

    fn compute_dtype(&self) -> ComputeType {
        self.gemm.label.clone()
    }

    fn notes(&self, _gpu: &Gpu) -> Vec<String> {
        let mut n = vec![format!(
            "cuBLASLt heuristic algorithm, workspace {} offered, {} used",
            crate::units::Bytes(WORKSPACE_BYTES as u64),
            crate::units::Bytes(self.gemm.workspace_size as u64)
        )];
        if self.b_transposed {
            n.push(format!(
                "B uploaded transposed (N×K) because cuBLASLt runs {} only as TN; the timed GEMM is that TN GEMM",
                self.spec.dtype
            ));
        }
        if self.spec.dtype == DType::Fp8E4m3 {
            n.push(
                "fp8: per-tensor scales 1.0 for A and B, bf16 output, no fast accumulation".into(),
            );
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use cudarc::cublaslt::sys::cublasStatus_t as Status;

    /// cuBLASLt's failed allocation reads as an out-of-memory, never as a fault; its other
    /// statuses stay the library's own.
    #[test]
    fn a_failed_library_allocation_is_an_out_of_memory() {
        let oom = lt_err(
            "matmul",
            lt::CublasError(Status::CUBLAS_STATUS_ALLOC_FAILED),
        );
        assert_eq!(
            oom.driver_kind(),
            Some(crate::error::DriverErrorKind::OutOfMemory)
        );
        assert!(!oom.loses_device());
        let other = lt_err(
            "matmul",
            lt::CublasError(Status::CUBLAS_STATUS_NOT_SUPPORTED),
        );
        assert_eq!(other.driver_kind(), None);
        assert!(
            other.to_string().contains("CUBLAS_STATUS_NOT_SUPPORTED"),
            "{other}"
        );
    }

    use super::*;

    fn spec(dtype: DType, layout: BLayout) -> MatmulSpec {
        MatmulSpec {
            m: 64,
            n: 128,
            k: 256,
            dtype,
            b_layout: layout,
        }
    }

    #[test]
    fn fp32_is_never_tf32() {
        let g = plan(&spec(DType::F32, BLayout::Kn), (9, 0)).unwrap();
        assert_eq!(g.compute, Compute::CUBLAS_COMPUTE_32F);
        assert_eq!(g.label, "f32");
        let t = plan(&spec(DType::Tf32, BLayout::Kn), (9, 0)).unwrap();
        assert_eq!(t.compute, Compute::CUBLAS_COMPUTE_32F_FAST_TF32);
        assert!(t.label.to_string().starts_with("tf32"));
    }

    #[test]
    fn compute_types_are_the_labels_reports_carry() {
        let acc = |d: &str| format!("{d} (f32 accumulate)");
        // (dtype, cuBLASLt, the own kernels): fp8 differs in its scales only.
        for (d, lt, own) in [
            (DType::F32, "f32".to_string(), "f32".to_string()),
            (DType::Tf32, acc("tf32"), acc("tf32")),
            (DType::F16, acc("f16"), acc("f16")),
            (DType::Bf16, acc("bf16"), acc("bf16")),
            (
                DType::Fp8E4m3,
                "fp8_e4m3 (f32 accumulate, bf16 out, scales 1)".into(),
                "fp8_e4m3 (f32 accumulate, bf16 out, no scales)".into(),
            ),
            (
                DType::Int8,
                "int8 (i32 accumulate)".into(),
                "int8 (i32 accumulate)".into(),
            ),
        ] {
            let g = plan(&spec(d, BLayout::Nk), (9, 0)).unwrap();
            assert_eq!(g.label, lt.as_str());
            assert_eq!(super::super::own_matmul::compute_type(d), own.as_str());
        }
    }

    #[test]
    fn row_major_maps_to_swapped_column_major() {
        let g = plan(&spec(DType::Bf16, BLayout::Kn), (9, 0)).unwrap();
        assert_eq!((g.m, g.n, g.k), (128, 64, 256));
        assert!(!g.transa && !g.transb);
        assert_eq!((g.lda, g.ldb, g.ldd), (128, 256, 128));
        let g = plan(&spec(DType::Bf16, BLayout::Nk), (9, 0)).unwrap();
        assert!(g.transa && !g.transb);
        assert_eq!((g.lda, g.ldb, g.ldd), (256, 256, 128));
        assert_eq!(g.d_type, Ty::CUDA_R_16BF);
    }

    #[test]
    fn fp8_and_int8_need_tn_and_recent_gpus() {
        let kn = plan(&spec(DType::Fp8E4m3, BLayout::Kn), (9, 0)).unwrap();
        let g = plan(&spec(DType::Fp8E4m3, BLayout::Nk), (9, 0)).unwrap();
        assert!(g.transa && g.fp8_scales && !g.transpose_b_on_host);
        // kn reaches the same TN GEMM through a host-side transpose of B
        assert!(kn.transpose_b_on_host);
        assert_eq!(
            GemmDesc {
                transpose_b_on_host: false,
                ..kn
            },
            g
        );
        assert_eq!(g.d_type, Ty::CUDA_R_16BF);
        assert!(plan(&spec(DType::Fp8E4m3, BLayout::Nk), (8, 9)).is_ok());
        let old = plan(&spec(DType::Fp8E4m3, BLayout::Nk), (8, 0)).unwrap_err();
        assert!(old.to_string().contains("8.9"), "{old}");
        let i = plan(&spec(DType::Int8, BLayout::Nk), (8, 0)).unwrap();
        assert_eq!(
            (i.compute, i.d_type, i.alpha),
            (Compute::CUBLAS_COMPUTE_32I, Ty::CUDA_R_32I, Alpha::I32(1))
        );
        assert!(
            plan(&spec(DType::Int8, BLayout::Kn), (8, 0))
                .unwrap()
                .transpose_b_on_host
        );
        assert!(
            !plan(&spec(DType::Bf16, BLayout::Kn), (8, 0))
                .unwrap()
                .transpose_b_on_host
        );
        assert!(plan(&spec(DType::Fp8E5m2, BLayout::Nk), (9, 0)).is_err());
        assert!(plan(&spec(DType::Bf16, BLayout::Kn), (7, 5)).is_err());
        let mut odd = spec(DType::Int8, BLayout::Nk);
        odd.k = 6;
        assert!(plan(&odd, (9, 0))
            .unwrap_err()
            .to_string()
            .contains("multiples of 16"));
    }

    #[test]
    fn host_transpose() {
        // 2×3 of 2-byte elements
        let src: Vec<u8> = (0u8..12).collect();
        let t = transpose_bytes(&src, 2, 3, 2);
        assert_eq!(t, vec![0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
        assert_eq!(transpose_bytes(&t, 3, 2, 2), src);
    }
}
