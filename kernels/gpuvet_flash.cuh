// Helpers shared by the two flash-attention kernels (flash_fwd.cu, flash_decode.cu): the
// 16-bit packing, the swizzled tile layout and its cp.async loader. In-memory NVRTC header like
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
