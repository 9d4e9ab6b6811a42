// PTX helpers shared by every kernel source but memory.cu and matmul_simt.cu (attention.cu,
// matmul_mma.cu, flash_fwd.cu, flash_decode.cu, and through gpuvet_sm90.cuh the Hopper ones):
// shared-memory addresses, the f32 → bf16/f16 conversion and the guarded pair store, cp.async,
// ldmatrix and mma.sync.
//
// Handed to NVRTC as an in-memory header (src/backend/cuda/nvrtc.rs), so no CUDA toolkit
// headers are needed, and part of the kernel source hash (src/backend/cuda/kernels.rs).
#pragma once

typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;

__device__ __forceinline__ u32 smem_addr(const void* p) {
    u32 r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
    return r;
}

// x as the bits of a bf16 (BF16) or an f16, rounded to nearest even.
template <bool BF16>
__device__ __forceinline__ u16 f32_to_16(float x) {
    u16 h;
    if constexpr (BF16) {
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x));
    } else {
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    }
    return h;
}

// Stores x0 and x1 at columns c and c + 1 of `row`, guarded by N; one store of `both` (the two
// as one vector) when both are inside and N is even, so that the pair is aligned.
template <typename T, typename V2>
__device__ __forceinline__ void store_pair_guarded(T* row, int c, int N, T x0, T x1, V2 both) {
    if ((N & 1) == 0 && c + 1 < N) {
        *(V2*)(row + c) = both;
    } else {
        if (c < N) row[c] = x0;
        if (c + 1 < N) row[c + 1] = x1;
    }
}

// 16 bytes global → shared, bypassing L1; only the first `src_bytes` (0 or 16) are read, the
// rest of the 16 is zero-filled. The "memory" clobbers keep the compiler from moving shared
// memory accesses across the copy, its commit and its wait.
__device__ __forceinline__ void cp_async16(u32 dst, const void* src, u32 src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}

// cp_async16 of all 16 bytes when `valid`, else a zero fill.
__device__ __forceinline__ void cp_async16_zfill(u32 dst, const void* src, bool valid) {
    cp_async16(dst, src, valid ? 16u : 0u);
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Waits for every copy of this thread and then for the whole block: afterwards no cp.async of
// the block is in flight, so shared memory can be reused for something else.
__device__ __forceinline__ void cp_async_drain() {
    cp_async_wait<0>();
    __syncthreads();
}

__device__ __forceinline__ void ldsm_x4(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

__device__ __forceinline__ void ldsm_x4_t(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

// One mma.sync `INSTR` (shape and types, e.g. "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32")
// on a 4-register accumulator c (constraint CC: "+f" for f32, "+r" for s32), a 4-register A
// fragment a and the 2-register B fragment b0, b1.
#define GV_MMA_SYNC(INSTR, CC, c, a, b0, b1)                                                  \
    asm volatile(INSTR " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"             \
                 : CC(c[0]), CC(c[1]), CC(c[2]), CC(c[3])                                     \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1))

// c (16×8 fp32) += a (16×16, row) · b (16×8, col).
template <bool BF16>
__device__ __forceinline__ void mma16816(float* c, const u32* a, u32 b0, u32 b1) {
    if constexpr (BF16) {
        GV_MMA_SYNC("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", "+f", c, a, b0, b1);
    } else {
        GV_MMA_SYNC("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", "+f", c, a, b0, b1);
    }
}
