"""The reference backend: NumPy's C Philox for the words, NumPy ufuncs for the transforms."""

from __future__ import annotations

import numpy as np

from ..engine.philox import philox_words
from ..engine.transforms import Kernel, apply_kernel, round_to_storage
from .base import BlockedCpuBackend


class NumpyBackend(BlockedCpuBackend):
    name = "numpy"

    def fill_block(self, kernel: Kernel, key, start: int, out: np.ndarray, dtype: str) -> None:
        words = philox_words(key, start, out.size)
        out[...] = round_to_storage(apply_kernel(kernel, words), dtype)
