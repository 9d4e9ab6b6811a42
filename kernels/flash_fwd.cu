// Fused attention forward for prefill (FlashAttention-2 style), sm_80 and newer.
//
// O = softmax(Q·Kᵀ/√D [+ causal mask]) · V without the score matrix ever leaving the SM.
// Q [B, Hq, Lq, D], K and V [B, Hkv, Lkv, D], O [B, Hq, Lq, D], all contiguous, 16-bit (bf16 or
// f16 as bit patterns: NVRTC 13 has no cuda_fp16.h; the only headers are gpuvet's own
// gpuvet_flash.cuh and gpuvet_ptx.cuh, handed to NVRTC in memory).
//
// One block of 4 warps per (64-row query tile, q head, batch); each warp owns 16 query rows.
// Query head h reads KV head h / (Hq / Hkv) (GQA, MQA). The block walks the K/V tiles of 64
// keys with cp.async double buffering (tile j+1 loads while tile j is computed):
//   S = Q·Kᵀ        mma.sync m16n8k16, Q fragments held in registers (ldmatrix once),
//                   K fragments by ldmatrix from XOR-swizzled shared memory;
//   online softmax  fp32, base 2 (scale·log2 e folded into one multiply), running max and sum
//                   per row, the accumulator rescaled when the max grows;
//   O += P·V        P converted to 16 bits in registers (the S accumulator layout is the A
//                   fragment layout), V fragments by ldmatrix.trans.
// Causal masking is aligned to the end of the keys: query i sees keys 0 ..= i + (Lkv − Lq). Key
// tiles entirely past a query tile's last visible key are never loaded; only tiles crossing
// the diagonal or the end of the keys are masked. Rows and keys past the ends are zero-filled
// by cp.async (src-size 0), so padding never feeds NaN into the products.
// The result is normalised, staged through shared memory and written with 16-byte stores in
// the input dtype; the log-sum-exp per row (natural log) is written when `lse` is not null.

#include "gpuvet_flash.cuh"

template <int D, bool BF16>
__device__ __forceinline__ void flash_fwd(const u16* __restrict__ q, const u16* __restrict__ k,
                                          const u16* __restrict__ v, u16* __restrict__ o,
                                          float* __restrict__ lse, int q_heads, int kv_heads,
                                          int q_len, int kv_len, int causal, float scale_log2) {
    constexpr int BM = 64, BN = 64, THREADS = 128, CH = D / 8;
    const auto [s_q, s_k, s_v] = flash_tiles<D, BM, BN>();

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    // Heaviest causal tiles (the last rows see the most keys) are scheduled first.
    const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;
    const int head = blockIdx.y, b = blockIdx.z;
    const int kvh = head / (q_heads / kv_heads);
    const u64 q_base = ((u64)b * q_heads + head) * (u64)q_len * D;
    const u64 kv_base = ((u64)b * kv_heads + kvh) * (u64)kv_len * D;
    const int shift = kv_len - q_len;  // causal diagonal offset (≥ 0 whenever causal)

    int n_end = kv_len;
    if (causal) n_end = min(kv_len, m0 + BM + shift);
    const int n_tiles = (n_end + BN - 1) / BN;

    load_tile<D, BM, THREADS>(s_q, q + q_base + (u64)m0 * D, q_len - m0, tid);
    cp_async_commit();
    load_tile<D, BN, THREADS>(s_k, k + kv_base, kv_len, tid);
    load_tile<D, BN, THREADS>(s_v, v + kv_base, kv_len, tid);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    u32 qf[D / 16][4];
    load_q_frags<D>(qf, s_q, warp * 16 + (lane & 15), lane);

    float acc[D / 8][4], row_m[2], row_l[2];
    online_softmax_init(acc, row_m, row_l);
    const int row0 = m0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8
    const int mi = lane >> 3, lr = lane & 7;

    for (int j = 0; j < n_tiles; ++j) {
        const int buf = j & 1;
        if (j + 1 < n_tiles) {
            const u64 off = kv_base + (u64)(j + 1) * BN * D;
            const int valid = kv_len - (j + 1) * BN;
            load_tile<D, BN, THREADS>(s_k + (buf ^ 1) * BN * D, k + off, valid, tid);
            load_tile<D, BN, THREADS>(s_v + (buf ^ 1) * BN * D, v + off, valid, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();

        // S = Q·Kᵀ for this warp's 16 rows × 64 keys.
        float s[BN / 8][4];
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
        const u32 kb = smem_addr(s_k + buf * BN * D);
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
            for (int nb = 0; nb < BN / 16; ++nb) {
                u32 b0, b1, b2, b3;
                const int key = nb * 16 + (mi >> 1) * 8 + lr;
                ldsm_x4(kb + 2u * (u32)swz<D>(key, kk * 2 + (mi & 1)), b0, b1, b2, b3);
                mma16816<BF16>(s[2 * nb], qf[kk], b0, b1);
                mma16816<BF16>(s[2 * nb + 1], qf[kk], b2, b3);
            }
        }

        // Scale into base 2 and mask.
        const int n0 = j * BN;
        const bool need_mask = n0 + BN > kv_len || (causal && n0 + BN - 1 > m0 + shift);
#pragma unroll
        for (int nb = 0; nb < BN / 8; ++nb) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float x = s[nb][e] * scale_log2;
                if (need_mask) {
                    const int col = n0 + nb * 8 + 2 * t + (e & 1);
                    const int row = row0 + (e >> 1) * 8;
                    if (col >= kv_len || (causal && col > row + shift)) x = GV_NEG_INF;
                }
                s[nb][e] = x;
            }
        }

        // Online softmax; each row is spread over the 4 threads of a quad.
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float mx = GV_NEG_INF;
#pragma unroll
            for (int nb = 0; nb < BN / 8; ++nb)
                mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
            online_softmax_step(s, acc, r, mx, row_m[r], row_l[r]);
        }

        // O += P·V.
        const u32 vb = smem_addr(s_v + buf * BN * D);
#pragma unroll
        for (int ks = 0; ks < BN / 16; ++ks) {
            u32 a[4];
            a[0] = pack2<BF16>(s[2 * ks][0], s[2 * ks][1]);
            a[1] = pack2<BF16>(s[2 * ks][2], s[2 * ks][3]);
            a[2] = pack2<BF16>(s[2 * ks + 1][0], s[2 * ks + 1][1]);
            a[3] = pack2<BF16>(s[2 * ks + 1][2], s[2 * ks + 1][3]);
#pragma unroll
            for (int db = 0; db < D / 16; ++db) {
                u32 b0, b1, b2, b3;
                const int key = ks * 16 + (mi & 1) * 8 + lr;
                ldsm_x4_t(vb + 2u * (u32)swz<D>(key, db * 2 + (mi >> 1)), b0, b1, b2, b3);
                mma16816<BF16>(acc[2 * db], a, b0, b1);
                mma16816<BF16>(acc[2 * db + 1], a, b2, b3);
            }
        }
        // The next iteration's loads overwrite the buffer this one read.
        __syncthreads();
    }

    // Without any key tile (causal with q_len > kv_len) the loop never waited for the prologue.
    cp_async_drain();

    // Normalise, stage the tile in s_q (free since the Q fragments were loaded), store.
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const float l = quad_sum(row_l[r]);
        inv[r] = l > 0.0f ? 1.0f / l : 0.0f;
        const int row = row0 + r * 8;
        if (lse != nullptr && t == 0 && row < q_len)
            lse[((u64)b * q_heads + head) * (u64)q_len + row] =
                l > 0.0f ? (row_m[r] + log2f(l)) * 0.69314718055994531f : GV_NEG_INF;
    }
#pragma unroll
    for (int db = 0; db < D / 8; ++db) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = warp * 16 + g + r * 8;
            *(u32*)(s_q + swz<D>(row, db) + 2 * t) =
                pack2<BF16>(acc[db][2 * r] * inv[r], acc[db][2 * r + 1] * inv[r]);
        }
    }
    __syncthreads();
#pragma unroll
    for (int i = tid; i < BM * CH; i += THREADS) {
        const int row = i / CH, c = i % CH;
        if (m0 + row < q_len)
            *(uint4*)(o + q_base + (u64)(m0 + row) * D + c * 8) = *(const uint4*)(s_q + swz<D>(row, c));
    }
}

// Parameters, in order: Q, K, V, O (16-bit), lse (f32 [B, Hq, Lq] or null), q heads, kv heads,
// q length, kv length, causal (0/1), softmax scale × log2(e). Grid (⌈Lq/64⌉, Hq, B), 128
// threads, dynamic shared memory (64 + 4·64)·D·2 bytes.

#define GV_FLASH_FWD_PARAMS                                                                    \
    const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,           \
        u16* __restrict__ o, float* __restrict__ lse, int q_heads, int kv_heads, int q_len,    \
        int kv_len, int causal, float scale_log2
#define GV_FLASH_FWD_ARGS q, k, v, o, lse, q_heads, kv_heads, q_len, kv_len, causal, scale_log2

extern "C" __global__ void __launch_bounds__(128) gv_flash_fwd_bf16_d64(GV_FLASH_FWD_PARAMS) { flash_fwd<64, true>(GV_FLASH_FWD_ARGS); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_fwd_bf16_d128(GV_FLASH_FWD_PARAMS) { flash_fwd<128, true>(GV_FLASH_FWD_ARGS); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_fwd_f16_d64(GV_FLASH_FWD_PARAMS) { flash_fwd<64, false>(GV_FLASH_FWD_ARGS); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_fwd_f16_d128(GV_FLASH_FWD_PARAMS) { flash_fwd<128, false>(GV_FLASH_FWD_ARGS); }
