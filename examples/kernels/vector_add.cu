// c = a + b over n floats, grid-stride: the smallest free-form kernel (vector_add.toml).
extern "C" __global__ void vector_add(const float* a, const float* b, float* c, unsigned long long n) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        c[i] = a[i] + b[i];
    }
}
