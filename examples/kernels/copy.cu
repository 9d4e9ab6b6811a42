// A grid-stride f32 copy in gpuvet's memory conventions (docs/kernels.md):
//   copy: (const float* src, float* dst, unsigned long long n)   n = elements per array
extern "C" __global__ void copy_f32(const float* __restrict__ src, float* __restrict__ dst,
                                    unsigned long long n) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        dst[i] = src[i];
    }
}
