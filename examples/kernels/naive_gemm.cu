// A straightforward tiled GEMM, as a user would write a first version: C[M×N] = A[M×K] · B,
// row-major, B stored K×N ("kn") or N×K ("nk", how LLM weights are stored). One TILE×TILE block
// per output tile, one thread per output element, K walked in TILE-wide steps through shared
// memory; f32 accumulation, any M, N, K (tails are guarded).
//
// It takes gpuvet's matmul argument conventions (docs/kernels.md):
//   (const T* A, const T* B, Tout* C, int M, int N, int K)
// and TILE comes from the spec (`[defines] TILE = "TILE"`, swept with --set TILE=8,16,32).
#include "gv_types.cuh"

#ifndef TILE
#define TILE 16
#endif
// Where each K tile's inner loop starts: 0. (wrong_gemm.cu plants its bug by setting it to 1.)
#ifndef GV_FIRST_K
#define GV_FIRST_K 0
#endif

template <bool NK, typename In, typename Out>
__device__ __forceinline__ void gemm(const In* A, const In* B, Out* C, int M, int N, int K) {
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty;
    const int col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        const int ka = k0 + tx;
        As[ty][tx] = (row < M && ka < K) ? to_f32(A[(size_t)row * K + ka]) : 0.0f;
        const int kb = k0 + ty;
        float b = 0.0f;
        if (kb < K && col < N) {
            b = NK ? to_f32(B[(size_t)col * K + kb]) : to_f32(B[(size_t)kb * N + col]);
        }
        Bs[ty][tx] = b;
        __syncthreads();
#pragma unroll
        for (int k = GV_FIRST_K; k < TILE; ++k) {
            acc += As[ty][k] * Bs[k][tx];
        }
        __syncthreads();
    }
    if (row < M && col < N) {
        C[(size_t)row * N + col] = from_f32<Out>(acc);
    }
}

#define NAIVE_GEMM(name, nk, In, Out)                                                             \
    extern "C" __global__ void name(const In* A, const In* B, Out* C, int M, int N, int K) {   \
        gemm<nk>(A, B, C, M, N, K);                                                               \
    }

NAIVE_GEMM(naive_gemm_f32_kn, false, float, float)
NAIVE_GEMM(naive_gemm_f32_nk, true, float, float)
NAIVE_GEMM(naive_gemm_bf16_kn, false, bf16_t, bf16_t)
NAIVE_GEMM(naive_gemm_bf16_nk, true, bf16_t, bf16_t)
NAIVE_GEMM(naive_gemm_f16_kn, false, f16_t, f16_t)
NAIVE_GEMM(naive_gemm_f16_nk, true, f16_t, f16_t)
