//! A user kernel on the GPU: loaded from its compiled program, checked once more against the
//! driver's own limits for the loaded function, then run by the one prepared run
//! ([`CudaRun`](super::run::CudaRun)) like every built-in implementation: buffer sets rotated,
//! the output poisoned before each verification run, CUDA-event timing.
//!
//! Buffers follow the workload's conventions (`workload::kernel::conventions`) for an
//! implementation, the spec for a free-form kernel: every input of a set is uploaded from the
//! workload's host inputs, the output is allocated and poisoned; a launch argument that names
//! a buffer gets that buffer of the set being run.

use super::device::Gpu;
use super::error::cu;
use super::launch::{launch_function, Args};
use super::nvrtc;
use super::row::{buffers_only, Built, Implementation, Kind, PrepareCtx};
use super::run::{Buffers, Exec, Output, Readback, SetLayout};
use super::user::{self, Program};
use crate::backend::ImplInfo;
use crate::dtype::{ComputeType, OutType};
use crate::error::{Error, Result};
use crate::workload::kernel::launch::{Arg, ArgNames, Limits, Num, Resolved, ScalarType};
use crate::workload::kernel::{interned, KernelRecord, KernelSpec, UserKernel};
use crate::workload::{MemOp, Workload};
use cudarc::driver::CudaFunction;

/// What one buffer set holds for a user kernel: its inputs by name (in the order of the
/// workload's inputs), the output buffer's name and size, and how the output reads back.
#[derive(Debug, Clone, PartialEq)]
pub struct SetPlan {
    /// (name, bytes) of each input, in the order of the workload's host inputs.
    pub inputs: Vec<(String, u64)>,
    pub output: String,
    pub output_bytes: u64,
    pub out: Output,
}

impl SetPlan {
    /// Device bytes of one set.
    pub fn bytes(&self) -> u64 {
        self.inputs.iter().map(|(_, b)| b).sum::<u64>() + self.output_bytes
    }

    /// Where buffer `name` is in a set.
    fn slot(&self, name: &str) -> Option<Slot> {
        if name == self.output {
            return Some(Slot::Output);
        }
        self.inputs
            .iter()
            .position(|(n, _)| n == name)
            .map(Slot::Input)
    }
}

/// Where a launch argument's buffer is in a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Input(usize),
    Output,
}

/// The buffers a known workload hands a user kernel (docs/kernels.md, `conventions`), sized
/// for launch `r` (memory `read` writes one f64 partial per block).
pub fn workload_plan(w: &Workload, r: &Resolved) -> Result<SetPlan> {
    let typed = |name: &'static str, shape: Vec<u64>, t: OutType| {
        Readback::Typed(t).output(name, shape.iter().map(|&d| d as usize).collect())
    };
    let plan = |inputs: &[(&str, u64)], output: &str, output_bytes: u64, out: Output| SetPlan {
        inputs: inputs.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
        output: output.into(),
        output_bytes,
        out,
    };
    Ok(match w {
        Workload::Matmul(m) => {
            let (e, o) = (m.dtype.size(), m.dtype.matmul_output());
            plan(
                &[("A", m.m * m.k * e), ("B", m.k * m.n * e)],
                "C",
                m.m * m.n * o.size(),
                typed("C", vec![m.m, m.n], o),
            )
        }
        Workload::Attention(a) => {
            let o = match a.dtype {
                crate::dtype::DType::F16 => OutType::F16,
                crate::dtype::DType::Bf16 => OutType::Bf16,
                _ => OutType::F32,
            };
            let (q, kv) = (a.elem_bytes_q(), a.elem_bytes_kv());
            let shape = a.q_shape().iter().map(|&d| d as u64).collect();
            plan(
                &[("Q", q), ("K", kv), ("V", kv)],
                "O",
                q,
                typed("O", shape, o),
            )
        }
        Workload::Memory(m) => {
            let (b, n) = (m.elements() * 4, m.elements());
            match m.op {
                MemOp::Copy => plan(&[("src", b)], "dst", b, typed("dst", vec![n], OutType::F32)),
                MemOp::Write => plan(&[], "dst", b, typed("dst", vec![n], OutType::F32)),
                MemOp::Triad => plan(
                    &[("b", b), ("c", b)],
                    "a",
                    b,
                    typed("a", vec![n], OutType::F32),
                ),
                MemOp::Read => {
                    let blocks: u64 = r.grid.iter().map(|&g| g as u64).product();
                    let out = Readback::SumF64.output("sum", vec![1]);
                    plan(&[("src", b)], "partials", blocks * 8, out)
                }
            }
        }
        Workload::Kernel(_) => {
            return Err(Error::unsupported(
                "a free-form kernel brings its own buffers",
            ))
        }
        Workload::Transfer(_) | Workload::P2p(_) | Workload::Collective(_) => {
            return Err(Error::unsupported(format!(
                "a user kernel cannot implement {} workloads",
                w.kind()
            )))
        }
    })
}

/// The buffers of a free-form kernel: its inputs in spec order (as `inputs()` makes them), its
/// output read back in its own type.
pub fn spec_plan(spec: &KernelSpec) -> SetPlan {
    let o = spec.output();
    SetPlan {
        inputs: spec
            .buffers
            .iter()
            .filter(|b| !b.output)
            .map(|b| (b.name.clone(), b.bytes()))
            .collect(),
        output: o.name.clone(),
        output_bytes: o.bytes(),
        out: Readback::Elements(o.dtype).output(
            interned(&o.name),
            o.shape.iter().map(|&d| d as usize).collect(),
        ),
    }
}

/// The device's limits for the loaded `func` (its registers decide how many threads a block
/// may have).
fn device_limits(gpu: &Gpu, func: &CudaFunction) -> Result<Limits> {
    use cudarc::driver::sys::CUdevice_attribute_enum as A;
    use cudarc::driver::sys::CUfunction_attribute_enum as F;
    let fa = |a| cu("read a kernel attribute", func.get_attribute(a));
    let da = |a| cu("read a device attribute", gpu.ctx.attribute(a));
    Ok(Limits {
        max_threads_per_block: fa(F::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)? as u32,
        max_block: [
            da(A::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X)? as u32,
            da(A::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y)? as u32,
            da(A::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z)? as u32,
        ],
        max_grid: [
            da(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)? as u32,
            da(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)? as u32,
            da(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)? as u32,
        ],
        max_smem_optin: gpu.props.sm.smem_per_block_optin,
        static_smem: fa(F::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)? as u64,
        registers: fa(F::CU_FUNC_ATTRIBUTE_NUM_REGS)? as u32,
    })
}

/// A user kernel built, loaded on `gpu` and checked: everything short of allocating.
struct Loaded {
    program: Program,
    func: CudaFunction,
    launch: Resolved,
}

fn load(gpu: &Gpu, k: &UserKernel, names: &dyn ArgNames) -> Result<Loaded> {
    let program = user::build(k, names, &gpu.props.arch(), nvrtc::cache_dir().as_deref())?;
    gpu.bind()?;
    let module = cu(
        &format!("load {} for {}", k.source.display(), gpu.props.arch()),
        gpu.ctx.load_module(cudarc::nvrtc::Ptx::from_binary(
            program.compiled.cubin.clone(),
        )),
    )?;
    let func = cu(
        &format!("load kernel {}", k.entry),
        module.load_function(&k.entry),
    )?;
    let launch = user::check_launch(k, &program, names, &device_limits(gpu, &func)?)?;
    if launch.smem > 48 << 10 {
        // Above 48 KiB a block's dynamic shared memory must be asked for explicitly.
        use cudarc::driver::sys::CUfunction_attribute_enum as F;
        cu(
            "allow the kernel's dynamic shared memory",
            func.set_attribute(
                F::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                launch.smem as i32,
            ),
        )?;
    }
    Ok(Loaded {
        program,
        func,
        launch,
    })
}

/// `k` as an implementation of the workload kind `kind`, for the registry: listed after the
/// built-in ones, checked with [`user::check_implementation`], prepared by
/// [`prepare_implementation`].
pub fn implementation(kind: Kind, k: &UserKernel) -> Implementation {
    let info = ImplInfo::new(
        &k.name,
        &format!("user kernel {} from {}", k.entry, k.source.display()),
        false,
    );
    let (k1, k2) = (k.clone(), k.clone());
    Implementation {
        kind,
        info,
        check: Box::new(move |t, w| Ok(user::check_implementation(t, w, &k1)?)),
        factory: Box::new(move |ctx| prepare_implementation(ctx, &k2)),
        memory: buffers_only(),
    }
}

/// Prepares user kernel `k` as an implementation of `ctx.workload`.
pub fn prepare_implementation<'a>(ctx: &PrepareCtx<'a, '_>, k: &UserKernel) -> Built<'a> {
    let w = ctx.workload;
    let l = load(ctx.gpu, k, &user::names_for(w, k)?)?;
    let plan = workload_plan(w, &l.launch)?;
    let compute = ComputeType::User {
        inputs: Some(w.dtype()),
    };
    prepare(ctx, k, l, plan, compute)
}

/// Prepares a free-form kernel.
pub fn prepare_spec<'a>(ctx: &PrepareCtx<'a, '_>, spec: &KernelSpec) -> Built<'a> {
    let l = load(ctx.gpu, &spec.kernel, &spec.names())?;
    let compute = ComputeType::User { inputs: None };
    prepare(ctx, &spec.kernel, l, spec_plan(spec), compute)
}

fn prepare<'a>(
    ctx: &PrepareCtx<'a, '_>,
    k: &UserKernel,
    l: Loaded,
    plan: SetPlan,
    compute: ComputeType,
) -> Built<'a> {
    ctx.gpu
        .ensure_fits(plan.bytes().saturating_mul(ctx.sets.max(1) as u64))?;
    Error::expect_count(
        ctx.workload.name(),
        "inputs",
        plan.inputs.len(),
        ctx.inputs.len(),
    )?;
    let mut layout = SetLayout::new(plan.output_bytes);
    for (t, (_, bytes)) in ctx.inputs.iter().zip(&plan.inputs) {
        layout = layout.input(t.as_bytes(), *bytes)?;
    }
    let slots =
        l.launch
            .args
            .iter()
            .map(|a| match a {
                Arg::Buffer(b) => plan.slot(b).map(Some).ok_or_else(|| {
                    Error::invalid(format!("kernel `{}`: no buffer `{b}`", k.entry))
                }),
                Arg::Scalar(..) => Ok(None),
            })
            .collect::<Result<Vec<Option<Slot>>>>()?;
    let exec = UserExec {
        record: user::record(k, &l.program, &l.launch, false),
        notes: user::notes(k, &l.program, &l.launch),
        func: l.func,
        launch: l.launch,
        slots,
        out: plan.out,
        compute,
    };
    ctx.run(exec, layout)
}

/// What a user kernel adds to [`CudaRun`](super::run::CudaRun): its launch on one buffer set.
pub struct UserExec {
    func: CudaFunction,
    launch: Resolved,
    /// Per launch argument, the buffer it names (`None` for a scalar).
    slots: Vec<Option<Slot>>,
    out: Output,
    compute: ComputeType,
    record: KernelRecord,
    notes: Vec<String>,
}

/// The launch arguments of `r` on buffer set `set`.
fn args(r: &Resolved, slots: &[Option<Slot>], set: &Buffers) -> Args {
    let mut a = Args::new();
    for (arg, slot) in r.args.iter().zip(slots) {
        a = match (arg, slot) {
            (_, Some(Slot::Input(i))) => a.buf(&set.inputs[*i]),
            (_, Some(Slot::Output)) => a.buf(&set.output),
            (Arg::Scalar(t, n), None) => {
                let (i, f) = match *n {
                    Num::Int(i) => (i, i as f64),
                    Num::Float(f) => (f as i128, f),
                };
                // In range: checked when the launch was resolved.
                match t {
                    ScalarType::I32 => a.i32(i as i32),
                    ScalarType::U32 => a.u32(i as u32),
                    ScalarType::I64 => a.i64(i as i64),
                    ScalarType::U64 => a.u64(i as u64),
                    ScalarType::F32 => a.f32(f as f32),
                    ScalarType::F64 => a.f64(f),
                }
            }
            (Arg::Buffer(_), None) => unreachable!("every buffer argument has a slot (prepare)"),
        };
    }
    a
}

impl Exec for UserExec {
    fn enqueue(&self, gpu: &Gpu, set: &Buffers) -> Result<()> {
        let r = &self.launch;
        let t = |v: [u32; 3]| (v[0], v[1], v[2]);
        let a = args(r, &self.slots, set);
        // SAFETY: the arguments were checked against the kernel's PTX `.param` list (count,
        // order, width, pointer or value) and every buffer they name is allocated at the size
        // the workload or spec declares, alive as long as the run. A kernel that reads beyond
        // them faults; the driver reports that as a sticky error, which the run records and
        // which loses the device for the rest of the process.
        unsafe { launch_function(gpu, &self.func, t(r.grid), t(r.block), r.smem, a) }
    }

    fn output(&self) -> Output {
        self.out.clone()
    }

    fn compute_dtype(&self) -> ComputeType {
        self.compute.clone()
    }

    fn notes(&self, _gpu: &Gpu) -> Vec<String> {
        self.notes.clone()
    }

    fn kernel_record(&self) -> Option<KernelRecord> {
        Some(self.record.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::workload::{MatmulSpec, MemorySpec};

    fn launch() -> Resolved {
        Resolved {
            grid: [3, 2, 1],
            block: [128, 1, 1],
            smem: 0,
            args: vec![],
        }
    }

    #[test]
    fn workloads_hand_kernels_their_conventional_buffers() {
        let m = Workload::Matmul(MatmulSpec::new(5, 7, 9, DType::Bf16));
        let p = workload_plan(&m, &launch()).unwrap();
        assert_eq!(p.inputs, [("A".to_string(), 90), ("B".to_string(), 126)]);
        assert_eq!((p.output.as_str(), p.output_bytes), ("C", 70));
        assert_eq!(p.out.shape, vec![5, 7]);
        assert_eq!(
            (p.slot("A"), p.slot("B"), p.slot("C"), p.slot("D")),
            (
                Some(Slot::Input(0)),
                Some(Slot::Input(1)),
                Some(Slot::Output),
                None
            )
        );
        assert_eq!(p.bytes(), 90 + 126 + 70);
        let mem = |op| Workload::Memory(MemorySpec { op, bytes: 1 << 20 });
        let r = workload_plan(&mem(MemOp::Read), &launch()).unwrap();
        assert_eq!(r.output_bytes, 6 * 8, "one f64 partial per block");
        assert_eq!(r.out.readback, Readback::SumF64);
        let t = workload_plan(&mem(MemOp::Triad), &launch()).unwrap();
        assert_eq!(
            (t.inputs.len(), t.output.as_str(), t.out.name),
            (2, "a", "a")
        );
        let w = workload_plan(&mem(MemOp::Write), &launch()).unwrap();
        assert!(w.inputs.is_empty());
    }
}
