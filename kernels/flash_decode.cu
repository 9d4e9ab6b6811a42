// Split-KV attention decode (flash-decoding), sm_80 and newer.
//
// Decode has 1–8 query positions (speculative decoding) against a long KV cache: the work is
// reading K and V once, at full memory bandwidth. Two ideas make that possible:
//   GQA packing   the Hq/Hkv query heads that share a KV head are contiguous in Q
//                 [B, Hq, Lq, D], so for one (batch, KV head) they form one (group·Lq)×D matrix
//                 of "rows"; 16 of them fill the M of an mma.sync m16n8k16 tile, and K/V are
//                 read once for all of them instead of once per query head;
//   split KV      the keys are cut into splits of `chunk` keys (a multiple of 64), one block
//                 per (split, 16-row block, batch·KV head), so even batch 1 fills every SM.
//                 Each split writes its normalised partial O (fp32) and log-sum-exp (base 2);
//                 gv_flash_decode_combine_* merges the splits into O in the input dtype.
// Inside a block, 4 warps share each 64-key tile (cp.async, double buffered): warp w takes keys
// 16w..16w+15 of every tile with its own running max, sum and accumulator, and the 4 warps are
// merged through shared memory at the end, like 4 more splits.
// Causal masking is aligned to the end of the keys: query position i sees keys ≤ i + Lkv − Lq.
// Paged KV (gv_flash_decode_paged_*): K and V live in pools of pages [pages, page size, Hkv, D]
// (page size 16 or 64: a runtime parameter, each compiled as a constant), and a block table [B, pages per sequence] of int32
// gives the page holding keys p·page_size .. of each sequence; only the K/V tile loads change,
// so paged and contiguous runs give bit-identical results.
// The same fragment layouts as kernels/flash_fwd.cu (its header explains them).

#include "gpuvet_flash.cuh"

// Queues the K and V rows n0 .. n0 + 64 of one (batch, KV head) into the swizzled tiles; rows
// at or past `valid` are zero-filled. PAGE = 0, contiguous: K/V [B, Hkv, Lkv, D] from
// `kv_base`. PAGE = 16 or 64, paged: the row of key n lies in page bt[n / PAGE] of the pool
// [pages, PAGE, Hkv, D] (a compile-time page size: the division is a shift).
template <int D, int PAGE>
__device__ __forceinline__ void load_kv(u16* sk, u16* sv, const u16* k, const u16* v, u64 kv_base,
                                        const int* bt, int kv_heads, int kvh, int n0, int valid,
                                        int tid) {
    constexpr int BN = 64, THREADS = 128;
    if constexpr (PAGE > 0) {
        constexpr int CH = D / 8;
        const u32 kb = smem_addr(sk), vb = smem_addr(sv);
#pragma unroll
        for (int i = tid; i < BN * CH; i += THREADS) {
            const int row = i / CH, c = i % CH;
            const bool ok = row < valid;
            const int key = n0 + row;
            const u64 page = ok ? (u64)bt[key / PAGE] : 0;
            const u64 off = ((page * PAGE + (u64)(key % PAGE)) * kv_heads + kvh) * D + c * 8;
            const u32 d = 2u * (u32)swz<D>(row, c);
            cp_async16_zfill(kb + d, ok ? k + off : k, ok);
            cp_async16_zfill(vb + d, ok ? v + off : v, ok);
        }
    } else {
        load_tile<D, BN, THREADS>(sk, k + kv_base + (u64)n0 * D, valid, tid);
        load_tile<D, BN, THREADS>(sv, v + kv_base + (u64)n0 * D, valid, tid);
    }
}

template <int D, bool BF16, int PAGE>
__device__ __forceinline__ void flash_decode(const u16* __restrict__ q, const u16* __restrict__ k,
                                             const u16* __restrict__ v,
                                             const int* __restrict__ block_table,
                                             float* __restrict__ part_o,
                                             float* __restrict__ part_lse, int q_heads,
                                             int kv_heads, int q_len, int kv_len, int causal,
                                             float scale_log2, int chunk, int pages_per_seq) {
    constexpr int BM = 16, BN = 64, THREADS = 128;
    const auto [s_q, s_k, s_v] = flash_tiles<D, BM, BN>();

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int split = blockIdx.x, splits = gridDim.x;
    const int r0 = blockIdx.y * BM;
    const int bkv = blockIdx.z;  // b · Hkv + kv head
    const int group = q_heads / kv_heads;
    const int rows = group * q_len;
    const int b = bkv / kv_heads, kvh = bkv % kv_heads;
    // The group's query heads are consecutive: their rows form one contiguous matrix.
    const u64 q_base = ((u64)b * q_heads + (u64)kvh * group) * (u64)q_len * D;
    const u64 kv_base = (u64)bkv * (u64)kv_len * D;
    const int shift = kv_len - q_len;
    const int n_begin = split * chunk;
    const int n_end = min(kv_len, n_begin + chunk);
    const int n_tiles = (n_end - n_begin + BN - 1) / BN;
    const int* bt = PAGE > 0 ? block_table + (u64)b * pages_per_seq : block_table;

    load_tile<D, BM, THREADS>(s_q, q + q_base + (u64)r0 * D, rows - r0, tid);
    cp_async_commit();
    load_kv<D, PAGE>(s_k, s_v, k, v, kv_base, bt, kv_heads, kvh, n_begin, n_end - n_begin, tid);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    // Every warp holds the same 16 rows of Q.
    u32 qf[D / 16][4];
    load_q_frags<D>(qf, s_q, lane & 15, lane);

    float acc[D / 8][4], row_m[2], row_l[2];
    online_softmax_init(acc, row_m, row_l);
    // Query position of this thread's two rows (r0 + g and r0 + g + 8); past the last row
    // the position is irrelevant (the row is never written), any value keeps it finite.
    int qpos[2];
    qpos[0] = (r0 + g) % q_len;
    qpos[1] = (r0 + g + 8) % q_len;
    const int mi = lane >> 3, lr = lane & 7;

    for (int j = 0; j < n_tiles; ++j) {
        const int buf = j & 1;
        if (j + 1 < n_tiles) {
            const int n_next = n_begin + (j + 1) * BN;
            load_kv<D, PAGE>(s_k + (buf ^ 1) * BN * D, s_v + (buf ^ 1) * BN * D, k, v, kv_base,
                             bt, kv_heads, kvh, n_next, n_end - n_next, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();

        // S = Q·Kᵀ for 16 rows × this warp's 16 keys.
        float s[2][4];
#pragma unroll
        for (int i = 0; i < 2; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
        const u32 kb = smem_addr(s_k + buf * BN * D);
        const int key = warp * 16 + (mi >> 1) * 8 + lr;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            u32 b0, b1, b2, b3;
            ldsm_x4(kb + 2u * (u32)swz<D>(key, kk * 2 + (mi & 1)), b0, b1, b2, b3);
            mma16816<BF16>(s[0], qf[kk], b0, b1);
            mma16816<BF16>(s[1], qf[kk], b2, b3);
        }

        const int n0 = n_begin + j * BN + warp * 16;
#pragma unroll
        for (int nb = 0; nb < 2; ++nb) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int col = n0 + nb * 8 + 2 * t + (e & 1);
                float x = s[nb][e] * scale_log2;
                if (col >= n_end || (causal && col > qpos[e >> 1] + shift)) x = GV_NEG_INF;
                s[nb][e] = x;
            }
        }

#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float mx = fmaxf(fmaxf(s[0][2 * r], s[0][2 * r + 1]), fmaxf(s[1][2 * r], s[1][2 * r + 1]));
            online_softmax_step(s, acc, r, mx, row_m[r], row_l[r]);
        }

        // O += P·V over this warp's 16 keys.
        u32 a[4];
        a[0] = pack2<BF16>(s[0][0], s[0][1]);
        a[1] = pack2<BF16>(s[0][2], s[0][3]);
        a[2] = pack2<BF16>(s[1][0], s[1][1]);
        a[3] = pack2<BF16>(s[1][2], s[1][3]);
        const u32 vb = smem_addr(s_v + buf * BN * D);
        const int vkey = warp * 16 + (mi & 1) * 8 + lr;
#pragma unroll
        for (int db = 0; db < D / 16; ++db) {
            u32 b0, b1, b2, b3;
            ldsm_x4_t(vb + 2u * (u32)swz<D>(vkey, db * 2 + (mi >> 1)), b0, b1, b2, b3);
            mma16816<BF16>(acc[2 * db], a, b0, b1);
            mma16816<BF16>(acc[2 * db + 1], a, b2, b3);
        }
        __syncthreads();
    }

    // Without any key tile (an empty split) the loop never waited for the prologue.
    cp_async_drain();

    // Merge the 4 warps through shared memory (the K/V buffers are free now): unnormalised
    // accumulators in s_k's space (4 × 16 × D floats), max and sum per row in s_v's.
    float* w_acc = (float*)s_k;
    float* w_m = (float*)s_v;
    float* w_l = w_m + 4 * BM;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const float l = quad_sum(row_l[r]);
        const int row = g + r * 8;
        if (t == 0) {
            w_m[warp * BM + row] = row_m[r];
            w_l[warp * BM + row] = l;
        }
#pragma unroll
        for (int db = 0; db < D / 8; ++db) {
            float* dst = w_acc + (warp * BM + row) * D + db * 8 + 2 * t;
            dst[0] = acc[db][2 * r];
            dst[1] = acc[db][2 * r + 1];
        }
    }
    __syncthreads();
    for (int i = tid; i < BM * D; i += THREADS) {
        const int row = i / D, c = i % D;
        if (r0 + row >= rows) continue;
        float m = GV_NEG_INF;
#pragma unroll
        for (int w = 0; w < 4; ++w) m = fmaxf(m, w_m[w * BM + row]);
        const float m_use = m == GV_NEG_INF ? 0.0f : m;
        float l = 0.0f, x = 0.0f;
#pragma unroll
        for (int w = 0; w < 4; ++w) {
            const float wt = exp2f(w_m[w * BM + row] - m_use);
            l += w_l[w * BM + row] * wt;
            x += w_acc[(w * BM + row) * D + c] * wt;
        }
        const u64 p = ((u64)bkv * splits + split) * (u64)rows + (u64)(r0 + row);
        part_o[p * D + c] = l > 0.0f ? x / l : 0.0f;
        if (c == 0) part_lse[p] = l > 0.0f ? m + log2f(l) : GV_NEG_INF;
    }
}

// Merges the splits of one row per block: O = Σ 2^(lse_s − M) · O_s / Σ 2^(lse_s − M).
// Rows are numbered (b · Hkv + kv head) · rows + packed row, which is also the row's index in
// O [B, Hq, Lq, D] because the group's query heads are consecutive.
template <bool BF16>
__device__ __forceinline__ void flash_decode_combine(const float* __restrict__ part_o,
                                                     const float* __restrict__ part_lse,
                                                     u16* __restrict__ o, int rows, int splits,
                                                     int d) {
    const u64 id = blockIdx.x;
    const u64 bkv = id / rows, r = id % rows;
    const u64 first = bkv * splits * (u64)rows + r;  // split s at first + s · rows
    float m = GV_NEG_INF;
    for (int s = 0; s < splits; ++s) m = fmaxf(m, part_lse[first + (u64)s * rows]);
    const float m_use = m == GV_NEG_INF ? 0.0f : m;
    float l = 0.0f;
    for (int s = 0; s < splits; ++s) l += exp2f(part_lse[first + (u64)s * rows] - m_use);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float x = 0.0f;
        for (int s = 0; s < splits; ++s) {
            const u64 p = first + (u64)s * rows;
            x += exp2f(part_lse[p] - m_use) * part_o[p * d + c];
        }
        x *= inv;
        o[id * d + c] = f32_to_16<BF16>(x);
    }
}

// Split kernels. Parameters, in order: Q, K, V (16-bit), partial O (f32 [B·Hkv, splits, rows,
// D]), partial lse (f32 [B·Hkv, splits, rows], base 2), q heads, kv heads, q length, kv length,
// causal (0/1), softmax scale × log2(e), keys per split (a multiple of 64). Grid (splits,
// ⌈rows/16⌉, B·Hkv) with rows = (Hq/Hkv)·Lq, 128 threads, dynamic shared memory
// (16 + 4·64)·D·2 bytes.

#define GV_DECODE_PARAMS                                                                       \
    const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,           \
        float* __restrict__ part_o, float* __restrict__ part_lse, int q_heads, int kv_heads,   \
        int q_len, int kv_len, int causal, float scale_log2, int chunk
#define GV_DECODE(D, BF16)                                                                     \
    flash_decode<D, BF16, 0>(q, k, v, nullptr, part_o, part_lse, q_heads, kv_heads, q_len,     \
                             kv_len, causal, scale_log2, chunk, 0)

extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_bf16_d64(GV_DECODE_PARAMS) { GV_DECODE(64, true); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_bf16_d128(GV_DECODE_PARAMS) { GV_DECODE(128, true); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_f16_d64(GV_DECODE_PARAMS) { GV_DECODE(64, false); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_f16_d128(GV_DECODE_PARAMS) { GV_DECODE(128, false); }

// The page size is a runtime parameter (16 or 64, checked by the host) dispatched once to a
// kernel body compiled for it.
#define GV_DECODE_PAGED(D, BF16)                                                              \
    if (page_size == 16)                                                                      \
        flash_decode<D, BF16, 16>(q, k, v, block_table, part_o, part_lse, q_heads, kv_heads,  \
                                  q_len, kv_len, causal, scale_log2, chunk, pages_per_seq);   \
    else                                                                                      \
        flash_decode<D, BF16, 64>(q, k, v, block_table, part_o, part_lse, q_heads, kv_heads,  \
                                  q_len, kv_len, causal, scale_log2, chunk, pages_per_seq)

// Paged split kernels: as above with K and V pools [pages, page size, Hkv, D] and three more
// parameters between V and the partials and at the end: Q, K pool, V pool, block table (int32
// [B, pages per sequence]), partial O, partial lse, q heads, kv heads, q length, kv length,
// causal, scale × log2(e), keys per split, pages per sequence, page size.
#define GV_DECODE_PAGED_PARAMS                                                                 \
    const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,           \
        const int* __restrict__ block_table, float* __restrict__ part_o,                       \
        float* __restrict__ part_lse, int q_heads, int kv_heads, int q_len, int kv_len,        \
        int causal, float scale_log2, int chunk, int pages_per_seq, int page_size

extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_paged_bf16_d64(GV_DECODE_PAGED_PARAMS) { GV_DECODE_PAGED(64, true); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_paged_bf16_d128(GV_DECODE_PAGED_PARAMS) { GV_DECODE_PAGED(128, true); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_paged_f16_d64(GV_DECODE_PAGED_PARAMS) { GV_DECODE_PAGED(64, false); }
extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_paged_f16_d128(GV_DECODE_PAGED_PARAMS) { GV_DECODE_PAGED(128, false); }

// Combine kernels. Parameters: partial O, partial lse, O (16-bit [B, Hq, Lq, D]), rows per
// (batch, KV head), splits, head dim. Grid B·Hkv·rows, 128 threads.

extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_combine_bf16(const float* __restrict__ part_o,
                                        const float* __restrict__ part_lse,
                                        u16* __restrict__ o, int rows, int splits, int d) {
    flash_decode_combine<true>(part_o, part_lse, o, rows, splits, d);
}

extern "C" __global__ void __launch_bounds__(128) gv_flash_decode_combine_f16(const float* __restrict__ part_o,
                                        const float* __restrict__ part_lse,
                                        u16* __restrict__ o, int rows, int splits, int d) {
    flash_decode_combine<false>(part_o, part_lse, o, rows, splits, d);
}
