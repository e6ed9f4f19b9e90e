"""The Numba backend gives the NumPy reference's bytes: every kernel kind, dtype and range.

The backend's compiled pieces (Philox, frexp, log, inverse CDF, float16 and
bfloat16 rounding) are also checked one by one against their NumPy
counterparts, on inputs chosen to reach every branch: subnormals, the split
points of AS 241, the far tail, the float16 overflow and subnormal edges.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine_support import assert_same_bits  # noqa: E402
from weightinit.backends import base  # noqa: E402
from weightinit.backends import numba_backend as nb  # noqa: E402
from weightinit.backends.numpy_backend import NumpyBackend  # noqa: E402
from weightinit.engine import transforms as T  # noqa: E402
from weightinit.engine.philox import SUBSTREAM_SPARSE_MASK, SUBSTREAM_VALUES, philox_words  # noqa: E402

DTYPES = ("float32", "float64", "float16", "bfloat16")
KEYS = ((0x0123456789ABCDEF, 0xFEDCBA9876543210), (0, 0), (2**64 - 1, 7))

KERNELS = {
    "uniform[-0.3,0.7)": T.uniform_kernel(-0.3, 0.7),
    "uniform[0,1)": T.uniform_kernel(0.0, 1.0),
    "uniform tiny": T.uniform_kernel(-1e-3, 1e-3),
    "normal(0,1)": T.normal_kernel(0.0, 1.0),
    "normal(0.5,0.02)": T.normal_kernel(0.5, 0.02),
    "trunc torch std=0.02 [-0.04,0.04]": T.truncated_normal_kernel(0.0, 0.02, -2.0, 2.0, -0.04, 0.04),
    "trunc [-2,2]": T.truncated_normal_kernel(0.0, 1.0, -2.0, 2.0),
    "trunc [3,8] (mirrored)": T.truncated_normal_kernel(1.5, 2.0, 3.0, 8.0),
    "trunc [-8,-3]": T.truncated_normal_kernel(-1.0, 0.5, -8.0, -3.0),
    "trunc [5,30] (far tail)": T.truncated_normal_kernel(0.0, 1.0, 5.0, 30.0),
    "trunc [-30,-5] (far tail)": T.truncated_normal_kernel(0.0, 1.0, -30.0, -5.0),
    "trunc [-38,-37] (subnormal p)": T.truncated_normal_kernel(0.0, 1.0, -38.0, -37.0),
    "trunc [-38.5,-37.5] (p_low 0)": T.truncated_normal_kernel(0.0, 1.0, -38.5, -37.5),
    "trunc [-100,100]": T.truncated_normal_kernel(0.0, 1.0, -100.0, 100.0),
    "trunc [0,1]": T.truncated_normal_kernel(0.0, 1.0, 0.0, 1.0),
    "trunc [-1,0]": T.truncated_normal_kernel(2.0, 3.0, -1.0, 0.0),
    "trunc [-0.5,3]": T.truncated_normal_kernel(0.0, 1.0, -0.5, 3.0),
}

#: The reference's own float16 cast warns where large parameters overflow to inf; both sides agree.
overflow_ok = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

HYPOTHESIS = settings(derandomize=True, deadline=None, max_examples=60, database=None,
                      suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def numba_backend():
    return nb.NumbaBackend(threads=2)


@pytest.fixture(scope="module")
def reference():
    return NumpyBackend(threads=1)


def same_bytes(kernel, key, start, count, dtype, backend, reference):
    assert_same_bits(backend.random(kernel, key, start, start + count, dtype),
                     reference.random(kernel, key, start, start + count, dtype),
                     f"{kernel} {dtype} [{start}, {start + count})")


# ---------------------------------------------------------------------------
# Whole kernels against the NumPy backend


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(KERNELS))
def test_every_kernel_and_dtype_matches_numpy(name, dtype, numba_backend, reference):
    kernel = KERNELS[name]
    # Crosses chunk boundaries, starts mid-block, ends mid-block.
    same_bytes(kernel, KEYS[0], 3, 2 * nb.CHUNK_WORDS + 7, dtype, numba_backend, reference)
    same_bytes(kernel, KEYS[2], 2**40 - 5, 1001, dtype, numba_backend, reference)


@pytest.mark.parametrize("name", ["uniform[-0.3,0.7)", "normal(0,1)", "trunc torch std=0.02 [-0.04,0.04]",
                                  "trunc [3,8] (mirrored)"])
def test_split_across_threads_matches_numpy(name, numba_backend, reference):
    """Ranges long enough to be split between threads; the split points fall mid-block."""
    count = 2 * base.BLOCK_ELEMENTS + 13
    same_bytes(KERNELS[name], KEYS[0], 1, count, "float32", numba_backend, reference)
    same_bytes(KERNELS[name], KEYS[1], 2**40 + 2, count, "bfloat16", numba_backend, reference)


@pytest.mark.parametrize("start", [0, 1, 2, 3, 2**32 - 1, 2**40 - 3, 2**40, 2**40 + 1, 2**62 - 3])
@pytest.mark.parametrize("count", [1, 2, 3, 5, 9])
def test_short_ranges_at_every_alignment(start, count, numba_backend, reference):
    for kernel in (KERNELS["uniform[-0.3,0.7)"], KERNELS["normal(0,1)"], KERNELS["trunc [-8,-3]"]):
        same_bytes(kernel, KEYS[0], start, count, "float32", numba_backend, reference)


def test_empty_range(numba_backend):
    for dtype in DTYPES:
        out = numba_backend.random(KERNELS["normal(0,1)"], KEYS[0], 5, 5, dtype)
        assert out.size == 0 and out.dtype == base.storage_dtype(dtype)


@HYPOTHESIS
@given(name=st.sampled_from(sorted(KERNELS)), dtype=st.sampled_from(DTYPES),
       start=st.one_of(st.integers(0, 5000), st.integers(0, 2**41)), count=st.integers(0, 3000),
       key=st.sampled_from(KEYS))
def test_random_ranges_match_numpy(name, dtype, start, count, key):
    same_bytes(KERNELS[name], key, start, count, dtype, nb.NumbaBackend(threads=2), NumpyBackend(threads=1))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@overflow_ok
@HYPOTHESIS
@given(kind=st.sampled_from([T.UNIFORM, T.NORMAL, T.TRUNCATED_NORMAL]), a=finite, b=finite,
       mean=finite, std=st.floats(1e-6, 1e3), alpha=st.floats(-35.0, 35.0), width=st.floats(0.01, 60.0),
       dtype=st.sampled_from(DTYPES), start=st.integers(0, 2**40), count=st.integers(0, 1500))
def test_random_kernel_parameters_match_numpy(kind, a, b, mean, std, alpha, width, dtype, start, count):
    if kind == T.UNIFORM:
        kernel = T.uniform_kernel(min(a, b), max(a, b))
    elif kind == T.NORMAL:
        kernel = T.normal_kernel(mean, std)
    else:
        kernel = T.truncated_normal_kernel(mean, std, alpha, alpha + width)
    same_bytes(kernel, KEYS[0], start, count, dtype, nb.NumbaBackend(threads=1), NumpyBackend(threads=1))


def test_random_into_other_layouts_and_dtypes(numba_backend, reference):
    """Strided or mistyped ``out`` is staged, then assigned as NumPy would."""
    kernel = KERNELS["normal(0,1)"]
    want = reference.random(kernel, KEYS[0], 10, 1010, "float32")
    strided = np.zeros(2000, dtype=np.float32)[::2]
    numba_backend.random_into(kernel, KEYS[0], 10, strided, "float32")
    assert strided.tobytes() == want.tobytes()
    wide = np.zeros(1000, dtype=np.float64)
    numba_backend.random_into(kernel, KEYS[0], 10, wide, "float32")
    assert wide.tobytes() == want.astype(np.float64).tobytes()


def test_generate_through_the_engine_matches_numpy():
    import weightinit as wi

    for spec in ({"scheme": "kaiming_normal", "shape": [300, 70], "dtype": "bfloat16", "name": "fc.weight"},
                 {"scheme": "kaiming_uniform", "shape": [64, 3, 5, 5], "dtype": "float16"},
                 {"scheme": "truncated_normal", "shape": [1000, 33], "params": {"std": 0.02, "lower": -0.04, "upper": 0.04}},
                 {"scheme": "he_normal", "shape": [3, 3, 64, 128], "layout": "keras", "dtype": "float64"}):
        got = wi.generate_raw(spec, backend="numba", chunk_elements=10_000)
        want = wi.generate_raw(spec, backend="numpy")
        assert got.tobytes() == want.tobytes(), spec


#: A CPU without AVX-512 (Haswell's feature set), for Numba to compile for: Philox by 128-bit
#: products and the tail lists by a scalar loop instead of vector lanes and register compress.
AVX2_TARGET = {"NUMBA_CPU_NAME": "haswell",
               "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+lzcnt,+mmx,+movbe,"
                                     "+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave"}

_AVX2_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from test_backend_numba import KERNELS, KEYS, nb, NumpyBackend
    assert not nb.WIDE_VECTORS and not nb.VECTOR_COMPRESS, "the AVX2 target was not taken"
    backend, reference = nb.NumbaBackend(threads=1), NumpyBackend(threads=1)
    for name in ("uniform[-0.3,0.7)", "normal(0,1)", "trunc torch std=0.02 [-0.04,0.04]", "trunc [5,30] (far tail)",
                 "trunc [-100,100]"):
        for dtype in ("float32", "float16"):
            for key, start, count in ((KEYS[0], 3, 2 * nb.CHUNK_WORDS + 7), (KEYS[2], 2**40 - 5, 1001)):
                got = backend.random(KERNELS[name], key, start, start + count, dtype)
                want = reference.random(KERNELS[name], key, start, start + count, dtype)
                assert got.tobytes() == want.tobytes(), (name, dtype, start, count)
    print("same bytes")
""")


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="an x86-64 target")
def test_same_bytes_compiled_for_a_cpu_without_avx512():
    """The kernels compiled for AVX2 only (a fresh process: Numba reads its target at import)."""
    tests = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", _AVX2_CHILD, tests], env={**os.environ, **AVX2_TARGET},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "same bytes" in done.stdout, done.stderr[-3000:]


def test_warmup_compiles_every_kernel():
    nb.NumbaBackend(threads=1).warmup()


# ---------------------------------------------------------------------------
# The pieces, one by one


@pytest.mark.parametrize("substream", [SUBSTREAM_VALUES, SUBSTREAM_SPARSE_MASK, 2**64 - 1])
@pytest.mark.parametrize("start,count", [(0, 0), (0, 1), (1, 1), (1, 2), (2, 1), (3, 1), (1, 3), (2, 2), (3, 4),
                                         (0, 8), (5, 7), (6, 17), (7, 64), (2**40 - 1, 33), (2**62 + 2, 10)])
def test_philox_words_equal_numpy_philox(substream, start, count):
    for key in KEYS:
        buf = np.full(count + 4, 0xDEAD, dtype=np.uint64)
        nb.philox_into(np.uint64(key[0]), np.uint64(key[1]), np.uint64(substream), start, count, buf)
        assert buf[:count].tolist() == philox_words(key, start, count, substream).tolist()
        assert (buf[count:] == 0xDEAD).all(), "wrote past count"


@pytest.mark.parametrize("generator", [nb.philox_blocks_wide, nb.philox_blocks_paired])
@pytest.mark.parametrize("block,nblocks,pos", [(0, 0, 0), (0, 1, 0), (5, 2, 3), (2**38 - 1, 3, 1), (7, 8, 0),
                                               (9, 9, 2), (3, 10, 1), (2**60, 17, 0), (11, 20, 0),
                                               (2**62 - 20, 33, 5), (2**61 - 7, 47, 3)])
def test_whole_block_generators_equal_numpy_philox(generator, block, nblocks, pos):
    """Both block loops (the vectorised one and the 128-bit product one), whichever this CPU uses."""
    for key in KEYS:
        for substream in (SUBSTREAM_VALUES, 2**64 - 1):
            buf = np.full(pos + 4 * nblocks + 4, 0xDEAD, dtype=np.uint64)
            generator(np.uint64(key[0]), np.uint64(key[1]), np.uint64(substream), np.uint64(block), nblocks, buf, pos)
            assert buf[pos:pos + 4 * nblocks].tolist() == philox_words(key, 4 * block, 4 * nblocks, substream).tolist()
            assert (buf[:pos] == 0xDEAD).all() and (buf[pos + 4 * nblocks:] == 0xDEAD).all()


@numba.njit(error_model="numpy")
def _frexp_all(x, m, k):
    for i in range(x.size):
        m[i], k[i] = nb._frexp(x[i])


@numba.njit(error_model="numpy")
def _log_all(x, out):
    for i in range(x.size):
        out[i] = nb._log_positive(x[i])


@numba.njit(error_model="numpy")
def _ndtri_all(p, out):
    for i in range(p.size):
        out[i] = nb._ndtri(p[i])


@numba.njit(error_model="numpy")
def _store_all(x, out):
    for i in range(x.size):
        nb._store(out, i, x[i])


@numba.njit(error_model="numpy")
def _float16_by_integers_all(x, out):
    for i in range(x.size):
        out[i] = np.uint16(nb._float32_to_float16_bits(np.float32(x[i])))


def special_doubles() -> np.ndarray:
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2**63, size=20_000, dtype=np.uint64)
    subnormal = rng.integers(1, 2**52, size=2000, dtype=np.uint64)
    values = np.concatenate([bits.view(np.float64), subnormal.view(np.float64),
                             [0.0, 5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, 1.0, 0.5,
                              T.SQRT_HALF, np.nextafter(T.SQRT_HALF, 0), np.nextafter(T.SQRT_HALF, 1),
                              1.7976931348623157e308]])
    return values[np.isfinite(values)]


@numba.njit(error_model="numpy")
def _open_q_all(words, out):
    for i in range(words.size):
        out[i] = nb._open_q(words[i])


def test_open_q_equals_open_uniform_minus_half():
    """The normal kernel's shortcut for q = p - 1/2, on random words and on k = w >> 12 near 0,
    2**50, 2**51 (p = 1/2) and 2**52 - 1, low bits clear and set."""
    rng = np.random.default_rng(5)
    k = np.concatenate([np.arange(0, 3000), 2**52 - 1 - np.arange(0, 3000), 2**51 + np.arange(-3000, 3000),
                        2**50 + np.arange(-3000, 3000)]).astype(np.uint64)
    words = np.concatenate([rng.integers(0, 2**64, size=200_000, dtype=np.uint64), k << np.uint64(12),
                            (k << np.uint64(12)) | np.uint64(0xFFF)])
    got = np.empty(words.size)
    _open_q_all(words, got)
    assert got.tobytes() == (T.open_uniform(words) - 0.5).tobytes()


def test_frexp_equals_numpy():
    x = special_doubles()
    x = np.concatenate([x, -x, [np.inf, -np.inf, np.nan, -0.0]])
    m, k = np.empty_like(x), np.empty(x.size, dtype=np.int64)
    _frexp_all(x, m, k)
    want_m, want_k = np.frexp(x)
    assert m.tobytes() == want_m.tobytes()
    assert (k == want_k).all()


def test_log_positive_equals_reference():
    rng = np.random.default_rng(2)
    x = np.concatenate([special_doubles()[1:], rng.random(50_000), rng.random(5000) * 1e-300,
                        np.arange(1, 2000) * 2.0**-53])
    got = np.empty_like(x)
    _log_all(x, got)
    assert got.tobytes() == T.log_positive(x).tobytes()


def test_ndtri_equals_reference():
    rng = np.random.default_rng(3)
    edges = []
    for point in (0.075, 0.925, 0.5, 2.0**-53, 1 - 2.0**-53, math.exp(-25.0), 1 - math.exp(-25.0)):
        edges += [point, np.nextafter(point, 0.0), np.nextafter(point, 1.0)]
    p = np.concatenate([rng.random(100_000), rng.random(10_000) * 1e-12, 10.0 ** -rng.uniform(0, 320, 10_000),
                        1.0 - rng.random(10_000) * 1e-12, edges, [5e-324, 2.2250738585072014e-308]])
    p = p[(p > 0.0) & (p < 1.0)]
    got = np.empty_like(p)
    _ndtri_all(p, got)
    assert got.tobytes() == T.ndtri(p).tobytes()


def float32_patterns() -> np.ndarray:
    """Every 997th float32 bit pattern plus the rounding edges of float16 and bfloat16."""
    bits = np.arange(0, 2**32, 997, dtype=np.uint64).astype(np.uint32)
    edges = []
    for exponent in range(0, 256):
        for mantissa in (0, 1, 0x0FFF, 0x1000, 0x1001, 0x2000, 0x3000, 0x7FFF, 0x8000, 0x8001, 0x18000,
                         0x7FF000, 0x7FFFFF):
            edges.append((exponent << 23) | mantissa)
    for value in (65504.0, 65519.99, 65520.0, 65536.0, 2.0**-24, 2.0**-25, 2.0**-14, 3 * 2.0**-26):
        edges.append(int(np.float32(value).view(np.uint32)))
    bits = np.concatenate([bits, np.array(edges, dtype=np.uint32)])
    bits = np.concatenate([bits, bits | np.uint32(0x80000000)])
    single = bits.view(np.float32)
    return single[~np.isnan(single)]


def double_rounding_cases() -> np.ndarray:
    """float64 values just off the midpoints between float16 (and bfloat16) neighbours, by less
    than half a float32 ulp: rounding via float32 lands on the midpoint and ties to even, which
    differs from rounding the float64 directly wherever the even neighbour is the lower one."""
    cases = []
    for bits in np.arange(0, 0x7C00, 3, dtype=np.uint16):
        low = float(bits.view(np.float16))
        high = float((bits + np.uint16(1)).view(np.float16))
        cases.append((low + high) / 2)
    for bits in np.arange(0, 0x7F80, 5, dtype=np.uint32):
        low = float((bits << np.uint32(16)).view(np.float32))
        high = float(((bits + np.uint32(1)) << np.uint32(16)).view(np.float32))
        cases.append((low + high) / 2)
    mid = np.array(cases)
    mid = mid[np.isfinite(mid)]  # the midpoint below inf is inf
    nudge = np.maximum(np.abs(mid) * 2.0**-30, 2.0**-160)
    off = np.concatenate([mid + nudge, mid - nudge])
    return np.concatenate([mid, off, -off])


@overflow_ok
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_rounding_to_storage_equals_reference(dtype):
    single = float32_patterns()
    values = single.astype(np.float64)
    # float64 values between float32 neighbours too: the float64 -> float32 step rounds first.
    rng = np.random.default_rng(4)
    values = np.concatenate([values, values[::7] * (1.0 + rng.uniform(-2**-23, 2**-23, values[::7].size))])
    values = np.concatenate([values, double_rounding_cases()])
    values = values[np.isfinite(values)]
    want = T.round_to_storage(values, dtype)
    out = np.empty(values.size, dtype=base.storage_dtype(dtype))
    _store_all(values, nb._compiled_out(out, dtype))
    assert out.tobytes() == want.tobytes()
    if dtype == "float16":  # the integer rounding, used where the CPU has no float16 conversion (no F16C)
        by_integers = np.empty(values.size, dtype=np.uint16)
        _float16_by_integers_all(values, by_integers)
        assert by_integers.tobytes() == want.tobytes()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_float16_of_nan_and_inf_equals_reference():
    """NaNs (quiet, signalling, with payloads, either sign) and infinities, by the CPU's conversion
    and by the integer rounding: float64 -> float32 quiets a NaN first, so both keep NumPy's bits."""
    nan_bits = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000001, 0x7FFC000000000000,
                         0x7FF8123456789ABC, 0xFFFFFFFFFFFFFFFF, 0x7FF0000000000001, 0x7FF4000000000000],
                        dtype=np.uint64)
    values = np.concatenate([nan_bits.view(np.float64), [np.inf, -np.inf, np.inf * 0.0]])
    want = T.round_to_storage(values, "float16").view(np.uint16)
    by_store, by_integers = np.empty(values.size, np.uint16), np.empty(values.size, np.uint16)
    _store_all(values, by_store)
    _float16_by_integers_all(values, by_integers)
    assert by_store.tolist() == want.tolist() and by_integers.tolist() == want.tolist()
