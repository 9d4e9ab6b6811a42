//! gpuvet's own f32 GEMM for x86-64 CPUs with AVX2 and FMA.
//!
//! Why it exists: on AVX2-only hosts (no AVX-512) the `gemm` crate's f32 path ran at 0.955×
//! numpy/OpenBLAS's Haswell kernel on the CI machine type (2-core AMD EPYC, 2026-12-05), and
//! the CPU backend is the one figure every user without a GPU sees. With AVX-512 the `gemm`
//! crate (built with `x86-v4`) is the faster one, so [`preferred`] picks this kernel only when
//! the CPU has AVX2 and FMA but not AVX-512F (docs/perf/cpu.md has the measurements; a 16-lane
//! 12×32 variant of this kernel, tried on an Emerald Rapids guest, ran 3–4 % slower than the
//! `gemm` crate there).
//!
//! The shape is the classic one of Goto and van de Geijn: B is packed into panels of
//! [`NR`] columns, A into panels of [`MR`] rows, both [`KC`] deep, and a register-blocked
//! micro-kernel computes an MR×NR tile of C with 12 accumulators (`vfmadd231ps` with one
//! broadcast of A and two loads of B per step). The threads split C by columns, each with its
//! own packing buffers, allocated once per prepared run ([`Sgemm::new`]) and never inside the
//! timed loop. Everything is plain f32 multiply-add in order of k, so the result differs from an
//! exact product only by f32 rounding.

use crate::workload::BLayout;

/// Rows of C one micro-kernel call computes.
const MR: usize = 6;
/// Columns of C one micro-kernel call computes (two 8-lane registers).
const NR: usize = 16;
/// Depth of one packed panel. 512 keeps the C matrix to four passes at K = 2048 while the A
/// block (MC × KC) stays well inside a 512 KiB L2 (chosen by measurement, docs/perf/cpu.md).
const KC: usize = 512;
/// Rows of A packed at once (a multiple of MR).
const MC: usize = 48;

/// Whether this kernel is the better f32 GEMM on this CPU: AVX2 and FMA present, AVX-512F
/// absent (where the `gemm` crate's 16-lane kernels win). `GPUVET_CPU_SGEMM=gemm` or `=own`
/// overrides the choice, for comparing the two on one machine; `own` on a CPU without AVX2
/// and FMA still gets the `gemm` crate.
pub(super) fn preferred() -> bool {
    match forced().ok().flatten() {
        Some(false) => false,
        Some(true) => available(),
        None => available() && !avx512f(),
    }
}

/// `GPUVET_CPU_SGEMM`: `Some(true)` for `own`, `Some(false)` for `gemm`, `None` unset; any other
/// value is an error, which the command line reports before anything runs.
pub fn forced() -> crate::error::Result<Option<bool>> {
    match std::env::var_os("GPUVET_CPU_SGEMM") {
        None => Ok(None),
        Some(v) if v == "own" => Ok(Some(true)),
        Some(v) if v == "gemm" => Ok(Some(false)),
        Some(v) => Err(crate::Error::invalid(format!(
            "GPUVET_CPU_SGEMM={} is not `own` or `gemm`; set it to one or unset it",
            v.to_string_lossy()
        ))),
    }
}

/// Whether the CPU can run this kernel at all.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One cache line of f32 values: packing buffers are built from these so that every panel
/// starts 64-byte aligned (the micro-kernel uses aligned loads of B).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A zeroed, 64-byte aligned buffer of at least `floats` f32 values.
fn lines(floats: usize) -> Vec<Line> {
    vec![Line([0.0; 16]); floats.div_ceil(16).max(1)]
}

/// One thread's share of C (columns `j0..j1`) and its packing buffers.
struct Part {
    j0: usize,
    j1: usize,
    a: Vec<Line>,
    b: Vec<Line>,
}

/// An f32 GEMM of fixed shape with its packing buffers: C (M×N, row-major) = A (M×K,
/// row-major) · B (K×N, or N×K when the layout says so).
pub(super) struct Sgemm {
    m: usize,
    n: usize,
    k: usize,
    layout: BLayout,
    parts: Vec<Part>,
}

impl Sgemm {
    /// Plans the product for `threads` workers. `None` when the CPU lacks AVX2 or FMA.
    pub(super) fn new(
        m: usize,
        n: usize,
        k: usize,
        layout: BLayout,
        threads: usize,
    ) -> Option<Sgemm> {
        if !available() {
            return None;
        }
        let panels = n.div_ceil(NR);
        let per = panels.div_ceil(threads.max(1)).max(1);
        let kc = KC.min(k).max(1);
        let parts = (0..panels.div_ceil(per))
            .map(|t| {
                let (j0, j1) = (t * per * NR, ((t + 1) * per * NR).min(n));
                Part {
                    j0,
                    j1,
                    a: lines(MC * kc),
                    b: lines((j1 - j0).div_ceil(NR) * NR * kc),
                }
            })
            .collect();
        Some(Sgemm {
            m,
            n,
            k,
            layout,
            parts,
        })
    }

    /// C = A · B on `pool`'s threads, one column share each.
    pub(super) fn run(&mut self, pool: &rayon::ThreadPool, c: &mut [f32], a: &[f32], b: &[f32]) {
        let (m, n, k) = (self.m, self.n, self.k);
        assert!(c.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            c[..m * n].fill(0.0);
            return;
        }
        let shape = Shape {
            m,
            n,
            k,
            layout: self.layout,
            a: a.as_ptr(),
            b: b.as_ptr(),
            c: c.as_mut_ptr(),
        };
        pool.install(|| {
            rayon::scope(|s| {
                for part in self.parts.iter_mut() {
                    s.spawn(move |_| {
                        // SAFETY: AVX2 and FMA are present (`new` returned Some only then); the
                        // pointers in `shape` address the M×K, K×N and M×N elements asserted
                        // above; each part writes only its own columns j0..j1 of C, and the
                        // parts' column ranges are disjoint, so no two threads write one element.
                        unsafe { shape.part(part) }
                    });
                }
            })
        });
    }
}

/// The operands of one product, shared (read-only A and B, disjoint columns of C) by the
/// threads.
#[derive(Clone, Copy)]
struct Shape {
    m: usize,
    n: usize,
    k: usize,
    layout: BLayout,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
}

// SAFETY: `Shape` is only handed to the threads of one `Sgemm::run`, which reads A and B and
// writes disjoint column ranges of C while `run` holds the borrows the pointers came from.
unsafe impl Send for Shape {}
unsafe impl Sync for Shape {}

impl Shape {
    /// Computes columns `part.j0..part.j1` of C.
    ///
    /// # Safety
    /// AVX2 and FMA must be present, and the pointers valid for the shape (see `Sgemm::run`).
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    unsafe fn part(&self, part: &mut Part) {
        let (m, n, k) = (self.m, self.n, self.k);
        let (j0, j1) = (part.j0, part.j1);
        let panels = (j1 - j0).div_ceil(NR);
        let bp = part.b.as_mut_ptr() as *mut f32;
        let ap = part.a.as_mut_ptr() as *mut f32;
        let mut tile = [Line([0.0; 16]); MR];
        let mut pc = 0;
        while pc < k {
            let kc = KC.min(k - pc);
            pack_b(self, pc, kc, j0, j1, bp);
            let mut ic = 0;
            while ic < m {
                let mc = MC.min(m - ic);
                let row_panels = mc.div_ceil(MR);
                for r in 0..row_panels {
                    let rows = MR.min(mc - r * MR);
                    pack_a(
                        self.a.add((ic + r * MR) * k + pc),
                        k,
                        rows,
                        kc,
                        ap.add(r * kc * MR),
                    );
                }
                for jp in 0..panels {
                    let jj = j0 + jp * NR;
                    let cols = NR.min(j1 - jj);
                    let b_panel = bp.add(jp * kc * NR);
                    for r in 0..row_panels {
                        let ii = ic + r * MR;
                        let rows = MR.min(m - ii);
                        let a_panel = ap.add(r * kc * MR);
                        // What to pull into L1 meanwhile: the next A panel, or at the last one
                        // the next B panel (past the end: a prefetch never faults).
                        let ahead = if r + 1 < row_panels {
                            Ahead(ap.wrapping_add((r + 1) * kc * MR), MR)
                        } else {
                            Ahead(bp.wrapping_add((jp + 1) * kc * NR), NR)
                        };
                        if rows == MR && cols == NR {
                            let dst = self.c.add(ii * n + jj);
                            micro(kc, a_panel, b_panel, dst, n, pc > 0, ahead);
                        } else {
                            // An edge tile: computed whole into `tile`, then the part inside C
                            // is stored (or added, after the first K panel).
                            let t = tile.as_mut_ptr() as *mut f32;
                            micro(kc, a_panel, b_panel, t, NR, false, ahead);
                            for i in 0..rows {
                                for q in 0..cols {
                                    let d = self.c.add((ii + i) * n + jj + q);
                                    let v = *t.add(i * NR + q);
                                    *d = if pc > 0 { *d + v } else { v };
                                }
                            }
                        }
                    }
                }
                ic += mc;
            }
            pc += kc;
        }
    }
}

/// Memory to prefetch while a micro-kernel runs: start, and floats to advance per k step.
#[derive(Clone, Copy)]
struct Ahead(*const f32, usize);

/// Packs rows `pc..pc+kc` of B, columns `j0..j1`, into panels of NR columns:
/// `dst[panel][p][q] = B[pc + p][j0 + panel·NR + q]`, zero beyond `j1`.
///
/// # Safety
/// As `Shape::part`; `dst` holds `ceil((j1-j0)/NR)·NR·kc` floats.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn pack_b(s: &Shape, pc: usize, kc: usize, j0: usize, j1: usize, dst: *mut f32) {
    let w = j1 - j0;
    let full = w / NR;
    match s.layout {
        BLayout::Kn => {
            // Row by row: each row of B is read once, in order (kind to the TLB).
            for p in 0..kc {
                let src = s.b.add((pc + p) * s.n + j0);
                for jp in 0..full {
                    std::ptr::copy_nonoverlapping(
                        src.add(jp * NR),
                        dst.add((jp * kc + p) * NR),
                        NR,
                    );
                }
                if full * NR < w {
                    let d = dst.add((full * kc + p) * NR);
                    for q in 0..NR {
                        let j = full * NR + q;
                        *d.add(q) = if j < w { *src.add(j) } else { 0.0 };
                    }
                }
            }
        }
        BLayout::Nk => {
            // B is stored N×K: a panel's NR columns are NR rows of that storage, transposed.
            for jp in 0..w.div_ceil(NR) {
                let cols = NR.min(w - jp * NR);
                let src = s.b.add((j0 + jp * NR) * s.k + pc);
                transpose_pack::<NR>(src, s.k, cols, kc, dst.add(jp * kc * NR));
            }
        }
    }
}

/// Packs `rows` (≤ MR) rows of A, `kc` deep, as `dst[p·MR + i] = A[i][p]`, zero rows beyond.
///
/// # Safety
/// As `Shape::part`; `dst` holds `MR·kc` floats.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn pack_a(src: *const f32, lda: usize, rows: usize, kc: usize, dst: *mut f32) {
    transpose_pack::<MR>(src, lda, rows, kc, dst);
}

/// `dst[p·R + i] = src[i·ld + p]` for `i < rows`, zero for `rows ≤ i < R`, `p < kc`: R rows of
/// a row-major matrix laid out column by column. Whole groups of 8 rows × 8 columns go through
/// an AVX 8×8 transpose; the rest element by element.
///
/// # Safety
/// `src` addresses `rows` rows of `kc` floats `ld` apart; `dst` holds `R·kc` floats.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn transpose_pack<const R: usize>(
    src: *const f32,
    ld: usize,
    rows: usize,
    kc: usize,
    dst: *mut f32,
) {
    let mut p = 0;
    #[cfg(target_arch = "x86_64")]
    if rows == R {
        use std::arch::x86_64::*;
        while p + 8 <= kc {
            let mut g = 0;
            while g < R {
                let live = 8.min(R - g);
                let mut v = [_mm256_setzero_ps(); 8];
                for (i, slot) in v.iter_mut().enumerate().take(live) {
                    *slot = _mm256_loadu_ps(src.add((g + i) * ld + p));
                }
                let t = transpose8(v);
                let d = dst.add(p * R + g);
                if live == 8 {
                    for (q, x) in t.iter().enumerate() {
                        _mm256_storeu_ps(d.add(q * R), *x);
                    }
                } else {
                    // Fewer than 8 live rows (R = 6): each column's 8-lane store spills two
                    // zeros into the next column, which the next store overwrites; the last
                    // column is stored lane by lane so nothing lands past this block.
                    for (q, x) in t.iter().enumerate().take(7) {
                        _mm256_storeu_ps(d.add(q * R), *x);
                    }
                    let mut last = [0.0f32; 8];
                    _mm256_storeu_ps(last.as_mut_ptr(), t[7]);
                    std::ptr::copy_nonoverlapping(last.as_ptr(), d.add(7 * R), live);
                }
                g += 8;
            }
            p += 8;
        }
    }
    for p in p..kc {
        for i in 0..R {
            *dst.add(p * R + i) = if i < rows { *src.add(i * ld + p) } else { 0.0 };
        }
    }
}

/// Transposes 8 rows of 8 lanes: lane `i` of result `q` is lane `q` of input `i`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// K steps before the end at which the C tile is pulled into L1: early enough to hide an L2/L3
/// hit, late enough that streaming A and B through L1 has not evicted it again (rows of C lie
/// a whole row pitch apart and so share L1 sets).
#[cfg(target_arch = "x86_64")]
const C_AHEAD: usize = 48;

/// The MR×NR micro-kernel: `C[i][q] (+)= Σ_p a[p·MR + i] · b[p·NR + q]` for `p < kc`, stored
/// with row pitch `ldc`; added to what C holds when `accumulate`.
///
/// # Safety
/// AVX2 and FMA present; `a` holds `MR·kc` floats, `b` `NR·kc` floats 32-byte aligned, `c`
/// addresses MR rows of NR floats `ldc` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    ahead: Ahead,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    for i in 0..MR {
        _mm_prefetch::<_MM_HINT_T1>(c.add(i * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T1>(c.add(i * ldc + NR - 1) as *const i8);
    }
    let (mut a, mut b, mut pf) = (a, b, ahead.0);
    let tail = C_AHEAD.min(kc);
    // One k step: prefetch one line ahead, two loads of B, six broadcasts of A, 12 FMAs.
    macro_rules! step {
        () => {
            _mm_prefetch::<_MM_HINT_T0>(pf as *const i8);
            pf = pf.wrapping_add(ahead.1);
            let b0 = _mm256_load_ps(b);
            let b1 = _mm256_load_ps(b.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(i));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            a = a.add(MR);
            b = b.add(NR);
        };
    }
    for _ in 0..kc - tail {
        step!();
    }
    for i in 0..MR {
        _mm_prefetch::<_MM_HINT_ET0>(c.add(i * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_ET0>(c.add(i * ldc + NR - 1) as *const i8);
    }
    for _ in 0..tail {
        step!();
    }
    for (i, row) in acc.iter().enumerate() {
        let p = c.add(i * ldc);
        let (mut x0, mut x1) = (row[0], row[1]);
        if accumulate {
            x0 = _mm256_add_ps(x0, _mm256_loadu_ps(p));
            x1 = _mm256_add_ps(x1, _mm256_loadu_ps(p.add(8)));
        }
        _mm256_storeu_ps(p, x0);
        _mm256_storeu_ps(p.add(8), x1);
    }
}

/// Never called: `Sgemm::new` refuses CPUs other than x86-64 with AVX2 and FMA.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn micro(_: usize, _: *const f32, _: *const f32, _: *mut f32, _: usize, _: bool, _: Ahead) {
    unreachable!("the AVX2 f32 GEMM runs only on x86-64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// C = A·B in f64 from the same f32 inputs, and Σ|a||b| per element (the error scale).
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        layout: BLayout,
    ) -> (Vec<f64>, Vec<f64>) {
        let (mut c, mut s) = (vec![0.0; m * n], vec![0.0; m * n]);
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let bv = match layout {
                        BLayout::Kn => b[p * n + j],
                        BLayout::Nk => b[j * k + p],
                    } as f64;
                    let x = a[i * k + p] as f64 * bv;
                    c[i * n + j] += x;
                    s[i * n + j] += x.abs();
                }
            }
        }
        (c, s)
    }

    fn check(m: usize, n: usize, k: usize, layout: BLayout, threads: usize) {
        let Some(mut g) = Sgemm::new(m, n, k, layout, threads) else {
            crate::output::say_skip(
                "sgemm::tests::matches_f64_on_edge_shapes_both_layouts",
                &format!("this CPU has no AVX2+FMA ({m}x{n}x{k})"),
            );
            return;
        };
        let mut rng =
            rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64((m * 131 + n * 17 + k) as u64);
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut c = vec![f32::NAN; m * n];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        // Twice: the second run must not depend on what the first left in C or the buffers.
        for _ in 0..2 {
            g.run(&pool, &mut c, &a, &b);
            let (want, scale) = reference(m, n, k, &a, &b, layout);
            for (idx, ((got, want), scale)) in c.iter().zip(&want).zip(&scale).enumerate() {
                let err = (*got as f64 - want).abs();
                assert!(
                    err <= 1e-6 * scale.max(1e-30) * (k as f64).sqrt().max(1.0) + 1e-30,
                    "{m}x{n}x{k} {layout:?} t{threads}: C[{idx}] = {got}, want {want} (scale {scale})"
                );
            }
            c.fill(f32::NAN);
        }
    }

    #[test]
    fn matches_f64_on_edge_shapes_both_layouts() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (6, 16, 8),
            (7, 17, 9),
            (5, 3, 2),
            (13, 40, 33),
            (48, 32, 512),
            (49, 33, 513),
            (100, 70, 1030),
            (3, 200, 17),
        ] {
            for layout in [BLayout::Kn, BLayout::Nk] {
                for threads in [1, 2, 3] {
                    check(m, n, k, layout, threads);
                }
            }
        }
    }

    #[test]
    fn k_zero_writes_zeros() {
        let Some(mut g) = Sgemm::new(3, 5, 0, BLayout::Kn, 2) else {
            crate::output::say_skip(
                "sgemm::tests::k_zero_writes_zeros",
                "this CPU has no AVX2+FMA",
            );
            return;
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut c = vec![f32::NAN; 15];
        g.run(&pool, &mut c, &[], &[]);
        assert!(c.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn transpose_pack_pads_missing_rows_with_zeros() {
        // 4 live rows of 11 columns, packed as 6-row panels: column p holds rows 0..4 then 0, 0.
        let src: Vec<f32> = (0..4 * 11).map(|x| x as f32 + 1.0).collect();
        let mut dst = vec![f32::NAN; 6 * 11];
        // SAFETY: src holds 4 rows of 11 floats (ld 11); dst holds 6·11 floats.
        unsafe { transpose_pack::<6>(src.as_ptr(), 11, 4, 11, dst.as_mut_ptr()) };
        for p in 0..11 {
            for i in 0..6 {
                let want = if i < 4 { src[i * 11 + p] } else { 0.0 };
                assert_eq!(dst[p * 6 + i], want, "p {p} i {i}");
            }
        }
    }
}
