"""Lane-level model of kernels/matmul_wgmma.cu: the persistent tile walk, the producer's TMA
loads into the mbarrier ring, the consumers' wgmma from shared-memory descriptors (hopper.py),
the fp8 promotion and the guarded epilogue, compared with f64 references on odd shapes.

The producer, the TMA engine (copies land in random order, later than issued) and the two
consumer warpgroups (four warps each, arriving one by one) run as coroutines under a random
scheduler; the mbarriers follow the PTX ISA (hopper.MBarrier) and hopper.RingChecker raises on
a refill of a stage a consumer still reads, a read of a fill that has not landed, a stale fill,
or a deadlock. `--mutate` runs deliberately broken variants and requires the checker to fire.

  python3 wgmma_gemm.py            all kinds, odd shapes, a few schedules each
  python3 wgmma_gemm.py --mutate   the checker catches each injected bug
"""
import sys
import numpy as np
from common import Race, bf16_to_f, f16_to_f, E4M3, f_to_e4m3, interleave
import hopper

# Mirrors of the kernel's constants (kernels/matmul_wgmma.cu).
BM, ROW_BYTES, GROUP_M, CONSUMER_WARPS = 128, 128, 16, 8
CFG = {"bf16": dict(esz=2, bn=256, stages=4), "f16": dict(esz=2, bn=256, stages=4),
       "e4m3": dict(esz=1, bn=128, stages=6)}


def cdiv(a, b):
    return -(-a // b)


def tile_of(t, tiles_m, tiles_n):
    per_group = GROUP_M * tiles_n
    g = t // per_group
    first = g * GROUP_M
    rows = min(tiles_m - first, GROUP_M)
    r = t - g * per_group
    return first + r % rows, r // rows


def desc_sw128(addr, lbo, sbo):
    # the kernel's desc_sw128, bit for bit
    return ((addr & 0x3FFFF) >> 4) | (((lbo >> 4) & 0x3FFF) << 16) | (((sbo >> 4) & 0x3FFF) << 32) | (1 << 62)


def encode(kind, x):
    if kind == "bf16":
        return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    if kind == "f16":
        return x.astype(np.float16).view(np.uint8)
    return f_to_e4m3(x)


def decoder(kind):
    if kind == "bf16":
        return bf16_to_f
    if kind == "f16":
        return f16_to_f
    return lambda u: E4M3[np.asarray(u, np.uint8)]


def pitched(kind, X, esz):
    """Row-major upload with the row pitch rounded up to 16 bytes (TMA's stride rule), as the
    host does for shapes whose rows are not 16-byte multiples."""
    rows, cols = X.shape
    pitch = cdiv(cols * esz, 16) * 16
    g = np.zeros(rows * pitch, np.uint8)
    enc = encode(kind, X)
    for r in range(rows):
        g[r * pitch: r * pitch + cols * esz] = enc[r].ravel()
    return g, pitch


def out16(kind, x):
    """cvt.rn to the output type, back to f64 (bf16 for bf16/e4m3, f16 for f16)."""
    x = np.asarray(x, np.float32)
    if kind == "f16":
        return x.astype(np.float16).astype(np.float64)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32) << 16
    return r.view(np.float32).astype(np.float64)


def run(kind, M, N, K, b_kn, sms, seed=0, mutate=None):
    c = CFG[kind]
    esz, BN, ST = c["esz"], c["bn"], c["stages"]
    BKE = ROW_BYTES // esz
    A_STAGE, B_STAGE = BM * ROW_BYTES, BN * ROW_BYTES
    rng = np.random.default_rng(seed)
    A = rng.integers(-3, 4, (M, K)).astype(np.float64)
    B = rng.integers(-3, 4, (K, N)).astype(np.float64)
    gA, pA = pitched(kind, A, esz)
    if b_kn:
        gB, pB = pitched(kind, B, esz)
    else:
        gB, pB = pitched(kind, B.T.copy(), esz)
    dec = decoder(kind)
    tiles_m, tiles_n = cdiv(M, BM), cdiv(N, BN)
    total, ktiles = tiles_m * tiles_n, cdiv(K, BKE)
    grid = min(total, sms)
    C = np.full((M, N), np.nan)
    written = np.zeros((M, N), int)
    seen = np.zeros(total, int)

    for cta in range(grid):
        smem = np.zeros(ST * (A_STAGE + B_STAGE), np.uint8)
        sA, sB = 0, ST * A_STAGE
        full = [hopper.MBarrier(1) for _ in range(ST)]
        empty = [hopper.MBarrier(CONSUMER_WARPS) for _ in range(ST)]
        ring = hopper.RingChecker(ST, 2)
        inflight = []            # TMA copies issued, not landed: (stage, seq, thunk, nbytes)
        landed_bytes = {}

        def producer():
            s, phase, seq = 0, 0, 0
            for t in range(cta, total, grid):
                tm, tn = tile_of(t, tiles_m, tiles_n)
                seen[t] += 1
                for kt in range(ktiles):
                    want = phase ^ 1 if mutate != "producer_parity" else phase
                    while not empty[s].try_wait_parity(want):
                        yield False
                    full[s].arrive_expect_tx(A_STAGE + B_STAGE)
                    ring.fill_start(s, seq)
                    landed_bytes[(s, seq)] = 0
                    boxes = [(sA + s * A_STAGE, gA, (K, M, pA), (BKE, BM), (kt * BKE, tm * BM))]
                    if not b_kn:
                        boxes.append((sB + s * B_STAGE, gB, (K, N, pB), (BKE, BN), (kt * BKE, tn * BN)))
                    else:
                        for j in range(BN // 64):
                            boxes.append((sB + s * B_STAGE + j * BKE * ROW_BYTES, gB, (N, K, pB), (64, BKE),
                                          (tn * BN + 64 * j, kt * BKE)))
                    for bx in boxes:
                        inflight.append((s, seq, bx))
                    seq += 1
                    s += 1
                    if s == ST:
                        s, phase = 0, phase ^ 1
                    yield True

        def tma_engine():
            while True:
                if not inflight:
                    yield None          # idle
                    continue
                i = rng.integers(len(inflight))
                s, seq, (dst, g, dims, box, coords) = inflight.pop(i)
                n = hopper.tma_box_to_smem(smem, dst, g, dims, box, coords, esz)
                landed_bytes[(s, seq)] += n
                if landed_bytes[(s, seq)] == A_STAGE + B_STAGE:
                    ring.fill_done(s)
                full[s].complete_tx(n)
                yield True

        def consumer(cons):
            s, phase, seq = 0, 0, 0
            R = BN // 2
            for t in range(cta, total, grid):
                tm, tn = tile_of(t, tiles_m, tiles_n)
                acc = np.zeros((64, BN))
                tot = np.zeros((64, BN))
                for kt in range(ktiles):
                    if mutate != "no_full_wait":
                        while not full[s].try_wait_parity(phase):
                            yield False
                    if mutate == "early_release":     # arrive on empty before the wgmma read
                        for w in range(4):
                            empty[s].arrive()
                            yield True
                    ring.read(s, seq, cons)
                    a = sA + s * A_STAGE + cons * 64 * ROW_BYTES
                    b = sB + s * B_STAGE
                    for kk in range(4):
                        da = desc_sw128(a + kk * 32, 16, 1024)
                        if b_kn:
                            db = desc_sw128(b + kk * 16 * ROW_BYTES, BKE * ROW_BYTES, 1024)
                        else:
                            db = desc_sw128(b + kk * 32, 16, 1024)
                        scale_d = (kk > 0) if kind == "e4m3" else (kt > 0 or kk > 0)
                        d = hopper.wgmma_ss(smem, da, db, BN, 32 // esz, esz, dec,
                                            b_major="MN" if b_kn else "K")
                        acc = (acc if scale_d else 0) + d
                    ring.release(s, cons)
                    for w in range(4 if mutate != "early_release" else 0):   # lane 0 of each warp
                        empty[s].arrive()
                        yield True
                    if kind == "e4m3":
                        tot = (0 if kt == 0 else tot) + acc
                    seq += 1
                    s += 1
                    if s == ST:
                        s, phase = 0, phase ^ 1
                v = hopper.acc_scatter(tot if kind == "e4m3" else acc)   # [128, R] per thread
                store_tile(v, tm, tn, cons)
                yield True

        def store_tile(v, tm, tn, cons):
            t = np.arange(128)
            lane, warp = t % 32, t // 32
            row0 = tm * BM + cons * 64 + warp * 16 + lane // 4
            col0 = tn * BN + 2 * (lane % 4)
            for h in range(2):
                r = row0 + 8 * h
                for i in range(BN // 8):
                    for th in range(128):
                        if r[th] >= M:
                            continue
                        cc = col0[th] + 8 * i
                        x0, x1 = v[th, 4 * i + 2 * h], v[th, 4 * i + 2 * h + 1]
                        if N % 2 == 0 and cc + 1 < N:
                            assert ((r[th] * N + cc) * 2) % 4 == 0, "misaligned 32-bit store"
                            for q, x in ((cc, x0), (cc + 1, x1)):
                                C[r[th], q] = out16(kind, x)
                                written[r[th], q] += 1
                        else:
                            if cc < N:
                                C[r[th], cc] = out16(kind, x0); written[r[th], cc] += 1
                            if cc + 1 < N:
                                C[r[th], cc + 1] = out16(kind, x1); written[r[th], cc + 1] += 1

        procs = {"producer": producer(), "tma": tma_engine(), "c0": consumer(0), "c1": consumer(1)}
        interleave(procs, rng, lambda done: done >= {"producer", "c0", "c1"} and not inflight,
                   2000, f" (CTA {cta})")
    ref = out16(kind, A @ B)
    assert (seen == 1).all(), "a tile was walked twice or never"
    ok = (written == 1).all() and np.array_equal(C, ref)
    return ok, np.nanmax(np.abs(C - ref)) if not np.isnan(C).all() else None


SHAPES = [(1, 1, 1), (33, 70, 40), (129, 260, 72), (130, 270, 300), (257, 129, 520)]


def main():
    if "--mutate" in sys.argv:
        for m in ("producer_parity", "no_full_wait", "early_release"):
            try:
                run("bf16", 130, 270, 700, False, 2, seed=3, mutate=m)
            except Race as e:
                print(f"mutation {m}: caught ({e})")
                continue
            except AssertionError as e:
                print(f"mutation {m}: caught by the data check ({e})")
                continue
            sys.exit(f"mutation {m} was NOT caught")
        return
    fails = 0
    for kind in ("bf16", "f16", "e4m3"):
        for b_kn in ([False, True] if kind != "e4m3" else [False]):
            for (M, N, K) in SHAPES:
                for sms in (1, 3):
                    ok, err = run(kind, M, N, K, b_kn, sms, seed=M + N + K + sms)
                    fails += not ok
                    print(kind, "kn" if b_kn else "nk", (M, N, K), f"sms={sms}", "OK" if ok else f"FAIL err={err}", flush=True)
    if fails:
        sys.exit(f"{fails} failures")


if __name__ == "__main__":
    main()
