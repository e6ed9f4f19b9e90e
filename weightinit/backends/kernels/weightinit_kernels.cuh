// weightinit device functions: Philox4x64-10 and the word -> float transforms of
// weightinit/engine/transforms.py, in exactly the reference's operation order.
//
// One source, two compilers:
//   * NVRTC / nvcc (CuPy RawModule, weightinit_kernels.cu): every float64 operation
//     is an explicit round-to-nearest intrinsic (__dadd_rn, __dmul_rn, ...), which
//     the compiler never contracts into an FMA; the module is also compiled with
//     --fmad=false.
//   * the host C++ compiler (tests/test_kernels_host.py via host_driver.cpp), with
//     -ffp-contract=off -fno-fast-math: the same functions map to plain IEEE
//     binary64 operators.
//
// No float32 arithmetic is done anywhere: CuPy always compiles with -ftz=true,
// which flushes float32 subnormals, so float64 values are rounded to float32 /
// float16 / bfloat16 bit patterns with integer round-to-nearest-even (or, with
// WI_CVT_HARDWARE, by inline-PTX cvt.rn instructions that carry no .ftz, and
// never where a float32 subnormal could result). FTZ does not affect float64.
//
// Self-contained: no #include, so NVRTC needs no header search path.
#ifndef WEIGHTINIT_KERNELS_CUH
#define WEIGHTINIT_KERNELS_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define WI_GPU 1
#define WI_FN __device__ __forceinline__
#define WI_TABLE __constant__ const
#define WI_UNROLL _Pragma("unroll")
#else
#define WI_FN static inline
#define WI_TABLE static const
#define WI_UNROLL
#endif

typedef unsigned long long wi_u64;
typedef long long wi_i64;
typedef unsigned int wi_u32;
typedef unsigned short wi_u16;

// ---------------------------------------------------------------------------
// Shim: the only primitives the rest of the file uses.

#ifdef WI_GPU
WI_FN wi_u64 wi_umulhi(wi_u64 a, wi_u64 b) { return __umul64hi(a, b); }
WI_FN double wi_add(double a, double b) { return __dadd_rn(a, b); }
WI_FN double wi_sub(double a, double b) { return __dsub_rn(a, b); }
WI_FN double wi_mul(double a, double b) { return __dmul_rn(a, b); }
WI_FN double wi_div(double a, double b) { return __ddiv_rn(a, b); }
WI_FN double wi_sqrt(double a) { return __dsqrt_rn(a); }
WI_FN wi_u64 wi_dbits(double x) { return (wi_u64)__double_as_longlong(x); }
WI_FN double wi_bitsd(wi_u64 b) { return __longlong_as_double((long long)b); }
// Exact for every value used here (< 2**53, or a small int).
WI_FN double wi_u64_to_f64(wi_u64 x) { return __ull2double_rn(x); }
WI_FN double wi_int_to_f64(int x) { return __int2double_rn(x); }
#else
WI_FN wi_u64 wi_umulhi(wi_u64 a, wi_u64 b) {
    return (wi_u64)(((unsigned __int128)a * (unsigned __int128)b) >> 64);
}
WI_FN double wi_add(double a, double b) { return a + b; }
WI_FN double wi_sub(double a, double b) { return a - b; }
WI_FN double wi_mul(double a, double b) { return a * b; }
WI_FN double wi_div(double a, double b) { return a / b; }
WI_FN double wi_sqrt(double a) { return __builtin_sqrt(a); }
WI_FN wi_u64 wi_dbits(double x) { wi_u64 b; __builtin_memcpy(&b, &x, 8); return b; }
WI_FN double wi_bitsd(wi_u64 b) { double x; __builtin_memcpy(&x, &b, 8); return x; }
WI_FN double wi_u64_to_f64(wi_u64 x) { return (double)x; }
WI_FN double wi_int_to_f64(int x) { return (double)x; }
#endif

WI_FN double wi_fabs(double x) { return wi_bitsd(wi_dbits(x) & 0x7FFFFFFFFFFFFFFFull); }
WI_FN double wi_neg(double x) { return wi_bitsd(wi_dbits(x) ^ 0x8000000000000000ull); }

// ---------------------------------------------------------------------------
// Philox4x64-10 (Random123): word i of substream s under key (seed, stream) is
// lane i % 4 of philox(counter = (i / 4, s, 0, 0), key).

#define WI_PHILOX_M0 0xD2E7470EE14C6C93ull
#define WI_PHILOX_M1 0xCA5A826395121157ull
#define WI_PHILOX_W0 0x9E3779B97F4A7C15ull
#define WI_PHILOX_W1 0xBB67AE8584CAA73Bull

WI_FN void wi_philox4x64_10(wi_u64 c0, wi_u64 c1, wi_u64 c2, wi_u64 c3, wi_u64 k0, wi_u64 k1,
                            wi_u64 out[4]) {
    WI_UNROLL
    for (int round = 0; round < 10; ++round) {
        if (round) {
            k0 += WI_PHILOX_W0;
            k1 += WI_PHILOX_W1;
        }
        const wi_u64 hi0 = wi_umulhi(WI_PHILOX_M0, c0), lo0 = WI_PHILOX_M0 * c0;
        const wi_u64 hi1 = wi_umulhi(WI_PHILOX_M1, c2), lo1 = WI_PHILOX_M1 * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// ---------------------------------------------------------------------------
// Words -> uniforms (both exact).

// (w >> 11) * 2**-53 in [0, 1).
WI_FN double wi_uniform01(wi_u64 w) { return wi_mul(wi_u64_to_f64(w >> 11), 0x1p-53); }

// (2 * (w >> 12) + 1) * 2**-53 in (0, 1).
WI_FN double wi_open_uniform(wi_u64 w) { return wi_mul(wi_u64_to_f64(((w >> 12) << 1) | 1ull), 0x1p-53); }

// ---------------------------------------------------------------------------
// Constants of transforms.py, as hexadecimal literals (exact; the host test checks
// them against the Python values).

#define WI_LN2_HI 0x1.62e42fee00000p-1
#define WI_LN2_LO 0x1.a39ef35793c76p-33
#define WI_LG1 0x1.5555555555593p-1
#define WI_LG2 0x1.999999997fa04p-2
#define WI_LG3 0x1.2492494229359p-2
#define WI_LG4 0x1.c71c51d8e78afp-3
#define WI_LG5 0x1.7466496cb03dep-3
#define WI_LG6 0x1.39a09d078c69fp-3
#define WI_LG7 0x1.2f112df3e5244p-3
#define WI_SQRT_HALF 0x1.6a09e667f3bcdp-1
#define WI_PPND_SPLIT1 0x1.b333333333333p-2
#define WI_PPND_SPLIT2 0x1.4000000000000p+2
#define WI_PPND_CONST1 0x1.71eb851eb851fp-3
#define WI_PPND_CONST2 0x1.999999999999ap+0

// AS 241 PPND16 coefficients, three rational functions (numerator 0..7, then
// denominator 0..7) for the central region, the near tail and the far tail.
// Each set is padded to WI_NDTRI_STRIDE doubles so that the three sets fall in
// different shared-memory banks when lanes of a warp read different sets.
#define WI_NDTRI_STRIDE 17
#define WI_NDTRI_TABLE_SIZE (3 * WI_NDTRI_STRIDE)
WI_TABLE double WI_NDTRI_TABLE[WI_NDTRI_TABLE_SIZE] = {
    // central: A, B
    0x1.b18d91e9eef75p+1, 0x1.0a4888b1a436ep+7, 0x1.ece5d2213c0ccp+10, 0x1.ad1d8cd4ee71dp+13,
    0x1.66c3e869b752ap+15, 0x1.06c1c55b78f20p+16, 0x1.052d26b2e45e4p+15, 0x1.39a296f7d925ep+11,
    0x1.0000000000000p+0, 0x1.5281b386e1ab5p+5, 0x1.5797efdc8b3f7p+9, 0x1.512322e75c89fp+12,
    0x1.4b772d5d65266p+14, 0x1.3317caa64f4bep+15, 0x1.c0e457cb1ae76p+14, 0x1.46a7eca984b69p+12,
    0.0,
    // near tail: C, D
    0x1.6c665fde9526ap+0, 0x1.2857748cab19bp+2, 0x1.713f71462256ap+2, 0x1.d2ecb1a3d02c4p+1,
    0x1.453cc085375b2p+0, 0x1.ef2abb9b85c37p-3, 0x1.744eb6c45ec67p-6, 0x1.9615ac0b7ace9p-11,
    0x1.0000000000000p+0, 0x1.06cefbb46a449p+1, 0x1.ad278e6526633p+0, 0x1.61292f23385c9p-1,
    0x1.2f5123394f040p-3, 0x1.f207a7eab17bfp-7, 0x1.1f18cbfdf2728p-11, 0x1.20d3f686439e4p-30,
    0.0,
    // far tail: E, F
    0x1.aa1b1c13ee526p+2, 0x1.5daea6e875003p+2, 0x1.c8ea6461fa445p+0, 0x1.2fad9315255cfp-2,
    0x1.b2b41193b4ee7p-6, 0x1.45c1908425345p-10, 0x1.c6ec6cc59e02ap-16, 0x1.afb74d693bf93p-23,
    0x1.0000000000000p+0, 0x1.331d34fc7d77fp-1, 0x1.186eb183443fbp-3, 0x1.e76f93215462ap-7,
    0x1.9c8bc979dc5d7p-11, 0x1.35c2c496374bfp-16, 0x1.31446f740b9e0p-23, 0x1.269bff1f8c190p-49,
    0.0,
};

// ---------------------------------------------------------------------------
// Elementary functions.

// numpy.frexp by bit manipulation: x = m * 2**e, |m| in [0.5, 1); zero, inf and
// NaN give (x, 0); subnormals are normalised first (exact scaling by 2**54).
WI_FN double wi_frexp(double x, int* e) {
    wi_u64 b = wi_dbits(x);
    int biased = (int)((b >> 52) & 0x7FF);
    if (biased == 0x7FF || (b << 1) == 0) {
        *e = 0;
        return x;
    }
    int adjust = 0;
    if (biased == 0) {
        b = wi_dbits(wi_mul(x, 0x1p54));
        biased = (int)((b >> 52) & 0x7FF);
        adjust = -54;
    }
    *e = biased - 1022 + adjust;
    return wi_bitsd((b & 0x800FFFFFFFFFFFFFull) | 0x3FE0000000000000ull);
}

// transforms.log_positive: fdlibm's reduction and polynomial, same order.
WI_FN double wi_log_positive(double x) {
    int k;
    double m = wi_frexp(x, &k);
    const bool low = m < WI_SQRT_HALF;
    if (low) m = wi_mul(m, 2.0);
    const double dk = wi_int_to_f64(k - (low ? 1 : 0));
    const double f = wi_sub(m, 1.0);
    const double s = wi_div(f, wi_add(2.0, f));
    const double z = wi_mul(s, s);
    const double w = wi_mul(z, z);
    const double t1 = wi_mul(w, wi_add(WI_LG2, wi_mul(w, wi_add(WI_LG4, wi_mul(w, WI_LG6)))));
    const double t2 = wi_mul(z, wi_add(WI_LG1, wi_mul(w, wi_add(WI_LG3, wi_mul(w, wi_add(WI_LG5, wi_mul(w, WI_LG7)))))));
    const double r = wi_add(t2, t1);
    const double hfsq = wi_mul(wi_mul(0.5, f), f);
    return wi_sub(wi_mul(dk, WI_LN2_HI),
                  wi_sub(wi_sub(hfsq, wi_add(wi_mul(s, wi_add(hfsq, r)), wi_mul(dk, WI_LN2_LO))), f));
}

// c[0] + x*(c[1] + x*(... + x*c[7])), innermost first (transforms._horner).
WI_FN double wi_horner8(const double* c, double x) {
    double acc = c[7];
    WI_UNROLL
    for (int i = 6; i >= 0; --i) acc = wi_add(wi_mul(acc, x), c[i]);
    return acc;
}

// Which ndtri evaluation the kernels use. Both give the reference's bits; they
// differ only in how a warp spends its time:
//   WI_NDTRI_BRANCHY (0): the three regions as separate branches, as written in
//     transforms.ndtri (a warp with lanes in the central and the tail region runs
//     two rational functions);
//   WI_NDTRI_SELECT (1): each lane picks its coefficient set from a table (in
//     shared memory on the GPU), so one rational-function evaluation serves every
//     lane; only log + sqrt stay inside the tail branch.
#define WI_NDTRI_BRANCHY 0
#define WI_NDTRI_SELECT 1
#ifndef WI_NDTRI
#define WI_NDTRI WI_NDTRI_SELECT
#endif

// transforms.ndtri (AS 241 PPND16), written as three branches.
WI_FN double wi_ndtri_branchy(double p, const double* table) {
    const double q = wi_sub(p, 0.5);
    if (wi_fabs(q) <= WI_PPND_SPLIT1) {
        const double r = wi_sub(WI_PPND_CONST1, wi_mul(q, q));
        return wi_mul(q, wi_div(wi_horner8(table, r), wi_horner8(table + 8, r)));
    }
    double r = q < 0.0 ? p : wi_sub(1.0, p);
    r = wi_sqrt(wi_neg(wi_log_positive(r)));
    double z;
    if (r <= WI_PPND_SPLIT2) {
        const double x = wi_sub(r, WI_PPND_CONST2);
        const double* c = table + WI_NDTRI_STRIDE;
        z = wi_div(wi_horner8(c, x), wi_horner8(c + 8, x));
    } else {
        const double x = wi_sub(r, WI_PPND_SPLIT2);
        const double* c = table + 2 * WI_NDTRI_STRIDE;
        z = wi_div(wi_horner8(c, x), wi_horner8(c + 8, x));
    }
    return q < 0.0 ? wi_neg(z) : z;
}

// transforms.ndtri with one rational-function evaluation for all regions.
WI_FN double wi_ndtri_select(double p, const double* table) {
    const double q = wi_sub(p, 0.5);
    const bool central = wi_fabs(q) <= WI_PPND_SPLIT1;
    double x;
    int set;
    if (central) {
        x = wi_sub(WI_PPND_CONST1, wi_mul(q, q));
        set = 0;
    } else {
        double r = q < 0.0 ? p : wi_sub(1.0, p);
        r = wi_sqrt(wi_neg(wi_log_positive(r)));
        if (r <= WI_PPND_SPLIT2) {
            x = wi_sub(r, WI_PPND_CONST2);
            set = 1;
        } else {
            x = wi_sub(r, WI_PPND_SPLIT2);
            set = 2;
        }
    }
    const double* c = table + set * WI_NDTRI_STRIDE;
    const double ratio = wi_div(wi_horner8(c, x), wi_horner8(c + 8, x));
    if (central) return wi_mul(q, ratio);
    return q < 0.0 ? wi_neg(ratio) : ratio;
}

template <int NDTRI>
WI_FN double wi_ndtri(double p, const double* table) {
    if (NDTRI == WI_NDTRI_SELECT) return wi_ndtri_select(p, table);
    return wi_ndtri_branchy(p, table);
}

// ---------------------------------------------------------------------------
// Kernels: word -> float64 (transforms.Kernel / apply_kernel).

#define WI_KIND_UNIFORM 0
#define WI_KIND_NORMAL 1
#define WI_KIND_TRUNCATED_NORMAL 2

// numpy.maximum / numpy.minimum: NaN propagates; on equality the second operand.
WI_FN double wi_maximum(double a, double b) { return (a > b || a != a) ? a : b; }
WI_FN double wi_minimum(double a, double b) { return (a < b || a != a) ? a : b; }

// p: uniform (low, width); normal (mean, std);
//    truncated_normal (mean, std, p_low, p_width, sign, lo, hi).
template <int KIND, int NDTRI>
WI_FN double wi_value(const double* p, wi_u64 w, const double* table) {
    if (KIND == WI_KIND_UNIFORM) return wi_add(p[0], wi_mul(p[1], wi_uniform01(w)));
    if (KIND == WI_KIND_NORMAL) return wi_add(p[0], wi_mul(p[1], wi_ndtri<NDTRI>(wi_open_uniform(w), table)));
    const double z = wi_mul(p[4], wi_ndtri<NDTRI>(wi_add(p[2], wi_mul(wi_open_uniform(w), p[3])), table));
    return wi_minimum(wi_maximum(wi_add(p[0], wi_mul(p[1], z)), p[5]), p[6]);
}

// ---------------------------------------------------------------------------
// Storage rounding, integer round-to-nearest-even on the bit patterns
// (transforms.round_to_storage): float16 and bfloat16 round the float32 result.

#define WI_DTYPE_FLOAT32 0
#define WI_DTYPE_FLOAT64 1
#define WI_DTYPE_FLOAT16 2
#define WI_DTYPE_BFLOAT16 3

// float32 bits of x rounded to nearest even (numpy astype(float32)): subnormal
// results kept, overflow to inf, NaN quietened with its payload's top bits.
WI_FN wi_u32 wi_f64_to_f32_bits(double x) {
    const wi_u64 b = wi_dbits(x);
    const wi_u32 sign = (wi_u32)(b >> 32) & 0x80000000u;
    const wi_u64 a = b & 0x7FFFFFFFFFFFFFFFull;
    if (a >= 0x7FF0000000000000ull) {
        if (a == 0x7FF0000000000000ull) return sign | 0x7F800000u;
        return sign | 0x7FC00000u | (wi_u32)((a >> 29) & 0x007FFFFFu);
    }
    const int e = (int)(a >> 52) - 1023;
    if (e > 127) return sign | 0x7F800000u;
    const wi_u64 mant = a & 0x000FFFFFFFFFFFFFull;
    if (e >= -126) {
        wi_u32 r = ((wi_u32)(e + 127) << 23) | (wi_u32)(mant >> 29);
        const wi_u64 rest = mant & 0x1FFFFFFFull;
        if (rest > 0x10000000ull || (rest == 0x10000000ull && (r & 1u))) ++r;  // may carry into inf
        return sign | r;
    }
    // float32 subnormal or zero: units of 2**-149; value = sig * 2**(e - 52).
    if (a < 0x0010000000000000ull) return sign;  // float64 zero / subnormal
    const int shift = -97 - e;                   // >= 30
    if (shift > 54) return sign;                 // below half of 2**-149
    const wi_u64 sig = mant | 0x0010000000000000ull;
    wi_u32 r = (wi_u32)(sig >> shift);
    const wi_u64 rest = sig & ((1ull << shift) - 1ull), half = 1ull << (shift - 1);
    if (rest > half || (rest == half && (r & 1u))) ++r;
    return sign | r;
}

// float16 bits of the float32 with bits f, nearest even (numpy astype(float16)).
WI_FN wi_u16 wi_f32_to_f16_bits(wi_u32 f) {
    const wi_u32 sign = (f >> 16) & 0x8000u;
    const wi_u32 a = f & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) {
        if (a == 0x7F800000u) return (wi_u16)(sign | 0x7C00u);
        return (wi_u16)(sign | 0x7E00u | ((a >> 13) & 0x03FFu));
    }
    const int e = (int)(a >> 23) - 127;
    if (e > 15) return (wi_u16)(sign | 0x7C00u);
    const wi_u32 mant = a & 0x007FFFFFu;
    if (e >= -14) {
        wi_u32 r = ((wi_u32)(e + 15) << 10) | (mant >> 13);
        const wi_u32 rest = mant & 0x1FFFu;
        if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) ++r;  // may carry into inf
        return (wi_u16)(sign | r);
    }
    // float16 subnormal or zero: units of 2**-24; value = sig * 2**(e - 23).
    if (a < 0x00800000u) return (wi_u16)sign;  // float32 zero / subnormal
    const int shift = -1 - e;                  // >= 14
    if (shift > 25) return (wi_u16)sign;       // below half of 2**-24
    const wi_u32 sig = mant | 0x00800000u;
    wi_u32 r = sig >> shift;
    const wi_u32 rest = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (r & 1u))) ++r;
    return (wi_u16)(sign | r);
}

// bfloat16 bits of the float32 with bits f: (f + 0x7FFF + ((f >> 16) & 1)) >> 16.
WI_FN wi_u16 wi_f32_to_bf16_bits(wi_u32 f) { return (wi_u16)((f + 0x7FFFu + ((f >> 16) & 1u)) >> 16); }

// Which float64 -> float32 / float32 -> float16 conversion the kernels use. Both
// give the bits above:
//   WI_CVT_INTEGER (0): the integer functions above, everywhere;
//   WI_CVT_HARDWARE (1): on the GPU, the conversion instructions written as inline
//     PTX without .ftz (CuPy's -ftz=true only adds .ftz to instructions the
//     compiler generates), and for float32 only where |x| >= 2**-126, so that no
//     float32 subnormal result ever comes from an instruction; the integer path
//     below that. On the host, float32 uses the C++ cast (IEEE, SSE/NEON) for
//     |x| >= 2**-126 and float16 stays integer.
#define WI_CVT_INTEGER 0
#define WI_CVT_HARDWARE 1
#ifndef WI_CVT
#define WI_CVT WI_CVT_INTEGER
#endif

WI_FN wi_u32 wi_f64_to_f32_bits_hw(double x) {
    if (!(wi_fabs(x) >= 0x1p-126)) return wi_f64_to_f32_bits(x);  // small, zero or NaN
#ifdef WI_GPU
    float single;
    asm("cvt.rn.f32.f64 %0, %1;" : "=f"(single) : "d"(x));
    return __float_as_uint(single);
#else
    const float single = (float)x;
    wi_u32 bits;
    __builtin_memcpy(&bits, &single, 4);
    return bits;
#endif
}

WI_FN wi_u16 wi_f32_to_f16_bits_hw(wi_u32 f) {
#ifdef WI_GPU
    unsigned short half;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(half) : "f"(__uint_as_float(f)));
    return (wi_u16)half;
#else
    return wi_f32_to_f16_bits(f);
#endif
}

template <int DTYPE> struct wi_storage { typedef wi_u32 type; };
template <> struct wi_storage<WI_DTYPE_FLOAT64> { typedef wi_u64 type; };
template <> struct wi_storage<WI_DTYPE_FLOAT16> { typedef wi_u16 type; };
template <> struct wi_storage<WI_DTYPE_BFLOAT16> { typedef wi_u16 type; };

// The bits stored for value x (float64 keeps its own bits).
template <int DTYPE, int CVT>
WI_FN typename wi_storage<DTYPE>::type wi_to_storage(double x) {
    typedef typename wi_storage<DTYPE>::type T;
    if (DTYPE == WI_DTYPE_FLOAT64) return (T)wi_dbits(x);
    const wi_u32 single = CVT == WI_CVT_HARDWARE ? wi_f64_to_f32_bits_hw(x) : wi_f64_to_f32_bits(x);
    if (DTYPE == WI_DTYPE_FLOAT16) return (T)(CVT == WI_CVT_HARDWARE ? wi_f32_to_f16_bits_hw(single)
                                                                     : wi_f32_to_f16_bits(single));
    if (DTYPE == WI_DTYPE_BFLOAT16) return (T)wi_f32_to_bf16_bits(single);
    return (T)single;
}

// ---------------------------------------------------------------------------
// One Philox block: elements 4*block .. 4*block+3 of the range [start, start+n),
// stored at out[4*block - start + lane] where that index lies in [0, n).
// `vector_store` (GPU only) writes the 4 elements with one aligned store when
// the whole block is inside the range; the caller guarantees alignment.

template <typename T> struct wi_vec4;
#ifdef WI_GPU
template <> struct wi_vec4<wi_u32> {
    WI_FN static void store(wi_u32* dst, const wi_u32 v[4]) { *reinterpret_cast<uint4*>(dst) = make_uint4(v[0], v[1], v[2], v[3]); }
};
template <> struct wi_vec4<wi_u16> {
    WI_FN static void store(wi_u16* dst, const wi_u16 v[4]) {
        *reinterpret_cast<uint2*>(dst) = make_uint2((wi_u32)v[0] | ((wi_u32)v[1] << 16), (wi_u32)v[2] | ((wi_u32)v[3] << 16));
    }
};
template <> struct wi_vec4<wi_u64> {
    WI_FN static void store(wi_u64* dst, const wi_u64 v[4]) {
        reinterpret_cast<ulonglong2*>(dst)[0] = make_ulonglong2(v[0], v[1]);
        reinterpret_cast<ulonglong2*>(dst)[1] = make_ulonglong2(v[2], v[3]);
    }
};
#endif

template <int KIND, int DTYPE, int NDTRI, int CVT>
WI_FN void wi_fill_block(const double* params, wi_u64 key0, wi_u64 key1, wi_u64 block, wi_i64 start, wi_i64 n,
                         typename wi_storage<DTYPE>::type* out, const double* table, bool vector_store) {
    typedef typename wi_storage<DTYPE>::type T;
    wi_u64 words[4];
    wi_philox4x64_10(block, 0ull, 0ull, 0ull, key0, key1, words);
    T bits[4];
    WI_UNROLL
    for (int lane = 0; lane < 4; ++lane) bits[lane] = wi_to_storage<DTYPE, CVT>(wi_value<KIND, NDTRI>(params, words[lane], table));
    const wi_i64 base = (wi_i64)(block * 4ull) - start;
#ifdef WI_GPU
    if (vector_store && base >= 0 && base + 4 <= n) {
        wi_vec4<T>::store(out + base, bits);
        return;
    }
#else
    (void)vector_store;
#endif
    WI_UNROLL
    for (int lane = 0; lane < 4; ++lane) {
        const wi_i64 index = base + lane;
        if (index >= 0 && index < n) out[index] = bits[lane];
    }
}

#endif  // WEIGHTINIT_KERNELS_CUH
