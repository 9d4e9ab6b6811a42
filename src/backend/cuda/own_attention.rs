//! gpuvet's own fused attention kernels: `flash` (prefill, `kernels/flash_fwd.cu`) and
//! `flash-decode` (split-KV decode with a combine step, `kernels/flash_decode.cu`), and the
//! same decode reading K and V from a paged cache, `flash-decode-paged16` / `-paged64`: the
//! contiguous inputs are scattered on the host into pages of 16 or 64 tokens in a seeded random
//! order (as a serving engine's cache ends up), so the workload, its inputs and its
//! verification stay those of `AttentionSpec`, and paged and contiguous runs must agree bit
//! for bit.
//!
//! Everything that decides how a kernel is launched (tile sizes, shared memory, grid, the
//! number of KV splits) is pure data computed by [`plan`] from the spec and the device's
//! [`Limits`], so it is unit-tested without a GPU; [`FlashRun`] only allocates, launches and
//! times what the plan says. Same conventions as the unfused run in `attention.rs`: rotating
//! buffer sets, the output poisoned before the verified run, CUDA-event timing.

use super::device::{DevBuf, Gpu, Props};
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel};
use super::row::{Built, PrepareCtx};
use super::run::{upload, Buffers, Exec, Output};
use crate::dtype::{AttentionPath, ComputeType, DType, OutType};
use crate::error::{Error, Result};
use crate::workload::{AttentionSpec, DECODE_MAX_Q_LEN};
use std::borrow::Cow;

/// Implementation name of the fused prefill kernel.
pub const PREFILL_IMPL: &str = "flash";
/// Implementation name of the split-KV decode kernel.
pub const DECODE_IMPL: &str = "flash-decode";
/// Implementation names of the paged decode, page sizes 16 and 64.
pub const PAGED16_IMPL: &str = "flash-decode-paged16";
pub const PAGED64_IMPL: &str = "flash-decode-paged64";
/// Seed of the block table's page order.
pub const BLOCK_TABLE_SEED: u64 = 0x5eed_9a9e;

/// Threads per block of every kernel here (4 warps).
pub const THREADS: u32 = 128;
/// Query rows per prefill block (16 per warp), as compiled into `flash_fwd.cu`.
pub const PREFILL_ROWS: u64 = 64;
/// Packed query rows per decode block: the M of one mma.sync tile.
pub const DECODE_ROWS: u64 = 16;
/// Keys per K/V tile, both kernels.
pub const KEYS_PER_TILE: u64 = 64;
/// Fewest keys a decode split gets: below this the fixed cost of a split (loading Q, merging
/// the warps, writing and combining a partial) outweighs the parallelism it adds.
pub const MIN_KEYS_PER_SPLIT: u64 = 256;
/// Most decode splits; the combine kernel reads every split's log-sum-exp once per column.
pub const MAX_SPLITS: u64 = 256;
/// Resident decode blocks per SM the split count aims to fill, at most (the register budget
/// of ~155 registers × 128 threads allows 3 per SM).
pub const MAX_DECODE_BLOCKS_PER_SM: u64 = 3;
/// Head dimensions compiled.
pub const HEAD_DIMS: [u64; 2] = [64, 128];

/// Which of the two kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prefill,
    Decode,
    /// Decode from a paged KV cache with this many tokens per page.
    DecodePaged(u64),
}

impl Kind {
    /// The implementation name (`--impl`, reports).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Prefill => PREFILL_IMPL,
            Kind::Decode => DECODE_IMPL,
            Kind::DecodePaged(16) => PAGED16_IMPL,
            Kind::DecodePaged(_) => PAGED64_IMPL,
        }
    }

    fn is_decode(self) -> bool {
        self != Kind::Prefill
    }
}

/// What the plan needs to know about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub cc: (i32, i32),
    pub sms: u32,
    /// Largest dynamic shared memory one block may opt in to.
    pub smem_per_block_optin: u64,
    pub smem_per_sm: u64,
}

impl Limits {
    pub fn of(p: &Props) -> Limits {
        Limits {
            cc: p.cc,
            sms: p.sms,
            smem_per_block_optin: p.sm.smem_per_block_optin,
            smem_per_sm: p.sm.smem,
        }
    }
}

/// One kernel launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub kernel: KernelId,
    pub grid: (u32, u32, u32),
    pub block: u32,
    /// Dynamic shared memory, bytes.
    pub smem: u32,
}

/// The launch dimensions of `l`.
fn dims_of(l: &Launch) -> Dims {
    Dims {
        grid: l.grid,
        block: l.block,
        smem: l.smem,
    }
}

impl Launch {
    pub fn blocks(&self) -> u64 {
        self.grid.0 as u64 * self.grid.1 as u64 * self.grid.2 as u64
    }
}

/// How decode cuts the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub splits: u64,
    /// Keys per split, a multiple of [`KEYS_PER_TILE`]; the last split may be shorter.
    pub chunk: u64,
}

/// How a paged run lays out K and V.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page_size: u64,
    pub pages_per_seq: u64,
    /// Bytes of one pool (K or V): [B·pages per sequence, page size, Hkv, D].
    pub pool_bytes: u64,
    /// Bytes of the block table: int32 [B, pages per sequence].
    pub table_bytes: u64,
}

/// Everything needed to run one spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FlashPlan {
    pub kind: Kind,
    pub main: Launch,
    /// Packed rows per (batch, KV head): (Hq/Hkv)·Lq.
    pub rows: u64,
    /// Softmax scale 1/√D times log2(e): the kernels exponentiate in base 2.
    pub scale_log2: f32,
    /// Decode only: how the keys are split and the splits combined.
    pub decode: Option<DecodePlan>,
}

/// What a decode plan adds to the main launch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodePlan {
    /// The combine kernel, one block per packed row.
    pub combine: Launch,
    pub split: Split,
    /// Partial O (f32) and log-sum-exp (f32) of every split.
    pub partial_bytes: u64,
    /// Paged decode only.
    pub paging: Option<Paging>,
}

impl FlashPlan {
    pub fn split(&self) -> Option<Split> {
        self.decode.map(|d| d.split)
    }

    pub fn combine(&self) -> Option<Launch> {
        self.decode.map(|d| d.combine)
    }

    pub fn paging(&self) -> Option<Paging> {
        self.decode.and_then(|d| d.paging)
    }

    /// Bytes of the decode partials (0 for prefill).
    pub fn partial_bytes(&self) -> u64 {
        self.decode.map_or(0, |d| d.partial_bytes)
    }
}

/// The paged decode kernel for `dtype` and head dim `d` (both already accepted by
/// [`kernels_for`]).
fn paged_kernel(dtype: DType, d: u64) -> KernelId {
    match (dtype, d) {
        (DType::Bf16, 64) => KernelId::FlashDecodePagedBf16D64,
        (DType::Bf16, _) => KernelId::FlashDecodePagedBf16D128,
        (_, 64) => KernelId::FlashDecodePagedF16D64,
        _ => KernelId::FlashDecodePagedF16D128,
    }
}

fn kernels_for(dtype: DType, d: u64) -> Result<(KernelId, KernelId, KernelId)> {
    use KernelId as K;
    Ok(match (dtype, d) {
        (DType::Bf16, 64) => (
            K::FlashFwdBf16D64,
            K::FlashDecodeBf16D64,
            K::FlashCombineBf16,
        ),
        (DType::Bf16, 128) => (
            K::FlashFwdBf16D128,
            K::FlashDecodeBf16D128,
            K::FlashCombineBf16,
        ),
        (DType::F16, 64) => (K::FlashFwdF16D64, K::FlashDecodeF16D64, K::FlashCombineF16),
        (DType::F16, 128) => (
            K::FlashFwdF16D128,
            K::FlashDecodeF16D128,
            K::FlashCombineF16,
        ),
        (dtype, d) => {
            return Err(not_compiled(
                "flash attention",
                "f16 and bf16 (tensor cores)",
                dtype,
                d,
            ))
        }
    })
}

/// The refusal of a flash kernel family (`who`, which `runs` 16-bit types) for a dtype or head
/// dim it is not compiled for.
pub fn not_compiled(who: &str, runs: &str, dtype: DType, d: u64) -> Error {
    let [d0, d1] = HEAD_DIMS;
    Error::unsupported(if matches!(dtype, DType::Bf16 | DType::F16) {
        format!("{who} is compiled for head dims {d0} and {d1}, not {d}; use `unfused`")
    } else {
        format!("{who} runs {runs}, not {dtype}; use `unfused`")
    })
}

/// Dynamic shared memory of one block: the Q tile plus double-buffered K and V tiles.
pub fn smem_bytes(kind: Kind, head_dim: u64) -> u64 {
    let q_rows = match kind {
        Kind::Prefill => PREFILL_ROWS,
        Kind::Decode | Kind::DecodePaged(_) => DECODE_ROWS,
    };
    (q_rows + 4 * KEYS_PER_TILE) * head_dim * 2
}

/// Wave efficiency a split count must reach, relative to the best one, to be chosen: the
/// smallest split count within 90% of the best is taken (fewer splits: less combine work and
/// fewer partial writes). FlashAttention-3's `num_splits_heuristic` uses 85%; decode here is
/// bound by memory bandwidth and a split costs little, so idle slots weigh more.
pub const SPLIT_EFFICIENCY: f64 = 0.9;

/// Share of the last wave that is busy when `blocks` blocks run `slots` at a time:
/// waves / ⌈waves⌉ (1.0 for whole waves; 448 blocks on 396 slots: 0.57).
pub fn wave_efficiency(blocks: u64, slots: u64) -> f64 {
    let waves = blocks as f64 / slots.max(1) as f64;
    waves / waves.ceil().max(1.0)
}

/// The decode split, wave-aware: among the split counts that change the chunk (whole K/V
/// tiles, no split shorter than [`MIN_KEYS_PER_SPLIT`] keys unless the keys are fewer, at most
/// [`MAX_SPLITS`]), the smallest whose last wave is at least [`SPLIT_EFFICIENCY`] as full as
/// the best's, counting `blocks_per_sm` resident blocks on each of `sms` SMs. Grids that already
/// fill 80% of the slots are not split.
pub fn decode_split(kv_len: u64, base_blocks: u64, sms: u32, blocks_per_sm: u64) -> Split {
    let slots = sms as u64 * blocks_per_sm.max(1);
    let base = base_blocks.max(1);
    let tiles = kv_len.div_ceil(KEYS_PER_TILE).max(1);
    let whole = |tiles_per_split: u64| Split {
        splits: tiles.div_ceil(tiles_per_split),
        chunk: tiles_per_split * KEYS_PER_TILE,
    };
    if base * 10 >= slots * 8 {
        return whole(tiles);
    }
    let most = kv_len
        .div_ceil(MIN_KEYS_PER_SPLIT)
        .clamp(1, MAX_SPLITS)
        .min(tiles);
    // Each distinct chunk once: split counts that round to the same tiles per split are one.
    let mut options: Vec<Split> = (1..=most).map(|s| whole(tiles.div_ceil(s))).collect();
    options.dedup();
    let eff = |s: &Split| wave_efficiency(base * s.splits, slots);
    let best = options.iter().map(eff).fold(0.0, f64::max);
    options
        .into_iter()
        .find(|s| eff(s) >= SPLIT_EFFICIENCY * best)
        .unwrap_or_else(|| whole(tiles))
}

fn fits(what: &str, v: u64, max: u64) -> Result<u32> {
    if v > max {
        return Err(Error::unsupported(format!(
            "flash attention: {what} ({v}) exceeds the launch limit {max}"
        )));
    }
    Ok(v as u32)
}

/// The launches for `a` with `kind` on a device with `lim`, or why it cannot run there.
pub fn plan(a: &AttentionSpec, kind: Kind, lim: &Limits) -> Result<FlashPlan> {
    if lim.cc.0 < 8 {
        return Err(Error::unsupported(format!(
            "flash attention needs compute capability 8.0 or newer (mma.sync bf16, cp.async); this GPU is {}.{}",
            lim.cc.0, lim.cc.1
        )));
    }
    let (fwd, dec, comb) = kernels_for(a.dtype, a.head_dim)?;
    check_kind(a, kind)?;
    let i32_max = i32::MAX as u64;
    fits("q length", a.q_len, i32_max)?;
    fits("kv length", a.kv_len, i32_max)?;
    fits("q heads", a.q_heads, i32_max)?;
    let smem = smem_bytes(kind, a.head_dim);
    if smem > lim.smem_per_block_optin {
        return Err(Error::unsupported(format!(
            "flash attention with head dim {} needs {smem} bytes of shared memory per block; this GPU allows {}",
            a.head_dim, lim.smem_per_block_optin
        )));
    }
    let scale_log2 = (a.scale() * std::f64::consts::LOG2_E) as f32;
    let rows = (a.q_heads / a.kv_heads) * a.q_len;
    match kind {
        Kind::Prefill => Ok(FlashPlan {
            kind,
            main: Launch {
                kernel: fwd,
                grid: (
                    fits("query tiles", a.q_len.div_ceil(PREFILL_ROWS), i32_max)?,
                    fits("q heads", a.q_heads, 65535)?,
                    fits("batch", a.batch, 65535)?,
                ),
                block: THREADS,
                smem: smem as u32,
            },
            rows,
            scale_log2,
            decode: None,
        }),
        Kind::Decode | Kind::DecodePaged(_) => {
            let row_blocks = rows.div_ceil(DECODE_ROWS);
            let bkv = a.batch * a.kv_heads;
            let resident = (lim.smem_per_sm / smem).clamp(1, MAX_DECODE_BLOCKS_PER_SM);
            let split = decode_split(a.kv_len, bkv * row_blocks, lim.sms, resident);
            let partials = bkv * split.splits * rows;
            let paging = paging_for(a, kind)?;
            let kernel = match kind {
                Kind::DecodePaged(_) => paged_kernel(a.dtype, a.head_dim),
                _ => dec,
            };
            Ok(FlashPlan {
                kind,
                main: Launch {
                    kernel,
                    grid: (
                        split.splits as u32,
                        fits("decode row blocks", row_blocks, 65535)?,
                        fits("batch × kv heads", bkv, 65535)?,
                    ),
                    block: THREADS,
                    smem: smem as u32,
                },
                rows,
                scale_log2,
                decode: Some(DecodePlan {
                    combine: Launch {
                        kernel: comb,
                        grid: (fits("decode rows", bkv * rows, i32_max)?, 1, 1),
                        block: THREADS,
                        smem: 0,
                    },
                    split,
                    partial_bytes: partials * a.head_dim * 4 + partials * 4,
                    paging,
                }),
            })
        }
    }
}

/// Refuses a kernel kind that does not suit the query length, or a page size without a kernel.
fn check_kind(a: &AttentionSpec, kind: Kind) -> Result<()> {
    match kind {
        Kind::Prefill if a.q_len <= DECODE_MAX_Q_LEN => {
            return Err(Error::unsupported(format!(
                "`{PREFILL_IMPL}` is the prefill kernel (q length > {DECODE_MAX_Q_LEN}); q length {} is decode: use `{DECODE_IMPL}`",
                a.q_len
            )))
        }
        k if k.is_decode() && a.q_len > DECODE_MAX_Q_LEN => {
            return Err(Error::unsupported(format!(
                "`{}` takes q length ≤ {DECODE_MAX_Q_LEN}; q length {} is prefill: use `{PREFILL_IMPL}`",
                k.name(),
                a.q_len
            )))
        }
        Kind::DecodePaged(p) if p != 16 && p != 64 => {
            return Err(Error::unsupported(format!(
                "paged decode uses pages of 16 or 64 tokens, not {p}"
            )))
        }
        _ => {}
    }
    Ok(())
}

/// The paged-KV layout of a paged decode (pool and block-table sizes), `None` otherwise.
fn paging_for(a: &AttentionSpec, kind: Kind) -> Result<Option<Paging>> {
    let i32_max = i32::MAX as u64;
    Ok(match kind {
        Kind::DecodePaged(page_size) => {
            let pages_per_seq = a.kv_len.div_ceil(page_size);
            fits("pages", a.batch * pages_per_seq, i32_max)?;
            Some(Paging {
                page_size,
                pages_per_seq,
                pool_bytes: a.batch
                    * pages_per_seq
                    * page_size
                    * a.kv_heads
                    * a.head_dim
                    * a.dtype.size(),
                table_bytes: a.batch * pages_per_seq * 4,
            })
        }
        _ => None,
    })
}

/// Device bytes a run allocates.
pub fn memory_needed(a: &AttentionSpec, p: &FlashPlan, sets: usize) -> u64 {
    let sets = sets.max(1) as u64;
    // A pool is the contiguous K (or V) plus the padding of each sequence's last page.
    let paged = p.paging().map_or(0, |g| {
        2 * (g.pool_bytes - a.elem_bytes_kv()) * sets + g.table_bytes
    });
    a.bytes() * sets + p.partial_bytes() + paged
}

/// [`memory_needed`] of the plan `kind` makes for `a` on the device of `props`; where it makes
/// none (its check refuses the workload first), the buffer sets alone.
pub fn memory_planned(a: &AttentionSpec, kind: Kind, props: &Props, sets: usize) -> u64 {
    match plan(a, kind, &Limits::of(props)) {
        Ok(p) => memory_needed(a, &p, sets),
        Err(_) => a.bytes() * sets.max(1) as u64,
    }
}

/// A block table: the page ids 0 .. batch·pages_per_seq in a seeded random order (Fisher–Yates
/// with splitmix64), so each sequence's pages are scattered over the pool as in a serving
/// engine's cache, and the kernel cannot get the right answer by reading pages in order.
pub fn block_table(batch: u64, pages_per_seq: u64, seed: u64) -> Vec<i32> {
    let n = (batch * pages_per_seq) as usize;
    let mut t: Vec<i32> = (0..n as i32).collect();
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        t.swap(i, j);
    }
    t
}

/// Scatters K or V [B, Hkv, Lkv, D] (raw bytes) into a pool [pages, page size, Hkv, D] along
/// `table` ([B, pages per sequence]); slots past the last key stay zero.
pub fn to_pages(kv: &[u8], a: &AttentionSpec, g: &Paging, table: &[i32]) -> Vec<u8> {
    let row = (a.head_dim * a.dtype.size()) as usize;
    let (hkv, lkv, page) = (a.kv_heads as usize, a.kv_len as usize, g.page_size as usize);
    let pps = g.pages_per_seq as usize;
    let mut pool = vec![0u8; g.pool_bytes as usize];
    for b in 0..a.batch as usize {
        for h in 0..hkv {
            for key in 0..lkv {
                let src = ((b * hkv + h) * lkv + key) * row;
                let pg = table[b * pps + key / page] as usize;
                let dst = ((pg * page + key % page) * hkv + h) * row;
                pool[dst..dst + row].copy_from_slice(&kv[src..src + row]);
            }
        }
    }
    pool
}

/// The output type of the fused kernels: O in the input dtype (bf16 or f16).
pub fn out_type(dtype: DType) -> OutType {
    match dtype {
        DType::Bf16 => OutType::Bf16,
        _ => OutType::F16,
    }
}

/// What a causal prefill result says about the work it counts.
pub const CAUSAL_SKIP_NOTE: &str =
    "causal: key tiles past each query tile's diagonal are skipped; FLOP/s counts visible pairs only";

/// The prepared run of `kind`'s kernel on `spec`.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, spec: &AttentionSpec, kind: Kind) -> Built<'a> {
    let gpu = ctx.gpu;
    let plan = plan(spec, kind, &Limits::of(&gpu.props))?;
    let out = out_type(spec.dtype);
    gpu.ensure_fits(memory_needed(spec, &plan, ctx.sets))?;
    let [q, k, v] = super::attention::qkv(spec, ctx.inputs)?;
    // Compile and configure before allocating, so a compile error costs nothing.
    let main = Kernel::load_with_smem(gpu, plan.main.kernel, plan.main.smem)?;
    // Paged: K and V scattered into pools once on the host, uploaded to every set.
    let paging = plan.paging();
    let table = paging.map(|g| block_table(spec.batch, g.pages_per_seq, BLOCK_TABLE_SEED));
    let kv: [Cow<[u8]>; 2] = match (&paging, &table) {
        (Some(g), Some(t)) => [k, v].map(|x| Cow::Owned(to_pages(x, spec, g, t))),
        _ => [k, v].map(Cow::Borrowed),
    };
    let decode = match plan.decode {
        Some(d) => Some(DecodeRun::new(gpu, spec, d, table.as_deref())?),
        None => None,
    };
    let kv_bytes = paging.map_or(spec.elem_bytes_kv(), |g| g.pool_bytes);
    let layout = super::attention::set_layout(spec, q, kv, kv_bytes)?;
    let exec = FlashRun {
        spec: spec.clone(),
        plan,
        main,
        decode,
        out,
    };
    ctx.run(exec, layout)
}

/// What a decode run adds: the combine kernel, the split partials it reads, and for a paged
/// cache the block table on the device.
struct DecodeRun {
    plan: DecodePlan,
    combine: Kernel,
    part_o: DevBuf,
    part_lse: DevBuf,
    table: Option<DevBuf>,
}

impl DecodeRun {
    fn new(gpu: &Gpu, a: &AttentionSpec, plan: DecodePlan, table: Option<&[i32]>) -> Result<Self> {
        let lse_bytes = plan.partial_bytes / (a.head_dim + 1);
        let table: Option<Vec<u8>> =
            table.map(|t| t.iter().flat_map(|x| x.to_le_bytes()).collect());
        Ok(DecodeRun {
            plan,
            combine: Kernel::load(gpu, plan.combine.kernel)?,
            part_o: gpu.alloc((plan.partial_bytes - lse_bytes) as usize)?,
            part_lse: gpu.alloc(lse_bytes as usize)?,
            table: table.map(|t| upload(gpu, &t)).transpose()?,
        })
    }
}

/// A prepared `flash`, `flash-decode` or paged decode run.
pub struct FlashRun {
    spec: AttentionSpec,
    plan: FlashPlan,
    main: Kernel,
    decode: Option<DecodeRun>,
    out: OutType,
}

impl FlashRun {
    /// The arguments every kernel here takes after its pointers.
    fn with_dims(&self, args: Args) -> Args {
        super::attention::dim_args(args, &self.spec, self.plan.scale_log2)
    }

    /// The split-KV kernel into the partials, then the combine kernel into O.
    fn enqueue_decode(&self, gpu: &Gpu, set: &Buffers, d: &DecodeRun) -> Result<()> {
        let [q, k, v] = super::attention::inputs3(set);
        let mut args = Args::new().ptr(q).ptr(k).ptr(v);
        if let Some(t) = &d.table {
            args = args.buf(t);
        }
        args = self.with_dims(args.buf(&d.part_o).buf(&d.part_lse));
        args = args.i32(d.plan.split.chunk as i32);
        if let Some(g) = d.plan.paging {
            args = args.i32(g.pages_per_seq as i32).i32(g.page_size as i32);
        }
        // SAFETY: the arguments follow gv_flash_decode_*(const u16*×3, float*×2, int×5, float,
        // int) or gv_flash_decode_paged_*(const u16*×3, const int*, float*×2, int×5, float,
        // int×3); buffers sized by the plan, alive as long as the run.
        unsafe { launch(gpu, &self.main, dims_of(&self.plan.main), args)? };
        let args = Args::new()
            .buf(&d.part_o)
            .buf(&d.part_lse)
            .buf(&set.output)
            .i32(self.plan.rows as i32)
            .i32(d.plan.split.splits as i32)
            .i32(self.spec.head_dim as i32);
        // SAFETY: the arguments follow gv_flash_decode_combine_*(const float*×2, u16*, int×3).
        unsafe { launch(gpu, &d.combine, dims_of(&d.plan.combine), args) }
    }
}

impl Exec for FlashRun {
    fn enqueue(&self, gpu: &Gpu, set: &Buffers) -> Result<()> {
        if let Some(d) = &self.decode {
            return self.enqueue_decode(gpu, set, d);
        }
        let [q, k, v] = super::attention::inputs3(set);
        // No log-sum-exp output: a null pointer.
        let args = Args::new().ptr(q).ptr(k).ptr(v).buf(&set.output).ptr(0);
        // SAFETY: the arguments follow gv_flash_fwd_*(const u16*×3, u16*, float*, int×5,
        // float); buffers sized from the spec, alive as long as the run.
        unsafe {
            launch(
                gpu,
                &self.main,
                dims_of(&self.plan.main),
                self.with_dims(args),
            )
        }
    }

    fn output(&self) -> Output {
        super::attention::output(&self.spec, self.out)
    }

    /// Both partials of the split-KV decode: a split that wrote no output or no log-sum-exp
    /// leaves NaN (0xFF bytes) for the combine to read, never the last run's values.
    fn poison_scratch(&self, gpu: &Gpu) -> Result<()> {
        match &self.decode {
            Some(d) => {
                d.part_o.fill(gpu, 0xFF)?;
                d.part_lse.fill(gpu, 0xFF)
            }
            None => Ok(()),
        }
    }

    fn compute_dtype(&self) -> ComputeType {
        ComputeType::Attention {
            inputs: self.spec.dtype,
            path: AttentionPath::FusedMma,
        }
    }

    fn notes(&self, _gpu: &Gpu) -> Vec<String> {
        notes(&self.spec, &self.plan)
    }
}

/// What a result of `p` says about how it ran.
pub fn notes(a: &AttentionSpec, p: &FlashPlan) -> Vec<String> {
    let main = dims_of(&p.main);
    let mut n = vec![super::attention::launch_note(
        p.kind.name(),
        &main,
        "S never in memory",
    )];
    if let Some(s) = p.split() {
        n.push(format!(
            "{} KV splits of {} keys, {} packed query rows per KV head ({} q heads × q length {}), then a combine kernel",
            s.splits,
            s.chunk,
            p.rows,
            a.q_heads / a.kv_heads,
            a.q_len
        ));
    }
    if let Some(g) = p.paging() {
        n.push(format!(
            "paged KV: {} pages of {} tokens per sequence in random order (block table), pools [pages, {}, {}, {}]",
            g.pages_per_seq, g.page_size, g.page_size, a.kv_heads, a.head_dim
        ));
    }
    if a.causal && p.kind == Kind::Prefill {
        n.push(CAUSAL_SKIP_NOTE.into());
    }
    n
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The reference H200's limits, shared with flash_sm90's tests.
    pub(crate) const H200: Limits = Limits {
        cc: (9, 0),
        sms: 132,
        smem_per_block_optin: 232_448,
        smem_per_sm: 233_472,
    };
    const L4: Limits = Limits {
        cc: (8, 9),
        sms: 58,
        smem_per_block_optin: 101_376,
        smem_per_sm: 102_400,
    };

    /// Causal GQA with 32 query and 8 KV heads: the shapes the plans are tested on, shared
    /// with flash_sm90's tests.
    pub(crate) fn gqa(batch: u64, q_len: u64, kv_len: u64, d: u64, dtype: DType) -> AttentionSpec {
        AttentionSpec {
            batch,
            q_heads: 32,
            kv_heads: 8,
            q_len,
            kv_len,
            head_dim: d,
            causal: true,
            dtype,
        }
    }

    fn spec(q_len: u64, kv_len: u64, d: u64, dtype: DType) -> AttentionSpec {
        gqa(2, q_len, kv_len, d, dtype)
    }

    #[test]
    fn prefill_grid_covers_every_query_row() {
        for (lq, tiles) in [(9, 1), (64, 1), (65, 2), (1000, 16), (4097, 65)] {
            let p = plan(&spec(lq, 4097, 128, DType::Bf16), Kind::Prefill, &H200).unwrap();
            assert_eq!(p.main.grid, (tiles, 32, 2), "q length {lq}");
            assert!(p.main.grid.0 as u64 * PREFILL_ROWS >= lq);
            assert!((p.main.grid.0 as u64 - 1) * PREFILL_ROWS < lq);
            assert_eq!(p.main.kernel, KernelId::FlashFwdBf16D128);
            assert_eq!(p.main.smem, (64 + 4 * 64) * 128 * 2);
            assert!(p.combine().is_none() && p.split().is_none());
            assert_eq!(p.partial_bytes(), 0);
        }
        let p = plan(&spec(100, 100, 64, DType::F16), Kind::Prefill, &L4).unwrap();
        assert_eq!(p.main.kernel, KernelId::FlashFwdF16D64);
        assert_eq!(p.main.smem, 40_960);
        // 1/√64 · log2 e
        assert!((p.scale_log2 - 0.125 * std::f32::consts::LOG2_E).abs() < 1e-7);
    }

    #[test]
    fn refusals_say_why() {
        let msg = |a: &AttentionSpec, k: Kind, l: &Limits| plan(a, k, l).unwrap_err().to_string();
        assert!(msg(&spec(64, 64, 96, DType::Bf16), Kind::Prefill, &H200)
            .contains("head dims 64 and 128"));
        assert!(msg(&spec(64, 64, 128, DType::F32), Kind::Prefill, &H200).contains("f16 and bf16"));
        assert!(msg(&spec(4, 64, 128, DType::Bf16), Kind::Prefill, &H200).contains(DECODE_IMPL));
        assert!(msg(&spec(16, 64, 128, DType::Bf16), Kind::Decode, &H200).contains(PREFILL_IMPL));
        let turing = Limits { cc: (7, 5), ..L4 };
        assert!(msg(&spec(64, 64, 128, DType::F16), Kind::Prefill, &turing).contains("8.0"));
        let small = Limits {
            smem_per_block_optin: 49_152,
            ..L4
        };
        assert!(
            msg(&spec(64, 64, 128, DType::Bf16), Kind::Prefill, &small).contains("shared memory")
        );
        assert!(plan(&spec(64, 64, 64, DType::Bf16), Kind::Prefill, &small).is_ok());
        let mut wide = spec(64, 64, 64, DType::Bf16);
        wide.batch = 70_000;
        assert!(msg(&wide, Kind::Prefill, &H200).contains("batch"));
        for e in [
            plan(&spec(64, 64, 96, DType::Bf16), Kind::Prefill, &H200).unwrap_err(),
            plan(&spec(64, 64, 128, DType::F32), Kind::Decode, &H200).unwrap_err(),
        ] {
            assert!(matches!(e, Error::Unsupported(_)), "{e}");
        }
    }

    #[test]
    fn splits_cover_the_keys_in_whole_tiles() {
        for kv in [1u64, 17, 63, 64, 65, 255, 1000, 4097, 32_768, 131_072] {
            for base in [1u64, 8, 64, 500, 10_000] {
                for sms in [58u32, 108, 132] {
                    let s = decode_split(kv, base, sms, 3);
                    assert_eq!(s.chunk % KEYS_PER_TILE, 0);
                    assert!(s.splits >= 1 && s.splits <= MAX_SPLITS);
                    assert!(s.splits * s.chunk >= kv, "{kv} {base} {sms}: {s:?}");
                    assert!((s.splits - 1) * s.chunk < kv, "empty split: {kv} {s:?}");
                    if s.splits > 1 {
                        assert!(s.chunk >= MIN_KEYS_PER_SPLIT, "{kv} {s:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn splits_fill_the_gpu_when_batch_is_small() {
        // Llama-3-8B decode, batch 1, 32k keys: 8 KV heads × 1 row block = 8 blocks without
        // splitting; 132 SMs × 3 resident blocks: the split fills most of one wave.
        let s = decode_split(32_768, 8, 132, 3);
        assert!(wave_efficiency(8 * s.splits, 396) >= 0.8, "{s:?}");
        assert!(s.splits * 8 <= 396, "more than one wave: {s:?}");
        // Batch 256 already gives 2048 blocks: no split.
        assert_eq!(decode_split(32_768, 2048, 132, 3).splits, 1);
        // Short caches are not cut below MIN_KEYS_PER_SPLIT.
        assert_eq!(decode_split(300, 1, 132, 3).splits, 2);
        assert_eq!(
            decode_split(1, 1, 132, 3),
            Split {
                splits: 1,
                chunk: 64
            }
        );
    }

    #[test]
    fn splits_avoid_a_mostly_empty_last_wave() {
        // The review's case: batch 8 × 8 KV heads = 64 blocks, 32k keys. The fill-once rule
        // took 7 splits = 448 blocks = 1.13 waves of 396 (last wave 13% busy).
        assert!(wave_efficiency(448, 396) < 0.6);
        for (kv, base) in [
            (32_768u64, 64u64),
            (8192, 64),
            (131_072, 8),
            (16_384, 32),
            (4096, 24),
        ] {
            let s = decode_split(kv, base, 132, 3);
            let e = wave_efficiency(base * s.splits, 396);
            assert!(e >= 0.8, "kv {kv} base {base}: {s:?} efficiency {e:.2}");
            // Never worse than the old fill-once split's last wave.
            assert!(s.splits * s.chunk >= kv && (s.splits - 1) * s.chunk < kv);
        }
        // The same choices as tools/kernel-emu/decode.py's mirror of this function.
        let split = |splits, chunk| Split { splits, chunk };
        assert_eq!(decode_split(32_768, 64, 132, 3), split(6, 5504));
        assert_eq!(decode_split(1100, 16, 40, 3), split(5, 256));
        assert_eq!(decode_split(700, 2, 8, 3), split(3, 256));
        assert!((wave_efficiency(396, 396) - 1.0).abs() < 1e-12);
        assert!((wave_efficiency(198, 396) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn decode_plan_packs_gqa_rows() {
        // 4 q heads per KV head × 2 positions = 8 packed rows: one 16-row block.
        let mut a = spec(2, 32_768, 128, DType::Bf16);
        a.batch = 1;
        let p = plan(&a, Kind::Decode, &H200).unwrap();
        assert_eq!(p.rows, 8);
        let s = p.split().unwrap();
        assert_eq!(p.main.grid, (s.splits as u32, 1, 8));
        assert_eq!(p.main.kernel, KernelId::FlashDecodeBf16D128);
        assert_eq!(p.main.smem, (16 + 4 * 64) * 128 * 2);
        let c = p.combine().unwrap();
        assert_eq!(
            (c.kernel, c.grid),
            (KernelId::FlashCombineBf16, (8 * 8, 1, 1))
        );
        let partials = 8 * s.splits * 8;
        assert_eq!(p.partial_bytes(), partials * 128 * 4 + partials * 4);
        assert!(memory_needed(&a, &p, 2) == 2 * a.bytes() + p.partial_bytes());
        // 32 q heads on one KV head (MQA) × 8 positions = 256 rows: 16 row blocks.
        let mut m = spec(8, 1000, 64, DType::F16);
        m.kv_heads = 1;
        let p = plan(&m, Kind::Decode, &L4).unwrap();
        assert_eq!(p.rows, 256);
        assert_eq!(p.main.grid.1, 16);
        assert_eq!(p.main.grid.2, 2);
        assert_eq!(p.combine().unwrap().kernel, KernelId::FlashCombineF16);
        let n = notes(&m, &p);
        assert!(n.iter().any(|l| l.contains("KV splits")), "{n:?}");
    }

    #[test]
    fn paged_plan_sizes_pools_and_table() {
        let mut a = spec(1, 1000, 128, DType::Bf16);
        a.batch = 3;
        let contiguous = plan(&a, Kind::Decode, &H200).unwrap();
        for page in [16u64, 64] {
            let p = plan(&a, Kind::DecodePaged(page), &H200).unwrap();
            let g = p.paging().unwrap();
            assert_eq!(g.pages_per_seq, 1000u64.div_ceil(page));
            assert_eq!(g.pool_bytes, 3 * g.pages_per_seq * page * 8 * 128 * 2);
            assert!(g.pool_bytes >= a.elem_bytes_kv());
            assert_eq!(g.table_bytes, 3 * g.pages_per_seq * 4);
            assert_eq!(p.main.kernel, KernelId::FlashDecodePagedBf16D128);
            // Same splits as the contiguous run: the results must agree bit for bit.
            assert_eq!(p.split(), contiguous.split());
            assert_eq!(p.main.grid, contiguous.main.grid);
            assert_eq!(
                memory_needed(&a, &p, 2),
                memory_needed(&a, &contiguous, 2)
                    + 4 * (g.pool_bytes - a.elem_bytes_kv())
                    + g.table_bytes
            );
            assert!(notes(&a, &p).iter().any(|n| n.contains("paged KV")));
        }
        let e = plan(&a, Kind::DecodePaged(32), &H200).unwrap_err();
        assert!(e.to_string().contains("16 or 64"), "{e}");
        let e = plan(&spec(9, 100, 64, DType::F16), Kind::DecodePaged(16), &H200).unwrap_err();
        assert!(e.to_string().contains(PAGED16_IMPL), "{e}");
    }

    #[test]
    fn block_table_is_a_seeded_permutation() {
        let t = block_table(4, 63, BLOCK_TABLE_SEED);
        let mut sorted = t.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..4 * 63).collect::<Vec<i32>>());
        assert_eq!(t, block_table(4, 63, BLOCK_TABLE_SEED));
        assert_ne!(t, block_table(4, 63, BLOCK_TABLE_SEED + 1));
        // Scattered: far from the identity.
        let in_place = t
            .iter()
            .enumerate()
            .filter(|(i, &p)| *i as i32 == p)
            .count();
        assert!(in_place < 10, "{in_place} pages in place");
        assert_eq!(block_table(1, 1, 7), vec![0]);
    }

    #[test]
    fn pages_gather_back_to_the_contiguous_cache() {
        let mut a = spec(1, 37, 64, DType::F16);
        a.batch = 2;
        a.kv_heads = 3;
        let kv: Vec<u8> = (0..a.elem_bytes_kv())
            .map(|i| (i % 251) as u8 + 1)
            .collect();
        for page in [16u64, 64] {
            let p = plan(&a, Kind::DecodePaged(page), &H200).unwrap();
            let g = p.paging().unwrap();
            let t = block_table(a.batch, g.pages_per_seq, 11);
            let pool = to_pages(&kv, &a, &g, &t);
            assert_eq!(pool.len() as u64, g.pool_bytes);
            // Gather exactly as the kernel addresses a key.
            let row = (a.head_dim * 2) as usize;
            let mut back = vec![0u8; kv.len()];
            for b in 0..2usize {
                for h in 0..3usize {
                    for key in 0..37usize {
                        let pg = t[b * g.pages_per_seq as usize + key / page as usize] as usize;
                        let src = ((pg * page as usize + key % page as usize) * 3 + h) * row;
                        let dst = ((b * 3 + h) * 37 + key) * row;
                        back[dst..dst + row].copy_from_slice(&pool[src..src + row]);
                    }
                }
            }
            assert_eq!(back, kv);
            // The padding of each last page stays zero; nothing else is zero here.
            let zeros = pool.iter().filter(|&&x| x == 0).count() as u64;
            assert_eq!(zeros, g.pool_bytes - a.elem_bytes_kv());
        }
    }
}
