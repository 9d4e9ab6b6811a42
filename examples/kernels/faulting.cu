// A DELIBERATELY FAULTING KERNEL, for tests: every thread writes 4 TiB past its buffer, which
// the GPU reports as an illegal address (a sticky error: the context is lost). gpuvet must
// report it as a failed result with the CUDA error and go on on other devices.
extern "C" __global__ void faulting_write(float* out, unsigned long long n) {
    const unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i + (1ull << 40)] = 1.0f;
    }
}
