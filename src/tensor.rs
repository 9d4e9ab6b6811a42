//! Host-side tensors: the inputs every backend receives and the outputs it hands back.
//!
//! Values live in their storage type so that a backend uploads exactly the bits the reference
//! reads. Generation is seeded per workload, so the same `--seed` gives the same inputs whatever
//! order workloads run in.

use crate::dtype::{DType, OutType};
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

/// The storage of a host tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
    F8E4M3(Vec<float8::F8E4M3>),
    F8E5M2(Vec<float8::F8E5M2>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    F64(Vec<f64>),
}

/// A named, shaped host tensor (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` widened to f64 (exact for every storage type).
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match &self.data {
            Data::F32(v) => v[i] as f64,
            Data::F16(v) => v[i].to_f64(),
            Data::Bf16(v) => v[i].to_f64(),
            Data::F8E4M3(v) => v[i].to_f64(),
            Data::F8E5M2(v) => v[i].to_f64(),
            Data::I8(v) => v[i] as f64,
            Data::I32(v) => v[i] as f64,
            Data::F64(v) => v[i],
        }
    }

    /// All elements widened to f64.
    pub fn to_f64(&self) -> Vec<f64> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// All elements as f32 (exact for every input dtype; i32 beyond 2^24 rounds).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Data::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Data::F8E4M3(v) => v.iter().map(|x| x.to_f32()).collect(),
            Data::F8E5M2(v) => v.iter().map(|x| x.to_f32()).collect(),
            Data::I8(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I32(v) => v.iter().map(|&x| x as f32).collect(),
            Data::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The raw little-endian bytes, for uploading to a device or writing to a file.
    pub fn as_bytes(&self) -> &[u8] {
        fn bytes<T>(v: &[T]) -> &[u8] {
            // SAFETY: every element type here is plain old data with no padding, and u8 has
            // alignment 1, so viewing the vector's initialised storage as bytes is sound.
            unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
        }
        match &self.data {
            Data::F32(v) => bytes(v),
            Data::F16(v) => bytes(v),
            Data::Bf16(v) => bytes(v),
            Data::F8E4M3(v) => bytes(v),
            Data::F8E5M2(v) => bytes(v),
            Data::I8(v) => bytes(v),
            Data::I32(v) => bytes(v),
            Data::F64(v) => bytes(v),
        }
    }

    /// Storage type name as used in reports and dumps.
    pub fn storage_name(&self) -> &'static str {
        match &self.data {
            Data::F32(_) => "f32",
            Data::F16(_) => "f16",
            Data::Bf16(_) => "bf16",
            Data::F8E4M3(_) => "fp8_e4m3",
            Data::F8E5M2(_) => "fp8_e5m2",
            Data::I8(_) => "i8",
            Data::I32(_) => "i32",
            Data::F64(_) => "f64",
        }
    }

    /// Builds a tensor of `dtype` storage from f32 values (each rounded to the dtype).
    pub fn from_f32(name: &str, shape: Vec<usize>, dtype: DType, values: &[f32]) -> Tensor {
        fn each<T>(values: &[f32], f: impl Fn(f32) -> T) -> Vec<T> {
            values.iter().map(|&x| f(x)).collect()
        }
        let data = match dtype {
            DType::F32 => Data::F32(values.to_vec()),
            DType::Tf32 => Data::F32(each(values, |x| dtype.quantize(x))),
            DType::F16 => Data::F16(each(values, f16::from_f32)),
            DType::Bf16 => Data::Bf16(each(values, bf16::from_f32)),
            DType::Fp8E4m3 => Data::F8E4M3(each(values, float8::F8E4M3::from_f32)),
            DType::Fp8E5m2 => Data::F8E5M2(each(values, float8::F8E5M2::from_f32)),
            DType::Int8 => Data::I8(each(values, |x| x.round().clamp(-128.0, 127.0) as i8)),
        };
        Tensor {
            name: name.to_string(),
            shape,
            data,
        }
    }

    /// Builds an output tensor of `out` storage from f32 values.
    pub fn from_f32_out(name: &str, shape: Vec<usize>, out: OutType, values: &[f32]) -> Tensor {
        let data = match out {
            OutType::F32 => Data::F32(values.to_vec()),
            OutType::F16 => Data::F16(values.iter().map(|&x| f16::from_f32(x)).collect()),
            OutType::Bf16 => Data::Bf16(values.iter().map(|&x| bf16::from_f32(x)).collect()),
            OutType::I32 => Data::I32(values.iter().map(|&x| x as i32).collect()),
        };
        Tensor {
            name: name.to_string(),
            shape,
            data,
        }
    }

    /// A tensor of random values of `dtype`: uniform in [-1, 1) for floats (so no overflow in
    /// any accumulation), uniform integers in [-127, 127] for int8. Never all zeros.
    ///
    /// Generated in fixed-size chunks, each from its own seeded stream, in parallel: the values
    /// depend on the seed only, never on the number of threads.
    pub fn random(name: &str, shape: Vec<usize>, dtype: DType, seed: u64) -> Tensor {
        const CHUNK: usize = 1 << 16;
        let n: usize = shape.iter().product();
        let mut values = vec![0f32; n];
        values
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, out)| {
                let mut rng =
                    Xoshiro256PlusPlus::seed_from_u64(splitmix(seed ^ splitmix(c as u64)));
                if dtype == DType::Int8 {
                    out.iter_mut()
                        .for_each(|x| *x = rng.random_range(-127i32..=127) as f32);
                } else {
                    out.iter_mut()
                        .for_each(|x| *x = rng.random_range(-1.0f32..1.0));
                }
            });
        // A tensor of one or a few elements can draw only values that round to zero in its
        // dtype (int8's 0; fp8 flushes below 2^-9): then a kernel writing zeros would match
        // the reference. One value at least 2^-6 in magnitude is non-zero in every dtype.
        if !values.iter().any(|v| v.abs() >= 1.0 / 64.0) {
            if let Some(first) = values.first_mut() {
                *first = if dtype == DType::Int8 { 1.0 } else { 0.5 };
            }
        }
        Tensor::from_f32(name, shape, dtype, &values)
    }
}

/// Little-endian elements of `N` bytes each (device bytes as read back), decoded by `f`.
pub fn decode_le<T, const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks of N bytes")))
        .collect()
}

/// SplitMix64 finaliser: spreads nearby seeds far apart.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash (FNV-1a) used to derive per-workload seeds from names.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One-element tensors over many seeds: never zero in any dtype (the 1×1×1 matmul's A or
    /// B used to be 0 for some seeds, and a kernel writing zeros then passed).
    #[test]
    fn a_random_tensor_is_never_all_zeros() {
        for dtype in DType::ALL {
            for seed in 0..2000 {
                let t = Tensor::random("A", vec![1, 1], dtype, seed);
                assert!(t.to_f64().iter().any(|&v| v != 0.0), "{dtype} seed {seed}");
            }
        }
    }

    #[test]
    fn random_is_seeded_and_not_zero() {
        let a = Tensor::random("A", vec![16, 16], DType::Bf16, 7);
        let b = Tensor::random("A", vec![16, 16], DType::Bf16, 7);
        let c = Tensor::random("A", vec![16, 16], DType::Bf16, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.to_f64().iter().any(|&x| x != 0.0));
        let i = Tensor::random("I", vec![1000], DType::Int8, 1);
        let v = i.to_f64();
        assert!(v.iter().all(|&x| (-127.0..=127.0).contains(&x)));
        assert!(v.iter().any(|&x| x.abs() > 100.0));
    }

    #[test]
    fn bytes_have_storage_size() {
        let t = Tensor::random("A", vec![3, 5], DType::F16, 1);
        assert_eq!(t.as_bytes().len(), 30);
        let t = Tensor::random("A", vec![3, 5], DType::Fp8E4m3, 1);
        assert_eq!(t.as_bytes().len(), 15);
    }
}
