"""The backend interface: the one operation that differs between NumPy, Numba and CuPy."""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from ..engine.transforms import Kernel, round_to_storage
from ..errors import BackendUnavailable
from ..spec import ITEMSIZE

#: Elements one worker handles at a time: big enough to amortise Python overhead,
#: small enough to stay in cache.
BLOCK_ELEMENTS = 1 << 16


def storage_dtype(dtype: str) -> np.dtype:
    """NumPy dtype that holds a tensor's bytes: bfloat16 is stored as its uint16 bits."""
    return np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)


def cpu_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def shared_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=cpu_threads(), thread_name_prefix="weightinit")


if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads: start afresh
    os.register_at_fork(after_in_child=shared_pool.cache_clear)


def _honour_scale(random_into):
    """docs/rng.md section 5, in one place for every backend: a scaled kernel is the backend's
    unscaled float64 values times ``kernel.scale`` (one binary64 multiply, here in NumPy), then
    rounded to the dtype. The backends' own kernels never see a scale."""
    @functools.wraps(random_into)
    def wrapper(self, kernel: Kernel, key, start: int, out: np.ndarray, dtype: str) -> None:
        if kernel.scale is None:
            return random_into(self, kernel, key, start, out, dtype)
        values = np.empty(out.size, dtype=np.float64)
        random_into(self, kernel.unscaled, key, start, values, "float64")
        out.reshape(-1)[...] = round_to_storage(values * kernel.scale, dtype)
    return wrapper


class Backend(ABC):
    """Computes kernel values for a word range. Implementations must give identical bytes.

    A kernel with a ``scale`` is handled here for every subclass's ``random_into``."""

    name: str = "abstract"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "random_into" in cls.__dict__:
            cls.random_into = _honour_scale(cls.__dict__["random_into"])

    @property
    def device(self) -> str:
        return "cpu"

    @abstractmethod
    def random_into(self, kernel: Kernel, key: tuple[int, int], start: int, out: np.ndarray, dtype: str) -> None:
        """Fill ``out`` (1-D, storage dtype) with elements ``[start, start + out.size)``."""

    def complex_values(self, kernel: Kernel, key: tuple[int, int], start: int, count: int) -> np.ndarray:
        """complex128 elements ``[start, start + count)`` of a complex kernel (docs/rng.md 5a): the
        NumPy reference; a backend may compute the word -> float part faster, with the same bits."""
        from ..engine.philox import SUBSTREAM_COMPLEX, SUBSTREAM_VALUES, philox_words
        from ..engine.transforms import apply_complex_kernel

        real, imag = apply_complex_kernel(kernel, philox_words(key, start, count, SUBSTREAM_VALUES),
                                          philox_words(key, start, count, SUBSTREAM_COMPLEX))
        return _as_complex(real, imag)

    def random(self, kernel: Kernel, key: tuple[int, int], start: int, stop: int, dtype: str) -> np.ndarray:
        out = np.empty(stop - start, dtype=storage_dtype(dtype))
        self.random_into(kernel, key, start, out, dtype)
        return out


def _as_complex(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    values = np.empty(real.size, dtype=np.complex128)
    values.real, values.imag = real, imag
    return values


class BlockedCpuBackend(Backend):
    """Splits a range into blocks and runs ``fill_block`` on the shared thread pool (the block
    functions release the GIL), so both cores work on large requests."""

    def __init__(self, threads: int | None = None):
        self.threads = threads or cpu_threads()

    @abstractmethod
    def fill_block(self, kernel: Kernel, key: tuple[int, int], start: int, out: np.ndarray, dtype: str) -> None:
        ...

    def random_into(self, kernel, key, start, out, dtype):
        count = out.size
        if self.threads == 1 or count < 2 * BLOCK_ELEMENTS:
            for offset in range(0, count, BLOCK_ELEMENTS):
                self.fill_block(kernel, key, start + offset, out[offset:offset + BLOCK_ELEMENTS], dtype)
            return
        futures = [shared_pool().submit(self.fill_block, kernel, key, start + offset,
                                        out[offset:offset + BLOCK_ELEMENTS], dtype)
                   for offset in range(0, count, BLOCK_ELEMENTS)]
        for future in futures:
            future.result()


__all__ = ["Backend", "BackendUnavailable", "BlockedCpuBackend", "BLOCK_ELEMENTS", "ITEMSIZE", "storage_dtype"]
