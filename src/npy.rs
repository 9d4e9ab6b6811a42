//! Writes tensors as NumPy `.npy` files (format 1.0), so a failed result can be taken apart in
//! numpy. bf16 and fp8 have no numpy dtype: they are written widened to `<f4` (exact).

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
}
