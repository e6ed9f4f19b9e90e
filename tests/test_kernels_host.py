"""The CUDA device functions, compiled as host C++, give the NumPy reference's bits.

``weightinit/backends/kernels/weightinit_kernels.cuh`` is the code the CuPy backend
runs on the GPU; ``host_driver.cpp`` wraps the same functions for ctypes. This
proves, without a GPU, that the kernel source reproduces every kind x dtype, any
element range, the truncation intervals and the golden digests bit for bit, and
that its integer round-to-nearest-even equals NumPy's casts. (What a GPU could
still change: the intrinsics' IEEE rounding, which CUDA documents as exact, and
the launch/copy code, which ``tests/test_backend_cupy.py`` and
``scripts/gpu-check`` cover on a device.)

When an NVRTC library is found (``WEIGHTINIT_NVRTC`` = path of libnvrtc.so, or the
``nvidia-cuda-nvrtc`` wheel), the .cu is also compiled to PTX and checked to hold
no fused multiply-add and no float32 arithmetic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import math
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine_support as support
import weightinit as wi
from engine_support import assert_same_bits, reference_random
from weightinit.backends.base import storage_dtype
from weightinit.backends.cuda_source import (CVT_VARIANTS, DTYPE_CODES, HEADER, HOST_DRIVER, KERNEL_DIR, KERNEL_NAMES,
                                             KIND_CODES, NDTRI_VARIANTS, NVRTC_OPTIONS, cuda_source, padded_params)
from weightinit.engine import transforms as T
from weightinit.engine.philox import philox_block
from weightinit.engine.schemes import RandomPlan

DTYPES = tuple(DTYPE_CODES)
VARIANTS = tuple(NDTRI_VARIANTS)
CVTS = tuple(CVT_VARIANTS)

u64 = ctypes.c_uint64
i64 = ctypes.c_int64
ptr = ctypes.c_void_p

BASE_FLAGS = ["-O2", "-std=c++17", "-ffp-contract=off", "-fno-fast-math"]


def _compiler() -> str | None:
    for candidate in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _build(directory: Path, name: str, extra: list[str]) -> ctypes.CDLL:
    compiler = _compiler()
    if compiler is None:
        pytest.skip("no C++ compiler (g++, c++, clang++ or $CXX) to build the host kernels")
    library = directory / f"lib{name}.so"
    command = [compiler, *BASE_FLAGS, *extra, "-shared", "-fPIC", "-I", str(KERNEL_DIR), str(HOST_DRIVER),
               "-o", str(library)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"host build failed: {' '.join(command)}\n{result.stderr}"
    lib = ctypes.CDLL(str(library))
    lib.wi_host_fill.argtypes = [ctypes.c_int, ptr, u64, u64, i64, i64, ctypes.c_int, ptr, ctypes.c_int, ctypes.c_int]
    lib.wi_host_fill.restype = ctypes.c_int
    lib.wi_host_philox.argtypes = [ptr, ptr, ptr]
    for fn in (lib.wi_host_uniform01, lib.wi_host_open_uniform, lib.wi_host_log):
        fn.argtypes = [ptr, i64, ptr]
    lib.wi_host_frexp.argtypes = [ptr, i64, ptr, ptr]
    lib.wi_host_ndtri.argtypes = [ptr, i64, ptr, ctypes.c_int]
    lib.wi_host_values.argtypes = [ctypes.c_int, ptr, ptr, i64, ptr, ctypes.c_int]
    for fn in (lib.wi_host_f64_to_f32, lib.wi_host_f64_to_f32_hw, lib.wi_host_f32_to_f16, lib.wi_host_f32_to_bf16):
        fn.argtypes = [ptr, i64, ptr]
    lib.wi_host_ndtri_table.argtypes = [ptr]
    lib.wi_host_log_constants.argtypes = [ptr]
    assert lib.wi_host_abi_version() == 2
    return lib


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("wi_host"), "wi_host", [])


@pytest.fixture(scope="module")
def lib_native(tmp_path_factory):
    """-O3 -march=native: the CPU's FMA instructions are available, contraction stays off."""
    directory = tmp_path_factory.mktemp("wi_host_native")
    try:
        return _build(directory, "wi_host_native", ["-O3", "-march=native"])
    except AssertionError as error:  # e.g. a compiler without -march=native
        pytest.skip(f"-march=native build unavailable: {error}")


def host_fill(lib, kernel: T.Kernel, key, start: int, count: int, dtype: str, ndtri: str = "select",
              cvt: str = "integer") -> np.ndarray:
    out = np.empty(count, dtype=storage_dtype(dtype))
    params = np.array(padded_params(kernel.params), dtype=np.float64)
    rc = lib.wi_host_fill(KIND_CODES[kernel.kind], params.ctypes.data, key[0], key[1], start, count,
                          DTYPE_CODES[dtype], out.ctypes.data, NDTRI_VARIANTS[ndtri], CVT_VARIANTS[cvt])
    assert rc == 0
    return out


KERNELS = {
    "uniform": T.uniform_kernel(-0.75, 1.25),
    "uniform-wide": T.uniform_kernel(-3e38, 3e38),
    "normal": T.normal_kernel(0.0, 1.0),
    "normal-scaled": T.normal_kernel(0.25, 0.02),
    "trunc-2": T.truncated_normal_kernel(0.0, 1.0, -2.0, 2.0),
    "trunc-torch-abs": T.truncated_normal_kernel(0.0, 0.02, -2.0, 2.0),
    "trunc-tail-3-8": T.truncated_normal_kernel(0.0, 1.0, 3.0, 8.0),
    "trunc-tail-neg": T.truncated_normal_kernel(0.5, 2.0, -8.0, -3.0),
    "trunc-wide-100": T.truncated_normal_kernel(0.0, 1.0, -100.0, 100.0),
    "trunc-one-sided": T.truncated_normal_kernel(0.1, 0.3, -1.0 / 3.0, 3.0),
    "trunc-far": T.truncated_normal_kernel(0.0, 1.0, 6.0, 7.5),
    "trunc-very-far": T.truncated_normal_kernel(-1.0, 0.5, -30.0, -29.0),
    "trunc-narrow": T.truncated_normal_kernel(0.0, 1.0, 1.0, 1.0001),
}
KEY = (20260101, 0xDEADBEEFCAFEF00D)


# ---------------------------------------------------------------------------
# Pieces


def test_constants_match_python(lib):
    table = np.empty(51, dtype=np.float64)
    lib.wi_host_ndtri_table(table.ctypes.data)
    for index, name in enumerate("ABCDEF"):
        start = (index // 2) * 17 + (index % 2) * 8
        assert table[start:start + 8].tolist() == list(getattr(T, f"PPND_{name}")), name
    constants = np.empty(14, dtype=np.float64)
    lib.wi_host_log_constants(constants.ctypes.data)
    names = ["LN2_HI", "LN2_LO", "LG1", "LG2", "LG3", "LG4", "LG5", "LG6", "LG7", "SQRT_HALF", "PPND_SPLIT1",
             "PPND_SPLIT2", "PPND_CONST1", "PPND_CONST2"]
    assert constants.tolist() == [getattr(T, name) for name in names]


def test_header_is_self_contained():
    """NVRTC gets the header inlined and no include path: it must not include anything itself."""
    assert not re.search(r"^\s*#\s*include", HEADER.read_text(), re.M)
    source = cuda_source()
    assert '#include "weightinit_kernels.cuh"' not in source
    assert source.startswith("#define WI_NDTRI 1\n#define WI_CVT 0\n")


M64 = (1 << 64) - 1
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x16554d9eca36314c, 0xdb20fe9d672d0fdc, 0xd7e772cee186176b, 0x7e68b68aec7ba23b)),
    ((M64,) * 4, (M64, M64), (0x87b092c3013fe90b, 0x438c3c67be8d0224, 0x9cc7d7c69cd777b6, 0xa09caebf594f0ba0)),
    ((0x243f6a8885a308d3, 0x13198a2e03707344, 0xa4093822299f31d0, 0x082efa98ec4e6c89),
     (0x452821e638d01377, 0xbe5466cf34e90c6c),
     (0xa528f45403e61d95, 0x38c72dbd566e9788, 0xa5a1610e72fd18b5, 0x57bd43b5e52b7fe6)),
]


def _philox(lib, counter, key):
    c = np.array(counter, dtype=np.uint64)
    k = np.array(key, dtype=np.uint64)
    out = np.empty(4, dtype=np.uint64)
    lib.wi_host_philox(c.ctypes.data, k.ctypes.data, out.ctypes.data)
    return tuple(int(x) for x in out)


@pytest.mark.parametrize("counter,key,expected", KAT, ids=["zeros", "ones", "pi"])
def test_philox_known_answers(lib, counter, key, expected):
    assert _philox(lib, counter, key) == expected


def test_philox_random_counters(lib):
    rng = np.random.default_rng(1)
    for _ in range(200):
        counter = tuple(int(x) for x in rng.integers(0, 2 ** 64, 4, dtype=np.uint64))
        key = tuple(int(x) for x in rng.integers(0, 2 ** 64, 2, dtype=np.uint64))
        assert _philox(lib, counter, key) == philox_block(counter, key)


def _edge_words() -> np.ndarray:
    rng = np.random.default_rng(2)
    edges = [0, 1, 2 ** 11 - 1, 2 ** 11, 2 ** 12 - 1, 2 ** 12, 2 ** 63, 2 ** 64 - 1, 2 ** 64 - 2 ** 12]
    return np.concatenate([np.array(edges, dtype=np.uint64), rng.integers(0, 2 ** 64, 100_000, dtype=np.uint64)])


def test_uniforms(lib):
    words = _edge_words()
    for fn, ref in ((lib.wi_host_uniform01, T.uniform01), (lib.wi_host_open_uniform, T.open_uniform)):
        out = np.empty(words.size, dtype=np.float64)
        fn(words.ctypes.data, words.size, out.ctypes.data)
        assert_same_bits(out, ref(words), fn.__name__)


@np.errstate(all="ignore")
def _doubles(rng, count: int) -> np.ndarray:
    """Positive doubles over the whole range: random bit patterns, subnormals, powers of two and neighbours."""
    bits = rng.integers(1, 0x7FF0000000000000, count, dtype=np.uint64)
    special = [5e-324, 1e-310, 2.2250738585072014e-308, 2.225073858507201e-308, 0.5, 1.0, 2.0,
               T.SQRT_HALF, np.nextafter(T.SQRT_HALF, 0), np.nextafter(T.SQRT_HALF, 1), 1.7976931348623157e308,
               2.0 ** -53, 1.0 - 2.0 ** -53, 0.075, 0.925, math.exp(-25.0)]
    powers = [2.0 ** e for e in range(-1074, 1024, 7)]
    values = np.concatenate([bits.view(np.float64), np.array(special + powers)])
    return np.concatenate([values, np.nextafter(values, 0), np.nextafter(values, np.inf)])


def test_frexp(lib):
    x = np.concatenate([_doubles(np.random.default_rng(3), 20_000),
                        np.array([0.0, -0.0, -1.5, -1e-310, np.inf, -np.inf])])
    mantissa = np.empty_like(x)
    exponent = np.empty(x.size, dtype=np.intc)
    lib.wi_host_frexp(x.ctypes.data, x.size, mantissa.ctypes.data, exponent.ctypes.data)
    ref_m, ref_e = np.frexp(x)
    assert_same_bits(mantissa, ref_m, "mantissa")
    assert np.array_equal(exponent, ref_e)


def test_log_positive(lib):
    x = _doubles(np.random.default_rng(4), 200_000)
    # the inputs the kernels actually see: open uniforms, their complements, Phi-sized tails
    x = np.concatenate([x, T.open_uniform(_edge_words()), 1.0 - T.open_uniform(_edge_words())])
    out = np.empty_like(x)
    lib.wi_host_log(x.ctypes.data, x.size, out.ctypes.data)
    with np.errstate(invalid="ignore"):  # inf is outside the domain; both sides give the same NaN
        assert_same_bits(out, T.log_positive(x), "log_positive")


def _probabilities() -> np.ndarray:
    p = T.open_uniform(_edge_words())
    edges = np.array([T.PPND_SPLIT1, 0.5 - T.PPND_SPLIT1, 0.5 + T.PPND_SPLIT1, 0.5, math.exp(-25.0),
                      1.0 - math.exp(-25.0), 2.0 ** -53, 1.0 - 2.0 ** -53, 1e-300, 5e-324, 1e-310,
                      2.2250738585072014e-308, 1e-12, 1e-11, 1.3887943864964021e-11])
    edges = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 1)])
    rng = np.random.default_rng(5)
    tails = 10.0 ** rng.uniform(-300, -1, 20_000)
    return np.concatenate([p, edges, tails, 1.0 - tails])


@pytest.mark.parametrize("variant", VARIANTS)
def test_ndtri(lib, variant):
    p = _probabilities()
    out = np.empty_like(p)
    lib.wi_host_ndtri(p.ctypes.data, p.size, out.ctypes.data, NDTRI_VARIANTS[variant])
    assert_same_bits(out, T.ndtri(p), f"ndtri {variant}")


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_kernel_values(lib, name, variant):
    kernel = KERNELS[name]
    words = _edge_words()[:30_000]
    out = np.empty(words.size, dtype=np.float64)
    params = np.array(padded_params(kernel.params), dtype=np.float64)
    lib.wi_host_values(KIND_CODES[kernel.kind], params.ctypes.data, words.ctypes.data, words.size,
                       out.ctypes.data, NDTRI_VARIANTS[variant])
    assert_same_bits(out, T.apply_kernel(kernel, words), name)


# ---------------------------------------------------------------------------
# Storage rounding: integer round-to-nearest-even against NumPy's casts


@np.errstate(all="ignore")
def _f64_to_f32_inputs() -> np.ndarray:
    rng = np.random.default_rng(6)
    random_bits = rng.integers(0, 2 ** 64, 300_000, dtype=np.uint64).view(np.float64)
    # values in and around float32's subnormal / normal / overflow ranges
    scaled = rng.uniform(-1, 1, 200_000) * 2.0 ** rng.integers(-160, 130, 200_000)
    # exact halfway points between neighbouring float32 values (ties), and their neighbours
    f32 = rng.integers(0, 0x7F800000, 100_000, dtype=np.uint32).view(np.float32)
    upper = np.nextafter(f32, np.float32(np.inf))
    ties = (f32.astype(np.float64) + upper.astype(np.float64)) / 2.0
    ties = ties[np.isfinite(ties)]
    sub = np.arange(0, 64, dtype=np.float64) * 2.0 ** -150  # multiples of half the smallest subnormal
    big = np.array([3.4028234663852886e38, 3.4028235677973362e38, 3.4028235677973366e38, 3.402823567797337e38,
                    1e39, 1.7976931348623157e308, 2.0 ** -149, 2.0 ** -150, 3 * 2.0 ** -151, 2.0 ** -126,
                    2.0 ** -126 - 2.0 ** -150, 2.0 ** -126 - 2.0 ** -151, 1e-320, 0.0])
    values = np.concatenate([random_bits, scaled, ties, sub, big])
    values = np.concatenate([values, np.nextafter(values, 0), np.nextafter(values, np.inf), [np.inf, -np.inf]])
    return np.concatenate([values, -values])


@pytest.mark.parametrize("cvt", CVTS)
def test_float64_to_float32_rne(lib, cvt):
    x = _f64_to_f32_inputs()
    out = np.empty(x.size, dtype=np.uint32)
    convert = lib.wi_host_f64_to_f32_hw if cvt == "hardware" else lib.wi_host_f64_to_f32
    convert(x.ctypes.data, x.size, out.ctypes.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = x.astype(np.float32)
    nan = np.isnan(x)
    assert np.isnan(out[nan].view(np.float32)).all()
    got, want = out[~nan], ref[~nan].view(np.uint32)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} differ, first {x[~nan][bad[0]]!r}: {got[bad[0]]:#x} != {want[bad[0]]:#x}"
    # the cases the brief names, explicitly
    smallest = np.array([2.0 ** -149, 2.0 ** -150, 3 * 2.0 ** -150], dtype=np.float64)
    convert(smallest.ctypes.data, 3, out.ctypes.data)
    assert out[:3].tolist() == [1, 0, 2]  # subnormal kept; tie to even (0); tie to even (2)


def _f32_inputs() -> np.ndarray:
    rng = np.random.default_rng(7)
    random_bits = rng.integers(0, 2 ** 32, 400_000, dtype=np.uint64).astype(np.uint32)
    # every float32 whose exponent lies in float16's subnormal..overflow band, with tie-prone low bits
    exponents = np.arange(127 - 26, 127 + 17, dtype=np.uint32)
    mantissas = np.concatenate([rng.integers(0, 1 << 23, 2000, dtype=np.uint32),
                                np.array([0, 1, 0x1000, 0x1001, 0x0FFF, 0x2000, 0x3000, 0x7FFFFF, 0x7FF000,
                                          0x7FE000, 0x400000, 0x401000, 0x400FFF], dtype=np.uint32)])
    band = ((exponents[:, None] << np.uint32(23)) | mantissas[None, :]).reshape(-1)
    special = np.array([0, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F800000, 0x477FE000, 0x477FEFFF,
                        0x477FF000, 0x477FF001, 0x33000000, 0x33000001, 0x337FFFFF, 0x33800000, 0x33C00000],
                       dtype=np.uint32)
    values = np.concatenate([random_bits, band, special])
    return np.concatenate([values, values | np.uint32(0x80000000)])


def test_float32_to_float16_rne(lib):
    bits = _f32_inputs()
    out = np.empty(bits.size, dtype=np.uint16)
    lib.wi_host_f32_to_f16(bits.ctypes.data, bits.size, out.ctypes.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = bits.view(np.float32).astype(np.float16).view(np.uint16)
    nan = np.isnan(bits.view(np.float32))
    assert np.isnan(out[nan].view(np.float16)).all()
    got, want = out[~nan], ref[~nan]
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} differ, first {bits[~nan][bad[0]]:#x}: {got[bad[0]]:#x} != {want[bad[0]]:#x}"
    # overflow: 65520 (the tie above float16's max 65504) rounds to inf; just below it stays finite
    # 2**-25 is half the smallest subnormal (tie to 0); 3 * 2**-25 is 1.5 of it (tie to 2)
    probe = np.array([65520.0, np.nextafter(np.float32(65520.0), np.float32(0)), 65504.0, 2.0 ** -25,
                      3 * 2.0 ** -25], dtype=np.float32).view(np.uint32)
    lib.wi_host_f32_to_f16(probe.ctypes.data, probe.size, out.ctypes.data)
    assert out[:5].tolist() == [0x7C00, 0x7BFF, 0x7BFF, 0x0000, 0x0002]


def test_float32_to_bfloat16(lib):
    bits = np.concatenate([_f32_inputs(), np.array([0x7F7FFFFF, 0x7F7F8000, 0x3F808000, 0x3F818000, 0x7FC00001,
                                                    0xFFFFFFFF], dtype=np.uint32)])
    out = np.empty(bits.size, dtype=np.uint16)
    lib.wi_host_f32_to_bf16(bits.ctypes.data, bits.size, out.ctypes.data)
    assert np.array_equal(out, T.float32_to_bfloat16_bits(bits.view(np.float32)))


# ---------------------------------------------------------------------------
# Whole ranges against the NumPy backend


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_fill_every_kind_and_dtype(lib, name, dtype):
    kernel = KERNELS[name]
    for start, count in ((0, 4096), (3, 1001), (2 ** 40 - 2, 517)):
        want = reference_random(kernel, KEY, start, count, dtype)
        for variant in VARIANTS:
            for cvt in CVTS:
                assert_same_bits(host_fill(lib, kernel, KEY, start, count, dtype, variant, cvt), want,
                            f"{name} {dtype} [{start}, +{count}) {variant} {cvt}")


@pytest.mark.parametrize("start", [2 ** 40 - 5, 2 ** 40, 2 ** 40 + 3, 2 ** 42 + 1, 2 ** 62 - 7, 2 ** 63 - 9])
def test_large_starts(lib, start):
    for kernel in (KERNELS["normal"], KERNELS["uniform"], KERNELS["trunc-2"]):
        for dtype in DTYPES:
            assert_same_bits(host_fill(lib, kernel, KEY, start, 9, dtype), reference_random(kernel, KEY, start, 9, dtype))


def test_empty_and_invalid(lib):
    assert host_fill(lib, KERNELS["normal"], KEY, 17, 0, "float32").size == 0
    out = np.empty(1, dtype=np.float32)
    params = np.zeros(7)
    assert lib.wi_host_fill(9, params.ctypes.data, 0, 0, 0, 1, 0, out.ctypes.data, 1, 0) < 0  # kind
    assert lib.wi_host_fill(0, params.ctypes.data, 0, 0, 0, 1, 9, out.ctypes.data, 1, 0) < 0  # dtype
    assert lib.wi_host_fill(0, params.ctypes.data, 0, 0, -1, 1, 0, out.ctypes.data, 1, 0) < 0  # start
    assert lib.wi_host_fill(0, params.ctypes.data, 0, 0, 0, 1, 0, out.ctypes.data, 7, 0) < 0  # ndtri
    assert lib.wi_host_fill(0, params.ctypes.data, 0, 0, 0, 1, 0, out.ctypes.data, 1, 7) < 0  # cvt


_finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def kernels(draw):
    kind = draw(st.sampled_from(sorted(KIND_CODES)))
    if kind == "uniform":
        low = draw(st.floats(-1e6, 1e6, **_finite))
        return T.uniform_kernel(low, low + draw(st.floats(1e-6, 1e6, **_finite)))
    mean = draw(st.floats(-10, 10, **_finite))
    std = draw(st.floats(1e-4, 10, **_finite))
    if kind == "normal":
        return T.normal_kernel(mean, std)
    alpha = draw(st.floats(-12, 11, **_finite))
    beta = alpha + draw(st.floats(1e-3, 20, **_finite))
    return T.truncated_normal_kernel(mean, std, alpha, beta)


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kernel=kernels(), dtype=st.sampled_from(DTYPES), variant=st.sampled_from(VARIANTS), cvt=st.sampled_from(CVTS),
       start=st.one_of(st.integers(0, 5000), st.integers(0, 2 ** 41)), count=st.integers(0, 1500),
       key=st.tuples(st.integers(0, M64), st.integers(0, M64)))
def test_random_ranges(lib, kernel, dtype, variant, cvt, start, count, key):
    assert_same_bits(host_fill(lib, kernel, key, start, count, dtype, variant, cvt),
                reference_random(kernel, key, start, count, dtype), f"{kernel} {dtype}")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(start=st.integers(0, 10 ** 6), count=st.integers(1, 3000), cut=st.integers(0, 3000))
def test_ranges_compose(lib, start, count, cut):
    """Two host ranges laid end to end equal one range (the kernel's block/lane arithmetic)."""
    cut = min(cut, count)
    kernel = KERNELS["trunc-torch-abs"]
    whole = host_fill(lib, kernel, KEY, start, count, "bfloat16")
    parts = np.concatenate([host_fill(lib, kernel, KEY, start, cut, "bfloat16"),
                            host_fill(lib, kernel, KEY, start + cut, count - cut, "bfloat16")])
    assert_same_bits(whole, parts)


def test_optimised_native_build_agrees(lib_native):
    """-O3 -march=native (FMA instructions available, contraction off) changes nothing."""
    for name in ("normal", "trunc-tail-3-8", "uniform"):
        kernel = KERNELS[name]
        for dtype in DTYPES:
            assert_same_bits(host_fill(lib_native, kernel, KEY, 5, 20_001, dtype),
                        reference_random(kernel, KEY, 5, 20_001, dtype), f"native {name} {dtype}")


# ---------------------------------------------------------------------------
# Schemes: the plans the engine builds, byte for byte against generate_raw


def _scheme_matrix() -> list[dict]:
    specs = []

    def add(scheme, shape, dtype, seed=0, name="", params=None, **top):
        spec = {"scheme": scheme, "shape": shape, "dtype": dtype, "seed": seed, "name": name}
        if params:
            spec["params"] = params
        spec.update(top)
        specs.append(spec)

    for i, dtype in enumerate(DTYPES):
        add("uniform", [1000], dtype, seed=i, name="u", params={"low": -2.0, "high": 3.0})
        add("normal", [999], dtype, seed=i, name="n", params={"mean": 0.5, "std": 0.1})
        add("truncated_normal", [1001], dtype, seed=i, name="t")
        add("truncated_normal", [777], dtype, seed=i, params={"std": 0.02, "lower": -0.04, "upper": 0.04})
        add("truncated_normal", [513], dtype, seed=i, params={"lower": 3.0, "upper": 8.0, "bounds": "std"})
        add("truncated_normal", [513], dtype, seed=i, params={"lower": -100.0, "upper": 100.0, "bounds": "std"})
        add("xavier_uniform", [64, 32], dtype, seed=i, name="fc1.weight")
        add("xavier_normal", [32, 16, 3, 3], dtype, seed=i, params={"gain": 0.5})
        add("kaiming_uniform", [128, 64], dtype, seed=i, params={"mode": "fan_out", "nonlinearity": "relu"})
        add("kaiming_normal", [3, 3, 8, 16], dtype, seed=i, layout="keras", params={"a": 0.1,
                                                                                   "nonlinearity": "leaky_relu"})
        add("lecun_uniform", [50, 20], dtype, seed=i, layout="keras")
        add("lecun_normal", [50, 20], dtype, seed=i, layout="keras")
        add("glorot_uniform", [40, 30], dtype, seed=i, layout="keras")
        add("glorot_normal", [40, 30], dtype, seed=i, layout="keras")
        add("he_uniform", [3, 3, 4, 8], dtype, seed=i, layout="keras")
        add("he_normal", [3, 3, 4, 8], dtype, seed=i, layout="keras")
        for distribution in ("truncated_normal", "normal", "uniform"):
            add("variance_scaling", [30, 20], dtype, seed=i, layout="keras",
                params={"scale": 2.0, "mode": "fan_avg", "distribution": distribution})
        add("torch_default", [64, 32], dtype, seed=i, name="fc.weight")
        add("torch_default", [64], dtype, seed=i, name="fc.bias", params={"fan_in": 32})
    add("kaiming_normal", [600, 512], "float32", seed=42, name="big.weight")
    add("normal", [100], "float32", seed=2 ** 64 - 1, name="fc1.weight")
    add("uniform", [100], "float32", seed=1, stream=2 ** 64 - 1)
    return specs


def _host_bytes(lib, spec) -> bytes | None:
    """Host-C++ bytes of a spec whose plan is a RandomPlan without mask, else None."""
    compiled = wi.compile_spec(spec, backend="numpy")
    plan = compiled.plan
    if not isinstance(plan, RandomPlan) or plan.mask is not None:
        return None
    spec = compiled.spec
    if spec.scale is not None:  # docs/rng.md 5: the kernel's float64 times scale, then rounded (one place)
        values = host_fill(lib, plan.kernel, spec.key, 0, spec.numel, "float64") * spec.scale
        raw = T.round_to_storage(values, spec.dtype)
    else:
        raw = host_fill(lib, plan.kernel, spec.key, 0, spec.numel, spec.dtype)
    compiled.fill_zero_rows(0, raw.reshape(-1))  # spec.zero_rows: applied after the kernel on every backend
    return wi.to_le_bytes(raw)


@pytest.mark.parametrize("spec", _scheme_matrix(), ids=lambda s: f"{s['scheme']}-{s['dtype']}-{s['shape']}")
def test_scheme_bytes(lib, spec):
    host = _host_bytes(lib, spec)
    assert host is not None, "every scheme of this matrix is a plain random plan"
    assert host == wi.to_le_bytes(wi.generate_raw(spec, backend="numpy"))


def test_golden_digests(lib):
    """The checked-in SHA-256 of every plain random golden spec, from the host-compiled kernels."""
    checked = 0
    for entry in support.load_golden()["entries"]:
        host = _host_bytes(lib, entry["spec"])
        if host is None:
            continue
        assert hashlib.sha256(host).hexdigest() == entry["sha256"], entry.get("id", entry["spec"])
        checked += 1
    assert checked >= 20, f"only {checked} golden entries are plain random plans"


def test_golden_catalogue(lib):
    """Every plain random spec of the golden catalogue (tests/engine_support.py), against generate_raw."""
    checked = 0
    for case in support.golden_catalogue():
        host = _host_bytes(lib, case["spec"])
        if host is None:
            continue
        assert host == wi.to_le_bytes(wi.generate_raw(case["spec"], backend="numpy")), case["id"]
        checked += 1
    assert checked >= 20


# ---------------------------------------------------------------------------
# NVRTC: the .cu compiles as CuPy will compile it, with no FMA and no float32 arithmetic


def _nvrtc_library() -> str | None:
    explicit = os.environ.get("WEIGHTINIT_NVRTC")
    if explicit:
        return explicit
    candidates = []
    try:
        import nvidia  # the nvidia-cuda-nvrtc wheels

        for root in getattr(nvidia, "__path__", []):
            candidates += glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*"))
    except ImportError:
        pass
    candidates = [c for c in candidates if "builtins" not in c and ".alt." not in c]
    if candidates:
        return sorted(candidates)[-1]
    return ctypes.util.find_library("nvrtc")


def _nvrtc_ptx(path: str, source: str, options: tuple[str, ...]) -> str:
    nvrtc = ctypes.CDLL(path)
    nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
    program = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"weightinit_kernels.cu", 0, None,
                                    None) == 0
    try:
        encoded = [o.encode() for o in options]
        rc = nvrtc.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(program, log)
        assert rc == 0, f"NVRTC: {nvrtc.nvrtcGetErrorString(rc).decode()}\n{log.value.decode()}"
        nvrtc.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetPTX(program, ptx)
        return ptx.value.decode()
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))


@pytest.mark.parametrize("cvt", CVTS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_nvrtc_compiles_without_fma(variant, cvt):
    path = _nvrtc_library()
    if not path:
        pytest.skip("no NVRTC library (set WEIGHTINIT_NVRTC or install nvidia-cuda-nvrtc to run this check)")
    try:
        ctypes.CDLL(path)
    except OSError as error:
        pytest.skip(f"NVRTC library {path} does not load: {error}")
    ptx = _nvrtc_ptx(path, cuda_source(variant, cvt), NVRTC_OPTIONS + ("-ftz=true", "--gpu-architecture=compute_90"))
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    assert entries == set(KERNEL_NAMES)
    opcodes = set(re.findall(r"^\s*(?:@!?%p\d+\s+)?([a-z][a-z0-9]*(?:\.[a-z0-9]+)*)", ptx, re.M))
    fused = {op for op in opcodes if op.startswith("fma") or (op.startswith("mad") and ".f" in op)}
    assert not fused, f"fused multiply-add in the PTX: {sorted(fused)}"
    float32_math = {op for op in opcodes if op.endswith(".f32") and not op.startswith(("ld.", "st.", "mov.", "cvt."))}
    assert not float32_math, f"float32 arithmetic in the PTX: {sorted(float32_math)}"
    flushing = {op for op in opcodes if ".ftz" in op}
    assert not flushing, f"flush-to-zero instructions in the PTX: {sorted(flushing)}"
    conversions = {op for op in opcodes if op.startswith("cvt.") and (".f32" in op or ".f16" in op)}
    assert conversions == ({"cvt.rn.f32.f64", "cvt.rn.f16.f32"} if cvt == "hardware" else set()), conversions
    assert "div.rn.f64" in opcodes and "sqrt.rn.f64" in opcodes and "mul.rn.f64" in opcodes
