// Hopper GEMM (sm_90a only): C[M,N] = A[M,K] · B with wgmma.mma_async from shared memory, TMA
// loads into an mbarrier ring, a producer warpgroup and two consumer warpgroups, a persistent
// grid walking the output tiles in L2-friendly groups. Inputs bf16, f16 or fp8 e4m3; f32
// accumulation; C written in the workload's output type (bf16 → bf16, f16 → f16, e4m3 → bf16,
// the same as matmul_mma.cu and the cuBLASLt reference).
//
// One CTA = 384 threads = 3 warpgroups, one CTA per SM (≈194 KiB of dynamic shared memory):
// - warpgroup 0, the producer: gives registers back (setmaxnreg.dec 40); one thread walks the
//   CTA's tiles and K steps, waits for a free stage (empty barrier), announces the stage's bytes
//   (mbarrier.arrive.expect_tx) and issues the TMA loads, which complete the transaction on the
//   stage's full barrier. The tensor maps (host, cuTensorMapEncodeTiled) use 128-byte swizzle
//   and zero fill: a box that sticks out of A or B arrives with zeros there, so the main loop
//   has no tail code at all.
// - warpgroups 1 and 2, the consumers (setmaxnreg.inc 232): consumer c owns rows 64c..64c+63
//   of the 128-row tile; per stage it waits on the full barrier, issues 4 wgmma (K 16 each for
//   16-bit, 32 for fp8) from shared-memory descriptors, waits for them and releases the stage
//   (lane 0 of each of its 4 warps arrives on the empty barrier: count 8).
// - fp8: each stage's 4 wgmma start a fresh accumulator (scale-d 0 on the first) which is then
//   added to an f32 register total — the promotion DeepGEMM uses so that the tensor core's
//   reduced-precision fp8 accumulation never spans more than 128 products.
// - epilogue: the accumulator fragment (row 16w + lane/4 + 8h, column 8i + 2(lane%4) + c) is
//   converted with cvt.rn and stored straight to global memory, two outputs per 32-bit store,
//   guarded against M and N (the producer meanwhile already loads the next tile's stages).
//
// Tiles: 128×256 (16-bit, 4 stages of 48 KiB) or 128×128 (fp8, 6 stages of 32 KiB: the
// promotion doubles the accumulator registers). Each stage holds 128 bytes of K per row, one
// 128-byte swizzle row: 64 elements of 16-bit types, 128 of fp8.
// B layouts: `nk` (N×K, K-major, like A) for every type; `kn` (K×N, N contiguous) for 16-bit
// types through MN-major descriptors (imm-trans-b = 1), loaded as BN/64 boxes of 64 N × 64 K;
// fp8 wgmma reads K-major operands only, so the host uploads a `kn` fp8 B transposed.
//
// Not here yet (docs/perf/matmul.md, the ladder): 2×1 cluster multicast of the B tile (needs a
// cluster launch through cuLaunchKernelEx, cluster-scope empty barriers counting the peer's
// consumers, and remote arrives — none of which the launch path or the models cover today), a
// stmatrix + TMA-store epilogue, and keeping one wgmma batch in flight across stages.
//
// The index arithmetic (tile order, stage/phase counters, descriptors, fragment, tails) is
// replayed by tools/kernel-emu/wgmma_gemm.py against f64 references; the layouts come from
// tools/kernel-emu/hopper.py.

#include "gpuvet_sm90.cuh"

#if !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "matmul_wgmma.cu is for sm_90a only (wgmma, setmaxnreg): its kernel table row says so"
#endif

#define WG_BM 128
#define WG_THREADS 384
#define WG_GROUP_M 16
#define WG_ROW_BYTES 128
#define WG_CONSUMER_WARPS 8

#define WG_BF16 0
#define WG_F16 1
#define WG_E4M3 2

// Per input kind: element size, tile width, ring depth.
template <int KIND> struct WgCfg;
template <> struct WgCfg<WG_BF16> { enum { ESZ = 2, BN = 256, STAGES = 4 }; };
template <> struct WgCfg<WG_F16> { enum { ESZ = 2, BN = 256, STAGES = 4 }; };
template <> struct WgCfg<WG_E4M3> { enum { ESZ = 1, BN = 128, STAGES = 6 }; };

__device__ __forceinline__ int cdiv(int a, int b) { return (a + b - 1) / b; }

// An output tile: its tile row and tile column.
struct Tile {
    int m, n;
};

// Tile `t` of the persistent walk: tiles are taken in groups of WG_GROUP_M tile rows, column
// by column inside a group, so the CTAs working at the same time share A rows and B columns
// in L2.
__device__ __forceinline__ Tile tile_of(int t, int tiles_m, int tiles_n) {
    const int per_group = WG_GROUP_M * tiles_n;
    const int g = t / per_group;
    const int first = g * WG_GROUP_M;
    const int rows = min(tiles_m - first, WG_GROUP_M);
    const int r = t - g * per_group;
    return {first + r % rows, r / rows};
}

template <int KIND, bool B_KN, int R>
__device__ __forceinline__ void mma_stage(float (&d)[R], u64 da, u64 db, int scale_d) {
    if constexpr (KIND == WG_E4M3) {
        if constexpr (R == 64) wgmma_ss_e4m3_n128(d, da, db, scale_d);
    } else if constexpr (KIND == WG_BF16) {
        if constexpr (R == 128) wgmma_ss_bf16_n256<B_KN ? 1 : 0>(d, da, db, scale_d);
    } else {
        if constexpr (R == 128) wgmma_ss_f16_n256<B_KN ? 1 : 0>(d, da, db, scale_d);
    }
}

// Columns c and c + 1 of `row`, guarded; one 32-bit store when both are inside and N is even.
__device__ __forceinline__ void store_pair(u16* row, int c, int N, float x0, float x1, bool bf16) {
    const u16 v0 = bf16 ? f32_to_16<true>(x0) : f32_to_16<false>(x0);
    const u16 v1 = bf16 ? f32_to_16<true>(x1) : f32_to_16<false>(x1);
    store_pair_guarded(row, c, N, v0, v1, (u32)v0 | ((u32)v1 << 16));
}

// Position in the stage ring shared by the producer and the consumers: the stage, its full and
// empty barriers, and the parity of the ring pass (flips each time the ring wraps).
template <int STAGES>
struct RingPos {
    int s = 0;
    u32 phase = 0;
    __device__ __forceinline__ u32 full(u32 bars) const { return bars + 8 * s; }
    __device__ __forceinline__ u32 empty(u32 bars) const { return bars + 8 * (STAGES + s); }
    __device__ __forceinline__ void advance() {
        if (++s == STAGES) {
            s = 0;
            phase ^= 1;
        }
    }
};

// Epilogue of consumer `cons`: its 64×BN accumulator fragment (row 16w + lane/4 + 8h, column
// 8i + 2(lane%4) + c of register 4i + 2h + c) converted and stored, guarded against M and N.
template <int BN>
__device__ __forceinline__ void store_tile(const float (&v)[BN / 2], u16* C, int M, int N, int tm, int tn,
                                           int cons, bool bf16) {
    const int lane = threadIdx.x & 31;
    const int warp = (threadIdx.x >> 5) & 3;
    const int row0 = tm * WG_BM + cons * 64 + warp * 16 + (lane >> 2);
    const int col0 = tn * BN + 2 * (lane & 3);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = row0 + 8 * h;
        if (r >= M) continue;
        u16* crow = C + (u64)r * (u64)N;
#pragma unroll
        for (int i = 0; i < BN / 8; ++i)
            store_pair(crow, col0 + 8 * i, N, v[4 * i + 2 * h], v[4 * i + 2 * h + 1], bf16);
    }
}

template <int KIND, bool B_KN>
__device__ __forceinline__ void producer(const TensorMap* tmA, const TensorMap* tmB, u32 sA, u32 sB,
                                         u32 bars, int tiles_m, int tiles_n, int ktiles) {
    typedef WgCfg<KIND> C;
    constexpr int BKE = WG_ROW_BYTES / C::ESZ;  // K elements per stage
    constexpr u32 A_STAGE = WG_BM * WG_ROW_BYTES;
    constexpr u32 B_STAGE = C::BN * WG_ROW_BYTES;
    RingPos<C::STAGES> pos;
    for (int t = blockIdx.x; t < tiles_m * tiles_n; t += gridDim.x) {
        const auto [tm, tn] = tile_of(t, tiles_m, tiles_n);
        for (int kt = 0; kt < ktiles; ++kt) {
            const int s = pos.s;
            const u32 full = pos.full(bars);
            // Parity phase ^ 1: on the first pass over the ring this passes at once.
            mbar_wait(pos.empty(bars), pos.phase ^ 1);
            mbar_arrive_expect_tx(full, A_STAGE + B_STAGE);
            tma_load_2d(sA + s * A_STAGE, tmA, kt * BKE, tm * WG_BM, full);
            if (!B_KN) {
                tma_load_2d(sB + s * B_STAGE, tmB, kt * BKE, tn * C::BN, full);
            } else {
                // 64 N (128 bytes) × 64 K per box; box j holds columns 64j..64j+63.
#pragma unroll
                for (int j = 0; j < C::BN / 64; ++j)
                    tma_load_2d(sB + s * B_STAGE + j * (BKE * WG_ROW_BYTES), tmB, tn * C::BN + 64 * j,
                                kt * BKE, full);
            }
            pos.advance();
        }
    }
}

template <int KIND, bool B_KN>
__device__ __forceinline__ void consumer(u32 sA, u32 sB, u32 bars, u16* C, int M, int N, int tiles_m,
                                         int tiles_n, int ktiles, int cons) {
    typedef WgCfg<KIND> Cf;
    constexpr int BN = Cf::BN;
    constexpr int R = BN / 2;  // accumulator registers per thread
    constexpr int BKE = WG_ROW_BYTES / Cf::ESZ;
    constexpr u32 A_STAGE = WG_BM * WG_ROW_BYTES;
    constexpr u32 B_STAGE = BN * WG_ROW_BYTES;
    constexpr bool FP8 = KIND == WG_E4M3;
    const int lane = threadIdx.x & 31;
    float acc[R];
    float tot[FP8 ? R : 1];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.f;
    RingPos<Cf::STAGES> pos;
    for (int t = blockIdx.x; t < tiles_m * tiles_n; t += gridDim.x) {
        const auto [tm, tn] = tile_of(t, tiles_m, tiles_n);
        for (int kt = 0; kt < ktiles; ++kt) {
            const int s = pos.s;
            mbar_wait(pos.full(bars), pos.phase);
            const u32 a = sA + s * A_STAGE + cons * (64 * WG_ROW_BYTES);
            const u32 b = sB + s * B_STAGE;
            fence_regs(acc);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                const u64 da = desc_sw128(a + kk * 32, 16, 1024);
                // K-major B: 32 bytes of K per step; MN-major B: 16 K rows of 128 bytes per
                // step, boxes of 64 columns BKE rows apart (LBO), 8-row atoms 1024 B apart (SBO).
                const u64 db = B_KN ? desc_sw128(b + kk * 16 * WG_ROW_BYTES, BKE * WG_ROW_BYTES, 1024)
                                    : desc_sw128(b + kk * 32, 16, 1024);
                const int scale_d = FP8 ? (kk > 0) : (kt > 0 || kk > 0);
                mma_stage<KIND, B_KN, R>(acc, da, db, scale_d);
            }
            wgmma_commit();
            wgmma_wait<0>();
            fence_regs(acc);
            // This warp's wgmma reads of the stage are done: release it to the producer.
            if (lane == 0) mbar_arrive(pos.empty(bars));
            if constexpr (FP8) {
#pragma unroll
                for (int i = 0; i < R; ++i) tot[i] = (kt == 0 ? 0.f : tot[i]) + acc[i];
            }
            pos.advance();
        }
        if constexpr (FP8) {
            store_tile<BN>(tot, C, M, N, tm, tn, cons, true);
        } else {
            store_tile<BN>(acc, C, M, N, tm, tn, cons, KIND == WG_BF16);
        }
    }
}

template <int KIND, bool B_KN>
__device__ __forceinline__ void wgmma_gemm(const TensorMap* tmA, const TensorMap* tmB, void* Cv, int M,
                                           int N, int K) {
    typedef WgCfg<KIND> Cf;
    constexpr u32 A_STAGE = WG_BM * WG_ROW_BYTES;
    constexpr u32 B_STAGE = Cf::BN * WG_ROW_BYTES;
    extern __shared__ __align__(1024) unsigned char wg_smem[];
    // 128-byte swizzle atoms must start on 1024-byte boundaries: round the base up (the host
    // asks for 1 KiB more than the stages need).
    const u32 base = (smem_addr(wg_smem) + 1023u) & ~1023u;
    const u32 sA = base;
    const u32 sB = base + Cf::STAGES * A_STAGE;
    const u32 bars = sB + Cf::STAGES * B_STAGE;
    if (threadIdx.x == 0) {
#pragma unroll
        for (int s = 0; s < Cf::STAGES; ++s) {
            mbar_init(bars + 8 * s, 1);                                   // full: the producer
            mbar_init(bars + 8 * (Cf::STAGES + s), WG_CONSUMER_WARPS);    // empty: 8 warps
        }
        mbar_fence_init();
        tma_prefetch_map(tmA);
        tma_prefetch_map(tmB);
    }
    __syncthreads();
    const int tiles_m = cdiv(M, WG_BM);
    const int tiles_n = cdiv(N, Cf::BN);
    const int ktiles = cdiv(K, WG_ROW_BYTES / Cf::ESZ);
    const int wg = threadIdx.x >> 7;
    if (wg == 0) {
        setmaxnreg_dec<40>();
        if (threadIdx.x == 0) producer<KIND, B_KN>(tmA, tmB, sA, sB, bars, tiles_m, tiles_n, ktiles);
    } else {
        setmaxnreg_inc<232>();
        consumer<KIND, B_KN>(sA, sB, bars, (u16*)Cv, M, N, tiles_m, tiles_n, ktiles, wg - 1);
    }
}

// Dynamic shared memory per kind (the host's table in src/backend/cuda/wgmma.rs must match):
// STAGES × (A 16 KiB + B BN × 128 B) + 1 KiB alignment slack + 256 B of barriers = 197 888 B.
// Grid: min(tiles, SMs) CTAs of 384 threads; parameters (tmA, tmB, C, M, N, K).
#define GV_WGMMA_KERNEL(NAME, KIND, KN)                                                        \
    extern "C" __global__ void __launch_bounds__(WG_THREADS, 1)                               \
        NAME(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB,    \
             void* __restrict__ C, int M, int N, int K) {                                     \
        wgmma_gemm<KIND, KN>(&tmA, &tmB, C, M, N, K);                                         \
    }

extern "C" __global__ void matmul_wgmma_bf16_nk(const __grid_constant__ TensorMap tmA,
    const __grid_constant__ TensorMap tmB, void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_wgmma_bf16_kn(const __grid_constant__ TensorMap tmA,
    const __grid_constant__ TensorMap tmB, void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_wgmma_f16_nk(const __grid_constant__ TensorMap tmA,
    const __grid_constant__ TensorMap tmB, void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_wgmma_f16_kn(const __grid_constant__ TensorMap tmA,
    const __grid_constant__ TensorMap tmB, void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_wgmma_e4m3_nk(const __grid_constant__ TensorMap tmA,
    const __grid_constant__ TensorMap tmB, void* __restrict__ C, int M, int N, int K);

GV_WGMMA_KERNEL(matmul_wgmma_bf16_nk, WG_BF16, false)
GV_WGMMA_KERNEL(matmul_wgmma_bf16_kn, WG_BF16, true)
GV_WGMMA_KERNEL(matmul_wgmma_f16_nk, WG_F16, false)
GV_WGMMA_KERNEL(matmul_wgmma_f16_kn, WG_F16, true)
GV_WGMMA_KERNEL(matmul_wgmma_e4m3_nk, WG_E4M3, false)
