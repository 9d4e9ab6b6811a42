use super::axis::{axes_of, cross, first_swept, spelled, Axis, Param};
use super::{checked_product, collect_checked, InputSpec, KindAxes, Workload, WorkloadKind};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{splitmix, Tensor};
use crate::verify::{relative_error, Verification, Verify, VerifyMethod, Worst, FULL_CHECK_MACS};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows (and columns) sampled in the large-size check.
const SAMPLED_LINES: usize = 6;

/// How B is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BLayout {
    /// B is K×N row-major (C = A·B).
    #[default]
    Kn,
    /// B is N×K row-major, i.e. C = A·Bᵀ: how LLM weight matrices are stored
    /// (`nn.Linear` keeps [out_features, in_features]).
    Nk,
}

spelled!(BLayout, "B layout" {
    Kn => "kn" | "nn" | "row",
    Nk => "nk" | "nt" | "weight" | "weights",
});

/// C[M×N] = A[M×K] · B, with B either K×N or N×K.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatmulSpec {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub dtype: DType,
    #[serde(default)]
    pub b_layout: BLayout,
}

impl MatmulSpec {
    /// Largest accepted relative error: the dtype's ([`DType::tolerance`]), except that f32
    /// grows with the reduction length. A correct kernel that accumulates each output in one
    /// f32 register over all of K (gpuvet's SIMT kernel does) reaches about 2⁻²⁴·√K under the
    /// error measure of `verify_output` (1.1e-5 at K = 32768 with an FMA chain), past the plain
    /// 1e-5. So f32 allows 4·2⁻²⁴·√K, from 1e-5 (up to K ≈ 1750) to at most 1e-4 (from K ≈
    /// 176k): still well below what TF32's rounding of the inputs costs (a relative error of
    /// about 1e-3 at the worst element), so TF32 passed off as f32 keeps failing.
    pub fn tolerance(&self) -> f64 {
        match self.dtype {
            DType::F32 => (4.0 * 2f64.powi(-24) * (self.k as f64).sqrt()).clamp(1e-5, 1e-4),
            d => d.tolerance(),
        }
    }

    pub fn new(m: u64, n: u64, k: u64, dtype: DType) -> Self {
        MatmulSpec {
            m,
            n,
            k,
            dtype,
            b_layout: BLayout::Kn,
        }
    }

    pub fn name(&self) -> String {
        format!(
            "matmul.{}.{}x{}x{}.{}",
            self.dtype,
            self.m,
            self.n,
            self.k,
            self.b_layout.name()
        )
    }

    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    pub fn bytes(&self) -> u64 {
        let ins = (self.m * self.k + self.k * self.n) * self.dtype.size();
        ins + self.m * self.n * self.dtype.matmul_output().size()
    }

    /// Shape of B as stored.
    pub fn b_shape(&self) -> [usize; 2] {
        match self.b_layout {
            BLayout::Kn => [self.k as usize, self.n as usize],
            BLayout::Nk => [self.n as usize, self.k as usize],
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.m == 0 || self.n == 0 || self.k == 0 {
            return Err(Error::invalid(format!(
                "matmul shape {}x{}x{}: M, N and K must each be at least 1",
                self.m, self.n, self.k
            )));
        }
        let what = format!("matmul shape {}x{}x{}", self.m, self.n, self.k);
        checked_product(&what, &[self.m, self.k])?;
        checked_product(&what, &[self.k, self.n])?;
        checked_product(&what, &[self.m, self.n])?;
        Ok(())
    }
}

/// The sweep parameters of a matmul, in the order charts look at them.
const MATMUL_PARAMS: [Param; 3] = [Param::M, Param::N, Param::K];

impl WorkloadKind for MatmulSpec {
    const KIND: &'static str = "matmul";
    fn result_dtype(&self) -> DType {
        self.dtype
    }
    fn buffer_bytes(&self) -> u64 {
        self.bytes()
    }
    fn test_key(&self) -> String {
        format!("matmul.{}", self.dtype.name())
    }
    /// `[A (M×K), B (K×N or N×K)]`.
    fn input_specs(&self) -> Vec<InputSpec> {
        vec![
            InputSpec::new("A", vec![self.m as usize, self.k as usize], self.dtype),
            InputSpec::new("B", self.b_shape().to_vec(), self.dtype),
        ]
    }
    fn output_len(&self) -> usize {
        (self.m * self.n) as usize
    }
    fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dtype", self.dtype.name().into()),
            ("layout", self.b_layout.name().into()),
            ("m", self.m.to_string()),
            ("n", self.n.to_string()),
            ("k", self.k.to_string()),
        ]
    }
    fn axis_value(&self, axis: Param) -> Option<u64> {
        match axis {
            Param::M => Some(self.m),
            Param::N => Some(self.n),
            Param::K => Some(self.k),
            _ => None,
        }
    }
    fn sweep_params(&self) -> &'static [Param] {
        &MATMUL_PARAMS
    }
}

/// The axes of a matmul sweep (a bench is one whose axes hold one value each). Expanded in
/// field order: dtype outermost, K fastest.
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulAxes {
    pub m: Axis,
    pub n: Axis,
    pub k: Axis,
    pub dtype: Vec<DType>,
    pub layout: Vec<BLayout>,
    /// Implementations to run at every point (`default`, `all` or names; empty = default),
    /// resolved per backend by the plan.
    pub implementation: Vec<String>,
}

impl KindAxes for MatmulAxes {
    axes_of!(MatmulSpec);

    fn expand(&self) -> Result<Vec<Workload>> {
        let lens = [
            self.dtype.len(),
            self.layout.len(),
            self.m.0.len(),
            self.n.0.len(),
            self.k.0.len(),
        ];
        collect_checked(cross(&lens).map(|ix| {
            Workload::Matmul(MatmulSpec {
                dtype: self.dtype[ix[0]],
                b_layout: self.layout[ix[1]],
                m: self.m.0[ix[2]],
                n: self.n.0[ix[3]],
                k: self.k.0[ix[4]],
            })
        }))
    }

    fn swept(&self) -> Option<Param> {
        first_swept(&MATMUL_PARAMS, |p| match p {
            Param::M => self.m.0.len(),
            Param::N => self.n.0.len(),
            _ => self.k.0.len(),
        })
    }
}

impl Verify for MatmulSpec {
    /// Small products in full; large ones by Freivalds' check of the whole product plus exact
    /// rows and columns sampled at the edges (where tiled kernels go wrong) and at random.
    fn verify_output(&self, inputs: &[Tensor], c: &Tensor, seed: u64) -> Verification {
        let (spec, a, b) = (self, &inputs[0], &inputs[1]);
        let (m, n) = (spec.m as usize, spec.n as usize);
        let tol = spec.tolerance();
        let a64 = a.to_f64();
        // Element-wise error: |C − R| / (|R| + sqrt(Σ_k (a·b)²)). The second term keeps the
        // measure meaningful where R happens to be near zero through cancellation.
        let check = |i: usize, j: usize| -> f64 {
            let (r, s) = matmul_element(spec, &a64, b, i, j);
            relative_error(spec.dtype, c.get(i * n + j) - r, r.abs() + s)
        };
        let macs = spec.m as u128 * spec.n as u128 * spec.k as u128;
        if macs <= FULL_CHECK_MACS {
            let worst = Worst::over((0..m).into_par_iter(), |w, i| {
                for j in 0..n {
                    w.see(check(i, j), || format!("C[{i}][{j}]"));
                }
            });
            return worst.finish(VerifyMethod::Full, tol);
        }
        let cells = sampled_cells(m, n, seed);
        let sampled = Worst::over(cells.par_iter(), |w, &(i, j)| {
            w.see(check(i, j), || format!("C[{i}][{j}]"));
        });
        sampled
            .merge(freivalds(spec, &a64, b, c, seed))
            .finish(VerifyMethod::FreivaldsSampled, tol)
    }
}

/// Sampled lines of an `m × n` output: first, last and random rows and columns (every cell of
/// each), to be checked exactly.
fn sampled_cells(m: usize, n: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(splitmix(seed));
    // Distinct lines, as many as asked for (or all there are), the first and last among them.
    let mut lines = |len: usize| {
        let mut set = std::collections::BTreeSet::from([0, len - 1]);
        while set.len() < SAMPLED_LINES.min(len) {
            set.insert(rng.random_range(0..len));
        }
        set
    };
    let rows = lines(m);
    let cols = lines(n);
    // Each cell once: a sampled column skips the cells its sampled rows already hold.
    let mut cells: Vec<(usize, usize)> = rows
        .iter()
        .flat_map(|&i| (0..n).map(move |j| (i, j)))
        .collect();
    cells.extend(
        cols.iter()
            .flat_map(|&j| (0..m).filter(|i| !rows.contains(i)).map(move |i| (i, j))),
    );
    cells
}

/// Freivalds: for random x, C·x must equal A·(B·x), two rounds. Integer x for int8 keeps it
/// exact. Its rows count as no checked elements (they are not outputs).
fn freivalds(spec: &MatmulSpec, a64: &[f64], b: &Tensor, c: &Tensor, seed: u64) -> Worst {
    let (m, n, k) = (spec.m as usize, spec.n as usize, spec.k as usize);
    let mut frei = Worst::new();
    for round in 0..2u64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(splitmix(seed ^ (round + 1)));
        let x: Vec<f64> = (0..n)
            .map(|_| {
                if spec.dtype == DType::Int8 {
                    rng.random_range(-8i32..=8) as f64
                } else {
                    rng.random_range(-1.0..1.0)
                }
            })
            .collect();
        let bx: Vec<f64> = (0..k)
            .into_par_iter()
            .map(|kk| (0..n).map(|j| b_at(spec, b, kk, j) * x[j]).sum())
            .collect();
        let mut w = Worst::over((0..m).into_par_iter(), |w, i| {
            let r: f64 = (0..k).map(|kk| a64[i * k + kk] * bx[kk]).sum();
            let (mut cx, mut scale) = (0.0, 0.0);
            for (j, xj) in x.iter().enumerate() {
                let t = c.get(i * n + j) * xj;
                cx += t;
                scale += t * t;
            }
            // Error of a sum of n independently rounded terms grows like its root-sum-square.
            let e = relative_error(spec.dtype, cx - r, scale.sqrt() + r.abs());
            w.see(e, || format!("row {i} of C·x (Freivalds round {round})"));
        });
        // Its rows are no output elements.
        w.checked = 0;
        frei = frei.merge(w);
    }
    frei
}

// f64 references: the ground truth every backend's output is compared with. Written for
// clarity, not speed; the verifier only calls them on small problems or on sampled rows and
// columns.

/// Accessor for B[k][j] whichever way B is stored.
#[inline]
pub fn b_at(spec: &MatmulSpec, b: &Tensor, k: usize, j: usize) -> f64 {
    match spec.b_layout {
        BLayout::Kn => b.get(k * spec.n as usize + j),
        BLayout::Nk => b.get(j * spec.k as usize + k),
    }
}

/// C[i][j] in f64, and the scale sqrt(Σ_k (a_ik·b_kj)²) the error is measured against.
pub fn matmul_element(spec: &MatmulSpec, a: &[f64], b: &Tensor, i: usize, j: usize) -> (f64, f64) {
    let k = spec.k as usize;
    let row = &a[i * k..(i + 1) * k];
    let mut sum = 0.0;
    let mut sq = 0.0;
    for (kk, &av) in row.iter().enumerate() {
        let t = av * b_at(spec, b, kk, j);
        sum += t;
        sq += t * t;
    }
    (sum, sq.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sampled lines are distinct, as many as there should be, and each cell is listed
    /// once (a sampled column's cells on a sampled row used to be checked and counted twice).
    #[test]
    fn sampled_cells_are_distinct_lines_each_cell_once() {
        for (m, n) in [(2, 2), (7, 5), (1000, 3), (4096, 4096)] {
            for seed in 0..50 {
                let cells = sampled_cells(m, n, seed);
                let unique: std::collections::BTreeSet<_> = cells.iter().collect();
                assert_eq!(unique.len(), cells.len(), "{m}x{n} seed {seed}");
                let rows = (0..m)
                    .filter(|&i| (0..n).all(|j| unique.contains(&(i, j))))
                    .count();
                let cols = (0..n)
                    .filter(|&j| (0..m).all(|i| unique.contains(&(i, j))))
                    .count();
                assert!(rows >= SAMPLED_LINES.min(m), "{m}x{n} seed {seed}: {rows}");
                assert!(cols >= SAMPLED_LINES.min(n), "{m}x{n} seed {seed}: {cols}");
                for c in [(0, 0), (m - 1, n - 1)] {
                    assert!(unique.contains(&c));
                }
            }
        }
    }

    /// f32 allows for a long K: one FMA chain per output over K = 131072 (what a SIMT kernel
    /// does) passes where 1e-5 would fail it; TF32 rounding of the inputs still fails.
    #[test]
    fn f32_tolerance_follows_k_and_still_catches_tf32() {
        assert_eq!(MatmulSpec::new(64, 64, 1024, DType::F32).tolerance(), 1e-5);
        assert_eq!(MatmulSpec::new(1, 1, 1 << 24, DType::F32).tolerance(), 1e-4);
        assert_eq!(
            MatmulSpec::new(1, 1, 1 << 24, DType::Bf16).tolerance(),
            1e-2
        );
        let spec = MatmulSpec::new(32, 32, 131072, DType::F32);
        let tol = spec.tolerance();
        assert!(tol > 8e-5 && tol < 9e-5, "{tol}");
        let inputs = spec.inputs(3);
        let (a, b) = (inputs[0].to_f32(), inputs[1].to_f32());
        let (m, n, k) = (32, 32, 131072);
        let b_at = |kk: usize, j: usize| match spec.b_layout {
            BLayout::Kn => b[kk * n + j],
            BLayout::Nk => b[j * k + kk],
        };
        let product = |round: &dyn Fn(f32) -> f32| -> Tensor {
            let mut c = vec![0f32; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0f32;
                    for kk in 0..k {
                        acc = round(a[i * k + kk]).mul_add(round(b_at(kk, j)), acc);
                    }
                    c[i * n + j] = acc;
                }
            }
            Tensor::from_f32("C", vec![m, n], DType::F32, &c)
        };
        let chain = spec.verify_output(&inputs, &product(&|x| x), 1);
        assert!(chain.passed, "{chain:?}");
        assert!(chain.max_rel_error > 1e-5, "{chain:?}");
        let tf32 = spec.verify_output(&inputs, &product(&|x| DType::Tf32.quantize(x)), 1);
        assert!(!tf32.passed && tf32.max_rel_error > 3.0 * tol, "{tf32:?}");
    }

    #[test]
    fn counts() {
        let m = MatmulSpec::new(2, 3, 4, DType::Bf16);
        assert_eq!(m.flops(), 48.0);
        // A 8 + B 12 elements at 2 bytes, C 6 bf16
        assert_eq!(m.bytes(), (8 + 12) * 2 + 6 * 2);
        let i = MatmulSpec::new(2, 3, 4, DType::Int8);
        assert_eq!(i.bytes(), 20 + 6 * 4);
        let f = MatmulSpec::new(2, 3, 4, DType::Fp8E4m3);
        assert_eq!(f.bytes(), 20 + 6 * 2);
        assert_eq!(m.name(), "matmul.bf16.2x3x4.kn");
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(MatmulSpec::new(0, 3, 4, DType::F32).validate().is_err());
        assert!(MatmulSpec::new(u64::MAX, u64::MAX, 4, DType::F32)
            .validate()
            .is_err());
        assert!(MatmulSpec::new(1 << 30, 1 << 30, 1, DType::F32)
            .validate()
            .is_err());
        assert!(MatmulSpec::new(1, 1, 1, DType::F32).validate().is_ok());
    }
}
