//! TMA tensor maps: the one encoder (`cuTensorMapEncodeTiled`) every Hopper kernel's operands
//! go through, for any rank.
//!
//! A kernel that loads tiles with TMA takes one `CUtensorMap` per operand, by value
//! ([`TensorMapArg`]). What a map describes — element type, extents, byte strides, the box one
//! load brings — is plain data ([`MapGeometry`]), checked here against the rules the driver
//! applies, so a wrong geometry is refused with its reason (and unit-tested without a GPU)
//! instead of coming back as `CUDA_ERROR_INVALID_VALUE`, or worse, as a map that reads past its
//! buffer. An implementation declares the maps of its inputs in its `run::SetLayout`; the run
//! encodes them once per buffer set, for that set's addresses.
//!
//! Every map here uses 128-byte swizzle (the layout wgmma's shared-memory descriptors read),
//! 256-byte L2 promotion and zero fill: a box that sticks out of the tensor arrives with zeros
//! there, which is how the kernels handle tails.

use super::error::cu;
use super::launch::TensorMapArg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use cudarc::driver::sys::{self, CUtensorMapDataType as Ty};

/// The most dimensions a tiled tensor map has.
pub const MAX_RANK: usize = 5;
/// Bytes of one swizzle span: the innermost box extent may not exceed it.
pub const SWIZZLE_BYTES: u64 = 128;
/// Largest box extent per dimension.
pub const MAX_BOX: u32 = 256;

/// What one tensor map describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapGeometry {
    /// Element type (fp8 and int8 travel as bytes).
    pub dtype: DType,
    /// Extents in elements, innermost (contiguous) first.
    pub dims: Vec<u64>,
    /// Byte strides of dimensions 1.. (dimension 0 is contiguous): one fewer than `dims`.
    pub strides: Vec<u64>,
    /// The box one TMA load brings, in elements per dimension.
    pub boxes: Vec<u32>,
}

impl MapGeometry {
    /// A row-major `rows`×`cols` matrix whose rows are `pitch` bytes apart (a multiple of 16:
    /// pad the rows otherwise), read in boxes of `box_cols`×`box_rows`.
    pub fn matrix(
        dtype: DType,
        cols: u64,
        rows: u64,
        pitch: u64,
        box_cols: u32,
        box_rows: u32,
    ) -> MapGeometry {
        MapGeometry {
            dtype,
            dims: vec![cols, rows],
            strides: vec![pitch],
            boxes: vec![box_cols, box_rows],
        }
    }

    /// `count` row-major `rows`×`cols` matrices stored back to back (the heads of a
    /// [B·H, L, D] tensor), read one matrix at a time in boxes of `box_cols`×`box_rows`. The
    /// matrices are their own dimension, so the rows of a tail box past `rows` read as zeros,
    /// never as the next matrix.
    pub fn stacked(
        dtype: DType,
        count: u64,
        rows: u64,
        cols: u64,
        box_cols: u32,
        box_rows: u32,
    ) -> MapGeometry {
        let row = cols * dtype.size();
        MapGeometry {
            dtype,
            dims: vec![cols, rows, count],
            strides: vec![row, rows * row],
            boxes: vec![box_cols, box_rows, 1],
        }
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Bytes of the buffer the map may read: the outermost stride times its extent.
    pub fn span_bytes(&self) -> u64 {
        let outer = self.dims.last().copied().unwrap_or(0);
        match self.strides.last() {
            Some(s) => s * outer,
            None => outer * self.dtype.size(),
        }
    }

    /// The driver's element type.
    fn data_type(&self) -> Ty {
        match self.dtype {
            DType::Bf16 => Ty::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            DType::F16 => Ty::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
            DType::F32 | DType::Tf32 => Ty::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
            DType::Fp8E4m3 | DType::Fp8E5m2 | DType::Int8 => Ty::CU_TENSOR_MAP_DATA_TYPE_UINT8,
        }
    }

    /// Why the driver would refuse this map (or a kernel would read past its tensor), if so:
    /// rank 1..=5 with matching stride and box lists, extents 1..=2³², strides multiples of 16
    /// below 2⁴⁰ that hold the dimension inside them, boxes 1..=256 whose innermost extent is a
    /// multiple of 16 bytes and fits one 128-byte swizzle span.
    pub fn check(&self) -> Result<()> {
        let bad = |why: String| Err(Error::invalid(format!("TMA tensor map {self:?}: {why}")));
        let rank = self.rank();
        if rank == 0 || rank > MAX_RANK {
            return bad(format!("rank {rank}; the driver takes 1 to {MAX_RANK}"));
        }
        if self.strides.len() + 1 != rank || self.boxes.len() != rank {
            return bad("needs one stride fewer than dimensions and one box extent each".into());
        }
        if let Some(d) = self.dims.iter().find(|&&d| d == 0 || d > 1 << 32) {
            return bad(format!("extent {d} outside 1..=2^32"));
        }
        let elem = self.dtype.size();
        let mut inner = self.dims[0] * elem;
        for (i, &s) in self.strides.iter().enumerate() {
            if s % 16 != 0 || s >= 1 << 40 {
                return bad(format!("stride {s} B is not a multiple of 16 below 2^40"));
            }
            if s < inner {
                return bad(format!("stride {s} B overlaps the {inner} B inside it"));
            }
            inner = s * self.dims[i + 1];
        }
        if let Some(b) = self.boxes.iter().find(|&&b| b == 0 || b > MAX_BOX) {
            return bad(format!("box extent {b} outside 1..={MAX_BOX}"));
        }
        let box_bytes = self.boxes[0] as u64 * elem;
        if box_bytes % 16 != 0 || box_bytes > SWIZZLE_BYTES {
            return bad(format!(
                "innermost box of {box_bytes} B; 128-byte swizzle takes a multiple of 16 up to {SWIZZLE_BYTES}"
            ));
        }
        Ok(())
    }
}

/// The tensor map of `g` over the device buffer at `ptr` (which must hold
/// [`MapGeometry::span_bytes`] and outlive every launch given the map).
pub fn encode(ptr: u64, g: &MapGeometry) -> Result<TensorMapArg> {
    g.check()?;
    if ptr % 16 != 0 {
        return Err(Error::invalid(format!(
            "TMA needs a 16-byte aligned tensor; {ptr:#x} is not"
        )));
    }
    let mut map = TensorMapArg(sys::CUtensorMap { opaque: [0; 16] });
    let elem_strides = [1u32; MAX_RANK];
    // SAFETY: `dims`, `boxes` and `elem_strides` hold at least `rank` entries and `strides`
    // rank − 1 (checked above); `map` is a writable CUtensorMap. The call only encodes: it
    // reads no device memory, and the caller keeps `ptr` alive while the map is used.
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map.0,
            g.data_type(),
            g.rank() as u32,
            ptr as *mut std::ffi::c_void,
            g.dims.as_ptr(),
            g.strides.as_ptr(),
            g.boxes.as_ptr(),
            elem_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    cu(
        "encode a TMA tensor map (cuTensorMapEncodeTiled)",
        r.result(),
    )?;
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(g: &MapGeometry) -> String {
        g.check().unwrap_err().to_string()
    }

    #[test]
    fn matrices_and_stacks_have_the_geometry_the_kernels_read() {
        // A 127×513 bf16 matrix with rows padded to 1040 bytes, boxes of 64 K × 128 rows.
        let a = MapGeometry::matrix(DType::Bf16, 513, 127, 1040, 64, 128);
        a.check().unwrap();
        assert_eq!(a.span_bytes(), 127 * 1040);
        // Q of 4×32 heads × 1000 rows × 128: one head per box, strides in bytes.
        let q = MapGeometry::stacked(DType::F16, 128, 1000, 128, 64, 128);
        q.check().unwrap();
        assert_eq!(q.dims, [128, 1000, 128]);
        assert_eq!(q.strides, [256, 1000 * 256]);
        assert_eq!(q.boxes, [64, 128, 1]);
        assert_eq!(q.span_bytes(), 128 * 1000 * 256);
        // fp8: bytes, a 128-byte box is 128 elements.
        MapGeometry::matrix(DType::Fp8E4m3, 4096, 4096, 4096, 128, 128)
            .check()
            .unwrap();
        let flat = MapGeometry {
            dtype: DType::F32,
            dims: vec![100],
            strides: vec![],
            boxes: vec![32],
        };
        flat.check().unwrap();
        assert_eq!(flat.span_bytes(), 400);
    }

    #[test]
    fn what_the_driver_would_refuse_is_refused_with_the_reason() {
        let ok = MapGeometry::matrix(DType::Bf16, 512, 64, 1024, 64, 64);
        let with = |f: &dyn Fn(&mut MapGeometry)| {
            let mut g = ok.clone();
            f(&mut g);
            refusal(&g)
        };
        // Rows of 1026 bytes: TMA needs 16-byte strides (pad the rows).
        assert!(with(&|g| g.strides = vec![1026]).contains("multiple of 16"));
        assert!(with(&|g| g.strides = vec![512]).contains("overlaps"));
        assert!(with(&|g| g.boxes = vec![128, 64]).contains("128-byte swizzle"));
        assert!(with(&|g| g.boxes = vec![4, 64]).contains("multiple of 16"));
        assert!(with(&|g| g.boxes = vec![64, 257]).contains("box extent 257"));
        assert!(with(&|g| g.dims = vec![512, 0]).contains("extent 0"));
        assert!(with(&|g| g.strides = vec![]).contains("one stride fewer"));
        let six = MapGeometry {
            dtype: DType::Bf16,
            dims: vec![8; 6],
            strides: vec![16; 5],
            boxes: vec![8; 6],
        };
        assert!(refusal(&six).contains("rank 6"));
        assert!(matches!(ok.check(), Ok(())));
    }

    #[test]
    fn a_misaligned_tensor_is_refused_before_the_driver_is_called() {
        let g = MapGeometry::matrix(DType::Bf16, 64, 64, 128, 64, 64);
        let e = encode(0x1008, &g).unwrap_err().to_string();
        assert!(e.contains("16-byte aligned"), "{e}");
    }
}
