// Fused attention forward for prefill on Hopper (sm_90a only), FlashAttention-3 style.
//
// Same problem, layouts and output as kernels/flash_fwd.cu (the `flash` implementation), so
// the same verification applies: Q [B, Hq, Lq, D], K and V [B, Hkv, Lkv, D], O [B, Hq, Lq, D]
// in the input dtype (bf16 or f16), the log-sum-exp per row (natural log, f32 [B, Hq, Lq]) when
// `lse` is not null; query head h reads KV head h / (Hq / Hkv); causal masking aligned to the
// end of the keys (query i sees keys 0 ..= i + Lkv − Lq).
//
// One CTA = 384 threads = 3 warpgroups per (128-row query tile, q head, batch); tiles of 128
// keys; hd 64 or 128.
// - Warpgroup 0, the producer, gives registers back (setmaxnreg.dec 24); one thread issues TMA
//   loads (tensor maps over [B·H, L, D], 128-byte swizzle, boxes of 64 columns × 128 rows, rows
//   past a head's end arrive as zeros): Q once, then K and V of each key tile into a 2-stage
//   ring, K of tile j+1 before V of tile j (the order the consumers need them), each stage with
//   its own full barrier (transaction bytes) and empty barrier (8 consumer warps release it).
// - Warpgroups 1 and 2, the consumers (setmaxnreg.inc 240), own rows 0–63 and 64–127 of the
//   query tile. Key tiles are walked from the last to the first (the tiles that need masking,
//   the end of the keys and the causal diagonal, come first). Per step, with intra-warpgroup
//   overlap: issue S = Q·Kᵀ of the next tile (SS-wgmma, m64n128k16, from the Q and K
//   descriptors), issue O += P·V of the current tile (RS-wgmma: P from registers, the S
//   accumulator fragment converted in place to the A fragment; V read MN-major, imm-trans-b),
//   wait for S only, run the online softmax on it while P·V is still in flight, then wait for
//   P·V, rescale O and convert the new P.
// - Ping-pong: the two consumers take turns issuing their GEMMs through two named barriers
//   (bar.sync on their own, bar.arrive on the other's, 256 threads each), so one warpgroup's
//   softmax runs while the other's GEMMs occupy the tensor cores. Consumer 1 arrives once first
//   so that consumer 0 starts; consumer 1 skips its very last arrive, so both barriers end
//   with no arrival left over.
// - Softmax in base 2 with the scale folded into one FFMA per score (ex2.approx.ftz of
//   s·scale·log2e − m·scale·log2e); raw scores are masked to −inf; row maxima over the quad
//   with two shuffles; row sums kept per thread and added across the quad at the end.
// - Epilogue: O normalised, converted, staged through the warpgroup's own rows of the Q tile
//   (swizzled, conflict-free) and stored with 16-byte stores, rows past Lq skipped.
//
// Shared memory: Q 128·D·2 + 2 stages × (K + V) 128·D·2 + barriers + 1 KiB alignment slack:
// 164 992 B for hd 128, 83 072 B for hd 64 (host: flash_sm90::smem_bytes in
// src/backend/cuda/flash_sm90.rs).
// tools/kernel-emu/fa3.py replays this kernel thread by thread (TMA boxes, descriptors,
// fragments, mbarrier ring, named-barrier ping-pong, masking) against f64 references.

#include "gpuvet_flash.cuh"
#include "gpuvet_sm90.cuh"

#if !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "flash_fwd_sm90.cu is for sm_90a only (wgmma, setmaxnreg): its kernel table row says so"
#endif

#define FA3_BM 128
#define FA3_BN 128
#define FA3_STAGES 2
#define FA3_THREADS 384
#define FA3_ROW_BYTES 128            // one 128-byte swizzle row: 64 16-bit elements
#define FA3_BOX (FA3_BN * FA3_ROW_BYTES)  // one TMA box: 128 rows × 64 columns, 16 KiB
#define FA3_CONSUMER_WARPS 8
// Named barriers (0 is __syncthreads): the issue turn of consumer c is FA3_BAR_TURN + c, the
// epilogue of consumer c FA3_BAR_EPI + c.
#define FA3_BAR_TURN 1
#define FA3_BAR_EPI 3

// Shared-memory layout (offsets from the 1024-byte aligned base) and mbarrier addresses.
template <int D>
struct Fa3Layout {
    static constexpr u32 TILE = FA3_BM * D * 2;  // Q, and one stage of K or of V (BM == BN)
    static constexpr u32 K = TILE;
    static constexpr u32 V = K + FA3_STAGES * TILE;
    static constexpr u32 BARS = V + FA3_STAGES * TILE;
    // q_full, then per stage: k_full, k_empty, v_full, v_empty
    static constexpr u32 BYTES = BARS + 128 + 1024;
    static __device__ __forceinline__ u32 q_full(u32 base) { return base + BARS; }
    static __device__ __forceinline__ u32 k_full(u32 base, int s) { return base + BARS + 8 * (1 + s); }
    static __device__ __forceinline__ u32 k_empty(u32 base, int s) {
        return base + BARS + 8 * (1 + FA3_STAGES + s);
    }
    static __device__ __forceinline__ u32 v_full(u32 base, int s) {
        return base + BARS + 8 * (1 + 2 * FA3_STAGES + s);
    }
    static __device__ __forceinline__ u32 v_empty(u32 base, int s) {
        return base + BARS + 8 * (1 + 3 * FA3_STAGES + s);
    }
};

__device__ __forceinline__ float ex2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ void st_shared_u32(u32 addr, u32 v) {
    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}

__device__ __forceinline__ uint4 ld_shared_v4(u32 addr) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(addr)
                 : "memory");
    return v;
}

// What every role needs to know about its CTA's tile.
struct Fa3Tile {
    int m0;     // first query row
    int n;      // key tiles (walked n−1 down to 0)
    int q_bh;   // b·Hq + head: the Q/O "row block" coordinate
    int kv_bh;  // b·Hkv + kv head
};

// The producer thread: Q once, then K of tile n−1−i and V of tile n−i for i = 0..n.
template <int D>
__device__ __forceinline__ void fa3_producer(const TensorMap* tq, const TensorMap* tk,
                                             const TensorMap* tv, u32 base, const Fa3Tile& t) {
    typedef Fa3Layout<D> L;
    mbar_arrive_expect_tx(L::q_full(base), L::TILE);
#pragma unroll
    for (int c = 0; c < D / 64; ++c)
        tma_load_3d(base + c * FA3_BOX, tq, 64 * c, t.m0, t.q_bh, L::q_full(base));
    for (int i = 0; i <= t.n; ++i) {
        if (i < t.n) {
            const int s = i % FA3_STAGES;
            const u32 ph = (u32)(i / FA3_STAGES) & 1u;
            // Parity ph ^ 1: the first pass over the ring does not wait.
            mbar_wait(L::k_empty(base, s), ph ^ 1u);
            mbar_arrive_expect_tx(L::k_full(base, s), L::TILE);
#pragma unroll
            for (int c = 0; c < D / 64; ++c)
                tma_load_3d(base + L::K + s * L::TILE + c * FA3_BOX, tk, 64 * c,
                            (t.n - 1 - i) * FA3_BN, t.kv_bh, L::k_full(base, s));
        }
        if (i > 0) {
            const int s = (i - 1) % FA3_STAGES;
            const u32 ph = (u32)((i - 1) / FA3_STAGES) & 1u;
            mbar_wait(L::v_empty(base, s), ph ^ 1u);
            mbar_arrive_expect_tx(L::v_full(base, s), L::TILE);
#pragma unroll
            for (int c = 0; c < D / 64; ++c)
                tma_load_3d(base + L::V + s * L::TILE + c * FA3_BOX, tv, 64 * c,
                            (t.n - i) * FA3_BN, t.kv_bh, L::v_full(base, s));
        }
    }
}

// S (64×128, f32) = Q rows of consumer `cons` · Kᵀ of the stage at `k`.
template <int D, bool BF16>
__device__ __forceinline__ void fa3_qk(float (&s)[64], u32 q, u32 k) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        // 16 columns = 32 bytes per step inside a 128-byte swizzle row; 64 columns per box.
        const u32 off = (kk / 4) * FA3_BOX + (kk % 4) * 32;
        const u64 da = desc_sw128(q + off, 16, 1024);
        const u64 db = desc_sw128(k + off, 16, 1024);
        if constexpr (BF16) {
            wgmma_ss_bf16_n128<0>(s, da, db, kk > 0);
        } else {
            wgmma_ss_f16_n128<0>(s, da, db, kk > 0);
        }
    }
}

// O (64×D, f32) += P (registers, 64×128) · V of the stage at `v`. V is [key][d]: N-major for
// wgmma (imm-trans-b 1): 16 keys = 16 rows of 128 bytes per step, the 64-column boxes
// FA3_BOX apart (LBO), 8-row atoms 1024 bytes apart (SBO).
template <int D, bool BF16>
__device__ __forceinline__ void fa3_pv(float (&o)[D / 2], u32 (&p)[8][4], u32 v) {
#pragma unroll
    for (int ks = 0; ks < FA3_BN / 16; ++ks) {
        const u64 db = desc_sw128(v + ks * 16 * FA3_ROW_BYTES, FA3_BOX, 1024);
        if constexpr (D == 128 && BF16) wgmma_rs_bf16_n128<1>(o, p[ks], db, 1);
        if constexpr (D == 128 && !BF16) wgmma_rs_f16_n128<1>(o, p[ks], db, 1);
        if constexpr (D == 64 && BF16) wgmma_rs_bf16_n64<1>(o, p[ks], db, 1);
        if constexpr (D == 64 && !BF16) wgmma_rs_f16_n64<1>(o, p[ks], db, 1);
    }
}

// Masks the raw scores of key tile n0 for this thread's rows `row` and `row` + 8: keys past
// the end, and with `causal` keys past the row's diagonal, become −inf. Register 4i + 2h + c
// holds (row + 8h, n0 + 8i + 2·(lane % 4) + c).
__device__ __forceinline__ void fa3_mask(float (&s)[64], int n0, int row, int kv_len, int causal,
                                         int shift) {
    const int col0 = n0 + 2 * (threadIdx.x & 3);
#pragma unroll
    for (int i = 0; i < 16; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const int col = col0 + 8 * i + c;
                if (col >= kv_len || (causal && col > row + 8 * h + shift))
                    s[4 * i + 2 * h + c] = GV_NEG_INF;
            }
}

// Online softmax of one tile: new running maxima m, the factor alpha that rescales what was
// accumulated before, P = 2^(s·scale − m·scale) in place of s, per-thread row sums l.
__device__ __forceinline__ void fa3_softmax(float (&s)[64], float (&m)[2], float (&l)[2],
                                            float (&alpha)[2], float scale_log2) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float mx = GV_NEG_INF;
#pragma unroll
        for (int i = 0; i < 16; ++i) mx = fmaxf(mx, fmaxf(s[4 * i + 2 * h], s[4 * i + 2 * h + 1]));
        const float m_new = fmaxf(m[h], quad_max(mx));
        // A row with nothing visible yet keeps m = −inf; subtracting 0 then keeps every
        // exponent at −inf (p = 0) instead of −inf − −inf = NaN.
        const float ms = m_new == GV_NEG_INF ? 0.0f : m_new * scale_log2;
        alpha[h] = ex2_approx(m[h] * scale_log2 - ms);
        m[h] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < 16; ++i)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const float e = ex2_approx(fmaf(s[4 * i + 2 * h + c], scale_log2, -ms));
                s[4 * i + 2 * h + c] = e;
                sum += e;
            }
        l[h] = l[h] * alpha[h] + sum;
    }
}

__device__ __forceinline__ void fa3_fence_p(u32 (&p)[8][4]) {
#pragma unroll
    for (int ks = 0; ks < 8; ++ks) fence_regs(p[ks]);
}

// The S accumulator fragment is the A fragment of P·V: registers 8ks .. 8ks+7 hold rows
// (g, g+8) × keys 16ks + 2q + {0, 1, 8, 9}, i.e. a0a1, a2a3, a4a5, a6a7 of k-step ks.
template <bool BF16>
__device__ __forceinline__ void fa3_pack_p(u32 (&p)[8][4], const float (&s)[64]) {
#pragma unroll
    for (int ks = 0; ks < 8; ++ks)
#pragma unroll
        for (int r = 0; r < 4; ++r) p[ks][r] = pack2<BF16>(s[8 * ks + 2 * r], s[8 * ks + 2 * r + 1]);
}

// Normalises O, writes the log-sum-exp, stages the 64 rows through this warpgroup's rows of
// the Q tile (free: its last Q·Kᵀ has completed) and stores them, rows past Lq skipped.
template <int D, bool BF16>
__device__ __forceinline__ void fa3_epilogue(float (&o)[D / 2], const float (&m)[2], float (&l)[2],
                                             u32 sq, int cons, const Fa3Tile& t, u16* out,
                                             float* lse, int q_len, float scale_log2) {
    const int tid = threadIdx.x & 127, warp = tid >> 5, lane = tid & 31;
    const int r0 = 16 * warp + (lane >> 2);  // this thread's rows r0 and r0 + 8 of the 64
    float inv[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const float x = quad_sum(l[h]);
        inv[h] = x > 0.0f ? 1.0f / x : 0.0f;
        const int row = t.m0 + 64 * cons + r0 + 8 * h;
        if (lse != nullptr && (lane & 3) == 0 && row < q_len)
            lse[(u64)t.q_bh * (u64)q_len + row] =
                x > 0.0f ? (m[h] * scale_log2 + log2f(x)) * 0.69314718055994531f : GV_NEG_INF;
    }
    fence_proxy_async_smem();
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = r0 + 8 * h;
            const u32 addr = sq + (i / 8) * FA3_BOX + r * FA3_ROW_BYTES +
                             (((i % 8) ^ (r & 7)) << 4) + 4 * (lane & 3);
            st_shared_u32(addr, pack2<BF16>(o[4 * i + 2 * h] * inv[h], o[4 * i + 2 * h + 1] * inv[h]));
        }
    named_bar_sync(FA3_BAR_EPI + cons, 128);
    constexpr int CH = D / 8;  // 16-byte chunks per row
#pragma unroll
    for (int idx = tid; idx < 64 * CH; idx += 128) {
        const int r = idx / CH, ch = idx % CH;
        const int row = t.m0 + 64 * cons + r;
        if (row < q_len) {
            const uint4 v = ld_shared_v4(sq + (ch / 8) * FA3_BOX + r * FA3_ROW_BYTES +
                                         (((ch % 8) ^ (r & 7)) << 4));
            *(uint4*)(out + ((u64)t.q_bh * (u64)q_len + row) * D + ch * 8) = v;
        }
    }
}

// One consumer warpgroup's running state: the S and O accumulators, P as A fragments, the
// softmax statistics of its two rows.
template <int D>
struct Fa3Acc {
    float o[D / 2], s[64];
    u32 p[8][4];
    float m[2], l[2], alpha[2];
};

// After S of key tile `tile` has completed: release its K stage, mask, softmax.
template <int D>
__device__ __forceinline__ void fa3_scores(Fa3Acc<D>& a, u32 k_empty, int tile, int row, int cons,
                                           const Fa3Tile& t, int kv_len, int causal, int shift,
                                           float scale_log2) {
    fence_regs(a.s);
    // This warp's wgmma reads of the stage are done: release it to the producer.
    if ((threadIdx.x & 31) == 0) mbar_arrive(k_empty);
    const int n0 = tile * FA3_BN;
    if (n0 + FA3_BN > kv_len || (causal && n0 + FA3_BN - 1 > t.m0 + 64 * cons + shift))
        fa3_mask(a.s, n0, row, kv_len, causal, shift);
    fa3_softmax(a.s, a.m, a.l, a.alpha, scale_log2);
}

// Waits for the issue turn of consumer `cons` and fences the registers the next wgmma use.
template <int D>
__device__ __forceinline__ void fa3_take_turn(Fa3Acc<D>& a, int cons) {
    named_bar_sync(FA3_BAR_TURN + cons, 256);
    fence_regs(a.s);
    fence_regs(a.o);
    fa3_fence_p(a.p);
    wgmma_fence();
}

// Consumer warpgroup `cons` (0 or 1): rows 64·cons .. 64·cons + 63 of the query tile. Step 0
// computes S of the last key tile; step i (1 ≤ i < n) issues S of tile n−1−i and P·V of tile
// n−i, then overlaps the softmax of the new S with that P·V; the last step is P·V of tile 0.
// No branch surrounds a wgmma (ptxas serialises wgmma it cannot track through control flow).
template <int D, bool BF16>
__device__ __forceinline__ void fa3_consumer(u32 base, int cons, const Fa3Tile& t, u16* out,
                                             float* lse, int q_len, int kv_len, int causal,
                                             float scale_log2) {
    typedef Fa3Layout<D> L;
    const int warp = (threadIdx.x >> 5) & 3;
    const int shift = kv_len - q_len;
    const int row = t.m0 + 64 * cons + 16 * warp + ((threadIdx.x & 31) >> 2);  // and row + 8
    const u32 sq = base + 64 * cons * FA3_ROW_BYTES;
    Fa3Acc<D> a;
    a.m[0] = a.m[1] = GV_NEG_INF;
    a.l[0] = a.l[1] = 0.0f;
#pragma unroll
    for (int i = 0; i < D / 2; ++i) a.o[i] = 0.0f;
    if (t.n > 0) {
        if (cons == 1) named_bar_arrive(FA3_BAR_TURN + 0, 256);  // consumer 0 issues first
        mbar_wait(L::q_full(base), 0);
        fa3_take_turn(a, cons);
        mbar_wait(L::k_full(base, 0), 0);
        fa3_qk<D, BF16>(a.s, sq, base + L::K);
        wgmma_commit();
        named_bar_arrive(FA3_BAR_TURN + (cons ^ 1), 256);
        wgmma_wait<0>();
        fa3_scores(a, L::k_empty(base, 0), t.n - 1, row, cons, t, kv_len, causal, shift,
                   scale_log2);
        fa3_pack_p<BF16>(a.p, a.s);
        for (int i = 1; i < t.n; ++i) {
            const int ks = i % FA3_STAGES, vs = (i - 1) % FA3_STAGES;
            fa3_take_turn(a, cons);
            mbar_wait(L::k_full(base, ks), (u32)(i / FA3_STAGES) & 1u);
            fa3_qk<D, BF16>(a.s, sq, base + L::K + ks * L::TILE);
            wgmma_commit();
            mbar_wait(L::v_full(base, vs), (u32)((i - 1) / FA3_STAGES) & 1u);
            fa3_pv<D, BF16>(a.o, a.p, base + L::V + vs * L::TILE);
            wgmma_commit();
            named_bar_arrive(FA3_BAR_TURN + (cons ^ 1), 256);
            wgmma_wait<1>();  // S done, P·V may still run
            fa3_scores(a, L::k_empty(base, ks), t.n - 1 - i, row, cons, t, kv_len, causal, shift,
                       scale_log2);
            wgmma_wait<0>();
            fence_regs(a.o);
            fa3_fence_p(a.p);
            if ((threadIdx.x & 31) == 0) mbar_arrive(L::v_empty(base, vs));
#pragma unroll
            for (int j = 0; j < D / 2; ++j) a.o[j] *= a.alpha[(j >> 1) & 1];
            fa3_pack_p<BF16>(a.p, a.s);
        }
        const int vs = (t.n - 1) % FA3_STAGES;
        fa3_take_turn(a, cons);
        mbar_wait(L::v_full(base, vs), (u32)((t.n - 1) / FA3_STAGES) & 1u);
        fa3_pv<D, BF16>(a.o, a.p, base + L::V + vs * L::TILE);
        wgmma_commit();
        // Consumer 1's last turn has no one left to hand over to.
        if (cons == 0) named_bar_arrive(FA3_BAR_TURN + 1, 256);
        wgmma_wait<0>();
        fence_regs(a.o);
        if ((threadIdx.x & 31) == 0) mbar_arrive(L::v_empty(base, vs));
    }
    fa3_epilogue<D, BF16>(a.o, a.m, a.l, sq, cons, t, out, lse, q_len, scale_log2);
}

template <int D, bool BF16>
__device__ __forceinline__ void flash_fwd_sm90(const TensorMap* tq, const TensorMap* tk,
                                               const TensorMap* tv, u16* out, float* lse,
                                               int q_heads, int kv_heads, int q_len, int kv_len,
                                               int causal, float scale_log2) {
    typedef Fa3Layout<D> L;
    extern __shared__ __align__(1024) unsigned char fa3_smem[];
    // 128-byte swizzle atoms must start on 1024-byte boundaries: round the base up (the host
    // asks for 1 KiB more than the tiles need).
    const u32 base = (smem_addr(fa3_smem) + 1023u) & ~1023u;
    Fa3Tile t;
    // Heaviest causal tiles (the last rows see the most keys) are scheduled first.
    t.m0 = (gridDim.x - 1 - blockIdx.x) * FA3_BM;
    const int head = blockIdx.y, b = blockIdx.z;
    t.q_bh = b * q_heads + head;
    t.kv_bh = b * kv_heads + head / (q_heads / kv_heads);
    int n_end = kv_len;
    if (causal) n_end = min(kv_len, t.m0 + FA3_BM + kv_len - q_len);
    t.n = n_end > 0 ? (n_end + FA3_BN - 1) / FA3_BN : 0;
    if (threadIdx.x == 0) {
        mbar_init(L::q_full(base), 1);
#pragma unroll
        for (int s = 0; s < FA3_STAGES; ++s) {
            mbar_init(L::k_full(base, s), 1);  // the producer's arrive + the TMA bytes
            mbar_init(L::v_full(base, s), 1);
            mbar_init(L::k_empty(base, s), FA3_CONSUMER_WARPS);  // lane 0 of each consumer warp
            mbar_init(L::v_empty(base, s), FA3_CONSUMER_WARPS);
        }
        mbar_fence_init();
        tma_prefetch_map(tq);
        tma_prefetch_map(tk);
        tma_prefetch_map(tv);
    }
    __syncthreads();
    // Broadcast from lane 0 so that the compiler knows the role is warp-uniform (ptxas
    // serialises wgmma on paths it cannot prove uniform).
    const int wg = __shfl_sync(0xffffffffu, (int)(threadIdx.x >> 7), 0);
    if (wg == 0) {
        setmaxnreg_dec<24>();
        if (threadIdx.x == 0 && t.n > 0) fa3_producer<D>(tq, tk, tv, base, t);
    } else {
        setmaxnreg_inc<240>();
        fa3_consumer<D, BF16>(base, wg - 1, t, out, lse, q_len, kv_len, causal, scale_log2);
    }
}

// Parameters, in order: tensor maps of Q [B·Hq, Lq, D], K and V [B·Hkv, Lkv, D] (16-bit, box
// 64 × 128 × 1, 128-byte swizzle, zero fill), O (16-bit), lse (f32 [B, Hq, Lq] or null), q
// heads, kv heads, q length, kv length, causal (0/1), softmax scale × log2(e). Grid
// (⌈Lq/128⌉, Hq, B), 384 threads, dynamic shared memory Fa3Layout<D>::BYTES.
#define GV_FA3_PARAMS                                                                          \
    const __grid_constant__ TensorMap tq, const __grid_constant__ TensorMap tk,               \
        const __grid_constant__ TensorMap tv, u16* __restrict__ o, float* __restrict__ lse,   \
        int q_heads, int kv_heads, int q_len, int kv_len, int causal, float scale_log2
#define GV_FA3_KERNEL(NAME, D, BF16)                                                           \
    extern "C" __global__ void __launch_bounds__(FA3_THREADS, 1) NAME(GV_FA3_PARAMS) {         \
        flash_fwd_sm90<D, BF16>(&tq, &tk, &tv, o, lse, q_heads, kv_heads, q_len, kv_len,      \
                                causal, scale_log2);                                          \
    }

extern "C" __global__ void gv_flash_fwd_sm90_bf16_d64(GV_FA3_PARAMS);
extern "C" __global__ void gv_flash_fwd_sm90_bf16_d128(GV_FA3_PARAMS);
extern "C" __global__ void gv_flash_fwd_sm90_f16_d64(GV_FA3_PARAMS);
extern "C" __global__ void gv_flash_fwd_sm90_f16_d128(GV_FA3_PARAMS);

GV_FA3_KERNEL(gv_flash_fwd_sm90_bf16_d64, 64, true)
GV_FA3_KERNEL(gv_flash_fwd_sm90_bf16_d128, 128, true)
GV_FA3_KERNEL(gv_flash_fwd_sm90_f16_d64, 64, false)
GV_FA3_KERNEL(gv_flash_fwd_sm90_f16_d128, 128, false)
