// Copies over a link, driven by the SMs: host<->device through mapped pinned host memory
// (cuMemHostAlloc with DEVICEMAP), or device<->device through a peer mapping
// (cuCtxEnablePeerAccess). The copy engine does the same with cuMemcpyAsync; this kernel is the
// SM path nvbandwidth calls "_sm", so that the two can be compared on the same link.
//
// No #include (NVRTC without a toolkit has no headers). Each thread moves 16-byte words with
// UNROLL loads in flight before it stores (a link has microseconds of latency to hide);
// grid-stride, so one launch of "enough blocks to fill the GPU" covers any size. The n % 4 tail
// of 4-byte words is copied by block 0. Pointers from cuMemAlloc, cuMemHostAlloc and peer
// mappings are at least 256-byte aligned.

#define UNROLL 4

typedef unsigned long long u64;

extern "C" __global__ void gv_link_copy(const unsigned int* __restrict__ src,
                                        unsigned int* __restrict__ dst, u64 words) {
    const uint4* __restrict__ s4 = (const uint4*)src;
    uint4* __restrict__ d4 = (uint4*)dst;
    const u64 n4 = words / 4;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + (UNROLL - 1) * stride < n4; i += UNROLL * stride) {
        uint4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) v[u] = s4[i + u * stride];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) d4[i + u * stride] = v[u];
    }
    for (; i < n4; i += stride) d4[i] = s4[i];
    if (blockIdx.x == 0) {
        for (u64 j = n4 * 4 + threadIdx.x; j < words; j += blockDim.x) dst[j] = src[j];
    }
}
