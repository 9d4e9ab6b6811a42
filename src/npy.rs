//! Writes tensors as NumPy `.npy` files (format 1.0), so a failed result can be taken apart in
//! numpy. bf16 and fp8 have no numpy dtype: they are written widened to `<f4` (exact).
//! Reads `.npy` files (the inputs and expected outputs of user kernels): little-endian
//! numbers in C order, format 1.0 to 3.0.

use crate::tensor::{Data, Tensor};
use std::path::Path;

/// Writes `t` to `path` atomically.
pub fn write(t: &Tensor, path: &Path) -> std::io::Result<()> {
    let widened;
    let (descr, bytes): (&str, &[u8]) = match &t.data {
        Data::F32(_) => ("<f4", t.as_bytes()),
        Data::F16(_) => ("<f2", t.as_bytes()),
        Data::I8(_) => ("|i1", t.as_bytes()),
        Data::I32(_) => ("<i4", t.as_bytes()),
        Data::F64(_) => ("<f8", t.as_bytes()),
        Data::Bf16(_) | Data::F8E4M3(_) | Data::F8E5M2(_) => {
            widened = Tensor {
                name: t.name.clone(),
                shape: t.shape.clone(),
                data: Data::F32(t.to_f32()),
            };
            ("<f4", widened.as_bytes())
        }
    };
    let shape = match t.shape.len() {
        1 => format!("({},)", t.shape[0]),
        _ => format!(
            "({})",
            t.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + header length (2) + header + '\n' is padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let magic: &[u8] = b"\x93NUMPY\x01\x00";
    let header_len = (header.len() as u16).to_le_bytes();
    crate::output::write_atomic_parts(path, &[magic, &header_len, header.as_bytes(), bytes])
}

/// The element kind of an array read from a `.npy` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyKind {
    Float,
    Int,
    UInt,
    Bool,
}

/// An array read from a `.npy` file: its raw little-endian elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Npy {
    /// numpy's type string as written (`<f4`, `|i1`, ...).
    pub descr: String,
    pub kind: NpyKind,
    /// Bytes per element.
    pub size: usize,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Largest `.npy` file read (a user kernel's input or expected output).
pub const MAX_READ_BYTES: u64 = 16 << 30;

/// The most read from a `.npy` that is not a regular file (a pipe, a device): write a larger
/// array to a file.
const MAX_STREAM_BYTES: u64 = 1 << 30;

impl Npy {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f64 (exact for every kind up to 53-bit integers).
    pub fn get(&self, i: usize) -> f64 {
        let b = &self.data[i * self.size..(i + 1) * self.size];
        let mut w = [0u8; 8];
        w[..self.size].copy_from_slice(b);
        match (self.kind, self.size) {
            (NpyKind::Float, 2) => half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64(),
            (NpyKind::Float, 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            (NpyKind::Float, _) => f64::from_le_bytes(w),
            (NpyKind::Int, n) => {
                // sign-extend from n bytes
                let shift = 64 - 8 * n as u32;
                ((i64::from_le_bytes(w) << shift) >> shift) as f64
            }
            (NpyKind::UInt | NpyKind::Bool, _) => u64::from_le_bytes(w) as f64,
        }
    }
}

/// Reads a `.npy` file; a clear error for anything this reader cannot take (big-endian,
/// Fortran order, object or structured arrays, a truncated file).
pub fn read(path: &Path) -> crate::Result<Npy> {
    read_with_bytes(path).map(|(npy, _)| npy)
}

/// [`read`], with the file's bytes as read (for a hash of exactly what was parsed: a second
/// read could see another file, or block on a pipe).
pub fn read_with_bytes(path: &Path) -> crate::Result<(Npy, Vec<u8>)> {
    let bad = |why: String| crate::Error::invalid(format!("{}: {why}", path.display()));
    let len = std::fs::metadata(path)
        .map_err(|e| bad(format!("cannot read: {e}")))?
        .len();
    if len > MAX_READ_BYTES {
        return Err(bad(format!(
            "{len} bytes is above the {MAX_READ_BYTES}-byte limit for .npy files"
        )));
    }
    // A pipe or device (whose length says nothing) is read up to a bound: reading `/dev/zero`
    // must not fill memory.
    let bytes = crate::files::read_whole_or_bounded(path, MAX_STREAM_BYTES)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    let npy = parse(&bytes).map_err(bad)?;
    Ok((npy, bytes))
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<Npy, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    let header = bytes
        .get(start..start.saturating_add(hlen))
        .ok_or("the header is truncated")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("the header has no '{key}'"))?;
        let rest = header[at + key.len() + 2..].trim_start();
        Ok(rest
            .strip_prefix(':')
            .ok_or("malformed header")?
            .trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("'descr' is not a simple type (structured arrays are not supported)")?
        .to_string();
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-ordered array: save it with np.ascontiguousarray first".into());
    }
    let shape_text = field("shape")?;
    let close = shape_text.find(')').ok_or("malformed 'shape'")?;
    // `(` first: a header of `'shape': ), }` (or a multi-byte character before the `)`) once
    // sliced past its end and panicked.
    let inner = shape_text[..close]
        .strip_prefix('(')
        .ok_or_else(|| format!("malformed 'shape' {}", &shape_text[..=close]))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| format!("malformed 'shape' {}", &shape_text[..=close]))?;
    let (order, code) = descr.split_at(1.min(descr.len()));
    if order == ">" {
        return Err(format!(
            "big-endian type {descr}: save it as little-endian ('<')"
        ));
    }
    let (kind, size) = match code {
        "f2" => (NpyKind::Float, 2),
        "f4" => (NpyKind::Float, 4),
        "f8" => (NpyKind::Float, 8),
        "i1" | "i2" | "i4" | "i8" => (NpyKind::Int, code[1..].parse().expect("digit")),
        "u1" | "u2" | "u4" | "u8" => (NpyKind::UInt, code[1..].parse().expect("digit")),
        "b1" => (NpyKind::Bool, 1),
        _ => {
            return Err(format!(
                "numpy type {descr} is not supported (float16/32/64, int8..64, uint8..64, bool)"
            ))
        }
    };
    let count = shape
        .iter()
        .try_fold(1usize, |p, &d| p.checked_mul(d))
        .ok_or("the shape's element count overflows")?;
    let data_start = start + hlen;
    let need = count.checked_mul(size).ok_or("the array is too large")?;
    let data = bytes
        .get(data_start..)
        .filter(|d| d.len() == need)
        .ok_or(format!(
            "the data holds {} bytes, the header says {need} ({count} × {size})",
            bytes.len().saturating_sub(data_start)
        ))?;
    Ok(Npy {
        descr,
        kind,
        size,
        shape,
        data: data.to_vec(),
    })
}

/// A file-name-safe version of a result id.
pub fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn header_is_aligned_and_data_follows() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::random("A", vec![3, 5], DType::Bf16, 1);
        let p = dir.path().join("a.npy");
        write(&t, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.contains("'descr': '<f4'"));
        assert!(header.contains("'shape': (3, 5)"));
        assert_eq!(bytes.len() - 10 - hlen, 15 * 4);
        let first = f32::from_le_bytes(bytes[10 + hlen..14 + hlen].try_into().unwrap());
        assert_eq!(first as f64, t.get(0));
        assert_eq!(
            safe_name("matmul.f32.1x2x3.kn/gemm"),
            "matmul.f32.1x2x3.kn_gemm"
        );
    }

    #[test]
    fn what_is_written_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        for (t, descr) in [
            (Tensor::random("a", vec![3, 5], DType::F32, 1), "<f4"),
            (Tensor::random("b", vec![7], DType::F16, 2), "<f2"),
            (Tensor::random("c", vec![2, 2, 2], DType::Int8, 3), "|i1"),
        ] {
            let p = dir.path().join(format!("{}.npy", t.name));
            write(&t, &p).unwrap();
            let n = read(&p).unwrap();
            assert_eq!(n.descr, descr);
            assert_eq!(n.shape, t.shape);
            for i in 0..t.len() {
                assert_eq!(n.get(i), t.get(i));
            }
        }
    }

    #[test]
    fn unsupported_or_broken_files_say_why() {
        let header = |h: &str, data: &[u8]| {
            let mut v = b"\x93NUMPY\x01\x00".to_vec();
            v.extend((h.len() as u16).to_le_bytes());
            v.extend(h.as_bytes());
            v.extend(data);
            v
        };
        let ok = header(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
            &[0xff; 16],
        );
        let n = parse(&ok).unwrap();
        assert_eq!((n.get(0), n.len()), (-1.0, 2));
        let u = header(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (), }",
            &[200],
        );
        assert_eq!(parse(&u).unwrap().get(0), 200.0);
        for (bytes, want) in [
            (b"PK\x03\x04".to_vec(), "not a .npy"),
            (header("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", &[0; 4]), "big-endian"),
            (header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", &[0; 4]), "Fortran"),
            (header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", &[0; 8]), "not supported"),
            (header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", &[0; 4]), "structured"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", &[0; 8]), "holds 8 bytes"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }", &[]), "malformed 'shape'"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': ), }", &[]), "malformed 'shape'"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': é), }", &[]), "malformed 'shape'"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }", &[]), "overflows"),
            (header("{'fortran_order': False, 'shape': (1,), }", &[0; 4]), "no 'descr'"),
        ] {
            let e = parse(&bytes).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
