// bf16 / f16 GEMM on tensor cores through mma.sync (sm_80+): C[M,N] = A[M,K] · B with fp32
// accumulation, C written in the input type (bf16 → bf16, f16 → f16). All matrices row-major;
// B either K×N ("kn") or N×K ("nk", the weight layout of LLMs).
//
// Structure (one CTA = 8 warps = 256 threads, tile BM×BN, K steps of 32):
// - global → shared with cp.async.cg 16-byte copies into a STAGES-deep ring (3 or 4 stages), so
//   the loads of K tile t+STAGES-1 are in flight while tile t is multiplied. Out-of-range chunks
//   are zero-filled by cp.async's src-size operand (0 bytes read), so tails cost no branches in
//   the inner loop. When a row length is not a multiple of 8 elements (16 bytes), rows are not
//   16-byte aligned and cp.async cannot be used: those tiles are loaded with guarded scalar
//   loads instead (slower, but correct for any M, N, K).
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

template <bool BF16>
__device__ __forceinline__ u16 to16(float x) {
    u16 h;
    if (BF16) {
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x));
    } else {
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    }
    return h;
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
// tf32: f32 in memory, 8 K elements per 32 bytes (m16n8k8), f32 out.
template <> struct Kind<KIND_TF32> { typedef float Acc; typedef float Out; enum { ESZ = 4 }; };

// Rounds an f32 (bits) to tf32 (round to nearest, ties away), as the tensor core would
// otherwise truncate the low 13 mantissa bits.
__device__ __forceinline__ u32 to_tf32(u32 x) {
    u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(__uint_as_float(x)));
    return r;
}

template <int KIND>
__device__ __forceinline__ void mma_op(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    if (KIND == KIND_BF16 || KIND == KIND_F16) {
        mma16816<KIND == KIND_BF16>(c, a, b0, b1);
    } else if (KIND == KIND_TF32) {
        asm volatile(
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, "
            "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(to_tf32(a[0])), "r"(to_tf32(a[1])), "r"(to_tf32(a[2])), "r"(to_tf32(a[3])),
              "r"(to_tf32(b0)), "r"(to_tf32(b1)));
    } else {
#if __CUDA_ARCH__ >= 890
        asm volatile(
            "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, "
            "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
        // fp8 mma.sync needs sm_89; the host never launches this kernel on older GPUs.
        asm volatile("trap;");
#endif
    }
}

template <int KIND>
__device__ __forceinline__ void mma_op(int (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Stores two adjacent outputs (columns c and c + 1 of `row`), guarded; one 32- or 64-bit store
// when both are inside and N is even (so the pair is aligned).
template <int KIND>
__device__ __forceinline__ void store2(u16* row, int c, int N, float x0, float x1) {
    const u16 v0 = to16<KIND != KIND_F16>(x0);
    const u16 v1 = to16<KIND != KIND_F16>(x1);
    if ((N & 1) == 0 && c + 1 < N) {
        *(u32*)(row + c) = (u32)v0 | ((u32)v1 << 16);
    } else {
        if (c < N) row[c] = v0;
        if (c + 1 < N) row[c + 1] = v1;
    }
}

template <int KIND>
__device__ __forceinline__ void store2(float* row, int c, int N, float x0, float x1) {
    if ((N & 1) == 0 && c + 1 < N) {
        *(float2*)(row + c) = make_float2(x0, x1);
    } else {
        if (c < N) row[c] = x0;
        if (c + 1 < N) row[c + 1] = x1;
    }
}

template <int KIND>
__device__ __forceinline__ void store2(int* row, int c, int N, int x0, int x1) {
    if ((N & 1) == 0 && c + 1 < N) {
        *(int2*)(row + c) = make_int2(x0, x1);
    } else {
        if (c < N) row[c] = x0;
        if (c + 1 < N) row[c + 1] = x1;
    }
}

// Byte offset of 16-byte chunk `c` of row `r` in a tile whose rows hold CHUNKS chunks. Rows of
// 4 chunks (64 bytes): two rows share a 128-byte bank line, so the key is (r / 2) % 4; rows of
// 8 or 16 chunks: the key is r % 8 (within each group of 8 chunks).
template <int CHUNKS>
__device__ __forceinline__ int swz(int r, int c) {
    const int key = CHUNKS == 4 ? ((r >> 1) & 3) : (r & 7);
    return (r * CHUNKS + (c ^ key)) * 16;
}

// Copies the 16 bytes (16 / ESZ elements) at element (r, c) of a rows×cols row-major matrix
// to shared memory, zeros beyond the matrix. `vec`: cols is a multiple of 16 / ESZ, so the
// chunk is 16-byte aligned and either wholly inside or wholly outside the matrix.
template <int ESZ>
__device__ __forceinline__ void load_chunk(unsigned char* sdst, const unsigned char* __restrict__ g,
                                           int rows, int cols, int r, int c, bool vec) {
    if (vec) {
        const bool ok = r < rows && c < cols;
        const unsigned char* src = ok ? g + ((u64)r * (u64)cols + c) * ESZ : g;
        cp_async16(smem_addr(sdst), src, ok ? 16u : 0u);
    } else {
        u32 w[4] = {0u, 0u, 0u, 0u};
        if (r < rows) {
            const u64 base = (u64)r * (u64)cols;
#pragma unroll
            for (int e = 0; e < 16 / ESZ; ++e) {
                if (c + e < cols) {
                    const u32 v = ESZ == 4   ? ((const u32*)g)[base + c + e]
                                  : ESZ == 2 ? (u32)((const u16*)g)[base + c + e]
                                             : (u32)g[base + c + e];
                    w[(e * ESZ) >> 2] |= v << (((e * ESZ) & 3) * 8);
                }
            }
        }
        *(uint4*)sdst = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

template <int BM, int BN, int WARPS_M, int STAGES, int KIND, bool B_NK>
__device__ __forceinline__ void mma_gemm(const void* __restrict__ Av, const void* __restrict__ Bv,
                                         void* __restrict__ Cv, int M, int N, int K) {
    typedef typename Kind<KIND>::Acc Acc;
    typedef typename Kind<KIND>::Out Out;
    constexpr int ESZ = Kind<KIND>::ESZ;
    constexpr int EPC = 16 / ESZ;  // elements per 16-byte chunk
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
    constexpr int A_CHUNKS = A_TILE / 16;
    constexpr int B_CHUNKS = B_TILE / 16;

    const unsigned char* A = (const unsigned char*)Av;
    const unsigned char* B = (const unsigned char*)Bv;
    Out* C = (Out*)Cv;

    __shared__ __align__(128) unsigned char smem[STAGES * (A_TILE + B_TILE)];
    unsigned char* sA = smem;
    unsigned char* sB = smem + STAGES * A_TILE;

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wm = warp / WARPS_N;
    const int wn = warp % WARPS_N;
    const int row0 = blockIdx.y * BM;
    const int col0 = blockIdx.x * BN;
    const bool a_vec = K % EPC == 0;
    const bool b_vec = B_NK ? (K % EPC == 0) : (N % EPC == 0);

    auto load_tile = [&](int stage, int kt) {
        const int k0 = kt * BKE;
        unsigned char* a = sA + stage * A_TILE;
        unsigned char* b = sB + stage * B_TILE;
#pragma unroll
        for (int id = tid; id < A_CHUNKS; id += THREADS) {
            const int r = id >> 2, c = id & 3;  // BK_BYTES / 16 = 4 chunks per row
            load_chunk<ESZ>(a + swz<4>(r, c), A, M, K, row0 + r, k0 + c * EPC, a_vec);
        }
#pragma unroll
        for (int id = tid; id < B_CHUNKS; id += THREADS) {
            if (B_NK) {
                const int r = id >> 2, c = id & 3;
                load_chunk<ESZ>(b + swz<4>(r, c), B, N, K, col0 + r, k0 + c * EPC, b_vec);
            } else {
                constexpr int CPR = BN * ESZ / 16;  // chunks per k row
                const int r = id / CPR, c = id % CPR;
                load_chunk<ESZ>(b + swz<CPR>(r, c), B, K, N, k0 + r, col0 + c * EPC, b_vec);
            }
        }
    };

    Acc acc[MI][NJ][4];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NJ; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

    const int ktiles = (K + BKE - 1) / BKE;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) load_tile(s, s);
        cp_async_commit();
    }

    for (int kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        // The stage written now was last read in iteration kt - 1; the barrier above ordered
        // every warp's reads of it before these writes.
        {
            const int nt = kt + STAGES - 1;
            if (nt < ktiles) load_tile(nt % STAGES, nt);
            cp_async_commit();
        }
        const int stage = kt % STAGES;
        const u32 a_base = smem_addr(sA + stage * A_TILE);
        const u32 b_base = smem_addr(sB + stage * B_TILE);
        // Each step covers 32 bytes of K: 16 elements of 16-bit kinds, 32 of 8-bit ones, 8 of
        // tf32 (one m16n8k8, whose fragments ldmatrix delivers as 32-bit words).
#pragma unroll
        for (int kk = 0; kk < BK_BYTES / 32; ++kk) {
            u32 af[MI][4];
            u32 bf[NJ][2];
#pragma unroll
            for (int i = 0; i < MI; ++i) {
                const int r = wm * WTM + i * 16 + (lane & 15);
                const int c = kk * 2 + (lane >> 4);
                ldmatrix_x4(af[i], a_base + swz<4>(r, c));
            }
#pragma unroll
            for (int j2 = 0; j2 < NJ / 2; ++j2) {
                u32 t[4];
                if (B_NK) {
                    const int n = wn * WTN + j2 * 16 + (lane & 7) + ((lane >> 4) << 3);
                    const int c = kk * 2 + ((lane >> 3) & 1);
                    ldmatrix_x4(t, b_base + swz<4>(n, c));
                } else {
                    constexpr int CPR = BN * ESZ / 16;
                    const int k = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
                    const int c = (wn * WTN + j2 * 16) / 8 + (lane >> 4);
                    ldmatrix_x4_trans(t, b_base + swz<CPR>(k, c));
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
    }
    cp_async_wait<0>();

    const int g = lane >> 2, tg = lane & 3;
#pragma unroll
    for (int i = 0; i < MI; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = row0 + wm * WTM + i * 16 + g + h * 8;
            if (r >= M) continue;
            Out* crow = C + (u64)r * (u64)N;
#pragma unroll
            for (int j = 0; j < NJ; ++j) {
                const int c = col0 + wn * WTN + j * 8 + tg * 2;
                store2<KIND>(crow, c, N, acc[i][j][2 * h], acc[i][j][2 * h + 1]);
            }
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
#define GV_MMA_BODY(BM, BN, WM, ST, KIND, NK) mma_gemm<BM, BN, WM, ST, KIND, NK>(A, B, C, M, N, K);
#else
#define GV_MMA_BODY(BM, BN, WM, ST, KIND, NK) asm volatile("trap;");
#endif

// MINB: blocks per SM for __launch_bounds__ (2 caps registers at 128; e4m3 128×128 needs a
// few more on sm_90a and would spill under that cap).
#define GV_MMA_KERNEL(NAME, BM, BN, WM, ST, KIND, NK, MINB)                                    \
    extern "C" __global__ void __launch_bounds__(THREADS, MINB)                                \
        NAME(const void* __restrict__ A, const void* __restrict__ B, void* __restrict__ C, int M, \
             int N, int K) {                                                                   \
        GV_MMA_BODY(BM, BN, WM, ST, KIND, NK)                                                  \
    }

// Declarations (the definitions below add __launch_bounds__ through the macro).
extern "C" __global__ void matmul_mma_bf16_kn_128x128(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_bf16_nk_128x128(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_f16_kn_128x128(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_f16_nk_128x128(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_s8_nk_128x128(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_e4m3_nk_128x128(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_tf32_nk_128x128(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_bf16_kn_32x64(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_bf16_nk_32x64(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_f16_kn_32x64(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_f16_nk_32x64(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_s8_nk_32x64(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_e4m3_nk_32x64(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);
extern "C" __global__ void matmul_mma_tf32_nk_32x64(const void* __restrict__ A, const void* __restrict__ B,
    void* __restrict__ C, int M, int N, int K);

GV_MMA_KERNEL(matmul_mma_bf16_kn_128x128, 128, 128, 2, 3, KIND_BF16, false, 2)
GV_MMA_KERNEL(matmul_mma_bf16_nk_128x128, 128, 128, 2, 3, KIND_BF16, true, 2)
GV_MMA_KERNEL(matmul_mma_f16_kn_128x128, 128, 128, 2, 3, KIND_F16, false, 2)
GV_MMA_KERNEL(matmul_mma_f16_nk_128x128, 128, 128, 2, 3, KIND_F16, true, 2)
GV_MMA_KERNEL(matmul_mma_s8_nk_128x128, 128, 128, 2, 3, KIND_S8, true, 2)
GV_MMA_KERNEL(matmul_mma_e4m3_nk_128x128, 128, 128, 2, 3, KIND_E4M3, true, 1)
GV_MMA_KERNEL(matmul_mma_tf32_nk_128x128, 128, 128, 2, 3, KIND_TF32, true, 2)
GV_MMA_KERNEL(matmul_mma_bf16_kn_32x64, 32, 64, 2, 4, KIND_BF16, false, 2)
GV_MMA_KERNEL(matmul_mma_bf16_nk_32x64, 32, 64, 2, 4, KIND_BF16, true, 2)
GV_MMA_KERNEL(matmul_mma_f16_kn_32x64, 32, 64, 2, 4, KIND_F16, false, 2)
GV_MMA_KERNEL(matmul_mma_f16_nk_32x64, 32, 64, 2, 4, KIND_F16, true, 2)
GV_MMA_KERNEL(matmul_mma_s8_nk_32x64, 32, 64, 2, 4, KIND_S8, true, 2)
GV_MMA_KERNEL(matmul_mma_e4m3_nk_32x64, 32, 64, 2, 4, KIND_E4M3, true, 2)
GV_MMA_KERNEL(matmul_mma_tf32_nk_32x64, 32, 64, 2, 4, KIND_TF32, true, 2)
