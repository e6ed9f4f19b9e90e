// weightinit CUDA kernels (compiled at run time by CuPy's RawModule / NVRTC with
// --fmad=false -std=c++17; CuPy adds -ftz=true, which nothing here depends on).
//
// wi_<kind>_<dtype>(p0..p6, key0, key1, start, n, out) writes elements
// [start, start + n) of the stream keyed (key0, key1) into out[0 .. n), as the
// storage dtype's bits (float32: uint32, float64: uint64, float16 / bfloat16:
// uint16). Thread t of the grid-stride loop computes whole Philox blocks
// (4 words -> 4 elements), stored with one vector store when the range and the
// buffer are 4-element aligned.
#include "weightinit_kernels.cuh"

template <int KIND, int DTYPE>
__device__ __forceinline__ void wi_fill_range(double p0, double p1, double p2, double p3, double p4, double p5,
                                              double p6, wi_u64 key0, wi_u64 key1, wi_i64 start, wi_i64 n,
                                              typename wi_storage<DTYPE>::type* out) {
    typedef typename wi_storage<DTYPE>::type T;
    const double params[7] = {p0, p1, p2, p3, p4, p5, p6};
    const double* table = WI_NDTRI_TABLE;
#if WI_NDTRI == WI_NDTRI_SELECT
    __shared__ double shared_table[WI_NDTRI_TABLE_SIZE];
    if (KIND != WI_KIND_UNIFORM) {
        for (int i = threadIdx.x; i < WI_NDTRI_TABLE_SIZE; i += blockDim.x) shared_table[i] = WI_NDTRI_TABLE[i];
        __syncthreads();
        table = shared_table;
    }
#endif
    if (n <= 0) return;
    const wi_u64 first = (wi_u64)start >> 2;
    const wi_u64 blocks = (((wi_u64)(start + n) + 3ull) >> 2) - first;
    const bool vector_store = (start & 3) == 0 && ((unsigned long long)out % (4 * sizeof(T))) == 0;
    const wi_u64 stride = (wi_u64)gridDim.x * blockDim.x;
    for (wi_u64 t = (wi_u64)blockIdx.x * blockDim.x + threadIdx.x; t < blocks; t += stride)
        wi_fill_block<KIND, DTYPE, WI_NDTRI, WI_CVT>(params, key0, key1, first + t, start, n, out, table, vector_store);
}

#define WI_KERNEL(kind_name, KIND, dtype_name, DTYPE)                                                          \
    extern "C" __global__ void wi_##kind_name##_##dtype_name(                                                  \
        double p0, double p1, double p2, double p3, double p4, double p5, double p6, wi_u64 key0, wi_u64 key1, \
        wi_i64 start, wi_i64 n, wi_storage<DTYPE>::type* out) {                                                \
        wi_fill_range<KIND, DTYPE>(p0, p1, p2, p3, p4, p5, p6, key0, key1, start, n, out);                     \
    }

#define WI_KERNELS_OF(kind_name, KIND)                          \
    WI_KERNEL(kind_name, KIND, float32, WI_DTYPE_FLOAT32)       \
    WI_KERNEL(kind_name, KIND, float64, WI_DTYPE_FLOAT64)       \
    WI_KERNEL(kind_name, KIND, float16, WI_DTYPE_FLOAT16)       \
    WI_KERNEL(kind_name, KIND, bfloat16, WI_DTYPE_BFLOAT16)

WI_KERNELS_OF(uniform, WI_KIND_UNIFORM)
WI_KERNELS_OF(normal, WI_KIND_NORMAL)
WI_KERNELS_OF(truncated_normal, WI_KIND_TRUNCATED_NORMAL)
