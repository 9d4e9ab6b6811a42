//! The one [`Prepared`] implementation of the CUDA backend.
//!
//! Every CUDA run does the same around its own launches: poison the output of buffer set 0,
//! run once on it and read it back for verification, time iterations that rotate through the
//! buffer sets, and wait for queued work before its buffers are freed. [`CudaRun`] does that
//! once, and allocates the buffer sets from one [`SetLayout`] (the host bytes of each input,
//! the output size); a workload contributes an [`Exec`]: what it sets up once and one
//! iteration on a set. A new CUDA workload (or a user kernel) writes only that.

use super::device::{DevBuf, Gpu};
use super::launch::{Kernel, TensorMapArg};
use super::timing::Timer;
use super::tma::{self, MapGeometry};
use crate::backend::{CachePolicy, Prepared};
use crate::dtype::{ComputeType, OutType};
use crate::error::{Error, Result};
use crate::tensor::{Data, Tensor};
use crate::workload::kernel::{BufType, KernelRecord};
use std::borrow::Cow;
use std::mem::ManuallyDrop;

/// `Drop` for a run that queues its own copies (transfers, peer copies, collectives): its
/// buffers are freed right after, so queued work finishes first (`self.sync()`; an error
/// cannot be reported from drop).
macro_rules! sync_on_drop {
    ($run:ident) => {
        impl Drop for $run<'_> {
            fn drop(&mut self) {
                let _ = self.sync();
            }
        }
    };
}
pub(crate) use sync_on_drop;

/// Builds a host tensor from device bytes of `out` type.
pub fn tensor_from_bytes(name: &str, shape: Vec<usize>, out: OutType, bytes: &[u8]) -> Tensor {
    let t = match out {
        OutType::F32 => BufType::F32,
        OutType::I32 => BufType::I32,
        OutType::F16 => BufType::F16,
        OutType::Bf16 => BufType::Bf16,
    };
    t.from_bytes(name, shape, bytes)
}

/// Fills an output with a value no GEMM produces: NaN for floats, i32::MIN for int32.
pub fn poison(gpu: &Gpu, buf: &DevBuf, out: OutType) -> Result<()> {
    match out {
        OutType::I32 => buf.fill_u32(gpu, 0x8000_0000),
        _ => buf.fill(gpu, 0xFF),
    }
}

/// How the output buffer turns into the tensor verification sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readback {
    /// The buffer holds the output elements in this type; poisoned with a pattern no kernel
    /// produces ([`poison`]).
    Typed(OutType),
    /// The buffer holds one f64 partial per block; their sum is the output. Poisoned with
    /// NaN bytes, so an unwritten partial makes the sum NaN.
    SumF64,
    /// The buffer holds elements of a user kernel's buffer type; poisoned with 0xFF bytes
    /// (NaN for floats, -1 for integers).
    Elements(BufType),
}

/// How the output of a buffer set reads back as the tensor verification sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The tensor's name (`C`, `O`, `dst`, ...), as the CPU reference names it.
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub readback: Readback,
}

impl Readback {
    /// The output `name` of `shape`, read back this way.
    pub fn output(self, name: &'static str, shape: Vec<usize>) -> Output {
        Output {
            name,
            shape,
            readback: self,
        }
    }
}

/// One buffer set: the inputs as the kernels read them (B transposed, K and V paged, ...), the
/// output, and the TMA tensor maps over its inputs. [`CudaRun`] owns and rotates the sets; set 0
/// is the one verified.
pub struct Buffers {
    pub inputs: Vec<DevBuf>,
    pub output: DevBuf,
    /// The maps the layout declared ([`SetLayout::tensor_map`]), in that order, encoded for
    /// this set's addresses.
    pub maps: Vec<TensorMapArg>,
}

/// What every buffer set holds: the host bytes of each input, uploaded into each set, the size
/// of the output, and the tensor maps a TMA kernel reads inputs through.
pub struct SetLayout<'h> {
    inputs: Vec<Cow<'h, [u8]>>,
    output_bytes: usize,
    /// (input index, geometry) of each tensor map.
    maps: Vec<(usize, MapGeometry)>,
}

impl<'h> SetLayout<'h> {
    /// A set with no inputs yet and an output of `output_bytes`.
    pub fn new(output_bytes: u64) -> Self {
        SetLayout {
            inputs: Vec::new(),
            output_bytes: output_bytes as usize,
            maps: Vec::new(),
        }
    }

    /// Declares a TMA tensor map of geometry `g` over input `input`, encoded in every set
    /// (`Buffers::maps`). A geometry the driver would refuse, or one that reaches past the
    /// input's bytes, is refused here, before anything is allocated.
    pub fn tensor_map(mut self, input: usize, g: MapGeometry) -> Result<Self> {
        g.check()?;
        let Some(bytes) = self.inputs.get(input) else {
            return Err(Error::invalid(format!(
                "a tensor map over input {input}; the layout has {}",
                self.inputs.len()
            )));
        };
        if g.span_bytes() > bytes.len() as u64 {
            return Err(Error::invalid(format!(
                "a tensor map over {} B of input {input}, which holds {}",
                g.span_bytes(),
                bytes.len()
            )));
        }
        self.maps.push((input, g));
        Ok(self)
    }

    /// Adds an input uploaded into every set. A host buffer of another size than the `expected`
    /// bytes the kernels read is refused, so a wrong input is an error, never an out-of-bounds
    /// read on the device.
    pub fn input(mut self, bytes: impl Into<Cow<'h, [u8]>>, expected: u64) -> Result<Self> {
        let bytes = bytes.into();
        check_len(self.inputs.len(), &bytes, expected)?;
        self.inputs.push(bytes);
        Ok(self)
    }

    /// One set on `gpu`: every input uploaded, the output allocated (not initialised), the
    /// tensor maps encoded for the new addresses.
    fn upload(&self, gpu: &Gpu) -> Result<Buffers> {
        let inputs: Vec<DevBuf> = self
            .inputs
            .iter()
            .map(|b| upload(gpu, b))
            .collect::<Result<_>>()?;
        let maps = self
            .maps
            .iter()
            .map(|(i, g)| tma::encode(inputs[*i].ptr, g))
            .collect::<Result<_>>()?;
        Ok(Buffers {
            inputs,
            output: gpu.alloc(self.output_bytes)?,
            maps,
        })
    }
}

/// Refuses host bytes of input `i` that are not the `expected` size.
pub fn check_len(i: usize, bytes: &[u8], expected: u64) -> Result<()> {
    if bytes.len() as u64 == expected {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "input {i} holds {} bytes; the kernels read {expected}",
        bytes.len()
    )))
}

/// A new device buffer holding `bytes`.
pub fn upload(gpu: &Gpu, bytes: &[u8]) -> Result<DevBuf> {
    let b = gpu.alloc(bytes.len())?;
    b.upload(gpu, bytes)?;
    Ok(b)
}

/// What one workload implementation adds to [`CudaRun`]: everything set up once (kernels,
/// descriptors, scratch) and how one iteration runs on a buffer set.
pub trait Exec {
    /// Enqueues one iteration on `set` (no synchronisation).
    fn enqueue(&self, gpu: &Gpu, set: &Buffers) -> Result<()>;

    /// How a set's output reads back.
    fn output(&self) -> Output;

    /// Poisons intermediate buffers too (split-K partials), where an unwritten one could
    /// otherwise pass verification with stale values from an earlier run.
    fn poison_scratch(&self, _gpu: &Gpu) -> Result<()> {
        Ok(())
    }

    /// The arithmetic that actually runs, for `Prepared::compute_dtype`.
    fn compute_dtype(&self) -> ComputeType;

    /// See `Prepared::notes`.
    fn notes(&self, _gpu: &Gpu) -> Vec<String> {
        Vec::new()
    }

    /// See `Prepared::kernel_record`.
    fn kernel_record(&self) -> Option<KernelRecord> {
        None
    }
}

/// The [`Exec`] state of a run that is one kernel launch per iteration: the workload's spec,
/// the plan its table row made of it, and the loaded kernel. `wgmma` and `flash-sm90` are
/// this, each with its own `impl Exec for PlannedRun<Spec, Plan>`.
pub struct PlannedRun<S, P> {
    pub spec: S,
    pub plan: P,
    pub kernel: Kernel,
}

/// A prepared CUDA run: an [`Exec`] plus the buffer sets, timing, rotation and clean-up every
/// run shares.
pub struct CudaRun<'a, E: Exec> {
    gpu: &'a Gpu,
    /// Dropped by hand: not at all on a hung device (see `Drop`).
    exec: ManuallyDrop<E>,
    /// At least one; set 0 is the one verified.
    sets: Vec<Buffers>,
    timer: Timer,
    next: usize,
    policy: CachePolicy,
}

impl<'a, E: Exec> CudaRun<'a, E> {
    /// Allocates `sets` (at least one) buffer sets of `layout` for `exec`.
    pub fn new(
        gpu: &'a Gpu,
        exec: E,
        layout: &SetLayout,
        sets: usize,
        policy: CachePolicy,
    ) -> Result<Self> {
        let sets = (0..sets.max(1))
            .map(|_| layout.upload(gpu))
            .collect::<Result<_>>()?;
        // Everything that can fail first: once wrapped, `exec` is dropped only by the run.
        let timer = Timer::new(&gpu.ctx)?;
        Ok(CudaRun {
            gpu,
            exec: ManuallyDrop::new(exec),
            sets,
            timer,
            next: 0,
            policy,
        })
    }
}

impl<E: Exec> CudaRun<'_, E> {
    /// Poisons the output of buffer set `set` (with the output's own pattern, or the byte
    /// `pattern`), runs once on that set and reads its output back.
    fn verify_on(&mut self, set: usize, pattern: Option<u8>) -> Result<Tensor> {
        self.gpu.bind()?;
        let out = self.exec.output();
        let buf = &self.sets[set].output;
        match (pattern, out.readback) {
            (Some(p), _) => buf.fill(self.gpu, p)?,
            (None, Readback::Typed(t)) => poison(self.gpu, buf, t)?,
            (None, Readback::SumF64 | Readback::Elements(_)) => buf.fill(self.gpu, 0xFF)?,
        }
        self.exec.poison_scratch(self.gpu)?;
        self.exec.enqueue(self.gpu, &self.sets[set])?;
        let bytes = buf.download(self.gpu, buf.bytes)?;
        Ok(read_back(&out, &bytes))
    }
}

impl<E: Exec> Drop for CudaRun<'_, E> {
    fn drop(&mut self) {
        // The buffers are freed right after this: let queued work that uses them
        // finish first.
        let _ = self.gpu.sync();
        if super::timing::is_hung(&self.gpu.ctx) {
            // A user kernel's module lives only in its exec, and unloading it would wait in
            // the driver for the work that hung: like the device's own modules (`Gpu`'s
            // drop), it is left to the process's exit.
            return;
        }
        // SAFETY: `exec` is dropped once, here, and the run is not used after its drop.
        unsafe { ManuallyDrop::drop(&mut self.exec) };
    }
}

/// The tensor `bytes` (downloaded from an output buffer) stand for.
fn read_back(out: &Output, bytes: &[u8]) -> Tensor {
    let (name, shape) = (out.name, out.shape.clone());
    match out.readback {
        Readback::Typed(t) => tensor_from_bytes(name, shape, t, bytes),
        Readback::Elements(t) => t.from_bytes(name, shape, bytes),
        Readback::SumF64 => {
            let sum: f64 = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                .sum();
            Tensor {
                name: name.into(),
                shape,
                data: Data::F64(vec![sum]),
            }
        }
    }
}

impl<E: Exec> Prepared for CudaRun<'_, E> {
    fn compute_dtype(&self) -> ComputeType {
        self.exec.compute_dtype()
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        self.verify_on(0, None)
    }

    fn run_verify_repeated(&mut self, runs: usize) -> Result<Vec<Tensor>> {
        // Odd runs poison with another pattern than even ones: an element left unwritten
        // then reads back differently from one run to the next.
        (0..runs)
            .map(|i| self.verify_on(i % self.sets.len(), (i % 2 == 1).then_some(0x5A)))
            .collect()
    }

    fn kernel_record(&self) -> Option<KernelRecord> {
        self.exec.kernel_record()
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        self.gpu.bind()?;
        let mut next = self.next;
        let (gpu, exec, sets) = (self.gpu, &self.exec, &self.sets);
        let t = self
            .timer
            .time_rotating(&gpu.stream, &mut next, sets.len(), iters, |i| {
                exec.enqueue(gpu, &sets[i])
            })?;
        self.next = next;
        Ok(t)
    }

    fn cache_policy(&self) -> CachePolicy {
        self.policy.clone()
    }

    fn notes(&self) -> Vec<String> {
        self.exec.notes(self.gpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sums_read_back_as_one_value_and_nan_poison_survives() {
        let bytes: Vec<u8> = [1.5f64, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect();
        let sum_out = Readback::SumF64.output("sum", vec![1]);
        let sum = |b: &[u8]| read_back(&sum_out, b).get(0);
        assert_eq!(sum(&bytes), 4.0);
        let mut poisoned = bytes.clone();
        poisoned.extend([0xFF; 8]);
        assert!(sum(&poisoned).is_nan());
        let t = read_back(
            &Readback::Typed(OutType::F32).output("dst", vec![2]),
            &[0; 8],
        );
        assert_eq!(
            (t.name.as_str(), t.shape.as_slice()),
            ("dst", &[2usize][..])
        );
    }
    #[test]
    fn tensor_maps_are_checked_against_the_inputs_they_read() {
        let layout = || {
            SetLayout::new(16)
                .input(vec![0u8; 64 * 128], 64 * 128)
                .unwrap()
        };
        let fits = MapGeometry::matrix(crate::dtype::DType::Bf16, 64, 64, 128, 64, 64);
        assert_eq!(layout().tensor_map(0, fits.clone()).unwrap().maps.len(), 1);
        let e = layout().tensor_map(1, fits.clone()).err().unwrap();
        assert!(e.to_string().contains("the layout has 1"), "{e}");
        let long = MapGeometry::matrix(crate::dtype::DType::Bf16, 64, 65, 128, 64, 64);
        let e = layout().tensor_map(0, long).err().unwrap();
        assert!(e.to_string().contains("8320 B of input 0"), "{e}");
        let odd = MapGeometry::matrix(crate::dtype::DType::Bf16, 63, 64, 126, 64, 64);
        assert!(layout().tensor_map(0, odd).is_err());
    }

    #[test]
    fn output_bytes_become_tensors_of_the_output_type() {
        let t = tensor_from_bytes("C", vec![1, 2], OutType::Bf16, &[0x80, 0x3f, 0x00, 0xc0]);
        assert_eq!(t.to_f64(), vec![1.0, -2.0]);
        let t = tensor_from_bytes("C", vec![1], OutType::I32, &(-7i32).to_le_bytes());
        assert_eq!(t.data, Data::I32(vec![-7]));
        // the poison pattern reads back as NaN
        let t = tensor_from_bytes("C", vec![1], OutType::F16, &[0xff, 0xff]);
        assert!(t.get(0).is_nan());
    }
}
