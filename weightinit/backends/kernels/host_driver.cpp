// Host build of the CUDA device functions, for the bit-equality tests that run
// without a GPU (tests/test_kernels_host.py). Build:
//
//   g++ -O2 -std=c++17 -ffp-contract=off -fno-fast-math -shared -fPIC host_driver.cpp -o libwi_host.so
//
// Every entry point is extern "C" so that ctypes can call it. The fill walks the
// range block by block with the same per-block function the GPU threads run.
#include "weightinit_kernels.cuh"

namespace {

template <int KIND, int DTYPE, int NDTRI, int CVT>
void fill_range(const double* params, wi_u64 key0, wi_u64 key1, wi_i64 start, wi_i64 n, void* out) {
    typedef typename wi_storage<DTYPE>::type T;
    if (n <= 0) return;
    const wi_u64 first = (wi_u64)start >> 2;
    const wi_u64 blocks = (((wi_u64)(start + n) + 3ull) >> 2) - first;
    for (wi_u64 t = 0; t < blocks; ++t)
        wi_fill_block<KIND, DTYPE, NDTRI, CVT>(params, key0, key1, first + t, start, n, static_cast<T*>(out),
                                          WI_NDTRI_TABLE, false);
}

template <int KIND, int NDTRI, int CVT>
int fill_dtype(int dtype, const double* params, wi_u64 key0, wi_u64 key1, wi_i64 start, wi_i64 n, void* out) {
    switch (dtype) {
        case WI_DTYPE_FLOAT32: fill_range<KIND, WI_DTYPE_FLOAT32, NDTRI, CVT>(params, key0, key1, start, n, out); return 0;
        case WI_DTYPE_FLOAT64: fill_range<KIND, WI_DTYPE_FLOAT64, NDTRI, CVT>(params, key0, key1, start, n, out); return 0;
        case WI_DTYPE_FLOAT16: fill_range<KIND, WI_DTYPE_FLOAT16, NDTRI, CVT>(params, key0, key1, start, n, out); return 0;
        case WI_DTYPE_BFLOAT16: fill_range<KIND, WI_DTYPE_BFLOAT16, NDTRI, CVT>(params, key0, key1, start, n, out); return 0;
        default: return -2;
    }
}

template <int NDTRI, int CVT>
int fill_kind(int kind, int dtype, const double* params, wi_u64 key0, wi_u64 key1, wi_i64 start, wi_i64 n,
              void* out) {
    switch (kind) {
        case WI_KIND_UNIFORM: return fill_dtype<WI_KIND_UNIFORM, NDTRI, CVT>(dtype, params, key0, key1, start, n, out);
        case WI_KIND_NORMAL: return fill_dtype<WI_KIND_NORMAL, NDTRI, CVT>(dtype, params, key0, key1, start, n, out);
        case WI_KIND_TRUNCATED_NORMAL:
            return fill_dtype<WI_KIND_TRUNCATED_NORMAL, NDTRI, CVT>(dtype, params, key0, key1, start, n, out);
        default: return -1;
    }
}

template <int NDTRI>
double value_of(int kind, const double* params, wi_u64 word) {
    switch (kind) {
        case WI_KIND_UNIFORM: return wi_value<WI_KIND_UNIFORM, NDTRI>(params, word, WI_NDTRI_TABLE);
        case WI_KIND_NORMAL: return wi_value<WI_KIND_NORMAL, NDTRI>(params, word, WI_NDTRI_TABLE);
        default: return wi_value<WI_KIND_TRUNCATED_NORMAL, NDTRI>(params, word, WI_NDTRI_TABLE);
    }
}

}  // namespace

extern "C" {

int wi_host_abi_version() { return 2; }

// Elements [start, start + n) of kind (WI_KIND_*) under key (key0, key1), as
// storage bits of dtype (WI_DTYPE_*) in out; ndtri selects WI_NDTRI_*, cvt WI_CVT_*.
// Returns 0, or a negative number for an unknown kind / dtype / variant or a bad range.
int wi_host_fill(int kind, const double* params, wi_u64 key0, wi_u64 key1, wi_i64 start, wi_i64 n, int dtype,
                 void* out, int ndtri, int cvt) {
    if (start < 0 || n < 0) return -4;
    if (cvt != WI_CVT_INTEGER && cvt != WI_CVT_HARDWARE) return -5;
    if (ndtri == WI_NDTRI_SELECT) {
        return cvt == WI_CVT_HARDWARE
                   ? fill_kind<WI_NDTRI_SELECT, WI_CVT_HARDWARE>(kind, dtype, params, key0, key1, start, n, out)
                   : fill_kind<WI_NDTRI_SELECT, WI_CVT_INTEGER>(kind, dtype, params, key0, key1, start, n, out);
    }
    if (ndtri == WI_NDTRI_BRANCHY) {
        return cvt == WI_CVT_HARDWARE
                   ? fill_kind<WI_NDTRI_BRANCHY, WI_CVT_HARDWARE>(kind, dtype, params, key0, key1, start, n, out)
                   : fill_kind<WI_NDTRI_BRANCHY, WI_CVT_INTEGER>(kind, dtype, params, key0, key1, start, n, out);
    }
    return -3;
}

void wi_host_philox(const wi_u64* counter, const wi_u64* key, wi_u64* out) {
    wi_philox4x64_10(counter[0], counter[1], counter[2], counter[3], key[0], key[1], out);
}

void wi_host_uniform01(const wi_u64* words, wi_i64 n, double* out) {
    for (wi_i64 i = 0; i < n; ++i) out[i] = wi_uniform01(words[i]);
}

void wi_host_open_uniform(const wi_u64* words, wi_i64 n, double* out) {
    for (wi_i64 i = 0; i < n; ++i) out[i] = wi_open_uniform(words[i]);
}

void wi_host_log(const double* x, wi_i64 n, double* out) {
    for (wi_i64 i = 0; i < n; ++i) out[i] = wi_log_positive(x[i]);
}

void wi_host_frexp(const double* x, wi_i64 n, double* mantissa, int* exponent) {
    for (wi_i64 i = 0; i < n; ++i) mantissa[i] = wi_frexp(x[i], &exponent[i]);
}

void wi_host_ndtri(const double* p, wi_i64 n, double* out, int ndtri) {
    for (wi_i64 i = 0; i < n; ++i)
        out[i] = ndtri == WI_NDTRI_SELECT ? wi_ndtri_select(p[i], WI_NDTRI_TABLE) : wi_ndtri_branchy(p[i], WI_NDTRI_TABLE);
}

// Float64 kernel values of given words (before storage rounding).
void wi_host_values(int kind, const double* params, const wi_u64* words, wi_i64 n, double* out, int ndtri) {
    for (wi_i64 i = 0; i < n; ++i)
        out[i] = ndtri == WI_NDTRI_SELECT ? value_of<WI_NDTRI_SELECT>(kind, params, words[i])
                                          : value_of<WI_NDTRI_BRANCHY>(kind, params, words[i]);
}

void wi_host_f64_to_f32(const double* x, wi_i64 n, wi_u32* out) {
    for (wi_i64 i = 0; i < n; ++i) out[i] = wi_f64_to_f32_bits(x[i]);
}

void wi_host_f64_to_f32_hw(const double* x, wi_i64 n, wi_u32* out) {
    for (wi_i64 i = 0; i < n; ++i) out[i] = wi_f64_to_f32_bits_hw(x[i]);
}

void wi_host_f32_to_f16(const wi_u32* x, wi_i64 n, wi_u16* out) {
    for (wi_i64 i = 0; i < n; ++i) out[i] = wi_f32_to_f16_bits(x[i]);
}

void wi_host_f32_to_bf16(const wi_u32* x, wi_i64 n, wi_u16* out) {
    for (wi_i64 i = 0; i < n; ++i) out[i] = wi_f32_to_bf16_bits(x[i]);
}

// The constants table, for the test that compares it with transforms.py.
void wi_host_ndtri_table(double* out) {
    for (int i = 0; i < WI_NDTRI_TABLE_SIZE; ++i) out[i] = WI_NDTRI_TABLE[i];
}

void wi_host_log_constants(double* out) {
    const double values[] = {WI_LN2_HI, WI_LN2_LO, WI_LG1, WI_LG2, WI_LG3, WI_LG4, WI_LG5, WI_LG6, WI_LG7,
                             WI_SQRT_HALF, WI_PPND_SPLIT1, WI_PPND_SPLIT2, WI_PPND_CONST1, WI_PPND_CONST2};
    for (int i = 0; i < 14; ++i) out[i] = values[i];
}

}  // extern "C"
