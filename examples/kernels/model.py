#!/usr/bin/env python3
"""Lane-level numpy models of the example kernels, checked against f64 references without a GPU.

The index arithmetic is copied from the .cu files: naive_gemm.cu (and the planted bug of
wrong_gemm.cu, which must fail), naive_attention.cu (block-wide dot products over whole warps,
online softmax, GQA, causal end alignment, head_dim not a multiple of 32). Every output element
must be written exactly once. A model that passes is evidence, not a GPU run.

    python3 examples/kernels/model.py
"""
import math
import sys

import numpy as np


def cdiv(a, b):
    return -(-a // b)


def gemm_model(A, B, M, N, K, tile, nk, drop_first=False):
    """naive_gemm.cu / wrong_gemm.cu: one TILE×TILE block per output tile, one thread per element."""
    C = np.full((M, N), np.nan, dtype=np.float32)
    writes = np.zeros((M, N), dtype=np.int32)
    ty, tx = np.meshgrid(np.arange(tile), np.arange(tile), indexing="ij")
    for by in range(cdiv(M, tile)):
        for bx in range(cdiv(N, tile)):
            row = by * tile + ty
            col = bx * tile + tx
            acc = np.zeros((tile, tile), dtype=np.float32)
            for k0 in range(0, K, tile):
                ka = k0 + tx
                ok = (row < M) & (ka < K)
                As = np.where(ok, A[np.minimum(row, M - 1), np.minimum(ka, K - 1)], 0).astype(np.float32)
                kb = k0 + ty
                ok = (kb < K) & (col < N)
                if nk:
                    b = B[np.minimum(col, N - 1), np.minimum(kb, K - 1)]
                else:
                    b = B[np.minimum(kb, K - 1), np.minimum(col, N - 1)]
                Bs = np.where(ok, b, 0).astype(np.float32)
                # __syncthreads(): every thread's As/Bs element is in place
                for k in range(1 if drop_first else 0, tile):
                    acc = (acc + As[:, k][:, None] * Bs[k, :][None, :]).astype(np.float32)
                # __syncthreads() before the next tile overwrites As/Bs
            mine = (row < M) & (col < N)
            C[row[mine], col[mine]] = acc[mine]
            np.add.at(writes, (row[mine], col[mine]), 1)
    assert (writes == 1).all(), "every element of C written exactly once"
    return C


def bf16(x):
    """Round f32 values to bf16 (nearest even), returned as f32."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.view(np.float32)


def check_gemm():
    rng = np.random.default_rng(1)
    for (M, N, K) in [(33, 65, 17), (16, 16, 16), (1, 7, 100), (64, 48, 40)]:
        for tile in (8, 16, 32):
            for nk in (False, True):
                A = bf16(rng.uniform(-1, 1, (M, K)).astype(np.float32))
                B = bf16(rng.uniform(-1, 1, (N, K) if nk else (K, N)).astype(np.float32))
                ref = A.astype(np.float64) @ (B.T if nk else B).astype(np.float64)
                s = np.sqrt((np.abs(A.astype(np.float64)) ** 2) @ ((B.T if nk else B).astype(np.float64) ** 2))
                for drop, should_pass in [(False, True), (True, False)]:
                    C = gemm_model(A, B, M, N, K, tile, nk, drop_first=drop)
                    err = np.max(np.abs(bf16(C) - ref) / (np.abs(ref) + s))
                    ok = err <= 1e-2
                    assert ok == should_pass, f"gemm {M}x{N}x{K} tile {tile} nk {nk} drop {drop}: err {err}"
    print("naive_gemm: tails, tiles 8/16/32, both layouts verified; wrong_gemm fails verification")


def attention_model(Q, Kc, V, heads, kv_heads, seq, kv_seq, D, causal, scale):
    """naive_attention.cu: one block per (i, h, b), blockDim = align(D, 32)."""
    B = Q.shape[0]
    O = np.full(Q.shape, np.nan, dtype=np.float32)
    writes = np.zeros(Q.shape, dtype=np.int32)
    threads = cdiv(D, 32) * 32
    d = np.arange(threads)
    mine = d < D
    for b in range(B):
        for h in range(heads):
            hk = h // (heads // kv_heads)
            for i in range(seq):
                q = np.where(mine, Q[b, h, i, np.minimum(d, D - 1)], 0).astype(np.float32)
                last = i + (kv_seq - seq) if causal else kv_seq - 1
                m = np.float32(-np.inf)
                l = np.float32(0)
                acc = np.zeros(threads, dtype=np.float32)
                for j in range(last + 1):
                    k = np.where(mine, Kc[b, hk, j, np.minimum(d, D - 1)], 0).astype(np.float32)
                    prod = np.where(mine, q * k, 0).astype(np.float32)
                    # shuffle tree inside each warp, then the per-warp sums in warp order
                    warp_sums = [np.float32(prod[w * 32:(w + 1) * 32].sum(dtype=np.float32)) for w in range(threads // 32)]
                    s = np.float32(0)
                    for ws in warp_sums:
                        s = np.float32(s + ws)
                    s = np.float32(s * np.float32(scale))
                    m2 = max(m, s)
                    c = np.float32(math.exp(m - m2)) if m != -np.inf else np.float32(0)
                    p = np.float32(math.exp(s - m2))
                    l = np.float32(l * c + p)
                    v = np.where(mine, Vc(V, b, hk, j, d, D), 0).astype(np.float32)
                    acc = (acc * c + np.where(mine, p * v, 0)).astype(np.float32)
                    m = m2
                O[b, h, i, d[mine]] = (acc / l)[mine]
                writes[b, h, i, d[mine]] += 1
    assert (writes == 1).all(), "every element of O written exactly once"
    return O


def Vc(V, b, hk, j, d, D):
    return V[b, hk, j, np.minimum(d, D - 1)]


def attention_ref(Q, K, V, heads, kv_heads, seq, kv_seq, causal):
    B, _, _, D = Q.shape
    O = np.zeros(Q.shape)
    for b in range(B):
        for h in range(heads):
            hk = h // (heads // kv_heads)
            S = Q[b, h].astype(np.float64) @ K[b, hk].astype(np.float64).T / math.sqrt(D)
            if causal:
                i = np.arange(seq)[:, None]
                j = np.arange(kv_seq)[None, :]
                S = np.where(j <= i + (kv_seq - seq), S, -np.inf)
            P = np.exp(S - S.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            O[b, h] = P @ V[b, hk].astype(np.float64)
    return O


def check_attention():
    rng = np.random.default_rng(2)
    for (B, H, Hkv, Lq, Lkv, D, causal) in [(1, 4, 2, 5, 9, 80, True), (2, 2, 1, 3, 3, 64, False), (1, 2, 2, 1, 17, 33, True)]:
        Q = rng.uniform(-1, 1, (B, H, Lq, D)).astype(np.float32)
        K = rng.uniform(-1, 1, (B, Hkv, Lkv, D)).astype(np.float32)
        V = rng.uniform(-1, 1, (B, Hkv, Lkv, D)).astype(np.float32)
        O = attention_model(Q, K, V, H, Hkv, Lq, Lkv, D, causal, 1 / math.sqrt(D))
        R = attention_ref(Q, K, V, H, Hkv, Lq, Lkv, causal)
        err = np.max(np.abs(O - R)) / np.max(np.abs(V))
        assert err < 1e-5, f"attention B{B} H{H}/{Hkv} q{Lq} kv{Lkv} d{D}: err {err}"
    print("naive_attention: GQA, causal end alignment, head_dim 33/64/80 (partial warps) verified")


if __name__ == "__main__":
    check_gemm()
    check_attention()
    sys.exit(0)
