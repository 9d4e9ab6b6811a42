// A plain attention kernel in gpuvet's attention conventions (docs/kernels.md): one block per
// query row (grid = seq × heads × batch), one thread per head-dim element (the block is
// head_dim rounded up to whole warps), an online softmax over the visible keys. The scores are
// block-wide dot products (a shuffle per warp, one float per warp in dynamic shared memory).
//
//   Q, O: [batch, heads, seq, head_dim]   K, V: [batch, kv_heads, kv_seq, head_dim]
//   query head h reads KV head h / (heads / kv_heads) (GQA); with causal, queries are aligned
//   to the end of the keys: row i sees keys 0 ..= i + (kv_seq - seq).
#include "gv_types.cuh"

/// The sum of `v` over the block, returned to every thread. `red` holds one float per warp.
__device__ __forceinline__ float block_sum(float v, float* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int warps = blockDim.x >> 5;
    __syncthreads();  // every thread has read `red` of the previous call
    if (lane == 0) {
        red[warp] = v;
    }
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < warps; ++w) {
        t += red[w];
    }
    return t;
}

template <typename T>
__device__ __forceinline__ void attention_row(const T* Q, const T* K, const T* V, T* O, int heads,
                                              int kv_heads, int seq, int kv_seq, int head_dim,
                                              int causal, float scale) {
    extern __shared__ float red[];
    const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, d = threadIdx.x;
    const bool mine = d < head_dim;  // threads past head_dim only help with the sums
    const int hk = h / (heads / kv_heads);
    const size_t q_row = (((size_t)b * heads + h) * seq + i) * head_dim;
    const size_t kv0 = ((size_t)b * kv_heads + hk) * (size_t)kv_seq * head_dim;
    const float q = mine ? to_f32(Q[q_row + d]) : 0.0f;
    const int last = causal ? i + (kv_seq - seq) : kv_seq - 1;
    float m = __int_as_float(0xff800000);  // -inf
    float l = 0.0f, acc = 0.0f;
    for (int j = 0; j <= last; ++j) {
        const size_t at = kv0 + (size_t)j * head_dim + d;
        const float s = block_sum(mine ? q * to_f32(K[at]) : 0.0f, red) * scale;
        const float m2 = fmaxf(m, s);
        const float c = expf(m - m2);
        const float p = expf(s - m2);
        l = l * c + p;
        acc = acc * c + (mine ? p * to_f32(V[at]) : 0.0f);
        m = m2;
    }
    if (mine) {
        O[q_row + d] = from_f32<T>(acc / l);
    }
}

#define NAIVE_ATTENTION(name, T)                                                                   \
    extern "C" __global__ void name(const T* Q, const T* K, const T* V, T* O, int heads,         \
                                    int kv_heads, int seq, int kv_seq, int head_dim, int causal,  \
                                    float scale) {                                                \
        attention_row<T>(Q, K, V, O, heads, kv_heads, seq, kv_seq, head_dim, causal, scale);       \
    }

NAIVE_ATTENTION(naive_attention_f32, float)
NAIVE_ATTENTION(naive_attention_bf16, bf16_t)
NAIVE_ATTENTION(naive_attention_f16, f16_t)
