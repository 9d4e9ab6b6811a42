// Softmax over the rows of the attention score matrix S (f32, already scaled by 1/sqrt(D) in
// the GEMM), writing P in the attention's dtype for the P·V GEMM. One block per row.
//
// Rows are laid out [B, Hq, Lq, Lkv]; row r is query i = r % Lq. With `causal`, queries are
// aligned to the end of the keys (decode, chunked prefill): query i sees keys 0 ..= i + (Lkv − Lq),
// and P is 0 beyond that, so the P·V GEMM over all Lkv columns gives the masked result.
//
// f16 and bf16 travel as their bit patterns (u16), converted by gpuvet_ptx.cuh's f32_to_16.

#include "gpuvet_ptx.cuh"

struct MaxOp {
    static __device__ __forceinline__ float apply(float a, float b) { return fmaxf(a, b); }
    static __device__ __forceinline__ float identity() { return -__int_as_float(0x7f800000); }
};
struct SumOp {
    static __device__ __forceinline__ float apply(float a, float b) { return a + b; }
    static __device__ __forceinline__ float identity() { return 0.0f; }
};

// OP over v of every thread of the block (warp shuffles, then one warp over the warps' results
// in `scratch`, 32 floats of shared memory); every thread gets the result.
template <typename OP>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
    for (int off = 16; off > 0; off >>= 1) v = OP::apply(v, __shfl_xor_sync(0xffffffffu, v, off));
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    const unsigned warps = (blockDim.x + 31u) >> 5;
    v = lane < warps ? scratch[lane] : OP::identity();
    for (int off = 16; off > 0; off >>= 1) v = OP::apply(v, __shfl_xor_sync(0xffffffffu, v, off));
    __syncthreads();
    return v;
}

// Computes max and 1/sum of exp over the visible part of one row; returns the count visible.
__device__ __forceinline__ u64 row_stats(const float* __restrict__ s, u64 row, u64 q_len,
                                         u64 kv_len, int causal, float* mx, float* inv_sum) {
    __shared__ float scratch[32];
    const u64 i = row % q_len;
    // Signed, then clamped to 0 ..= kv_len: with q_len > kv_len the first rows see no key
    // (validation refuses that today; unsigned arithmetic would wrap to a huge count).
    const long long end = (long long)i + (long long)kv_len - (long long)q_len + 1;
    const u64 visible = !causal ? kv_len : end < 0 ? 0 : end > (long long)kv_len ? kv_len : (u64)end;
    float m = -__int_as_float(0x7f800000);
    for (u64 j = threadIdx.x; j < visible; j += blockDim.x) m = fmaxf(m, s[j]);
    m = block_reduce<MaxOp>(m, scratch);
    float sum = 0.0f;
    for (u64 j = threadIdx.x; j < visible; j += blockDim.x) sum += expf(s[j] - m);
    sum = block_reduce<SumOp>(sum, scratch);
    *mx = m;
    *inv_sum = 1.0f / sum;
    return visible;
}

__device__ __forceinline__ float f32_bits(float x) { return x; }

// One row of softmax(S) into P, each value converted by OUT (f32 as is, or to 16-bit bits).
template <typename T, T (*OUT)(float)>
__device__ __forceinline__ void softmax_row(const float* __restrict__ S, T* __restrict__ P,
                                            u64 q_len, u64 kv_len, int causal) {
    const u64 row = blockIdx.x;
    const float* s = S + row * kv_len;
    T* p = P + row * kv_len;
    float m, inv;
    const u64 visible = row_stats(s, row, q_len, kv_len, causal, &m, &inv);
    for (u64 j = threadIdx.x; j < kv_len; j += blockDim.x)
        p[j] = j < visible ? OUT(expf(s[j] - m) * inv) : (T)0;
}

extern "C" __global__ void gv_softmax_f32(const float* __restrict__ S, float* __restrict__ P,
                                          u64 q_len, u64 kv_len, int causal) {
    softmax_row<float, f32_bits>(S, P, q_len, kv_len, causal);
}

extern "C" __global__ void gv_softmax_f16(const float* __restrict__ S, u16* __restrict__ P,
                                          u64 q_len, u64 kv_len, int causal) {
    softmax_row<u16, f32_to_16<false>>(S, P, q_len, kv_len, causal);
}

extern "C" __global__ void gv_softmax_bf16(const float* __restrict__ S, u16* __restrict__ P,
                                           u64 q_len, u64 kv_len, int causal) {
    softmax_row<u16, f32_to_16<true>>(S, P, q_len, kv_len, causal);
}
