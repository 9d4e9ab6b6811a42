"""Lane-level model of kernels/flash_fwd_sm90.cu (FA3-style prefill, sm_90a), compared with
f64 references on odd shapes.

Each CTA runs as coroutines under a random scheduler: the producer thread, the TMA engine
(boxes land in random order, later than issued, completing transaction bytes on the
mbarriers of hopper.MBarrier), and the two consumer warpgroups. What is checked:
- the index arithmetic of the kernel (TMA coordinates of Q/K/V boxes, descriptors of the SS
  and RS wgmma, the S-fragment -> A-fragment repacking of P, masking from the lane formulas,
  the epilogue's swizzled staging and stores) against hopper.py's independent fragment and
  descriptor models: a mismatch shows as a wrong O;
- the K and V rings (hopper.RingChecker): no refill of a stage a warpgroup still reads (its
  wgmma have not completed), no read of a fill that has not landed or of a stale fill;
- wgmma in flight: the S registers are read only after the wait that covers the Q.K^T group,
  O and P are touched only after the wait that covers the P.V group (the model evaluates each
  wgmma at the wait that completes it and checks that its registers and shared memory did not
  change since it was issued);
- the named-barrier ping-pong: every generation of a turn barrier completes with exactly its
  owner's bar.sync and the other warpgroup's bar.arrive (so the two warpgroups strictly
  alternate their GEMM issue), no arrival is left over at exit, no deadlock;
- the epilogue writes only its own warpgroup's rows of the Q tile, every output element once,
  rows past Lq never; no NaN anywhere.

  python3 fa3.py            the odd shapes (lengths 1, 17, 1000, 4097; causal q != kv; GQA
                            1/4/8; hd 64/128; bf16 and f16), two schedules each
  python3 fa3.py --mutate   each injected bug (early K release, wrong V parity, a missing or
                            an extra turn arrival, softmax before the S wait) is caught
"""
import sys
import numpy as np
from common import Race, bf16_to_f, f16_to_f, interleave
import hopper

# Mirrors of the kernel's constants.
BM = BN = 128
STAGES = 2
ROW_BYTES = 128
BOX = BN * ROW_BYTES
CONSUMER_WARPS = 8
LN2 = 0.69314718055994531


def f2bf(x):
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def f2h(x):
    return np.asarray(x, np.float32).astype(np.float16).view(np.uint16)


def desc_sw128(addr, lbo, sbo):
    # the header's desc_sw128, bit for bit
    return ((addr & 0x3FFFF) >> 4) | (((lbo >> 4) & 0x3FFF) << 16) | (((sbo >> 4) & 0x3FFF) << 32) | (1 << 62)


def ex2(x):
    # ex2.approx.ftz.f32: an f32 result (the model's exp2 is exact to f32 rounding)
    with np.errstate(over="ignore"):
        return np.exp2(np.asarray(x, np.float32)).astype(np.float32)


class Layout:
    """Fa3Layout<D>: byte offsets from the 1024-aligned base."""

    def __init__(self, D):
        self.tile = BM * D * 2
        self.k = self.tile
        self.v = self.k + STAGES * self.tile
        self.bars = self.v + STAGES * self.tile
        self.bytes = self.bars + 128 + 1024


class NamedBar:
    """bar.sync / bar.arrive with a thread count: a generation completes when `count` threads
    have arrived; bar.sync waits for the generation it arrived in. Records who completed each
    generation so that the ping-pong's alternation can be checked."""

    def __init__(self, name, count, owner, other):
        self.name, self.count, self.owner, self.other = name, count, owner, other
        self.arrived, self.gen, self.members = 0, 0, []

    def _arrive(self, who, kind):
        self.arrived += 128
        self.members.append((who, kind))
        if self.arrived > self.count:
            raise Race(f"{self.name}: more than {self.count} threads in one generation")
        if self.arrived == self.count:
            if sorted(self.members) != sorted([(self.owner, "sync"), (self.other, "arrive")]):
                raise Race(f"{self.name}: generation {self.gen} completed by {self.members}")
            self.arrived, self.gen, self.members = 0, self.gen + 1, []

    def arrive(self, who):
        self._arrive(who, "arrive")

    def sync(self, who):
        g = self.gen
        self._arrive(who, "sync")
        while self.gen == g:
            yield False


class Cta:
    def __init__(self, prob, m_tile, head, b, rng, mutate):
        self.p, self.rng, self.mutate = prob, rng, mutate
        D = prob.D
        self.L = Layout(D)
        self.smem = np.zeros(self.L.bars, np.uint8)
        self.m0 = m_tile * BM
        self.q_bh = b * prob.Hq + head
        self.kv_bh = b * prob.Hkv + head // (prob.Hq // prob.Hkv)
        n_end = prob.Lkv
        if prob.causal:
            n_end = min(prob.Lkv, self.m0 + BM + prob.Lkv - prob.Lq)
        self.n = -(-n_end // BN) if n_end > 0 else 0
        self.q_full = hopper.MBarrier(1)
        self.k_full = [hopper.MBarrier(1) for _ in range(STAGES)]
        self.v_full = [hopper.MBarrier(1) for _ in range(STAGES)]
        self.k_empty = [hopper.MBarrier(CONSUMER_WARPS) for _ in range(STAGES)]
        self.v_empty = [hopper.MBarrier(CONSUMER_WARPS) for _ in range(STAGES)]
        self.k_ring = hopper.RingChecker(STAGES, 2)
        self.v_ring = hopper.RingChecker(STAGES, 2)
        self.turn = [NamedBar("turn0", 256, 0, 1), NamedBar("turn1", 256, 1, 0)]
        self.inflight = []   # TMA boxes issued, not landed
        self.landed = {}

    # ------------------------------------------------------------ producer and TMA engine
    def tma(self, dst, g, L, c0, c1, c2, bar, fill):
        """cp.async.bulk.tensor.3d over [B*H, L, D]: the box (64, 128, 1) of head slice c2."""
        D = self.p.D
        head = g[c2 * L * D:(c2 + 1) * L * D].view(np.uint8)
        self.inflight.append((dst, head, (D, L), (64, 128), (c0, c1), bar, fill))

    def producer(self):
        p, L, n = self.p, self.L, self.n
        self.q_full.arrive_expect_tx(L.tile)
        for c in range(p.D // 64):
            self.tma(c * BOX, p.q, p.Lq, 64 * c, self.m0, self.q_bh, self.q_full, None)
        yield True
        for i in range(n + 1):
            if i < n:
                s, ph = i % STAGES, (i // STAGES) & 1
                while not self.k_empty[s].try_wait_parity(ph ^ 1):
                    yield False
                self.k_full[s].arrive_expect_tx(L.tile)
                self.k_ring.fill_start(s, i)
                for c in range(p.D // 64):
                    self.tma(L.k + s * L.tile + c * BOX, p.k, p.Lkv, 64 * c, (n - 1 - i) * BN, self.kv_bh,
                             self.k_full[s], (self.k_ring, s))
                yield True
            if i > 0:
                s, ph = (i - 1) % STAGES, ((i - 1) // STAGES) & 1
                while not self.v_empty[s].try_wait_parity(ph ^ 1):
                    yield False
                self.v_full[s].arrive_expect_tx(L.tile)
                self.v_ring.fill_start(s, i - 1)
                for c in range(p.D // 64):
                    self.tma(L.v + s * L.tile + c * BOX, p.v, p.Lkv, 64 * c, (n - i) * BN, self.kv_bh,
                             self.v_full[s], (self.v_ring, s))
                yield True

    def tma_engine(self):
        while True:
            if not self.inflight:
                yield None
                continue
            i = self.rng.integers(len(self.inflight))
            dst, g, dims, box, coords, bar, fill = self.inflight.pop(i)
            nbytes = hopper.tma_box_to_smem(self.smem, dst, g, dims, box, coords, 2)
            before = bar.completed_phases
            bar.complete_tx(nbytes)
            if fill is not None and bar.completed_phases != before:
                fill[0].fill_done(fill[1])
            yield True

    # ------------------------------------------------------------ consumers
    def consumer(self, cons):
        p, L, n, mut = self.p, self.L, self.n, self.mutate
        D = p.D
        t = np.arange(128)
        warp, lane = t // 32, t % 32
        row = self.m0 + 64 * cons + 16 * warp + lane // 4          # and row + 8
        sq = 64 * cons * ROW_BYTES
        st = dict(o=np.zeros((128, D // 2), np.float32), s=np.zeros((128, 64), np.float32),
                  p=np.zeros((128, 8, 4), np.uint32), m=np.full((128, 2), -np.inf, np.float32),
                  l=np.zeros((128, 2), np.float32), alpha=np.zeros((128, 2), np.float32))
        groups = []          # committed wgmma groups, oldest first

        def take_turn():
            yield from self.turn[cons].sync(cons)

        def wait_bar(bar, parity):
            while not bar.try_wait_parity(parity):
                yield False

        def issue_qk(s_st, seq):
            self.k_ring.read(s_st, seq, cons)
            kbase = L.k + s_st * L.tile
            descs = []
            for kk in range(D // 16):
                off = (kk // 4) * BOX + (kk % 4) * 32
                descs.append((desc_sw128(sq + off, 16, 1024), desc_sw128(kbase + off, 16, 1024)))
            snap = self.smem[kbase:kbase + L.tile].copy()

            def complete():
                self.k_ring.read(s_st, seq, cons)
                if not np.array_equal(snap, self.smem[kbase:kbase + L.tile]):
                    raise Race(f"consumer {cons}: K stage {s_st} changed under an in-flight Q.K^T")
                S = np.zeros((64, BN))
                for da, db in descs:
                    S += hopper.wgmma_ss(self.smem, da, db, BN, 16, 2, p.dec)
                st["s"][:] = hopper.acc_scatter(S).astype(np.float32)
            groups.append(("s", complete))

        def issue_pv(v_st, seq):
            self.v_ring.read(v_st, seq, cons)
            vbase = L.v + v_st * L.tile
            lbo = 16 if mut == "v_lbo" else BOX
            descs = [desc_sw128(vbase + ks * 16 * ROW_BYTES, lbo, 1024) for ks in range(BN // 16)]
            p_snap, o_snap = st["p"].copy(), st["o"].copy()
            snap = self.smem[vbase:vbase + L.tile].copy()

            def complete():
                self.v_ring.read(v_st, seq, cons)
                if not np.array_equal(snap, self.smem[vbase:vbase + L.tile]):
                    raise Race(f"consumer {cons}: V stage {v_st} changed under an in-flight P.V")
                if not (np.array_equal(p_snap, st["p"]) and np.array_equal(o_snap, st["o"])):
                    raise Race(f"consumer {cons}: P or O registers written while P.V was in flight")
                O = hopper.acc_gather(st["o"].astype(np.float64))
                for ks, db in enumerate(descs):
                    regs = p_snap[:, ks, :]
                    vals = np.stack([p.dec((regs >> (16 * (e % 2))) & 0xFFFF)[:, e // 2] for e in range(8)], 1)
                    O += hopper.wgmma_rs(vals, self.smem, db, D, 2, p.dec, b_major="MN")
                st["o"][:] = hopper.acc_scatter(O).astype(np.float32)
            groups.append(("pv", complete))

        def wait_groups(keep):
            while len(groups) > keep:
                groups.pop(0)[1]()

        def busy(kind):
            return any(g[0] == kind for g in groups)

        def scores(k_st, tile, release=True):
            if busy("s"):
                raise Race(f"consumer {cons}: S read before the wait that covers Q.K^T")
            if release:
                for w in range(4):
                    self.k_empty[k_st].arrive()
                self.k_ring.release(k_st, cons)
            n0 = tile * BN
            s = st["s"]
            if n0 + BN > p.Lkv or (p.causal and n0 + BN - 1 > self.m0 + 64 * cons + p.Lkv - p.Lq):
                col0 = n0 + 2 * (lane % 4)
                for i in range(16):
                    for h in range(2):
                        for c in range(2):
                            col = col0 + 8 * i + c
                            msk = (col >= p.Lkv) | (p.causal & (col > row + 8 * h + p.Lkv - p.Lq))
                            s[msk, 4 * i + 2 * h + c] = -np.inf
            softmax(s)

        def softmax(s):
            sl = np.float32(p.scale_log2)
            for h in range(2):
                cols = [4 * i + 2 * h + c for i in range(16) for c in range(2)]
                mx = s[:, cols].max(axis=1)
                mx = mx.reshape(32, 4).max(axis=1).repeat(4)          # shuffles over the quad
                m_new = np.maximum(st["m"][:, h], mx)
                ms = np.where(m_new == -np.inf, np.float32(0), m_new * sl).astype(np.float32)
                with np.errstate(invalid="raise"):
                    st["alpha"][:, h] = ex2(st["m"][:, h] * sl - ms)
                    st["m"][:, h] = m_new
                    e = ex2(s[:, cols] * sl - ms[:, None])
                s[:, cols] = e
                st["l"][:, h] = st["l"][:, h] * st["alpha"][:, h] + e.sum(axis=1, dtype=np.float32)

        def pack_p():
            if busy("pv"):
                raise Race(f"consumer {cons}: P rewritten while P.V is in flight")
            s = st["s"]
            for ks in range(8):
                for r in range(4):
                    lo, hi = s[:, 8 * ks + 2 * r], s[:, 8 * ks + 2 * r + 1]
                    if mut == "p_halves":
                        lo, hi = hi, lo
                    st["p"][:, ks, r] = p.enc(lo).astype(np.uint32) | (p.enc(hi).astype(np.uint32) << 16)

        def release_v(v_st):
            for w in range(4):
                self.v_empty[v_st].arrive()
            self.v_ring.release(v_st, cons)

        if n > 0:
            if cons == 1 and mut != "no_first_arrive":
                self.turn[0].arrive(cons)
            yield from wait_bar(self.q_full, 0)
            yield from take_turn()
            yield from wait_bar(self.k_full[0], 0)
            issue_qk(0, 0)
            self.turn[cons ^ 1].arrive(cons)
            yield True
            wait_groups(0)
            scores(0, n - 1)
            pack_p()
            for i in range(1, n):
                ks, vs = i % STAGES, (i - 1) % STAGES
                yield from take_turn()
                yield from wait_bar(self.k_full[ks], (i // STAGES) & 1)
                issue_qk(ks, i)
                early = mut == "early_k_release"
                if early:   # released before the wgmma reading the stage have completed
                    for w in range(4):
                        self.k_empty[ks].arrive()
                    self.k_ring.release(ks, cons)
                    yield True
                vpar = ((i - 1) // STAGES) & 1
                yield from wait_bar(self.v_full[vs], vpar ^ 1 if mut == "wrong_v_parity" else vpar)
                issue_pv(vs, i - 1)
                self.turn[cons ^ 1].arrive(cons)
                yield True
                if mut != "softmax_before_wait":
                    wait_groups(1)
                scores(ks, n - 1 - i, release=not early)
                yield True
                wait_groups(0)
                release_v(vs)
                st["o"] *= st["alpha"][:, (np.arange(D // 2) >> 1) & 1]
                pack_p()
            vs = (n - 1) % STAGES
            yield from take_turn()
            yield from wait_bar(self.v_full[vs], ((n - 1) // STAGES) & 1)
            issue_pv(vs, n - 1)
            if cons == 0 or mut == "extra_last_arrive":
                self.turn[cons ^ 1].arrive(cons)
            yield True
            wait_groups(0)
            release_v(vs)
        self.epilogue(cons, st, row)
        yield True

    def epilogue(self, cons, st, row):
        p = self.p
        D = p.D
        t = np.arange(128)
        warp, lane = t // 32, t % 32
        r0 = 16 * warp + lane // 4
        sq = 64 * cons * ROW_BYTES
        inv = np.zeros((128, 2), np.float32)
        for h in range(2):
            x = st["l"][:, h].reshape(32, 4).sum(axis=1, dtype=np.float32).repeat(4)
            inv[:, h] = np.where(x > 0, np.float32(1) / np.where(x > 0, x, 1), 0)
            rr = self.m0 + 64 * cons + r0 + 8 * h
            for th in range(128):
                if lane[th] % 4 == 0 and rr[th] < p.Lq:
                    val = (st["m"][th, h] * np.float32(p.scale_log2) + np.log2(x[th])) * LN2 if x[th] > 0 else -np.inf
                    p.lse[self.q_bh * p.Lq + rr[th]] = val
                    p.lse_written[self.q_bh * p.Lq + rr[th]] += 1
        written = np.zeros(self.smem.size, int)
        own = np.zeros(self.smem.size, bool)
        for c in range(D // 64):
            own[c * BOX + sq: c * BOX + sq + 64 * ROW_BYTES] = True
        for i in range(D // 8):
            for h in range(2):
                r = r0 + 8 * h
                addr = sq + (i // 8) * BOX + r * ROW_BYTES + (((i % 8) ^ (r & 7)) << 4) + 4 * (lane % 4)
                a = st["o"][:, 4 * i + 2 * h] * inv[:, h]
                b = st["o"][:, 4 * i + 2 * h + 1] * inv[:, h]
                word = p.enc(a).astype(np.uint32) | (p.enc(b).astype(np.uint32) << 16)
                idx = addr[:, None] + np.arange(4)[None, :]
                if not own[idx].all():
                    raise Race(f"consumer {cons}: epilogue writes outside its rows of the Q tile")
                written[idx] += 1
                self.smem[idx] = word.view(np.uint8).reshape(128, 4)
        if (written > 1).any():
            raise Race("epilogue: two threads stage the same bytes")
        CH = D // 8
        for idx in range(64 * CH):
            r, ch = idx // CH, idx % CH
            grow = self.m0 + 64 * cons + r
            if grow < p.Lq:
                a = sq + (ch // 8) * BOX + r * ROW_BYTES + (((ch % 8) ^ (r & 7)) << 4)
                if (written[a:a + 16] != 1).any():
                    raise Race("epilogue: stores bytes no thread staged")
                e = (self.q_bh * p.Lq + grow) * D + ch * 8
                p.o[e:e + 8] = self.smem[a:a + 16].view(np.uint16)
                p.o_written[e:e + 8] += 1

    def run(self):
        procs = {"producer": self.producer() if self.n > 0 else iter(()), "tma": self.tma_engine(),
                 "c0": self.consumer(0), "c1": self.consumer(1)}
        interleave(procs, self.rng,
                   lambda done: done >= {"producer", "c0", "c1"} and not self.inflight, 3000)
        for b in self.turn:
            if b.arrived:
                raise Race(f"{b.name}: {b.arrived} threads' arrival left over at exit")


class Problem:
    def __init__(self, B, Hq, Hkv, Lq, Lkv, D, causal, bf16, seed):
        self.B, self.Hq, self.Hkv, self.Lq, self.Lkv, self.D, self.causal = B, Hq, Hkv, Lq, Lkv, D, causal
        self.dec = bf16_to_f if bf16 else f16_to_f
        self.enc = f2bf if bf16 else f2h
        rng = np.random.default_rng(seed)

        def mk(n):
            return self.enc((rng.integers(-16, 17, n) / 8.0).astype(np.float32))
        self.q, self.k, self.v = mk(B * Hq * Lq * D), mk(B * Hkv * Lkv * D), mk(B * Hkv * Lkv * D)
        self.scale_log2 = np.float32((1 / np.sqrt(D)) * np.log2(np.e))
        self.o = np.full(B * Hq * Lq * D, 0xFFFF, np.uint16)   # poison
        self.o_written = np.zeros(self.o.size, int)
        self.lse = np.full(B * Hq * Lq, np.nan)
        self.lse_written = np.zeros(self.lse.size, int)

    def reference(self):
        B, Hq, Hkv, Lq, Lkv, D = self.B, self.Hq, self.Hkv, self.Lq, self.Lkv, self.D
        Q = self.dec(self.q).reshape(B, Hq, Lq, D)
        K = np.repeat(self.dec(self.k).reshape(B, Hkv, Lkv, D), Hq // Hkv, axis=1)
        V = np.repeat(self.dec(self.v).reshape(B, Hkv, Lkv, D), Hq // Hkv, axis=1)
        S = Q @ K.transpose(0, 1, 3, 2) / np.sqrt(D)
        if self.causal:
            i, j = np.arange(Lq)[:, None], np.arange(Lkv)[None, :]
            S = np.where(j > i + (Lkv - Lq), -np.inf, S)
        m = S.max(-1, keepdims=True)
        P = np.exp(S - m)
        l = P.sum(-1, keepdims=True)
        return ((P @ V) / l).ravel(), (np.log(l[..., 0]) + m[..., 0]).ravel()


def run(case, seed, mutate=None):
    B, Hq, Hkv, Lq, Lkv, D, causal, bf16 = case
    p = Problem(B, Hq, Hkv, Lq, Lkv, D, causal, bf16, seed)
    rng = np.random.default_rng(seed)
    for b in range(B):
        for head in range(Hq):
            tiles = -(-Lq // BM)
            for bx in range(tiles):
                Cta(p, tiles - 1 - bx, head, b, rng, mutate).run()
    O, LSE = p.reference()
    got = p.dec(p.o)
    assert (p.o_written == 1).all(), "an output element was written twice or never"
    assert (p.lse_written == 1).all(), "a log-sum-exp was written twice or never"
    assert not np.isnan(got).any() and not np.isnan(p.lse).any(), "NaN in the output"
    err = np.max(np.abs(got - O))
    lerr = np.max(np.abs(p.lse - LSE))
    return err, lerr


CASES = [
    # B, Hq, Hkv, Lq, Lkv, D, causal, bf16
    (1, 1, 1, 1, 1, 64, False, True),        # length 1
    (1, 4, 1, 17, 17, 128, True, False),     # GQA 4, length 17, causal
    (1, 8, 1, 17, 300, 64, True, True),      # GQA 8, causal q < kv
    (2, 2, 2, 130, 129, 128, False, True),   # batch 2, tails of both lengths
    (1, 2, 1, 129, 1000, 128, True, False),  # causal q < kv, 8 key tiles
    (1, 1, 1, 1000, 1000, 64, True, True),   # length 1000 causal
    (1, 1, 1, 200, 4097, 64, True, False),   # 4097 keys (33 key tiles), causal q < kv
    (1, 1, 1, 4097, 140, 64, False, True),   # 4097 queries (33 query tiles)
]
TOL = {True: 2e-2, False: 3e-3}   # bf16 / f16 output rounding of values in [-2, 2]


def main():
    if "--mutate" in sys.argv:
        case = (1, 2, 1, 129, 700, 64, True, True)
        for m in ("early_k_release", "wrong_v_parity", "no_first_arrive", "extra_last_arrive",
                  "softmax_before_wait"):
            caught = None
            for seed in range(6):
                try:
                    run(case, seed, mutate=m)
                except (Race, AssertionError) as e:
                    caught = e
                    break
            if caught is None:
                sys.exit(f"mutation {m} was NOT caught")
            print(f"mutation {m}: caught ({caught})", flush=True)
        # Layout bugs show in the data: the f64 comparison must fail.
        case = (1, 2, 1, 130, 300, 128, True, True)
        for m in ("v_lbo", "p_halves"):
            err, _ = run(case, 1, mutate=m)
            if err <= TOL[True]:
                sys.exit(f"mutation {m} was NOT caught (max|O err| {err:.3g})")
            print(f"mutation {m}: caught by the f64 check (max|O err| {err:.3g})", flush=True)
        return
    fails = 0
    for case in CASES:
        for seed in (1, 2):
            err, lerr = run(case, seed)
            ok = err <= TOL[case[7]] and lerr <= 1e-4
            fails += not ok
            print(case, f"seed {seed}", "max|O err| %.3g  max|lse err| %.3g" % (err, lerr),
                  "OK" if ok else "FAIL", flush=True)
    if fails:
        sys.exit(f"{fails} failures")


if __name__ == "__main__":
    main()
