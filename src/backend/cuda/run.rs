//! The one [`Prepared`] implementation of the CUDA backend.
//!
//! Every CUDA run does the same around its own launches: poison the output of buffer set 0,
//! run once on it and read it back for verification, time iterations that rotate through the
//! buffer sets, and wait for queued work before its buffers are freed. [`CudaRun`] does that
//! once; a workload contributes an [`Exec`]: its buffers, one iteration on set `i`, and which
//! buffer holds the output. A new CUDA workload (or a user kernel) writes only that.

use super::device::{DevBuf, Gpu};
use super::timing::Timer;
use crate::backend::Prepared;
use crate::dtype::OutType;
use crate::error::{Error, Result};
use crate::tensor::{Data, Tensor};
use crate::workload::kernel::{BufType, KernelRecord};

/// Builds a host tensor from device bytes of `out` type.
pub fn tensor_from_bytes(name: &str, shape: Vec<usize>, out: OutType, bytes: &[u8]) -> Tensor {
    let data = match out {
        OutType::F32 => Data::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        OutType::I32 => Data::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        OutType::F16 => Data::F16(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        OutType::Bf16 => Data::Bf16(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
    };
    Tensor {
        name: name.into(),
        shape,
        data,
    }
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

/// The output of buffer set 0: what is poisoned before the verification run and read after.
pub struct Output<'b> {
    pub buf: &'b DevBuf,
    /// The tensor's name (`C`, `O`, `dst`, ...), as the CPU reference names it.
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub readback: Readback,
}

impl<'b> Output<'b> {
    /// An output of elements of type `t`.
    pub fn typed(buf: &'b DevBuf, name: &'static str, shape: Vec<usize>, t: OutType) -> Self {
        Output {
            buf,
            name,
            shape,
            readback: Readback::Typed(t),
        }
    }
}

/// A new device buffer holding `bytes`.
pub fn upload(gpu: &Gpu, bytes: &[u8]) -> Result<DevBuf> {
    let b = gpu.alloc(bytes.len())?;
    b.upload(gpu, bytes)?;
    Ok(b)
}

/// What one workload implementation adds to [`CudaRun`].
pub trait Exec {
    /// The buffers of one iteration (inputs and output); [`CudaRun`] owns and rotates them.
    type Set;

    /// Enqueues one iteration on `set` (no synchronisation).
    fn enqueue(&self, set: &Self::Set) -> Result<()>;

    /// Where the output of `set` is and how to read it.
    fn output<'s>(&'s self, set: &'s Self::Set) -> Output<'s>;

    /// Poisons intermediate buffers too (split-K partials), where an unwritten one could
    /// otherwise pass verification with stale values from an earlier run.
    fn poison_scratch(&self) -> Result<()> {
        Ok(())
    }

    /// The arithmetic that actually runs, for `Prepared::compute_dtype`.
    fn compute_dtype(&self) -> String;

    /// See `Prepared::notes`.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// See `Prepared::kernel_record`.
    fn kernel_record(&self) -> Option<KernelRecord> {
        None
    }
}

/// A prepared CUDA run: an [`Exec`] plus the timing, rotation and clean-up every run shares.
pub struct CudaRun<'a, E: Exec> {
    gpu: &'a Gpu,
    exec: E,
    /// At least one; set 0 is the one verified.
    sets: Vec<E::Set>,
    timer: Timer,
    next: usize,
    policy: String,
}

impl<'a, E: Exec> CudaRun<'a, E> {
    pub fn new(gpu: &'a Gpu, exec: E, sets: Vec<E::Set>, policy: String) -> Result<Self> {
        if sets.is_empty() {
            return Err(Error::invalid("a CUDA run needs at least one buffer set"));
        }
        Ok(CudaRun {
            gpu,
            exec,
            sets,
            timer: Timer::new(&gpu.ctx)?,
            next: 0,
            policy,
        })
    }
}

impl<E: Exec> CudaRun<'_, E> {
    /// Poisons the output of buffer set `set` (with the output type's pattern, or the byte
    /// `pattern`), runs once on it and reads it back.
    fn verify_on(&mut self, set: usize, pattern: Option<u8>) -> Result<Tensor> {
        self.gpu.bind()?;
        let out = self.exec.output(&self.sets[set]);
        match (pattern, out.readback) {
            (Some(p), _) => out.buf.fill(self.gpu, p)?,
            (None, Readback::Typed(t)) => poison(self.gpu, out.buf, t)?,
            (None, Readback::SumF64 | Readback::Elements(_)) => out.buf.fill(self.gpu, 0xFF)?,
        }
        self.exec.poison_scratch()?;
        self.exec.enqueue(&self.sets[set])?;
        let bytes = out.buf.download(self.gpu, out.buf.bytes)?;
        Ok(read_back(out.name, &out.shape, out.readback, &bytes))
    }
}

impl<E: Exec> Drop for CudaRun<'_, E> {
    fn drop(&mut self) {
        // The buffers are freed right after this: let queued work that uses them
        // finish first.
        let _ = self.gpu.sync();
    }
}

/// The tensor `bytes` (downloaded from an output buffer) stand for.
fn read_back(name: &str, shape: &[usize], readback: Readback, bytes: &[u8]) -> Tensor {
    match readback {
        Readback::Typed(t) => tensor_from_bytes(name, shape.to_vec(), t, bytes),
        Readback::Elements(t) => t.from_bytes(name, shape.to_vec(), bytes),
        Readback::SumF64 => {
            let sum: f64 = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                .sum();
            Tensor {
                name: name.into(),
                shape: shape.to_vec(),
                data: Data::F64(vec![sum]),
            }
        }
    }
}

impl<E: Exec> Prepared for CudaRun<'_, E> {
    fn compute_dtype(&self) -> String {
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
        let (exec, sets) = (&self.exec, &self.sets);
        let t = self
            .timer
            .time_rotating(&self.gpu.stream, &mut next, sets.len(), iters, |i| {
                exec.enqueue(&sets[i])
            })?;
        self.next = next;
        Ok(t)
    }

    fn cache_policy(&self) -> crate::backend::CachePolicy {
        self.policy.as_str().into()
    }

    fn notes(&self) -> Vec<String> {
        self.exec.notes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sums_read_back_as_one_value_and_nan_poison_survives() {
        let bytes: Vec<u8> = [1.5f64, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect();
        let sum = |b: &[u8]| read_back("sum", &[1], Readback::SumF64, b).get(0);
        assert_eq!(sum(&bytes), 4.0);
        let mut poisoned = bytes.clone();
        poisoned.extend([0xFF; 8]);
        assert!(sum(&poisoned).is_nan());
        let t = read_back("dst", &[2], Readback::Typed(OutType::F32), &[0; 8]);
        assert_eq!(
            (t.name.as_str(), t.shape.as_slice()),
            ("dst", &[2usize][..])
        );
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
