// Streaming memory kernels: copy, read (sum), write (fill) and STREAM triad over f32 arrays.
//
// No #include: NVRTC without a CUDA toolkit has no headers, and these kernels need none.
// Every access is a 16-byte float4 (cudaMalloc/cuMemAlloc pointers are 256-byte aligned), the
// loop is grid-stride so one launch of "enough blocks to fill the GPU" covers any size, and
// each thread issues UNROLL independent loads before using them so that enough bytes are in
// flight per SM to cover DRAM latency. The n % 4 tail is handled by block 0 with scalar access.

#define UNROLL 4

typedef unsigned long long u64;

__device__ __forceinline__ u64 global_thread() {
    return (u64)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ u64 grid_threads() {
    return (u64)gridDim.x * blockDim.x;
}

extern "C" __global__ void gv_copy(const float* __restrict__ src, float* __restrict__ dst, u64 n) {
    const float4* __restrict__ s4 = (const float4*)src;
    float4* __restrict__ d4 = (float4*)dst;
    const u64 n4 = n / 4;
    const u64 stride = grid_threads();
    u64 i = global_thread();
    for (; i + (UNROLL - 1) * stride < n4; i += UNROLL * stride) {
        float4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) v[u] = s4[i + u * stride];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) d4[i + u * stride] = v[u];
    }
    for (; i < n4; i += stride) d4[i] = s4[i];
    if (blockIdx.x == 0) {
        for (u64 j = n4 * 4 + threadIdx.x; j < n; j += blockDim.x) dst[j] = src[j];
    }
}

extern "C" __global__ void gv_write(float* __restrict__ dst, u64 n, float value) {
    float4* __restrict__ d4 = (float4*)dst;
    const float4 v = make_float4(value, value, value, value);
    const u64 n4 = n / 4;
    const u64 stride = grid_threads();
    u64 i = global_thread();
    for (; i + (UNROLL - 1) * stride < n4; i += UNROLL * stride) {
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) d4[i + u * stride] = v;
    }
    for (; i < n4; i += stride) d4[i] = v;
    if (blockIdx.x == 0) {
        for (u64 j = n4 * 4 + threadIdx.x; j < n; j += blockDim.x) dst[j] = value;
    }
}

extern "C" __global__ void gv_triad(float* __restrict__ a, const float* __restrict__ b,
                                    const float* __restrict__ c, u64 n, float s) {
    float4* __restrict__ a4 = (float4*)a;
    const float4* __restrict__ b4 = (const float4*)b;
    const float4* __restrict__ c4 = (const float4*)c;
    const u64 n4 = n / 4;
    const u64 stride = grid_threads();
    u64 i = global_thread();
    for (; i + (UNROLL - 1) * stride < n4; i += UNROLL * stride) {
        float4 x[UNROLL], y[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            x[u] = b4[i + u * stride];
            y[u] = c4[i + u * stride];
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            a4[i + u * stride] = make_float4(x[u].x + s * y[u].x, x[u].y + s * y[u].y,
                                             x[u].z + s * y[u].z, x[u].w + s * y[u].w);
        }
    }
    for (; i < n4; i += stride) {
        const float4 x = b4[i], y = c4[i];
        a4[i] = make_float4(x.x + s * y.x, x.y + s * y.y, x.z + s * y.z, x.w + s * y.w);
    }
    if (blockIdx.x == 0) {
        for (u64 j = n4 * 4 + threadIdx.x; j < n; j += blockDim.x) a[j] = b[j] + s * c[j];
    }
}

// Sum of all elements: each thread accumulates in f32 (independent accumulators per unrolled
// load, so the adds do not serialise the loads), the block reduces in f64 and writes one
// partial per block. The host adds the partials: no atomics, no output to zero in the timed loop.
extern "C" __global__ void gv_read(const float* __restrict__ src, u64 n, double* __restrict__ partials) {
    const float4* __restrict__ s4 = (const float4*)src;
    const u64 n4 = n / 4;
    const u64 stride = grid_threads();
    u64 i = global_thread();
    float acc[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) acc[u] = 0.0f;
    for (; i + (UNROLL - 1) * stride < n4; i += UNROLL * stride) {
        float4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) v[u] = s4[i + u * stride];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) acc[u] += (v[u].x + v[u].y) + (v[u].z + v[u].w);
    }
    for (; i < n4; i += stride) {
        const float4 v = s4[i];
        acc[0] += (v.x + v.y) + (v.z + v.w);
    }
    if (blockIdx.x == 0) {
        for (u64 j = n4 * 4 + threadIdx.x; j < n; j += blockDim.x) acc[1] += src[j];
    }
    double t = 0.0;
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) t += (double)acc[u];
    for (int off = 16; off > 0; off >>= 1) t += __shfl_down_sync(0xffffffffu, t, off);
    __shared__ double warp_sums[32];
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = t;
    __syncthreads();
    if (warp == 0) {
        const unsigned warps = (blockDim.x + 31u) >> 5;
        t = lane < warps ? warp_sums[lane] : 0.0;
        for (int off = 16; off > 0; off >>= 1) t += __shfl_down_sync(0xffffffffu, t, off);
        if (lane == 0) partials[blockIdx.x] = t;
    }
}
