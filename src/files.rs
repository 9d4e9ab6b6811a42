//! Reading the files a user names (reports, verdicts, specs, sources, price and model files,
//! `.npy` arrays), each up to a size no such file reaches.
//!
//! Why bounded: a file's length from `metadata` says nothing for a device or a pipe
//! (`/dev/zero` reports 0 bytes and never ends), and a wrong path there read without a bound
//! until the kernel killed the process. Reading through [`std::io::Read::take`] stops at the
//! limit whatever the file is, and the error names the limit.

use std::io::Read;
use std::path::Path;

/// The most read from a measurement report or baseline. A report keeps every sample, at most
/// 10,000 a result (about 200 kB): a validate soak of fifty results writes about 10 MB.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// The most read from a verdict, a price or a model file: a few kilobytes each in practice.
pub const MAX_SMALL_FILE_BYTES: u64 = 64 << 20;

/// The bytes of `path`, or an error of kind `InvalidData` past `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {} bytes, the most read from such a file", limit),
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text".to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_without_end_stops_at_the_limit() {
        let err = read_bounded(Path::new("/dev/zero"), 4096).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("more than 4096 bytes"), "{err}");
    }

    #[test]
    fn a_file_at_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "abcd").unwrap();
        assert_eq!(read_text_bounded(&p, 4).unwrap(), "abcd");
        assert!(read_text_bounded(&p, 3).is_err());
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_text_bounded(&p, 4)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }
}
