// Helpers shared by the flash-attention kernels (flash_fwd.cu, flash_decode.cu; the quad
// reductions also flash_fwd_sm90.cu): the 16-bit packing, the swizzled tile layout and its
// cp.async loader, the Q fragments and the online-softmax step. In-memory NVRTC header like
// gpuvet_ptx.cuh.
#pragma once
#include "gpuvet_ptx.cuh"

#define GV_NEG_INF (-__int_as_float(0x7f800000))

// Two floats → two 16-bit values in one register, `lo` in the low half (round to nearest even).
template <bool BF16>
__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
    if constexpr (BF16) {
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    } else {
        asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    }
    return r;
}

// Element offset of the 8-element chunk `c` of row `row` in a swizzled [rows][D] tile: chunks
// are XORed with the row's low 3 bits so the 8 rows an ldmatrix reads hit 8 different banks.
template <int D>
__device__ __forceinline__ int swz(int row, int c) {
    return row * D + ((c ^ (row & 7)) << 3);
}

// The block's dynamic shared memory: a BM × D Q tile, then two BN × D key buffers and two
// BN × D value buffers (double-buffered loads).
struct FlashTiles {
    u16* q;
    u16* k;
    u16* v;
};

template <int D, int BM, int BN>
__device__ __forceinline__ FlashTiles flash_tiles() {
    extern __shared__ __align__(128) u16 smem[];
    return {smem, smem + BM * D, smem + (BM + 2 * BN) * D};
}

// Queues the copy of `ROWS` rows of D values from `g` (row stride D) into the swizzled tile at
// `s`; rows at or past `valid` are zero-filled. `g` itself must be a valid address.
template <int D, int ROWS, int THREADS>
__device__ __forceinline__ void load_tile(u16* s, const u16* g, int valid, int tid) {
    constexpr int CH = D / 8;
    const u32 base = smem_addr(s);
#pragma unroll
    for (int i = tid; i < ROWS * CH; i += THREADS) {
        const int row = i / CH, c = i % CH;
        const bool ok = row < valid;
        cp_async16_zfill(base + 2u * (u32)swz<D>(row, c), ok ? g + (u64)row * D + c * 8 : g, ok);
    }
}

// The max and the sum of x over the 4 threads of a quad: the threads that hold one row of an
// mma accumulator fragment.
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// The A fragments of 16 rows of Q for every 16-wide step of D, from the swizzled tile at s_q;
// `row` is the row whose address this lane gives ldmatrix (the first of the 16 + lane & 15).
template <int D>
__device__ __forceinline__ void load_q_frags(u32 (&qf)[D / 16][4], const u16* s_q, int row, int lane) {
    const u32 base = smem_addr(s_q);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        ldsm_x4(base + 2u * (u32)swz<D>(row, kk * 2 + (lane >> 4)), qf[kk][0], qf[kk][1],
                qf[kk][2], qf[kk][3]);
}

// The start of an online softmax: a zero accumulator, no maximum yet (−inf), sums of 0.
template <int DB>
__device__ __forceinline__ void online_softmax_init(float (&acc)[DB][4], float (&m)[2], float (&l)[2]) {
#pragma unroll
    for (int i = 0; i < DB; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    m[0] = m[1] = GV_NEG_INF;
    l[0] = l[1] = 0.0f;
}

// One online-softmax step of row half r (rows g and g + 8 of an m16n8 fragment) over this
// tile's scores s (already scaled to base 2, masked to −inf): `mx` is this thread's max of its
// scores of the row. Updates the running max m and this thread's partial sum l, turns the
// scores into probabilities and rescales the accumulator.
template <int NB, int DB>
__device__ __forceinline__ void online_softmax_step(float (&s)[NB][4], float (&acc)[DB][4], int r,
                                                    float mx, float& m, float& l) {
    mx = quad_max(mx);
    const float m_new = fmaxf(m, mx);
    // A row with nothing visible yet keeps m = -inf; subtracting 0 keeps exp2 at 0
    // instead of computing -inf - -inf = NaN.
    const float m_use = m_new == GV_NEG_INF ? 0.0f : m_new;
    const float alpha = exp2f(m - m_use);
    m = m_new;
    float sum = 0.0f;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
        const float p0 = exp2f(s[nb][2 * r] - m_use);
        const float p1 = exp2f(s[nb][2 * r + 1] - m_use);
        s[nb][2 * r] = p0;
        s[nb][2 * r + 1] = p1;
        sum += p0 + p1;
    }
    // Per-thread partial sums: every thread of the quad scales by the same alpha, so
    // they are added across the quad once, at the end.
    l = l * alpha + sum;
#pragma unroll
    for (int db = 0; db < DB; ++db) {
        acc[db][2 * r] *= alpha;
        acc[db][2 * r + 1] *= alpha;
    }
}
