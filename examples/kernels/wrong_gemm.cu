// A PLANTED WRONG KERNEL, for tests: naive_gemm.cu with an off-by-one in the inner loop (the
// first product of every K tile is dropped, a real element in every tile whatever K is). It
// compiles, launches and runs fast; gpuvet must report it FAILED by verification and never show
// its speed.
#define GV_FIRST_K 1  // the planted bug: the inner loop should start at k = 0
#include "naive_gemm.cu"

extern "C" __global__ void wrong_gemm_f32_kn(const float* A, const float* B, float* C, int M, int N, int K) {
    gemm<false>(A, B, C, M, N, K);
}
extern "C" __global__ void wrong_gemm_bf16_nk(const bf16_t* A, const bf16_t* B, bf16_t* C, int M, int N, int K) {
    gemm<true>(A, B, C, M, N, K);
}
