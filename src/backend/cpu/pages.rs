//! Large buffers on transparent huge pages.
//!
//! A GEMM packs panels of A and B whose rows lie a whole row pitch apart (8 KiB for 2048 f32
//! columns): on 4 KiB pages nearly every row of a panel is a TLB miss. Linux backs anonymous
//! memory with 2 MiB pages only where asked (`madvise(MADV_HUGEPAGE)`) when transparent huge
//! pages are in `madvise` mode, the default of many distributions; numpy asks for every large
//! array, so without this the comparison with numpy/OpenBLAS is not like for like.
//! Elsewhere (THP `always` or `never`, other systems) the advice changes nothing.

/// Buffers smaller than this stay where the allocator put them.
const MIN_BYTES: usize = 4 << 20;

/// Huge-page size the advice is aligned to.
const HUGE: usize = 2 << 20;

/// A copy of `src` in a fresh allocation whose 2 MiB-aligned interior was advised onto huge
/// pages before the copy first touched it (small buffers are copied plainly).
pub(super) fn huge_copy<T: Copy>(src: &[T]) -> Vec<T> {
    let mut v = Vec::with_capacity(src.len());
    if std::mem::size_of_val(src) >= MIN_BYTES {
        advise(&mut v);
    }
    v.extend_from_slice(src);
    v
}

#[cfg(target_os = "linux")]
fn advise<T>(v: &mut Vec<T>) {
    let start = v.as_mut_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let (a, b) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if b > a {
        // SAFETY: [a, b) lies inside the allocation `v` owns (its capacity, rounded inwards to
        // whole huge pages). MADV_HUGEPAGE changes only how the kernel backs those pages, never
        // their contents or validity; if it fails (THP disabled) they stay as they were, so the
        // result is ignored.
        unsafe {
            libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise<T>(_: &mut Vec<T>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_exact_whatever_their_size() {
        let small: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(huge_copy(&small), small);
        let large: Vec<u32> = (0..(3 << 20)).collect();
        assert_eq!(huge_copy(&large), large);
        assert!(huge_copy::<f64>(&[]).is_empty());
    }
}
