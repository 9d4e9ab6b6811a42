// bf16 / f16 GEMM on tensor cores through mma.sync (sm_80+): C[M,N] = A[M,K] · B with fp32
// accumulation, C written in the input type (bf16 → bf16, f16 → f16). All matrices row-major;
// B either K×N ("kn") or N×K ("nk", the weight layout of LLMs).
//
// Structure (one CTA = 8 warps = 256 threads, tile BM×BN, K steps of 32):
// - global → shared with cp.async.cg 16-byte copies into a STAGES-deep ring (3 or 4 stages), so
//   the loads of K tile t+STAGES-1 are in flight while tile t is multiplied. Out-of-range chunks
//   are zero-filled by cp.async's src-size operand (0 bytes read), so tails cost no branches in
//   the inner loop. When a row length is not a multiple of 16 bytes, rows are not 16-byte
//   aligned and cp.async cannot be used: that operand is loaded with guarded element loads
//   into registers one K tile ahead (issued before the tile's MMAs, stored to shared memory
//   after them), so the loads' latency hides behind a tile of tensor-core work.
// - every address and predicate that does not change with K is computed once per CTA (row
//   pointers, chunk offsets, ldmatrix lane offsets); the aligned/ragged paths are template
//   instantiations, so the main loop of the aligned one carries no per-chunk branches.
// - decode shapes (M ≤ 64): the `_splitk` kernels split K over blockIdx.z and write f32/s32
//   partials; matmul_splitk_reduce_* sums them into C.
// - shared layout XOR-swizzled per 16-byte chunk so that both the cp.async stores and the
//   ldmatrix reads (8 rows of one chunk column) hit 8 different bank groups.
// - fragments by ldmatrix.x4 (A and nk-B) or ldmatrix.x4.trans (kn-B, stored k-major), then
//   mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.
// - epilogue: fp32 → 16-bit with cvt.rn, guarded stores, two values per 32-bit store when N is
//   even.
//
// 16-bit values are handled as `unsigned short` bits and everything tensor-core related is
// inline PTX: NVRTC 13 has no built-in cuda_fp16.h / cuda_bf16.h; the only #include is gpuvet's
// own gpuvet_ptx.cuh, handed to NVRTC in memory.

#include "gpuvet_ptx.cuh"

#define BK_BYTES 64
#define THREADS 256

// The fragment loads in this file's array form.
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], u32 addr) {
    ldsm_x4(addr, r[0], r[1], r[2], r[3]);
}

__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], u32 addr) {
    ldsm_x4_t(addr, r[0], r[1], r[2], r[3]);
}

// What the kernel multiplies: the inputs' element type, the mma instruction, the accumulator
// and the output. 16-bit kinds step K by 16 per mma, 8-bit kinds by 32: 32 bytes either way, so
// the shared-memory layout, the swizzle and the ldmatrix addressing are the same in bytes.
#define KIND_BF16 0
#define KIND_F16 1
#define KIND_S8 2
#define KIND_E4M3 3
#define KIND_TF32 4

template <int KIND> struct Kind;
template <> struct Kind<KIND_BF16> { typedef float Acc; typedef u16 Out; enum { ESZ = 2 }; };
template <> struct Kind<KIND_F16> { typedef float Acc; typedef u16 Out; enum { ESZ = 2 }; };
template <> struct Kind<KIND_S8> { typedef int Acc; typedef int Out; enum { ESZ = 1 }; };
// fp8 writes bf16 (what inference stacks keep; DType::matmul_output).
template <> struct Kind<KIND_E4M3> { typedef float Acc; typedef u16 Out; enum { ESZ = 1 }; };
// tf32: f32 in memory, 8 K elements per 32 bytes (m16n8k8), f32 out. The operands are rounded
// to tf32 once, when the host uploads them (own_matmul.rs), not per use in the inner loop: the
// tensor core reads the top 19 bits, which after rounding hold the whole value.
template <> struct Kind<KIND_TF32> { typedef float Acc; typedef float Out; enum { ESZ = 4 }; };

template <int KIND>
__device__ __forceinline__ void mma_op(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    if (KIND == KIND_BF16 || KIND == KIND_F16) {
        mma16816<KIND == KIND_BF16>(c, a, b0, b1);
    } else if (KIND == KIND_TF32) {
        GV_MMA_SYNC("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", "+f", c, a, b0, b1);
    } else {
#if __CUDA_ARCH__ >= 890
        GV_MMA_SYNC("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32", "+f", c, a, b0, b1);
#else
        // fp8 mma.sync needs sm_89; the host never launches this kernel on older GPUs.
        asm volatile("trap;");
#endif
    }
}

template <int KIND>
__device__ __forceinline__ void mma_op(int (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    GV_MMA_SYNC("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", "+r", c, a, b0, b1);
}

// Stores two adjacent outputs (columns c and c + 1 of `row`), guarded; one 32- or 64-bit store
// when both are inside and N is even (so the pair is aligned).
template <int KIND>
__device__ __forceinline__ void store2(u16* row, int c, int N, float x0, float x1) {
    const u16 v0 = f32_to_16<KIND != KIND_F16>(x0);
    const u16 v1 = f32_to_16<KIND != KIND_F16>(x1);
    store_pair_guarded(row, c, N, v0, v1, (u32)v0 | ((u32)v1 << 16));
}

template <int KIND>
__device__ __forceinline__ void store2(float* row, int c, int N, float x0, float x1) {
    store_pair_guarded(row, c, N, x0, x1, make_float2(x0, x1));
}

template <int KIND>
__device__ __forceinline__ void store2(int* row, int c, int N, int x0, int x1) {
    store_pair_guarded(row, c, N, x0, x1, make_int2(x0, x1));
}

// Byte offset of 16-byte chunk `c` of row `r` in a tile whose rows hold CHUNKS chunks. Rows of
// 4 chunks (64 bytes): two rows share a 128-byte bank line, so the key is (r / 2) % 4; rows of
// 8 or 16 chunks: the key is r % 8 (within each group of 8 chunks).
template <int CHUNKS>
__device__ __forceinline__ int swz(int r, int c) {
    const int key = CHUNKS == 4 ? ((r >> 1) & 3) : (r & 7);
    return (r * CHUNKS + (c ^ key)) * 16;
}

// Where one thread's 16-byte chunks of an operand tile come from and go to, computed once per
// CTA: the row pointer (at k = 0) and whether the row exists, the first column, and the
// swizzled shared-memory offset inside a stage. Per K tile only the column moves.
template <int N>
struct Chunks {
    const unsigned char* row[N];  // element (r, 0) of the row; nullptr when r is outside
    int col[N];                   // column of the chunk's first element at k tile 0
    int dst[N];                   // byte offset in the stage
};

// Fills `ch` for a tile of ROWS rows × CPR 16-byte chunks whose rows are `cols` elements long
// (row-major source, leading dimension `cols`), starting at row r0; the tile's chunk (r, c) is
// handled by thread (r * CPR + c) % THREADS. `k_rows` = true when the tile's rows run along K
// (A and nk-B: chunk columns are K); false for kn-B (tile rows are K, chunk columns are N).
template <int ESZ, int ROWS, int CPR, int N>
__device__ __forceinline__ void plan_chunks(Chunks<N>& ch, const unsigned char* g, int rows, int cols,
                                            int r0, int c0, int tid) {
#pragma unroll
    for (int i = 0; i < N; ++i) {
        const int id = tid + i * THREADS;
        const int r = id / CPR, c = id % CPR;
        const bool inside = id < ROWS * CPR && r0 + r < rows;
        ch.row[i] = inside ? g + (u64)(r0 + r) * (u64)cols * ESZ : nullptr;
        ch.col[i] = c0 + c * (16 / ESZ);
        ch.dst[i] = id < ROWS * CPR ? swz<CPR>(r, c) : -1;
    }
}

// The 16 bytes at column `c` of `row` (cols elements long), zeros past the end, with guarded
// element loads: for rows that are not 16-byte aligned (cp.async cannot read them).
template <int ESZ>
__device__ __forceinline__ uint4 load16_guarded(const unsigned char* row, int c, int cols) {
    u32 w[4] = {0u, 0u, 0u, 0u};
    if (row != nullptr) {
#pragma unroll
        for (int e = 0; e < 16 / ESZ; ++e) {
            if (c + e < cols) {
                const u32 v = ESZ == 4   ? ((const u32*)row)[c + e]
                              : ESZ == 2 ? (u32)((const u16*)row)[c + e]
                                         : (u32)row[c + e];
                w[(e * ESZ) >> 2] |= v << (((e * ESZ) & 3) * 8);
            }
        }
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// One operand's loader. VEC (rows 16-byte aligned): cp.async.cg 16 bytes per chunk, zero-fill
// past the matrix, asynchronous. !VEC: guarded element loads into registers (`fetch`), issued
// one K tile ahead and written to shared memory after the tile's MMAs (`put`), so their
// latency hides behind a K tile of tensor-core work instead of stalling every step.
template <int ESZ, int N, bool VEC>
struct Loader {
    Chunks<N> ch;
    uint4 held[VEC ? 1 : N];

    // cp.async of K tile `dk` (column offset in elements) into the stage at `stage` (VEC only).
    __device__ __forceinline__ void async(unsigned char* stage, int dk, int cols) {
#pragma unroll
        for (int i = 0; i < N; ++i) {
            if (ch.dst[i] < 0) continue;
            const int c = ch.col[i] + dk;
            const bool ok = ch.row[i] != nullptr && c < cols;
            cp_async16(smem_addr(stage + ch.dst[i]), ok ? ch.row[i] + (u64)c * ESZ : ch.row[i],
                       ok ? 16u : 0u);
        }
    }
    __device__ __forceinline__ void fetch(int dk, int cols) {
#pragma unroll
        for (int i = 0; i < N; ++i)
            if (ch.dst[i] >= 0) held[VEC ? 0 : i] = load16_guarded<ESZ>(ch.row[i], ch.col[i] + dk, cols);
    }
    __device__ __forceinline__ void put(unsigned char* stage) {
#pragma unroll
        for (int i = 0; i < N; ++i)
            if (ch.dst[i] >= 0) *(uint4*)(stage + ch.dst[i]) = held[VEC ? 0 : i];
    }
};

// Loader for kn-B: tile rows are K (moving), chunk columns are N (fixed): the row pointer moves
// by dk rows instead of the column.
template <int ESZ, int N, bool VEC>
struct LoaderKn {
    const unsigned char* base;  // B
    int rowk[N], col[N], dst[N];
    uint4 held[VEC ? 1 : N];
    __device__ __forceinline__ void async(unsigned char* stage, int dk, int K, int Ncols) {
#pragma unroll
        for (int i = 0; i < N; ++i) {
            if (dst[i] < 0) continue;
            const int k = rowk[i] + dk;
            const bool ok = k < K && col[i] < Ncols;
            const unsigned char* src = base + ((u64)k * (u64)Ncols + col[i]) * ESZ;
            cp_async16(smem_addr(stage + dst[i]), ok ? src : base, ok ? 16u : 0u);
        }
    }
    __device__ __forceinline__ void fetch(int dk, int K, int Ncols) {
#pragma unroll
        for (int i = 0; i < N; ++i) {
            if (dst[i] < 0) continue;
            const int k = rowk[i] + dk;
            held[VEC ? 0 : i] =
                load16_guarded<ESZ>(k < K ? base + (u64)k * (u64)Ncols * ESZ : nullptr, col[i], Ncols);
        }
    }
    __device__ __forceinline__ void put(unsigned char* stage) {
#pragma unroll
        for (int i = 0; i < N; ++i)
            if (dst[i] >= 0) *(uint4*)(stage + dst[i]) = held[VEC ? 0 : i];
    }
};

// The GEMM of one CTA over K tiles [kt0, kt1). A_VEC / B_VEC: the operand's rows are 16-byte
// aligned (cp.async); otherwise register prefetch. SPLIT: write f32 / s32 partials of this K
// range to P[blockIdx.z] (split-K for decode shapes) instead of converting to C.
template <int BM, int BN, int WARPS_M, int STAGES, int KIND, bool B_NK, bool A_VEC, bool B_VEC, bool SPLIT>
__device__ __forceinline__ void mma_gemm(unsigned char* smem, const void* __restrict__ Av,
                                         const void* __restrict__ Bv, void* __restrict__ Cv, int M, int N,
                                         int K, int kt0, int kt1) {
    typedef typename Kind<KIND>::Acc Acc;
    typedef typename Kind<KIND>::Out Out;
    constexpr int ESZ = Kind<KIND>::ESZ;
    constexpr int BKE = BK_BYTES / ESZ;  // K elements per stage
    static_assert(ESZ == 2 || B_NK, "8-bit and tf32 kinds take B as N×K only");
    constexpr int WARPS_N = (THREADS / 32) / WARPS_M;
    constexpr int WTM = BM / WARPS_M;  // warp tile rows
    constexpr int WTN = BN / WARPS_N;  // warp tile columns
    constexpr int MI = WTM / 16;       // m16 tiles per warp
    constexpr int NJ = WTN / 8;        // n8 tiles per warp
    static_assert(MI >= 1 && NJ >= 2 && NJ % 2 == 0, "warp tile must be 16 x 16k");
    constexpr int A_TILE = BM * BK_BYTES;  // bytes per stage
    constexpr int B_TILE = BN * BK_BYTES;
    constexpr int A_PER = (A_TILE / 16 + THREADS - 1) / THREADS;  // chunks per thread
    constexpr int B_PER = (B_TILE / 16 + THREADS - 1) / THREADS;
    constexpr int CPR_KN = BN * ESZ / 16;  // chunks per k row of a kn-B tile

    const unsigned char* A = (const unsigned char*)Av;
    const unsigned char* B = (const unsigned char*)Bv;

    unsigned char* sA = smem;
    unsigned char* sB = smem + STAGES * A_TILE;

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wm = warp / WARPS_N;
    const int wn = warp % WARPS_N;
    const int row0 = blockIdx.y * BM;
    const int col0 = blockIdx.x * BN;

    Loader<ESZ, A_PER, A_VEC> la;
    plan_chunks<ESZ, BM, 4, A_PER>(la.ch, A, M, K, row0, 0, tid);
    Loader<ESZ, B_PER, B_VEC> lb;
    LoaderKn<ESZ, B_PER, B_VEC> lbk;
    if constexpr (B_NK) {
        plan_chunks<ESZ, BN, 4, B_PER>(lb.ch, B, N, K, col0, 0, tid);
    } else {
        lbk.base = B;
#pragma unroll
        for (int i = 0; i < B_PER; ++i) {
            const int id = tid + i * THREADS;
            const int r = id / CPR_KN, c = id % CPR_KN;
            lbk.rowk[i] = r;
            lbk.col[i] = col0 + c * (16 / ESZ);
            lbk.dst[i] = id < B_TILE / 16 ? swz<CPR_KN>(r, c) : -1;
        }
    }
    // Loads K tile `kt` into `stage`: cp.async for vectorised operands; for the others the
    // registers fetched earlier (`put`) — `fetch_regs` issues those loads.
    auto issue_async = [&](int stage, int kt) {
        const int dk = kt * BKE;
        if constexpr (A_VEC) la.async(sA + stage * A_TILE, dk, K);
        if constexpr (B_VEC) {
            if constexpr (B_NK) lb.async(sB + stage * B_TILE, dk, K);
            else lbk.async(sB + stage * B_TILE, dk, K, N);
        }
    };
    auto fetch_regs = [&](int kt) {
        const int dk = kt * BKE;
        if constexpr (!A_VEC) la.fetch(dk, K);
        if constexpr (!B_VEC) {
            if constexpr (B_NK) lb.fetch(dk, K);
            else lbk.fetch(dk, K, N);
        }
    };
    auto put_regs = [&](int stage) {
        if constexpr (!A_VEC) la.put(sA + stage * A_TILE);
        if constexpr (!B_VEC) {
            if constexpr (B_NK) lb.put(sB + stage * B_TILE);
            else lbk.put(sB + stage * B_TILE);
        }
    };

    // ldmatrix lane offsets inside a stage, the same for every K tile.
    u32 a_off[MI][BK_BYTES / 32];
    u32 b_off[NJ / 2][BK_BYTES / 32];
#pragma unroll
    for (int kk = 0; kk < BK_BYTES / 32; ++kk) {
#pragma unroll
        for (int i = 0; i < MI; ++i)
            a_off[i][kk] = swz<4>(wm * WTM + i * 16 + (lane & 15), kk * 2 + (lane >> 4));
#pragma unroll
        for (int j2 = 0; j2 < NJ / 2; ++j2) {
            if constexpr (B_NK) {
                b_off[j2][kk] = swz<4>(wn * WTN + j2 * 16 + (lane & 7) + ((lane >> 4) << 3),
                                       kk * 2 + ((lane >> 3) & 1));
            } else {
                b_off[j2][kk] = swz<CPR_KN>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                            (wn * WTN + j2 * 16) / 8 + (lane >> 4));
            }
        }
    }

    Acc acc[MI][NJ][4];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NJ; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (kt0 + s < kt1) {
            issue_async(s, kt0 + s);
            fetch_regs(kt0 + s);
            put_regs(s);
        }
        cp_async_commit();
    }

    for (int kt = kt0; kt < kt1; ++kt) {
        const int it = kt - kt0;
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        // The stage written in this iteration was last read in iteration kt - 1; the barrier
        // above ordered every warp's reads of it before these writes.
        const int nt = kt + STAGES - 1;
        const int nstage = (it + STAGES - 1) % STAGES;
        if (nt < kt1) {
            issue_async(nstage, nt);
            fetch_regs(nt);  // register loads in flight during this tile's MMAs
        }
        cp_async_commit();
        const int stage = it % STAGES;
        const u32 a_base = smem_addr(sA + stage * A_TILE);
        const u32 b_base = smem_addr(sB + stage * B_TILE);
        // Each step covers 32 bytes of K: 16 elements of 16-bit kinds, 32 of 8-bit ones, 8 of
        // tf32 (one m16n8k8, whose fragments ldmatrix delivers as 32-bit words).
#pragma unroll
        for (int kk = 0; kk < BK_BYTES / 32; ++kk) {
            u32 af[MI][4];
            u32 bf[NJ][2];
#pragma unroll
            for (int i = 0; i < MI; ++i) ldmatrix_x4(af[i], a_base + a_off[i][kk]);
#pragma unroll
            for (int j2 = 0; j2 < NJ / 2; ++j2) {
                u32 t[4];
                if constexpr (B_NK) {
                    ldmatrix_x4(t, b_base + b_off[j2][kk]);
                } else {
                    ldmatrix_x4_trans(t, b_base + b_off[j2][kk]);
                }
                bf[2 * j2][0] = t[0];
                bf[2 * j2][1] = t[1];
                bf[2 * j2 + 1][0] = t[2];
                bf[2 * j2 + 1][1] = t[3];
            }
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < NJ; ++j) mma_op<KIND>(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }
        if (nt < kt1) put_regs(nstage);
    }
    cp_async_wait<0>();

    const int g = lane >> 2, tg = lane & 3;
#pragma unroll
    for (int i = 0; i < MI; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = row0 + wm * WTM + i * 16 + g + h * 8;
            if (r >= M) continue;
#pragma unroll
            for (int j = 0; j < NJ; ++j) {
                const int c = col0 + wn * WTN + j * 8 + tg * 2;
                if constexpr (SPLIT) {
                    Acc* prow = (Acc*)Cv + ((u64)blockIdx.z * (u64)M + r) * (u64)N;
                    store2<KIND>(prow, c, N, acc[i][j][2 * h], acc[i][j][2 * h + 1]);
                } else {
                    Out* crow = (Out*)Cv + (u64)r * (u64)N;
                    store2<KIND>(crow, c, N, acc[i][j][2 * h], acc[i][j][2 * h + 1]);
                }
            }
        }
    }
}

// Which alignment paths a kernel contains (each path is its own instantiation of mma_gemm, and
// a kernel's register count is that of its largest path).
#define PATHS_VEC 0     // both operands 16-byte aligned only (the host checks)
#define PATHS_RAGGED 1  // at least one operand not aligned (register prefetch)
#define PATHS_ALL 2     // chosen at run time

// Runs the instantiation matching the operands' alignment: rows of K (A, nk-B) or N (kn-B)
// elements are 16-byte aligned when that count is a multiple of 16 / ESZ.
template <int BM, int BN, int WARPS_M, int STAGES, int KIND, bool B_NK, bool SPLIT, int PATHS>
__device__ __forceinline__ void mma_dispatch(const void* A, const void* B, void* C, int M, int N, int K,
                                             int kt0, int kt1) {
    constexpr int EPC = 16 / Kind<KIND>::ESZ;
    // One shared-memory ring for whichever path runs (a __shared__ array inside each
    // instantiation would be allocated once per instantiation).
    __shared__ __align__(128) unsigned char smem[STAGES * (BM + BN) * BK_BYTES];
    const bool a_vec = K % EPC == 0;
    const bool b_vec = B_NK ? (K % EPC == 0) : (N % EPC == 0);
    if (PATHS != PATHS_RAGGED && (PATHS == PATHS_VEC || (a_vec && b_vec))) {
        if (PATHS == PATHS_VEC && !(a_vec && b_vec)) asm volatile("trap;");  // host error
        mma_gemm<BM, BN, WARPS_M, STAGES, KIND, B_NK, true, true, SPLIT>(smem, A, B, C, M, N, K, kt0, kt1);
    } else if (PATHS != PATHS_VEC) {
        if (b_vec) {
            mma_gemm<BM, BN, WARPS_M, STAGES, KIND, B_NK, false, true, SPLIT>(smem, A, B, C, M, N, K, kt0, kt1);
        } else if (a_vec) {
            mma_gemm<BM, BN, WARPS_M, STAGES, KIND, B_NK, true, false, SPLIT>(smem, A, B, C, M, N, K, kt0, kt1);
        } else {
            mma_gemm<BM, BN, WARPS_M, STAGES, KIND, B_NK, false, false, SPLIT>(smem, A, B, C, M, N, K,
                                                                                kt0, kt1);
        }
    }
}

// Tile configurations (the host's table in src/backend/cuda/own_matmul.rs must match):
//   _128x128: BM 128, BN 128, 2×4 warps (warp tile 64×32), 3 stages, 48 KiB shared memory
//   _32x64:   BM 32,  BN 64,  2×4 warps (warp tile 16×16), 4 stages, 24 KiB shared memory
//             (small M, e.g. decode: more CTAs over N so every SM streams B)
// A stage holds 64 bytes of K per row: 32 elements of bf16/f16, 64 of s8/e4m3, 16 of tf32.
// Grid: (ceil(N / BN), ceil(M / BM)), block: 256 threads, no dynamic shared memory.
// s8, e4m3 and tf32 take B as N×K only (the host uploads a K×N B transposed).
// Below sm_80 (no cp.async, no bf16 mma) the kernels exist but trap: the host never launches
// them there, and the module still compiles, so `gpuvet list --kernels -v` works on a T4.
#if __CUDA_ARCH__ >= 800
#define GV_MMA_BODY(BM, BN, WM, ST, KIND, NK, PATHS)                                            \
    mma_dispatch<BM, BN, WM, ST, KIND, NK, false, PATHS>(A, B, C, M, N, K, 0,                         \
                                                  (K + BK_BYTES / Kind<KIND>::ESZ - 1) /       \
                                                      (BK_BYTES / Kind<KIND>::ESZ));
#define GV_MMA_SPLIT_BODY(BM, BN, WM, ST, KIND, NK)                                             \
    {                                                                                          \
        const int ktiles = (K + BK_BYTES / Kind<KIND>::ESZ - 1) / (BK_BYTES / Kind<KIND>::ESZ); \
        const int kt0 = blockIdx.z * kchunk;                                                   \
        mma_dispatch<BM, BN, WM, ST, KIND, NK, true, PATHS_ALL>(A, B, P, M, N, K, kt0,                    \
                                                     min(ktiles, kt0 + kchunk));               \
    }
#else
#define GV_MMA_BODY(BM, BN, WM, ST, KIND, NK, PATHS) asm volatile("trap;");
#define GV_MMA_SPLIT_BODY(BM, BN, WM, ST, KIND, NK) asm volatile("trap;");
#endif

// MINB: blocks per SM for __launch_bounds__ (2 caps registers at 128; e4m3 128×128 needs a
// few more on sm_90a and would spill under that cap).
// PATHS: which alignment paths the kernel holds (the 128×128 tiles split them: the register
// prefetch of ragged rows does not fit the 128-register cap of two blocks per SM, so the
// `_ragged` kernels run one block per SM with the registers it needs; e4m3 has none: its
// emulated mma.sync on sm_90a leaves no registers for the prefetch, and ragged fp8 shapes run
// on the 32×64 tile).
#define GV_MMA_PARAMS                                                                          \
    const void* __restrict__ A, const void* __restrict__ B, void* __restrict__ C, int M, int N, int K
#define GV_MMA_KERNEL(NAME, BM, BN, WM, ST, KIND, NK, MINB, PATHS)                             \
    extern "C" __global__ void __launch_bounds__(THREADS, MINB) NAME(GV_MMA_PARAMS) {          \
        GV_MMA_BODY(BM, BN, WM, ST, KIND, NK, PATHS)                                           \
    }

// Split-K for decode shapes (M ≤ 64): grid (ceil(N / BN), ceil(M / BM), splits); block z
// multiplies K tiles [z · kchunk, (z + 1) · kchunk) and writes its f32 (s32 for int8) partial
// sums to P[z] (splits × M × N); matmul_splitk_reduce_* adds them up into C.
#define GV_MMA_SPLIT_PARAMS                                                                    \
    const void* __restrict__ A, const void* __restrict__ B, void* __restrict__ P, int M, int N,  \
        int K, int kchunk
#define GV_MMA_SPLIT_KERNEL(NAME, BM, BN, WM, ST, KIND, NK)                                    \
    extern "C" __global__ void __launch_bounds__(THREADS, 2) NAME(GV_MMA_SPLIT_PARAMS) {       \
        GV_MMA_SPLIT_BODY(BM, BN, WM, ST, KIND, NK)                                            \
    }

// C[i] = Σ_z P[z][i] for i < count (= M · N), converted to the output type; grid-stride.
template <typename Acc, typename Out, int OUT>
__device__ __forceinline__ void splitk_reduce(const Acc* __restrict__ P, Out* __restrict__ C, u64 count,
                                              int splits) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x) {
        Acc s = 0;
        for (int z = 0; z < splits; ++z) s += P[(u64)z * count + i];
        if constexpr (OUT == 0) {
            C[i] = s;  // f32 (tf32) or s32 (int8)
        } else {
            C[i] = f32_to_16<OUT == 1>(s);  // 1: bf16, 2: f16
        }
    }
}

// One entry point per output type: NAME reduces ACC partial sums into OUTT (OUT as above).
#define GV_SPLITK_REDUCE_PARAMS(ACC, OUTT) const ACC* __restrict__ P, OUTT* __restrict__ C, u64 count, int splits
extern "C" __global__ void matmul_splitk_reduce_bf16(GV_SPLITK_REDUCE_PARAMS(float, u16));
extern "C" __global__ void matmul_splitk_reduce_f16(GV_SPLITK_REDUCE_PARAMS(float, u16));
extern "C" __global__ void matmul_splitk_reduce_f32(GV_SPLITK_REDUCE_PARAMS(float, float));
extern "C" __global__ void matmul_splitk_reduce_i32(GV_SPLITK_REDUCE_PARAMS(int, int));
#define GV_SPLITK_REDUCE(NAME, ACC, OUTT, OUT)                                                  \
    extern "C" __global__ void NAME(GV_SPLITK_REDUCE_PARAMS(ACC, OUTT)) {                       \
        splitk_reduce<ACC, OUTT, OUT>(P, C, count, splits);                                     \
    }
GV_SPLITK_REDUCE(matmul_splitk_reduce_bf16, float, u16, 1)
GV_SPLITK_REDUCE(matmul_splitk_reduce_f16, float, u16, 2)
GV_SPLITK_REDUCE(matmul_splitk_reduce_f32, float, float, 0)
GV_SPLITK_REDUCE(matmul_splitk_reduce_i32, int, int, 0)

// Declarations (the definitions below add __launch_bounds__ through the macro).
extern "C" __global__ void matmul_mma_bf16_kn_128x128(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_bf16_kn_128x128_ragged(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_bf16_nk_128x128(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_bf16_nk_128x128_ragged(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_f16_kn_128x128(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_f16_kn_128x128_ragged(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_f16_nk_128x128(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_f16_nk_128x128_ragged(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_s8_nk_128x128(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_s8_nk_128x128_ragged(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_e4m3_nk_128x128(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_tf32_nk_128x128(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_tf32_nk_128x128_ragged(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_bf16_kn_32x64(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_bf16_nk_32x64(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_f16_kn_32x64(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_f16_nk_32x64(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_s8_nk_32x64(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_e4m3_nk_32x64(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_tf32_nk_32x64(GV_MMA_PARAMS);
extern "C" __global__ void matmul_mma_bf16_kn_32x64_splitk(GV_MMA_SPLIT_PARAMS);
extern "C" __global__ void matmul_mma_bf16_nk_32x64_splitk(GV_MMA_SPLIT_PARAMS);
extern "C" __global__ void matmul_mma_f16_kn_32x64_splitk(GV_MMA_SPLIT_PARAMS);
extern "C" __global__ void matmul_mma_f16_nk_32x64_splitk(GV_MMA_SPLIT_PARAMS);
extern "C" __global__ void matmul_mma_s8_nk_32x64_splitk(GV_MMA_SPLIT_PARAMS);
extern "C" __global__ void matmul_mma_e4m3_nk_32x64_splitk(GV_MMA_SPLIT_PARAMS);
extern "C" __global__ void matmul_mma_tf32_nk_32x64_splitk(GV_MMA_SPLIT_PARAMS);

GV_MMA_KERNEL(matmul_mma_bf16_kn_128x128, 128, 128, 2, 3, KIND_BF16, false, 2, PATHS_VEC)
GV_MMA_KERNEL(matmul_mma_bf16_kn_128x128_ragged, 128, 128, 2, 3, KIND_BF16, false, 1, PATHS_RAGGED)
GV_MMA_KERNEL(matmul_mma_bf16_nk_128x128, 128, 128, 2, 3, KIND_BF16, true, 2, PATHS_VEC)
GV_MMA_KERNEL(matmul_mma_bf16_nk_128x128_ragged, 128, 128, 2, 3, KIND_BF16, true, 1, PATHS_RAGGED)
GV_MMA_KERNEL(matmul_mma_f16_kn_128x128, 128, 128, 2, 3, KIND_F16, false, 2, PATHS_VEC)
GV_MMA_KERNEL(matmul_mma_f16_kn_128x128_ragged, 128, 128, 2, 3, KIND_F16, false, 1, PATHS_RAGGED)
GV_MMA_KERNEL(matmul_mma_f16_nk_128x128, 128, 128, 2, 3, KIND_F16, true, 2, PATHS_VEC)
GV_MMA_KERNEL(matmul_mma_f16_nk_128x128_ragged, 128, 128, 2, 3, KIND_F16, true, 1, PATHS_RAGGED)
GV_MMA_KERNEL(matmul_mma_s8_nk_128x128, 128, 128, 2, 3, KIND_S8, true, 2, PATHS_VEC)
GV_MMA_KERNEL(matmul_mma_s8_nk_128x128_ragged, 128, 128, 2, 3, KIND_S8, true, 1, PATHS_RAGGED)
GV_MMA_KERNEL(matmul_mma_e4m3_nk_128x128, 128, 128, 2, 3, KIND_E4M3, true, 1, PATHS_VEC)
GV_MMA_KERNEL(matmul_mma_tf32_nk_128x128, 128, 128, 2, 3, KIND_TF32, true, 2, PATHS_VEC)
GV_MMA_KERNEL(matmul_mma_tf32_nk_128x128_ragged, 128, 128, 2, 3, KIND_TF32, true, 1, PATHS_RAGGED)
GV_MMA_KERNEL(matmul_mma_bf16_kn_32x64, 32, 64, 2, 4, KIND_BF16, false, 2, PATHS_ALL)
GV_MMA_KERNEL(matmul_mma_bf16_nk_32x64, 32, 64, 2, 4, KIND_BF16, true, 2, PATHS_ALL)
GV_MMA_KERNEL(matmul_mma_f16_kn_32x64, 32, 64, 2, 4, KIND_F16, false, 2, PATHS_ALL)
GV_MMA_KERNEL(matmul_mma_f16_nk_32x64, 32, 64, 2, 4, KIND_F16, true, 2, PATHS_ALL)
GV_MMA_KERNEL(matmul_mma_s8_nk_32x64, 32, 64, 2, 4, KIND_S8, true, 2, PATHS_ALL)
GV_MMA_KERNEL(matmul_mma_e4m3_nk_32x64, 32, 64, 2, 4, KIND_E4M3, true, 2, PATHS_ALL)
GV_MMA_KERNEL(matmul_mma_tf32_nk_32x64, 32, 64, 2, 4, KIND_TF32, true, 2, PATHS_ALL)
GV_MMA_SPLIT_KERNEL(matmul_mma_bf16_kn_32x64_splitk, 32, 64, 2, 4, KIND_BF16, false)
GV_MMA_SPLIT_KERNEL(matmul_mma_bf16_nk_32x64_splitk, 32, 64, 2, 4, KIND_BF16, true)
GV_MMA_SPLIT_KERNEL(matmul_mma_f16_kn_32x64_splitk, 32, 64, 2, 4, KIND_F16, false)
GV_MMA_SPLIT_KERNEL(matmul_mma_f16_nk_32x64_splitk, 32, 64, 2, 4, KIND_F16, true)
GV_MMA_SPLIT_KERNEL(matmul_mma_s8_nk_32x64_splitk, 32, 64, 2, 4, KIND_S8, true)
GV_MMA_SPLIT_KERNEL(matmul_mma_e4m3_nk_32x64_splitk, 32, 64, 2, 4, KIND_E4M3, true)
GV_MMA_SPLIT_KERNEL(matmul_mma_tf32_nk_32x64_splitk, 32, 64, 2, 4, KIND_TF32, true)
