// A PLANTED WRONG KERNEL, for tests: naive_gemm.cu with an off-by-one in the inner loop (the
// first product of every K tile is dropped, a real element in every tile whatever K is). It compiles, launches and runs fast; gpuvet must
// report it FAILED by verification and never show its speed.
#include "gv_types.cuh"

#ifndef TILE
#define TILE 16
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
        for (int k = 1; k < TILE; ++k) {  // the planted bug: should start at k = 0
            acc += As[ty][k] * Bs[k][tx];
        }
        __syncthreads();
    }
    if (row < M && col < N) {
        C[(size_t)row * N + col] = from_f32<Out>(acc);
    }
}

extern "C" __global__ void wrong_gemm_f32_kn(const float* A, const float* B, float* C, int M, int N, int K) {
    gemm<false>(A, B, C, M, N, K);
}
extern "C" __global__ void wrong_gemm_bf16_nk(const bf16_t* A, const bf16_t* B, bf16_t* C, int M, int N, int K) {
    gemm<true>(A, B, C, M, N, K);
}
