//! The one way gpuvet launches its own kernels: a typed argument list built with [`Args`],
//! launched by [`launch`].
//!
//! Kernel parameters reach `cuLaunchKernel` as an array of pointers to the values. Building
//! that array by hand in every file (casting `&mut u64` to `*mut c_void`) is where a wrong
//! width or a missing argument hides; here each argument is pushed with its kind, the values
//! live in the builder until the launch has copied them, and the list of kinds is what the
//! kernel table declares and the compiled PTX is checked against (tests/kernels_compile.rs).

use super::device::{DevBuf, Gpu};
use super::error::cu;
use super::kernels::{KernelId, Param};
use crate::error::{Error, Result};
use cudarc::driver::result as dr;
use cudarc::driver::sys::{CUdeviceptr, CUfunction_attribute_enum as FnAttr, CUtensorMap};
use cudarc::driver::{CudaFunction, DeviceRepr};
use std::ffi::c_void;

/// A TMA descriptor as a kernel argument: the driver's `CUtensorMap` (128 opaque bytes, aligned
/// as the bindings declare it, at least 64), passed by value to a
/// `const __grid_constant__ TensorMap` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct TensorMapArg(pub CUtensorMap);

// SAFETY: a plain-old-data struct of 16 u64 with the layout and alignment the driver declares;
// the kernel receives exactly these bytes.
unsafe impl DeviceRepr for TensorMapArg {}

const _: () = assert!(std::mem::size_of::<TensorMapArg>() == 128);
const _: () = assert!(std::mem::align_of::<TensorMapArg>() >= 64);

/// One argument's storage: a scalar or pointer in an 8-byte slot, or a tensor map.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    /// 4-byte values occupy the first bytes.
    Word(u64),
    /// Boxed so its address (what the driver copies from) is stable and aligned.
    Map(Box<TensorMapArg>),
}

/// A kernel's arguments, in order, each with its kind.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Args {
    slots: Vec<Slot>,
    kinds: Vec<Param>,
}

impl Args {
    pub fn new() -> Args {
        Args::default()
    }

    fn push(mut self, kind: Param, bytes: &[u8]) -> Args {
        let mut slot = [0u8; 8];
        slot[..bytes.len()].copy_from_slice(bytes);
        self.slots.push(Slot::Word(u64::from_ne_bytes(slot)));
        self.kinds.push(kind);
        self
    }

    /// A TMA descriptor, passed by value.
    pub fn tensor_map(mut self, m: &TensorMapArg) -> Args {
        self.slots.push(Slot::Map(Box::new(*m)));
        self.kinds.push(Param::TensorMap);
        self
    }

    /// The device address of `b`.
    pub fn buf(self, b: &DevBuf) -> Args {
        self.ptr(b.ptr)
    }

    /// A raw device address (0 for a null pointer the kernel does not use).
    pub fn ptr(self, p: CUdeviceptr) -> Args {
        self.push(Param::Ptr, &p.to_ne_bytes())
    }

    pub fn i32(self, v: i32) -> Args {
        self.push(Param::I32, &v.to_ne_bytes())
    }

    pub fn u64(self, v: u64) -> Args {
        self.push(Param::U64, &v.to_ne_bytes())
    }

    pub fn f32(self, v: f32) -> Args {
        self.push(Param::F32, &v.to_ne_bytes())
    }

    pub fn u32(self, v: u32) -> Args {
        self.push(Param::U32, &v.to_ne_bytes())
    }

    pub fn i64(self, v: i64) -> Args {
        self.push(Param::I64, &v.to_ne_bytes())
    }

    pub fn f64(self, v: f64) -> Args {
        self.push(Param::F64, &v.to_ne_bytes())
    }

    /// The kinds pushed so far, in order.
    pub fn kinds(&self) -> &[Param] {
        &self.kinds
    }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub grid: (u32, u32, u32),
    pub block: u32,
    pub smem: u32,
}

impl Dims {
    /// A one-dimensional grid without dynamic shared memory.
    pub fn linear(grid: u32, block: u32) -> Dims {
        Dims {
            grid: (grid, 1, 1),
            block,
            smem: 0,
        }
    }
}

/// A loaded kernel with the parameter list its table row declares.
pub struct Kernel {
    pub func: CudaFunction,
    pub id: KernelId,
}

impl Kernel {
    /// Compiles (or takes from the cache) and loads `id` on `gpu`.
    pub fn load(gpu: &Gpu, id: KernelId) -> Result<Kernel> {
        Ok(Kernel {
            func: gpu.function(id)?,
            id,
        })
    }

    /// [`Kernel::load`], then allows the kernel `smem` bytes of dynamic shared memory (past
    /// the 48 KiB a launch gets without asking; up to the device's opt-in limit, which the
    /// caller's plan has checked).
    pub fn load_with_smem(gpu: &Gpu, id: KernelId, smem: u32) -> Result<Kernel> {
        let k = Kernel::load(gpu, id)?;
        cu(
            &format!(
                "allow {} {smem} bytes of dynamic shared memory",
                id.symbol()
            ),
            k.func.set_attribute(
                FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                smem as i32,
            ),
        )?;
        Ok(k)
    }
}

/// Refuses arguments that differ in number or kind from what the kernel declares: a launch
/// with a wrong list would read garbage or fault instead of failing here.
pub fn check_args(id: KernelId, args: &Args) -> Result<()> {
    if args.kinds() == id.params() {
        return Ok(());
    }
    Err(Error::backend(
        "cuda",
        format!(
            "kernel {} takes {:?} but was given {:?}",
            id.symbol(),
            id.params(),
            args.kinds()
        ),
    ))
}

/// Enqueues `k` on `gpu`'s stream with `args`, after checking them against its table row.
///
/// # Safety
/// Every device pointer in `args` must stay allocated, with the sizes the kernel reads for
/// `dims`, until the stream has finished the launch.
pub unsafe fn launch(gpu: &Gpu, k: &Kernel, dims: Dims, args: Args) -> Result<()> {
    // SAFETY: the caller's guarantee, on the device's own stream.
    unsafe { launch_on(&gpu.stream, k, dims, args) }
}

/// [`launch`] on another stream of the kernel's context (a second stream that overlaps the
/// first, as a bidirectional copy needs).
///
/// # Safety
/// As [`launch`]; `stream` belongs to the context `k` was loaded in.
pub unsafe fn launch_on(
    stream: &cudarc::driver::CudaStream,
    k: &Kernel,
    dims: Dims,
    args: Args,
) -> Result<()> {
    check_args(k.id, &args)?;
    // SAFETY: the arguments match the kernel's table row (checked above); the caller
    // guarantees the buffers.
    unsafe {
        launch_function_on(
            stream,
            &k.func,
            dims.grid,
            (dims.block, 1, 1),
            dims.smem,
            args,
        )
    }
}

/// Enqueues `func` with a 3-D block: the launch of a user kernel, whose `args` were checked
/// against the `.param` list of its PTX when it was prepared (there is no table row).
///
/// # Safety
/// As [`launch`], and `args` must match the kernel's parameters in number, order and width.
pub unsafe fn launch_function(
    gpu: &Gpu,
    func: &CudaFunction,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    smem: u32,
    args: Args,
) -> Result<()> {
    // SAFETY: the caller's guarantee, on the device's own stream.
    unsafe { launch_function_on(&gpu.stream, func, grid, block, smem, args) }
}

/// [`launch_function`] on a given stream of the function's context.
///
/// # Safety
/// As [`launch_function`]; `stream` belongs to the context `func` was loaded in.
unsafe fn launch_function_on(
    stream: &cudarc::driver::CudaStream,
    func: &CudaFunction,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    smem: u32,
    mut args: Args,
) -> Result<()> {
    let mut params: Vec<*mut c_void> = args
        .slots
        .iter_mut()
        .map(|s| match s {
            Slot::Word(w) => w as *mut u64 as *mut c_void,
            Slot::Map(m) => &mut **m as *mut TensorMapArg as *mut c_void,
        })
        .collect();
    // SAFETY: the caller guarantees that the parameter list matches the kernel's and the
    // buffers; the driver copies the values `params` points at (alive in `args` until the end
    // of this call) during the call.
    cu("launch kernel", unsafe {
        dr::launch_kernel(
            func.cu_function(),
            grid,
            block,
            smem,
            stream.cu_stream(),
            &mut params,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_argument_keeps_its_kind_and_its_value_at_the_start_of_its_slot() {
        let a = Args::new().ptr(0x1234_5678_9abc).i32(-2).u64(7).f32(1.5);
        assert_eq!(a.kinds(), &[Param::Ptr, Param::I32, Param::U64, Param::F32]);
        let first = |i: usize, n: usize| match &a.slots[i] {
            Slot::Word(w) => w.to_ne_bytes()[..n].to_vec(),
            Slot::Map(_) => panic!("slot {i} is a tensor map"),
        };
        assert_eq!(first(0, 8), 0x1234_5678_9abcu64.to_ne_bytes());
        assert_eq!(first(1, 4), (-2i32).to_ne_bytes());
        assert_eq!(first(2, 8), 7u64.to_ne_bytes());
        assert_eq!(first(3, 4), 1.5f32.to_ne_bytes());
        assert_eq!(
            [Param::Ptr, Param::I32, Param::F32].map(Param::ptx_type),
            [".u64", ".u32", ".f32"]
        );
    }

    #[test]
    fn a_tensor_map_travels_by_value_with_its_kind() {
        let mut raw = [0u64; 16];
        raw[3] = 0xfeed;
        let m = TensorMapArg(CUtensorMap { opaque: raw });
        let a = Args::new().tensor_map(&m).ptr(5).i32(1);
        assert_eq!(a.kinds(), &[Param::TensorMap, Param::Ptr, Param::I32]);
        match &a.slots[0] {
            Slot::Map(b) => {
                assert_eq!(**b, m);
                assert_eq!(&**b as *const TensorMapArg as usize % 64, 0);
            }
            Slot::Word(_) => panic!("not a map"),
        }
        assert_eq!(Param::TensorMap.ptx_type(), ".b8[128]");
        let k = KernelId::MatmulWgmmaBf16Nk;
        assert!(check_args(
            k,
            &Args::new()
                .tensor_map(&m)
                .tensor_map(&m)
                .ptr(1)
                .i32(1)
                .i32(1)
                .i32(1)
        )
        .is_ok());
        assert!(check_args(k, &Args::new().ptr(1).ptr(1).ptr(1).i32(1).i32(1).i32(1)).is_err());
    }

    #[test]
    fn arguments_that_differ_from_the_table_are_refused() {
        let k = KernelId::MemCopy;
        assert!(check_args(k, &Args::new().ptr(1).ptr(2).u64(3)).is_ok());
        let e = check_args(k, &Args::new().ptr(1).ptr(2).i32(3)).unwrap_err();
        assert!(e.to_string().contains("gv_copy"), "{e}");
        assert!(check_args(k, &Args::new().ptr(1).ptr(2)).is_err());
    }
}
