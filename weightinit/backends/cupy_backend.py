"""The GPU backend: our own CUDA kernels through CuPy, bit-identical to the NumPy reference.

The kernels (``kernels/weightinit_kernels.cu`` + ``.cuh``) implement Philox4x64-10 and
the transforms of ``engine/transforms.py`` with explicit round-to-nearest float64
intrinsics, no FMA (``--fmad=false`` as well) and no float32 arithmetic (storage
rounding is integer round-to-nearest-even), so CuPy's forced ``-ftz=true`` cannot
change a bit. ``cupy.random`` is never used: its streams depend on the GPU's SM count.

Host requests (:meth:`CupyBackend.random_into`) are generated in chunks into two
reused device buffers on two CUDA streams, copied into pinned host buffers and from
there into the caller's array, so the kernel for chunk ``i`` runs while chunk
``i - 1`` crosses the bus and is copied out. :meth:`CupyBackend.random_device`
leaves the result on the GPU.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

try:
    import cupy
except ImportError:
    raise
except Exception as error:  # a broken CUDA install can raise other errors at import
    raise ImportError(f"cupy failed to import: {error!r}") from error

from ..engine.transforms import Kernel
from .base import Backend, BackendUnavailable, cpu_threads, shared_pool, storage_dtype
from .cuda_source import (DEFAULT_CVT, DEFAULT_NDTRI, KERNEL_NAMES, NVRTC_OPTIONS, cuda_source, kernel_name,
                          padded_params)

log = logging.getLogger(__name__)

#: Bytes per device (and pinned host) buffer; two of each are kept.
DEFAULT_CHUNK_BYTES = 64 << 20
THREADS_PER_BLOCK = 256
#: Grid-stride kernels: at most this many thread blocks per multiprocessor.
BLOCKS_PER_SM = 32
#: Host copies above this size are split over the CPU thread pool.
PARALLEL_COPY_BYTES = 8 << 20


def _device_count() -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception as error:  # CUDARuntimeError: no driver, no device, ...
        raise BackendUnavailable(f"cupy imports but no CUDA device is usable: {error}") from None


class CupyBackend(Backend):
    """Generates on one CUDA device. Raises :class:`BackendUnavailable` when none is usable."""

    name = "cupy"

    def __init__(self, device_id: int = 0, chunk_bytes: int = DEFAULT_CHUNK_BYTES, ndtri: str = DEFAULT_NDTRI,
                 cvt: str = DEFAULT_CVT):
        count = _device_count()
        if count <= 0:
            raise BackendUnavailable("cupy imports but reports no CUDA device")
        if not 0 <= device_id < count:
            raise BackendUnavailable(f"CUDA device {device_id} requested, {count} present")
        self.device_id = device_id
        self.ndtri = ndtri
        self.cvt = cvt
        #: Grid-stride launches use at most this many thread blocks per multiprocessor.
        self.blocks_per_sm = BLOCKS_PER_SM
        self.chunk_bytes = max(1 << 16, int(chunk_bytes)) & ~31
        try:
            props = cupy.cuda.runtime.getDeviceProperties(device_id)
        except Exception as error:
            raise BackendUnavailable(f"CUDA device {device_id} is not usable: {error}") from None
        name = props.get("name", b"CUDA device")
        self._device_name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        self._sm_count = int(props.get("multiProcessorCount", 1)) or 1
        try:
            with cupy.cuda.Device(device_id):
                self._module = cupy.RawModule(code=cuda_source(ndtri, cvt), options=NVRTC_OPTIONS)
                # get_function compiles the module (NVRTC) and loads it on this device.
                self._kernels = {name: self._module.get_function(name) for name in KERNEL_NAMES}
                self._streams = (cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True))
        except Exception as error:
            raise BackendUnavailable(f"the CUDA kernels could not be built on {self._device_name}: {error}") from None
        self._lock = threading.Lock()
        self._device_buffers: list = []
        self._pinned: list = []
        log.info("cupy backend on %s (device %d, %d SMs), ndtri=%s, cvt=%s", self._device_name, device_id,
                 self._sm_count, ndtri, cvt)

    @property
    def device(self) -> str:
        return self._device_name

    # -- kernel launch ---------------------------------------------------------------

    def launch(self, kernel: Kernel, key: tuple[int, int], start: int, count: int, dtype: str, out_device,
               stream=None) -> None:
        """Enqueue elements ``[start, start + count)`` into the device array ``out_device`` (its first
        ``count * itemsize`` bytes) on ``stream`` (the current stream if None)."""
        if count <= 0:
            return
        function = self._kernels[kernel_name(kernel.kind, dtype)]
        blocks = (start + count + 3) // 4 - start // 4
        grid = max(1, min(-(-blocks // THREADS_PER_BLOCK), self._sm_count * self.blocks_per_sm))
        args = tuple(np.float64(p) for p in padded_params(kernel.params)) + (
            np.uint64(key[0]), np.uint64(key[1]), np.int64(start), np.int64(count), out_device)
        if stream is None:
            function((grid,), (THREADS_PER_BLOCK,), args)
        else:
            with stream:
                function((grid,), (THREADS_PER_BLOCK,), args)

    def random_device(self, kernel: Kernel, key: tuple[int, int], start: int, stop: int, dtype: str, out=None):
        """Elements ``[start, stop)`` as a CuPy array of the storage dtype, left on the device
        (enqueued on the current stream)."""
        count = stop - start
        with cupy.cuda.Device(self.device_id):
            if out is None:
                out = cupy.empty(count, dtype=storage_dtype(dtype))
            elif out.size != count or out.dtype != storage_dtype(dtype) or not out.flags.c_contiguous:
                raise ValueError("out must be a C-contiguous device array of the storage dtype and range size")
            if kernel.scale is not None:  # docs/rng.md 5: rounded on the host, where FTZ cannot touch it
                host = np.empty(count, dtype=storage_dtype(dtype))
                self.random_into(kernel, key, start, host, dtype)
                out.set(host)
                return out
            self.launch(kernel, key, start, count, dtype, out)
        return out

    # -- host requests ---------------------------------------------------------------

    def _ensure_buffers(self) -> None:
        if self._device_buffers:
            return
        self._device_buffers = [cupy.empty(self.chunk_bytes, dtype=cupy.uint8) for _ in range(2)]
        self._pinned = [cupy.cuda.alloc_pinned_memory(self.chunk_bytes) for _ in range(2)]

    def random_into(self, kernel: Kernel, key: tuple[int, int], start: int, out: np.ndarray, dtype: str) -> None:
        count = out.size
        if count == 0:
            return
        target = storage_dtype(dtype)
        if out.dtype != target:
            raise ValueError(f"out has dtype {out.dtype}, expected {target} for {dtype}")
        if not (out.flags.c_contiguous and out.flags.writeable):
            staging = np.empty(count, dtype=target)
            self.random_into(kernel, key, start, staging, dtype)
            out.reshape(-1)[...] = staging
            return
        flat = out.reshape(-1)
        itemsize = target.itemsize
        # A multiple of 4 elements, so chunks after an aligned start stay aligned (vector stores).
        per_chunk = (self.chunk_bytes // itemsize) & ~3
        chunks = [(offset, min(per_chunk, count - offset)) for offset in range(0, count, per_chunk)]
        with self._lock, cupy.cuda.Device(self.device_id):
            self._ensure_buffers()
            events: list = [None, None]
            pending = None  # (slot, offset, n): chunk whose device-to-host copy is queued
            for index, (offset, n) in enumerate(chunks):
                slot = index & 1
                stream = self._streams[slot]
                # The pinned buffer of this slot was emptied (host copy) while finishing chunk index - 2,
                # and this stream orders the kernel after that chunk's device-to-host copy.
                device_buffer = self._device_buffers[slot]
                self.launch(kernel, key, start + offset, n, dtype, device_buffer, stream)
                cupy.cuda.runtime.memcpyAsync(self._pinned[slot].ptr, device_buffer.data.ptr, n * itemsize,
                                              cupy.cuda.runtime.memcpyDeviceToHost, stream.ptr)
                event = cupy.cuda.Event(block=False, disable_timing=True)
                event.record(stream)
                events[slot] = event
                if pending is not None:
                    self._finish(pending, events, flat, target)
                pending = (slot, offset, n)
            self._finish(pending, events, flat, target)

    def _finish(self, pending, events, flat: np.ndarray, target: np.dtype) -> None:
        """Wait for a chunk's device-to-host copy, then copy it from pinned memory into ``flat``."""
        slot, offset, n = pending
        events[slot].synchronize()
        source = np.frombuffer(self._pinned[slot], dtype=target, count=n)
        destination = flat[offset:offset + n]
        nbytes = n * target.itemsize
        if nbytes < PARALLEL_COPY_BYTES:
            np.copyto(destination, source)
            return
        pool = shared_pool()
        pieces = max(1, min(cpu_threads(), nbytes // (PARALLEL_COPY_BYTES // 2)))
        step = -(-n // pieces)
        futures = [pool.submit(np.copyto, destination[i:i + step], source[i:i + step]) for i in range(0, n, step)]
        for future in futures:
            future.result()


__all__ = ["CupyBackend", "DEFAULT_CHUNK_BYTES"]
