"""The CuPy backend: bit-identical to the NumPy backend on a GPU; a clear refusal without one.

Three groups:

- on a machine with CuPy and a usable CUDA device (marked ``gpu``): every kind x dtype,
  aligned and unaligned ranges, multi-chunk pipelines, device-resident output, the
  golden catalogue and digests, all against the NumPy backend;
- everywhere: without a device, ``get_backend("cupy")`` raises BackendUnavailable with
  the reason and ``auto`` falls back to numba or numpy;
- everywhere with a C++ compiler: the backend's Python pipeline (chunks, two
  streams, pinned staging, the order of waits) runs against a stand-in ``cupy`` whose
  kernels are the host-compiled device functions and whose streams execute lazily,
  so a read of a buffer before its copy has been waited for returns stale bytes.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import engine_support as support
import weightinit as wi
from engine_support import assert_same_bits, reference_random
from weightinit.backends import BackendUnavailable, get_backend
from weightinit.backends.base import storage_dtype
from weightinit.backends.cuda_source import CVT_VARIANTS, DTYPE_CODES, KIND_CODES, NDTRI_VARIANTS
from weightinit.engine import transforms as T

DTYPES = tuple(DTYPE_CODES)
KEY = (7, 0x0123456789ABCDEF)

KERNELS = {
    "uniform": T.uniform_kernel(-0.75, 1.25),
    "normal": T.normal_kernel(0.25, 0.02),
    "trunc-2": T.truncated_normal_kernel(0.0, 1.0, -2.0, 2.0),
    "trunc-tail-3-8": T.truncated_normal_kernel(0.0, 1.0, 3.0, 8.0),
    "trunc-wide-100": T.truncated_normal_kernel(0.0, 1.0, -100.0, 100.0),
    "trunc-far": T.truncated_normal_kernel(1.0, 0.5, -8.0, -7.0),
}
RANGES = [(0, 1), (0, 4096), (1, 4095), (2, 3), (3, 10_001), (2 ** 40 - 1, 777), (2 ** 40 + 2, 70_001)]


CUPY_WHY = support.backend_status("cupy")


# ---------------------------------------------------------------------------
# Without a device


@pytest.mark.skipif(CUPY_WHY is None, reason="a CUDA device is usable here")
def test_cupy_refused_with_reason():
    with pytest.raises(BackendUnavailable) as info:
        get_backend("cupy")
    message = str(info.value)
    assert "cupy" in message.lower() or "cuda" in message.lower()


@pytest.mark.skipif(CUPY_WHY is None, reason="a CUDA device is usable here: auto picks cupy")
def test_auto_falls_back_to_cpu():
    backend = get_backend("auto")
    assert backend.name in ("numba", "numpy")
    assert not wi.available_backends()["cupy"].startswith("ok")


# ---------------------------------------------------------------------------
# On a device


@pytest.mark.gpu
@pytest.mark.skipif(CUPY_WHY is not None, reason=f"cupy backend unavailable: {CUPY_WHY}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("variants", [("select", "integer"), ("branchy", "integer"), ("select", "hardware")],
                         ids=lambda v: "-".join(v))
def test_gpu_kinds_dtypes_ranges(name, dtype, variants):
    backend = _gpu_backend(*variants)
    kernel = KERNELS[name]
    for start, count in RANGES:
        assert_same_bits(backend.random(kernel, KEY, start, start + count, dtype),
                    reference_random(kernel, KEY, start, count, dtype), f"{name} {dtype} [{start}, +{count}) {variants}")


_gpu_backends: dict = {}


def _gpu_backend(ndtri: str = "select", cvt: str = "integer", chunk_bytes: int | None = None):
    from weightinit.backends.cupy_backend import DEFAULT_CHUNK_BYTES, CupyBackend

    key = (ndtri, cvt, chunk_bytes)
    if key not in _gpu_backends:
        _gpu_backends[key] = CupyBackend(ndtri=ndtri, cvt=cvt, chunk_bytes=chunk_bytes or DEFAULT_CHUNK_BYTES)
    return _gpu_backends[key]


@pytest.mark.gpu
@pytest.mark.skipif(CUPY_WHY is not None, reason=f"cupy backend unavailable: {CUPY_WHY}")
def test_gpu_device_name_and_auto():
    backend = get_backend("cupy")
    assert backend.name == "cupy" and backend.device
    assert get_backend("auto").name == "cupy"


@pytest.mark.gpu
@pytest.mark.skipif(CUPY_WHY is not None, reason=f"cupy backend unavailable: {CUPY_WHY}")
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_multi_chunk_pipeline(dtype):
    """Small buffers force many chunks through both streams; unaligned starts, odd sizes."""
    backend = _gpu_backend(chunk_bytes=1 << 16)
    kernel = KERNELS["trunc-2"]
    for start, count in ((0, 200_000), (5, 123_457), (2 ** 33 + 1, 65_537)):
        assert_same_bits(backend.random(kernel, KEY, start, start + count, dtype),
                    reference_random(kernel, KEY, start, count, dtype), f"{dtype} [{start}, +{count})")


@pytest.mark.gpu
@pytest.mark.skipif(CUPY_WHY is not None, reason=f"cupy backend unavailable: {CUPY_WHY}")
def test_gpu_non_contiguous_out_and_device_output():
    backend = _gpu_backend()
    kernel = KERNELS["normal"]
    out = np.zeros(2000, dtype=np.float32)[::2]
    backend.random_into(kernel, KEY, 11, out, "float32")
    assert_same_bits(out.copy(), reference_random(kernel, KEY, 11, 1000, "float32"))
    device = backend.random_device(kernel, KEY, 13, 13 + 5000, "bfloat16")
    assert_same_bits(device.get(), reference_random(kernel, KEY, 13, 5000, "bfloat16"))


@pytest.mark.gpu
@pytest.mark.skipif(CUPY_WHY is not None, reason=f"cupy backend unavailable: {CUPY_WHY}")
def test_gpu_golden_catalogue():
    golden = support.golden_digests()
    for case in support.golden_catalogue():
        gpu = wi.to_le_bytes(wi.generate_raw(case["spec"], backend="cupy"))
        cpu = wi.to_le_bytes(wi.generate_raw(case["spec"], backend="numpy"))
        assert gpu == cpu, case["id"]
        expected = golden.get(json.dumps(case["spec"], sort_keys=True))
        if expected is not None:
            assert hashlib.sha256(gpu).hexdigest() == expected, case["id"]


# ---------------------------------------------------------------------------
# The backend's Python pipeline against a stand-in cupy (no GPU needed)


class _Stream:
    current = None

    def __init__(self, non_blocking=False):
        self.queue: list = []
        self.ptr = id(self)
        _FakeCupy.streams[self.ptr] = self

    def __enter__(self):
        self._previous, _Stream.current = _Stream.current, self
        return self

    def __exit__(self, *exc):
        _Stream.current = self._previous

    def run_until(self, marker=None):
        while self.queue:
            item = self.queue.pop(0)
            if item is marker:
                return
            if callable(item):
                item()

    def synchronize(self):
        self.run_until()


def _enqueue(stream, operation):
    if stream is None:
        operation()  # the null stream: run at once
    else:
        stream.queue.append(operation)


class _Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.stream = None
        self.marker = object()

    def record(self, stream=None):
        self.stream = stream
        if stream is not None:
            stream.queue.append(self.marker)

    def synchronize(self):
        if self.stream is not None:
            self.stream.run_until(self.marker)


class _DeviceArray:
    def __init__(self, count, dtype):
        self.host = np.zeros(count, dtype=np.dtype(dtype))
        self.data = types.SimpleNamespace(ptr=self.host.ctypes.data)
        self.size, self.dtype, self.flags = self.host.size, self.host.dtype, self.host.flags

    def get(self):
        return self.host.copy()


class _Pinned(bytearray):
    @property
    def ptr(self):
        return ctypes.addressof((ctypes.c_char * len(self)).from_buffer(self))


class _FakeCupy(types.ModuleType):
    streams: dict = {}


def _fake_cupy(lib) -> types.ModuleType:
    cupy = _FakeCupy("cupy")
    cupy.uint8 = np.uint8
    cupy.launches = []
    cupy.modules = []
    cupy.empty = lambda count, dtype=np.float64: _DeviceArray(count, dtype)

    class Function:
        def __init__(self, name, variants):
            kind, dtype = next((k, d) for k in KIND_CODES for d in DTYPE_CODES if name == f"wi_{k}_{d}")
            self.kind, self.dtype = KIND_CODES[kind], DTYPE_CODES[dtype]
            self.ndtri, self.cvt = variants

        def __call__(self, grid, block, args):
            params = np.array([float(a) for a in args[:7]], dtype=np.float64)
            key0, key1, start, count, out = args[7:]
            assert isinstance(key0, np.uint64) and isinstance(start, np.int64)
            cupy.launches.append((int(start), int(count), grid, block))
            pointer = out.data.ptr

            def run():
                rc = lib.wi_host_fill(self.kind, params.ctypes.data, int(key0), int(key1), int(start), int(count),
                                      self.dtype, pointer, self.ndtri, self.cvt)
                assert rc == 0

            _enqueue(_Stream.current, run)

    class RawModule:
        def __init__(self, code=None, options=()):
            assert "--fmad=false" in options and "WI_KERNELS_OF(normal" in code
            prelude = dict(re.findall(r"#define (WI_NDTRI|WI_CVT) (\d)\n", code[:200]))
            self.variants = (int(prelude["WI_NDTRI"]), int(prelude["WI_CVT"]))
            cupy.modules.append(self)

        def get_function(self, name):
            return Function(name, self.variants)

    def memcpy_async(dst, src, nbytes, kind, stream_ptr):
        assert kind == 2
        _enqueue(_FakeCupy.streams[stream_ptr], lambda: ctypes.memmove(dst, src, nbytes))

    class Device:
        def __init__(self, index=0):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1, memcpyDeviceToHost=2, memcpyAsync=memcpy_async,
        getDeviceProperties=lambda index: {"name": b"Stand-in GPU", "multiProcessorCount": 2})
    cupy.RawModule = RawModule
    cupy.cuda = types.SimpleNamespace(runtime=runtime, Device=Device, Stream=_Stream, Event=_Event,
                                      alloc_pinned_memory=lambda nbytes: _Pinned(nbytes))
    return cupy


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    host = pytest.importorskip("test_kernels_host")
    return host._build(tmp_path_factory.mktemp("wi_fake_cupy"), "wi_fake_cupy", [])


def _load_backend_module(monkeypatch, cupy, name: str) -> types.ModuleType:
    """A fresh copy of cupy_backend.py, imported with ``cupy`` standing in for CuPy."""
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    path = Path(wi.__file__).parent / "backends" / "cupy_backend.py"
    name = f"weightinit.backends.{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_backend_module(monkeypatch, host_lib):
    cupy = _fake_cupy(host_lib)
    return _load_backend_module(monkeypatch, cupy, "_cupy_backend_with_stand_in"), cupy


@pytest.mark.parametrize("dtype", DTYPES)
def test_pipeline_with_stand_in_cupy(fake_backend_module, dtype):
    module, cupy = fake_backend_module
    backend = module.CupyBackend(chunk_bytes=1 << 16, ndtri="branchy", cvt="hardware")
    assert cupy.modules[-1].variants == (NDTRI_VARIANTS["branchy"], CVT_VARIANTS["hardware"])
    assert backend.name == "cupy" and backend.device == "Stand-in GPU"
    per_chunk = (backend.chunk_bytes // storage_dtype(dtype).itemsize) & ~3
    for kernel in (KERNELS["trunc-2"], KERNELS["uniform"]):
        for start, count in ((0, 1), (3, 5), (0, per_chunk), (1, per_chunk + 1), (6, 5 * per_chunk + 3),
                             (2 ** 40 + 1, 2 * per_chunk - 1)):
            cupy.launches.clear()
            got = backend.random(kernel, KEY, start, start + count, dtype)
            assert_same_bits(got, reference_random(kernel, KEY, start, count, dtype), f"{dtype} [{start}, +{count})")
            assert len(cupy.launches) == -(-count // per_chunk)
            assert [s for s, *_ in cupy.launches] == [start + i * per_chunk for i in range(len(cupy.launches))]


def test_stand_in_pipeline_engine_and_device_output(fake_backend_module):
    module, cupy = fake_backend_module
    backend = module.CupyBackend(chunk_bytes=1 << 16)
    assert cupy.modules[-1].variants == (NDTRI_VARIANTS["select"], CVT_VARIANTS["integer"])
    spec = {"scheme": "he_normal", "shape": [300, 200], "dtype": "float16", "seed": 3, "layout": "keras"}
    assert wi.to_le_bytes(wi.generate_raw(spec, backend=backend)) == \
        wi.to_le_bytes(wi.generate_raw(spec, backend="numpy"))
    out = np.zeros(3000, dtype=np.float64)[::3]
    backend.random_into(KERNELS["normal"], KEY, 9, out, "float64")
    assert_same_bits(out.copy(), reference_random(KERNELS["normal"], KEY, 9, 1000, "float64"))
    device = backend.random_device(KERNELS["normal"], KEY, 2, 1002, "float32")
    assert_same_bits(device.get(), reference_random(KERNELS["normal"], KEY, 2, 1000, "float32"))
    with pytest.raises(ValueError):
        backend.random_into(KERNELS["normal"], KEY, 0, np.zeros(4, dtype=np.float64), "float32")


def test_stand_in_refusals(monkeypatch):
    """No device, or a kernel build failure, is BackendUnavailable with the reason."""
    cupy = _fake_cupy(lib=None)

    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    cupy.cuda.runtime.getDeviceCount = no_device
    module = _load_backend_module(monkeypatch, cupy, "_cupy_backend_refusals")
    with pytest.raises(BackendUnavailable, match="no CUDA device is usable.*no CUDA-capable device"):
        module.CupyBackend()
    cupy.cuda.runtime.getDeviceCount = lambda: 0
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        module.CupyBackend()
    cupy.cuda.runtime.getDeviceCount = lambda: 1

    def broken(*args, **kwargs):
        raise RuntimeError("nvrtc: compilation failed")

    cupy.RawModule = broken
    with pytest.raises(BackendUnavailable, match="could not be built.*nvrtc"):
        module.CupyBackend()
