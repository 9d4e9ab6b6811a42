"""Hopper (sm_90a) primitives for lane-level models: TMA swizzle, wgmma descriptors and
fragments, mbarriers. Used by wgmma_gemm.py (kernels/matmul_wgmma.cu) and by the FA3 attention
model; `python3 hopper.py` runs the self-tests.

Sources: the PTX ISA (sections "Asynchronous Warpgroup Level Matrix Multiply-Accumulate":
matrix descriptor format, shared-memory matrix layouts and swizzling modes, register fragments
of wgmma .m64nNk16 / .m64nNk32; "mbarrier": phases, arrive, expect-tx, complete-tx,
try_wait.parity; "cp.async.bulk.tensor" and the tensor-map swizzle modes of the CUDA driver
API). The canonical shared-memory layouts are written in the form CUTLASS documents them
(cute/atom/mma_traits_sm90_gmma.hpp, make_gmma_desc), in bytes.

API (stable: other models import it; add, do not change):

  Swizzle
    swizzle(off, mode=128)           byte offset -> swizzled byte offset (mode 128/64/32/0)
    tma_box_to_smem(smem, base, g, dims, box, coords, esz, mode=128)
                                     TMA 2-D tile load: box (inner, outer) of the row-major
                                     global array at element coords, zero-filled out of
                                     bounds, written swizzled at `base`; returns bytes written
  Descriptors
    make_desc(addr, lbo, sbo, mode=128, base_offset=0) -> 64-bit int (PTX bit layout)
    decode_desc(d) -> dict(addr, lbo, sbo, mode, base_offset)
    desc_addresses(desc, major, mn, k, esz) -> int array [mn, k] of byte addresses the
                                     operand element (row mn, column k) is read from
  wgmma
    wgmma_ss(smem, desc_a, desc_b, n, k, esz, dec, a_major="K", b_major="K") -> 64 x n f64
                                     one wgmma.mma_async with both operands in shared memory
    wgmma_rs(a_regs, smem, desc_b, n, esz, dec, b_major="K") -> 64 x n (A from registers)
    acc_coords(n) -> (row [128, n/2], col [128, n/2]): the accumulator element each thread's
                                     register d[i] holds (f32 or s32 accumulators)
    acc_scatter(D) -> regs [128, n/2];  acc_gather(regs) -> D [64, n]
    a_frag_coords(esz) -> (row [128, R], col [128, R]) of the A-from-registers fragment, one
                                     entry per element (R = 8 for 16-bit, 16 for 8-bit)
  mbarrier
    MBarrier(count): arrive(), arrive_expect_tx(nbytes), expect_tx(nbytes),
                     complete_tx(nbytes), try_wait_parity(p), phase, completed_phases
    RingChecker: replays a producer/consumer schedule over a ring of stages and raises Race
                 on a fill before every consumer released a stage, a read before its fill
                 completed, or a stall that can never be released
"""
import numpy as np

try:
    from common import Race
except ImportError:  # imported from elsewhere without common.py on the path
    class Race(Exception):
        pass

# ---------------------------------------------------------------- swizzle

SWIZZLE_BITS = {128: 3, 64: 2, 32: 1, 0: 0}
# layout_type field (bits 62-63) of the wgmma descriptor per swizzle mode
DESC_LAYOUT = {0: 0, 128: 1, 64: 2, 32: 3}


def swizzle(off, mode=128):
    """Byte offset inside a 1024-byte aligned region -> where the swizzled layout stores it.

    The 16-byte chunk index (bits 4..6) is XORed with the 128-byte row index (bits 7..9):
    Swizzle<3,4,3> for 128B, <2,4,3> for 64B, <1,4,3> for 32B. Rows of `mode` bytes.
    """
    b = SWIZZLE_BITS[mode]
    off = np.asarray(off, np.int64)
    if b == 0:
        return off
    mask = (1 << b) - 1
    return off ^ (((off >> 7) & mask) << 4)


def tma_box_to_smem(smem, base, g, dims, box, coords, esz, mode=128):
    """cp.async.bulk.tensor.2d: copies box (inner, outer) elements from the row-major global
    array `g` (uint8, dims (inner, outer) elements, row pitch inner*esz rounded as given by
    `pitch` in dims[2] if present) starting at element coords (c0 inner, c1 outer), into shared
    memory at byte `base`, swizzled. Elements outside [0, dims) are written as zero bytes
    (the tensor map's OOB fill NONE = zeros). Returns the number of bytes written, which is
    what the transaction counts on the mbarrier.

    `smem` is either a numpy uint8 array or a common.Smem (then written with cp_async
    semantics under warp id -1, i.e. the async proxy).
    """
    inner, outer = dims[0], dims[1]
    pitch = dims[2] if len(dims) > 2 else inner * esz
    assert pitch % 16 == 0, "TMA: global strides must be multiples of 16 bytes"
    bi, bo = box
    assert bi * esz <= max(mode, 16) or mode == 0, "TMA: inner box bytes exceed the swizzle span"
    assert 1 <= bi <= 256 and 1 <= bo <= 256, "TMA: box dimensions are 1..256"
    if mode:
        assert base % 1024 == 0 or mode != 128, "128B swizzle: the box must be 1024-byte aligned"
        assert bi * esz == mode, "this model handles inner box rows of exactly the swizzle span"
    row_bytes = bi * esz
    out = np.zeros(bo * row_bytes, np.uint8)
    c0, c1 = coords
    for r in range(bo):
        y = c1 + r
        if y < 0 or y >= outer:
            continue
        x0 = max(c0, 0)
        x1 = min(c0 + bi, inner)
        if x1 <= x0:
            continue
        src = g[y * pitch + x0 * esz: y * pitch + x1 * esz]
        out[r * row_bytes + (x0 - c0) * esz: r * row_bytes + (x1 - c0) * esz] = src
    offs = np.arange(out.size, dtype=np.int64)
    dst = base + swizzle(offs, mode)
    if isinstance(smem, np.ndarray):
        smem[dst] = out
    else:
        smem.cp_async(dst, out, -1, "tma")
    return out.size


# ---------------------------------------------------------------- descriptors

def make_desc(addr, lbo, sbo, mode=128, base_offset=0):
    """The 64-bit wgmma shared-memory matrix descriptor (PTX ISA "Matrix Descriptor Format"):
    bits 0-13 start address >> 4, 16-29 leading dimension byte offset >> 4, 32-45 stride
    dimension byte offset >> 4, 49-51 matrix base offset, 62-63 swizzle mode."""
    d = ((addr & 0x3FFFF) >> 4) & 0x3FFF
    d |= ((lbo >> 4) & 0x3FFF) << 16
    d |= ((sbo >> 4) & 0x3FFF) << 32
    d |= (base_offset & 7) << 49
    d |= DESC_LAYOUT[mode] << 62
    return d


def decode_desc(d):
    mode = {v: k for k, v in DESC_LAYOUT.items()}[(d >> 62) & 3]
    return dict(addr=(d & 0x3FFF) << 4, lbo=((d >> 16) & 0x3FFF) << 4,
                sbo=((d >> 32) & 0x3FFF) << 4, base_offset=(d >> 49) & 7, mode=mode)


def desc_addresses(desc, major, mn, k, esz):
    """Byte addresses of the mn x k operand elements the descriptor names.

    K-major (rows along M/N, K contiguous), swizzle S bytes, T = 16 / esz elements per 16-byte
    unit: element (r + 8 g, e + T j) sits at start + r*S + g*SBO + j*16 + e*esz, where the K
    extent of one instruction is 32 bytes (j = 0, 1) and S is the row pitch of the swizzle
    atom (LBO is unused with swizzling). No swizzle: core matrices of 8 rows x 16 bytes,
    element (r + 8 g, e + T j) at start + r*16 + g*SBO + j*LBO + e*esz.

    MN-major (M/N contiguous): element (e + T(c + w g), r + 8 j) with w = S / 16 units per
    row sits at start + e*esz + c*16 + g*LBO + r*S + j*SBO.

    The swizzle is then applied to the whole address (atoms are 1024-byte aligned).
    """
    f = decode_desc(desc)
    assert f["base_offset"] == 0, "this model supports atoms aligned to the swizzle repeat"
    S = f["mode"]
    T = 16 // esz
    i = np.arange(mn)[:, None]
    kk = np.arange(k)[None, :]
    if major == "K":
        assert k * esz == 32, "one wgmma reads 32 bytes of K"
        r, g = i % 8, i // 8
        e, j = kk % T, kk // T
        if S == 0:
            off = r * 16 + g * f["sbo"] + j * f["lbo"] + e * esz
        else:
            off = r * S + g * f["sbo"] + j * 16 + e * esz
    else:
        assert S != 0, "MN-major without swizzle is not used here"
        w = S // 16
        e, c, g = i % T, (i // T) % w, i // (T * w)
        r, j = kk % 8, kk // 8
        off = e * esz + c * 16 + g * f["lbo"] + r * S + j * f["sbo"]
    addr = f["addr"] + off
    return swizzle(addr, S) if S else addr


# ---------------------------------------------------------------- wgmma

def _read_operand(smem, addrs, esz, dec):
    flat = addrs.ravel()
    by = np.stack([_smem_bytes(smem, flat + b) for b in range(esz)], axis=1)
    if esz == 2:
        u = by[:, 0].astype(np.uint16) | (by[:, 1].astype(np.uint16) << 8)
    elif esz == 1:
        u = by[:, 0]
    else:
        u = (by[:, 0].astype(np.uint32) | (by[:, 1].astype(np.uint32) << 8)
             | (by[:, 2].astype(np.uint32) << 16) | (by[:, 3].astype(np.uint32) << 24))
    return dec(u).reshape(addrs.shape)


def _smem_bytes(smem, idx):
    if isinstance(smem, np.ndarray):
        return smem[idx]
    return smem.read(idx, -2, "wgmma")  # warp id -2: the tensor core (async proxy) reads


def wgmma_ss(smem, desc_a, desc_b, n, k, esz, dec, a_major="K", b_major="K"):
    """D[64, n] contribution of one wgmma.mma_async m64nNk(k) with A and B in shared memory.
    A is 64 x k (rows M); B is read as n x k (rows N), i.e. the product is A @ B.T. K-major B
    is the `.col` B of mma.sync (N x K row-major); MN-major B (imm-trans-b = 1) stores K x N
    rows with N contiguous."""
    assert n % 8 == 0 and 8 <= n <= 256
    A = _read_operand(smem, desc_addresses(desc_a, a_major, 64, k, esz), esz, dec)
    B = _read_operand(smem, desc_addresses(desc_b, b_major, n, k, esz), esz, dec)
    return A @ B.T


def acc_coords(n):
    """Accumulator fragment of wgmma .m64nNk*: thread t of the warpgroup (warp w = t / 32,
    lane l) holds n/2 registers; d[4i + 2h + c] is element (16 w + l / 4 + 8 h, 8 i + 2 (l % 4)
    + c) for i < n/8, h, c in {0, 1} (PTX ISA figure "WGMMA .m64nNk16 register fragment layout
    for accumulator matrix D")."""
    t = np.arange(128)[:, None]
    reg = np.arange(n // 2)[None, :]
    w, l = t // 32, t % 32
    i, h, c = reg // 4, (reg // 2) % 2, reg % 2
    row = 16 * w + l // 4 + 8 * h
    col = 8 * i + 2 * (l % 4) + c
    return np.broadcast_to(row, (128, n // 2)).copy(), np.broadcast_to(col, (128, n // 2)).copy()


def acc_scatter(D):
    n = D.shape[1]
    r, c = acc_coords(n)
    return D[r, c]


def acc_gather(regs):
    n = regs.shape[1] * 2
    r, c = acc_coords(n)
    D = np.full((64, n), np.nan)
    D[r, c] = regs
    return D


def a_frag_coords(esz):
    """A-from-registers fragment (wgmma with A in registers, 64 x 16 16-bit or 64 x 32 8-bit):
    warp w holds rows 16w..16w+15 in the mma.sync m16n8k16 / m16n8k32 A layout. Returns the
    (row, col) of each element, in register order (element e of 32-bit register e / (4/esz))."""
    t = np.arange(128)[:, None]
    w, l = t // 32, t % 32
    g, q = l // 4, l % 4
    per = 4 // esz             # elements per 32-bit register
    R = 4 * per
    e = np.arange(R)[None, :]
    reg, sub = e // per, e % per
    row = 16 * w + g + 8 * (reg % 2)
    col = per * q + sub + (reg // 2) * (4 * per)
    return np.broadcast_to(row, (128, R)).copy(), np.broadcast_to(col, (128, R)).copy()


def wgmma_rs(a_vals, smem, desc_b, n, esz, dec, b_major="K"):
    """One wgmma with A from registers: a_vals [128, R] element values in a_frag_coords order."""
    k = 32 // esz
    r, c = a_frag_coords(esz)
    A = np.full((64, k), np.nan)
    A[r, c] = a_vals
    assert not np.isnan(A).any()
    B = _read_operand(smem, desc_addresses(desc_b, b_major, n, k, esz), esz, dec)
    return A @ B.T


# ---------------------------------------------------------------- mbarrier

class MBarrier:
    """mbarrier object: an expected arrival count, pending arrivals, a transaction count and a
    phase. A phase completes when pending arrivals reach 0 and the tx-count is 0; then the
    phase number increments and pending arrivals reset to the expected count.
    try_wait.parity(p) is true once the phase with parity p has completed, i.e. while the
    current (incomplete) phase's parity differs from p; on a fresh barrier (phase 0) waiting
    for parity 1 succeeds at once (the "preceding phase" counts as complete)."""

    def __init__(self, count):
        assert count >= 1
        self.count = count
        self.pending = count
        self.tx = 0
        self.phase = 0          # number of the current, incomplete phase
        self.completed_phases = 0

    def _maybe_complete(self):
        if self.pending == 0 and self.tx == 0:
            self.phase += 1
            self.completed_phases += 1
            self.pending = self.count

    def expect_tx(self, nbytes):
        self.tx += nbytes

    def arrive(self):
        if self.pending <= 0:
            raise Race("mbarrier: more arrivals than the expected count in one phase")
        self.pending -= 1
        self._maybe_complete()

    def arrive_expect_tx(self, nbytes):
        self.expect_tx(nbytes)
        self.arrive()

    def complete_tx(self, nbytes):
        self.tx -= nbytes
        if self.tx < 0 and self.pending == 0:
            raise Race("mbarrier: tx-count underflow")
        self._maybe_complete()

    def try_wait_parity(self, p):
        return (self.phase & 1) != (p & 1)


class RingChecker:
    """Bookkeeping for a ring of shared-memory stages filled by TMA and read by consumers.

    The model of a kernel calls fill_start / fill_done (bytes landing, complete_tx), read
    (a consumer's wgmma reading stage s for fill number f) and release; each call asserts the
    ordering the mbarriers must give: a fill only into a stage every consumer released, a read
    only of a completed fill, and the data read is the fill the consumer expects."""

    def __init__(self, stages, consumers):
        self.stages = stages
        self.consumers = consumers
        self.fill_no = [-1] * stages        # which fill (k tile sequence number) a stage holds
        self.complete = [True] * stages     # its bytes have all landed
        self.readers = [set() for _ in range(stages)]   # consumers that have not released
        self.fills = 0

    def fill_start(self, s, seq):
        if self.readers[s]:
            raise Race(f"WAR: TMA refills stage {s} while consumers {self.readers[s]} still read it")
        if not self.complete[s]:
            raise Race(f"WAW: TMA refills stage {s} before the previous fill landed")
        self.fill_no[s] = seq
        self.complete[s] = False
        self.fills += 1

    def fill_done(self, s):
        self.complete[s] = True
        self.readers[s] = set(range(self.consumers))

    def read(self, s, seq, consumer):
        if not self.complete[s]:
            raise Race(f"RAW: consumer {consumer} reads stage {s} before its fill landed")
        if self.fill_no[s] != seq:
            raise Race(f"stale: consumer {consumer} reads fill {self.fill_no[s]} of stage {s}, expected {seq}")
        if consumer not in self.readers[s]:
            raise Race(f"consumer {consumer} reads stage {s} after releasing it")

    def release(self, s, consumer):
        self.readers[s].discard(consumer)


# ---------------------------------------------------------------- self-tests

def _bf16(x):
    return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


def _dec_bf16(u):
    return (np.asarray(u, np.uint32) << 16).view(np.float32).astype(np.float64)


def _test_swizzle():
    o = np.arange(1024)
    for mode in (128, 64, 32, 0):
        s = swizzle(o, mode)
        assert sorted(s) == list(o), f"swizzle {mode} is not a bijection"
        # 16-byte chunks stay whole
        assert (s[::16] % 16 == 0).all() and ((s[1::16] - s[::16]) == 1).all()
    # 128B: row r's chunk c lands in chunk c ^ r
    assert swizzle(7 * 128 + 0 * 16, 128) == 7 * 128 + 7 * 16
    assert swizzle(3 * 128 + 5 * 16 + 2, 128) == 3 * 128 + 6 * 16 + 2
    # 8 rows reading the same logical chunk hit 8 different 16-byte bank groups
    for c in range(8):
        banks = {(int(swizzle(r * 128 + c * 16, 128)) // 16) % 8 for r in range(8)}
        assert len(banks) == 8


def _test_desc():
    d = make_desc(0x12340, 16, 1024, 128)
    f = decode_desc(d)
    assert f == dict(addr=0x12340, lbo=16, sbo=1024, base_offset=0, mode=128), f
    assert d >> 62 == 1
    # adding (bytes >> 4) to the low word advances the start address
    assert decode_desc(d + (32 >> 4))["addr"] == 0x12360


def _test_tma_and_wgmma_kmajor(rng, esz, n, mn_major_b=False):
    """A (64 x K) and B tiles loaded by TMA with 128B swizzle, multiplied by wgmma over a
    whole 128-byte K row (several k steps); compared with the f64 product."""
    dec = _dec_bf16 if esz == 2 else (lambda u: u.view(np.int8).astype(np.float64))
    BK = 128 // esz
    M, N, K = 64 + 3, n + 5, BK + 7          # global matrices larger than one tile
    A = rng.integers(-3, 4, (M, K)).astype(np.float64)
    B = rng.integers(-3, 4, (K, N)).astype(np.float64)   # logical K x N
    enc = (lambda x: _bf16(x).view(np.uint8)) if esz == 2 else (lambda x: x.astype(np.int8).view(np.uint8))
    # A row-major with a padded pitch (16-byte multiple)
    pa = -(-K * esz // 16) * 16
    ga = np.zeros(M * pa, np.uint8)
    for r in range(M):
        ga[r * pa: r * pa + K * esz] = enc(A[r]).ravel()
    smem = np.zeros(64 * 1024, np.uint8)
    m0, n0, k0 = 1, 2, 3                      # tile origin inside the matrices
    tma_box_to_smem(smem, 0, ga, (K, M, pa), (BK, 64), (k0, m0), esz)
    sb = 16384
    if not mn_major_b:
        Bt = B.T.copy()                       # N x K row-major (nk)
        pb = -(-K * esz // 16) * 16
        gb = np.zeros(N * pb, np.uint8)
        for r in range(N):
            gb[r * pb: r * pb + K * esz] = enc(Bt[r]).ravel()
        tma_box_to_smem(smem, sb, gb, (K, N, pb), (BK, n), (k0, n0), esz)
    else:
        assert esz == 2
        pb = -(-N * esz // 16) * 16
        gb = np.zeros(K * pb, np.uint8)
        for r in range(K):
            gb[r * pb: r * pb + N * esz] = enc(B[r]).ravel()
        W = 128 // esz                        # 64 N elements per box row
        for c in range(n // W):
            tma_box_to_smem(smem, sb + c * BK * 128, gb, (N, K, pb), (W, BK), (n0 + c * W, k0), esz)
    D = np.zeros((64, n))
    kstep = 32 // esz
    for kk in range(BK // kstep):
        da = make_desc(0 + kk * 32, 16, 1024)
        if not mn_major_b:
            db = make_desc(sb + kk * 32, 16, 1024)
            D += wgmma_ss(smem, da, db, n, kstep, esz, dec)
        else:
            db = make_desc(sb + kk * 16 * 128, BK * 128, 1024)
            D += wgmma_ss(smem, da, db, n, kstep, esz, dec, b_major="MN")
    ref = A[m0:m0 + 64, k0:k0 + BK] @ B[k0:k0 + BK, n0:n0 + n]
    # rows/cols past the matrix were zero-filled: pad the reference the same way
    full = np.zeros((64, n))
    kk_end = min(K, k0 + BK)
    sub = A[m0:min(M, m0 + 64), k0:kk_end] @ B[k0:kk_end, n0:min(N, n0 + n)]
    full[:sub.shape[0], :sub.shape[1]] = sub
    assert np.array_equal(D, full), f"wgmma esz={esz} n={n} mn_major={mn_major_b}"
    # the accumulator fragment round-trips
    assert np.array_equal(acc_gather(acc_scatter(D)), D)
    return ref


def _test_acc_layout():
    for n in (8, 64, 256):
        r, c = acc_coords(n)
        flat = r * n + c
        assert np.unique(flat).size == 64 * n, "every accumulator element held exactly once"
    r, c = acc_coords(16)
    assert (r[0, :4].tolist(), c[0, :4].tolist()) == ([0, 0, 8, 8], [0, 1, 0, 1])
    assert (r[37, 4], c[37, 4]) == (16 + 1, 8 + 2)   # warp 1 lane 5, second n8 block


def _test_a_frag():
    for esz in (2, 1):
        r, c = a_frag_coords(esz)
        k = 32 // esz
        assert np.unique(r * k + c).size == 64 * k
    r, c = a_frag_coords(2)
    # lane 5 of warp 0: g = 1, q = 1 -> a0,a1 = (1, 2..3), a2,a3 = (9, 2..3), a4,a5 = (1, 10..11)
    assert r[5].tolist() == [1, 1, 9, 9, 1, 1, 9, 9]
    assert c[5].tolist() == [2, 3, 2, 3, 10, 11, 10, 11]


def _test_mbarrier():
    b = MBarrier(1)
    assert b.try_wait_parity(1) and not b.try_wait_parity(0)
    b.arrive_expect_tx(100)
    assert not b.try_wait_parity(0), "tx outstanding"
    b.complete_tx(60)
    assert not b.try_wait_parity(0)
    b.complete_tx(40)
    assert b.try_wait_parity(0) and not b.try_wait_parity(1)
    # bytes may land before the arrive that expects them (tx goes negative transiently)
    b.complete_tx(10)
    assert not b.try_wait_parity(1)
    b.arrive_expect_tx(10)
    assert b.try_wait_parity(1)
    e = MBarrier(2)
    e.arrive()
    assert not e.try_wait_parity(0)
    e.arrive()
    assert e.try_wait_parity(0)
    try:
        r = RingChecker(2, 2)
        r.fill_start(0, 0); r.fill_done(0); r.read(0, 0, 0); r.release(0, 0)
        r.fill_start(0, 2)
        raise AssertionError("the checker missed a WAR")
    except Race:
        pass


def selftest():
    rng = np.random.default_rng(1)
    _test_swizzle()
    _test_desc()
    _test_acc_layout()
    _test_a_frag()
    _test_mbarrier()
    for n in (8, 64, 128, 256):
        _test_tma_and_wgmma_kmajor(rng, 2, n)
    for n in (64, 128):
        _test_tma_and_wgmma_kmajor(rng, 2, n, mn_major_b=True)
    for n in (64, 256):
        _test_tma_and_wgmma_kmajor(rng, 1, n)
    print("hopper.py self-tests: OK (swizzle, descriptors, TMA boxes, wgmma K-/MN-major, fragments, mbarrier)")


if __name__ == "__main__":
    selftest()
