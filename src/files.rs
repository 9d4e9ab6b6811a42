//! Reading the files a user names (reports, verdicts, specs, sources, price and model files,
//! `.npy` arrays), each up to a size no such file reaches.
//!
//! Why bounded: a file's length from `metadata` says nothing for a device or a pipe
//! (`/dev/zero` reports 0 bytes and never ends), and a wrong path there read without a bound
//! until the kernel killed the process. Reading through [`std::io::Read::take`] stops at the
//! limit whatever the file is, and the error names the limit.

use std::io::Read;
use std::path::Path;

/// The most read from a report or baseline that is not a regular file (a pipe, a device). A
/// regular one is read whole: a report keeps every sample, and `--max-samples` allows a
/// million a result (about 30 MB each), so no cap fits every report gpuvet writes.
pub const MAX_STREAMED_REPORT_BYTES: u64 = 256 << 20;

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

/// A regular file read whole; anything else (a device, a pipe, whose length says nothing) up
/// to `stream_limit`. For files whose size has no bound of its own (reports, `.npy` arrays).
pub fn read_whole_or_bounded(path: &Path, stream_limit: u64) -> std::io::Result<Vec<u8>> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return std::fs::read(path);
    }
    read_bounded(path, stream_limit)
}

/// [`read_whole_or_bounded`] as UTF-8 text.
pub fn read_text_whole_or_bounded(path: &Path, stream_limit: u64) -> std::io::Result<String> {
    utf8(read_whole_or_bounded(path, stream_limit)?)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    utf8(read_bounded(path, limit)?)
}

fn utf8(bytes: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(bytes).map_err(|_| {
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

    /// A report has no size of its own: a regular file is read whole, past the bound a stream
    /// is held to (a run at a million samples a result wrote 304 MB, refused as corrupt).
    #[test]
    fn a_regular_report_is_read_whole_and_a_stream_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, "x".repeat(100)).unwrap();
        assert_eq!(read_text_whole_or_bounded(&p, 10).unwrap().len(), 100);
        assert!(read_text_whole_or_bounded(Path::new("/dev/zero"), 10).is_err());
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
