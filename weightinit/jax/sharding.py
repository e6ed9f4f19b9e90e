"""Sharding-invariant JAX arrays: every device's shard is generated on its own.

``jax.make_array_from_callback`` asks for each addressable device's index (a tuple of slices into
the global shape); each is an engine region, so the assembled array equals
``weightinit.generate(spec)`` bit for bit whatever the mesh and PartitionSpec.
"""

from __future__ import annotations

from typing import Mapping

import jax
import numpy as np

from ..engine.generate import as_spec, generate_raw
from ..spec import SpecError, TensorSpec


def _jax_dtype(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes  # a jax dependency

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def materialize(spec: TensorSpec | Mapping, sharding: jax.sharding.Sharding, *, backend=None) -> jax.Array:
    """A ``jax.Array`` of ``spec`` (global shape) laid out by ``sharding``; each device's shard is
    ``generate(spec, index=device_index)``. Replicated shards are generated once per distinct index."""
    spec = as_spec(spec)
    if spec.dtype == "float64" and not jax.config.jax_enable_x64:
        raise SpecError("dtype", "float64 needs jax.config.update('jax_enable_x64', True); JAX would "
                                 "silently store float32")
    cache: dict[tuple, np.ndarray] = {}

    def shard(index) -> np.ndarray:
        index = tuple(index) if index is not None else ()
        bounds = tuple(part.indices(size)[:2] for part, size in zip(index, spec.shape))
        if bounds not in cache:
            raw = generate_raw(spec, backend=backend, index=list(bounds) if bounds else None)
            cache[bounds] = raw.view(_jax_dtype(spec.dtype))  # bfloat16: its uint16 bits reinterpreted
        return cache[bounds]

    return jax.make_array_from_callback(tuple(spec.shape), sharding, shard, dtype=_jax_dtype(spec.dtype))


__all__ = ["materialize"]
