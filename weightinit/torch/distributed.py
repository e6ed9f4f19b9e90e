"""Sharding-invariant initialization of DTensors: every rank generates only its own shard.

The gathered tensor (``full_tensor()``) equals ``weightinit.generate(spec)`` bit for bit, whatever
the mesh, the placements or the world size, because element ``i`` of a tensor is a function of
``(spec, i)`` alone and fans come from the spec's (global) shape.

Shard geometry is torch's own: the per-placement index computation that
``torch.distributed.tensor._utils.compute_local_shape_and_global_offset`` folds left to right over
the mesh dimensions (``Shard`` splits like ``torch.chunk``, so the last ranks may get fewer rows or
none; ``_StridedShard``, which FSDP2 produces when it shards a dimension tensor parallelism already
sharded, holds a non-contiguous set of indices). Each local shard is one engine region per
contiguous run of indices in every dimension, usually exactly one.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Placement, Replicate, Shard
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
from torch.distributed.tensor.placement_types import _StridedShard, _StridedShardOffsetMode

from ..engine.generate import as_spec, generate_raw
from ..spec import SpecError, TensorSpec

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                 "bfloat16": torch.bfloat16}
_SPEC_DTYPES = {dtype: name for name, dtype in _TORCH_DTYPES.items()}


def local_indices(global_shape: Sequence[int], device_mesh: DeviceMesh,
                  placements: Sequence[Placement]) -> list[np.ndarray] | None:
    """The global indices this rank holds along every dimension (int64 arrays, in local order),
    or None when the rank is not in the mesh. Placements apply left to right over mesh dims,
    each splitting the indices the previous ones left, as torch does."""
    coordinate = device_mesh.get_coordinate()
    if coordinate is None:
        return None
    if len(placements) != device_mesh.ndim:
        raise ValueError(f"placements: {len(placements)} given for a {device_mesh.ndim}-D mesh")
    indices = [np.arange(size, dtype=np.int64) for size in global_shape]
    for mesh_dim, placement in enumerate(placements):
        if isinstance(placement, Replicate):
            continue
        if not isinstance(placement, (Shard, _StridedShard)):
            raise ValueError(f"placements[{mesh_dim}]: {placement} cannot be initialized shard by shard "
                             f"(use Shard, _StridedShard or Replicate)")
        dim = placement.dim if placement.dim >= 0 else placement.dim + len(global_shape)
        if not 0 <= dim < len(global_shape):
            raise ValueError(f"placements[{mesh_dim}]: {placement} shards dim {placement.dim} of a "
                             f"rank-{len(global_shape)} tensor")
        current, chunks, rank = indices[dim].size, device_mesh.size(mesh_dim), coordinate[mesh_dim]
        if isinstance(placement, _StridedShard):
            size, positions = placement._local_shard_size_and_offset(
                current, chunks, rank, offset_mode=_StridedShardOffsetMode.ALL)
            positions = np.asarray(positions if size else [], dtype=np.int64)
        else:
            size, first = placement._local_shard_size_and_offset(current, chunks, rank)
            positions = np.arange(first, first + size, dtype=np.int64) if size else np.empty(0, np.int64)
        indices[dim] = indices[dim][positions]
    local_shape, global_offset = compute_local_shape_and_global_offset(global_shape, device_mesh, placements)
    if tuple(len(axis) for axis in indices) != tuple(local_shape) or any(
            len(axis) and axis[0] != offset for axis, offset in zip(indices, global_offset)):
        raise AssertionError(f"shard geometry disagrees with torch: {local_shape}, {global_offset}")  # pragma: no cover
    return indices


def _contiguous_runs(axis: np.ndarray) -> list[tuple[int, int, int]]:
    """(local start, global start, global stop) of every run of consecutive global indices."""
    if axis.size == 0:
        return [(0, 0, 0)]
    breaks = np.flatnonzero(np.diff(axis) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [axis.size]])
    return [(int(a), int(axis[a]), int(axis[b - 1]) + 1) for a, b in zip(starts, stops)]


def generate_local(spec: TensorSpec | Mapping, indices: Sequence[np.ndarray], backend=None) -> np.ndarray:
    """The sub-tensor ``whole[np.ix_(*indices)]`` (storage dtype), generated region by region."""
    spec = as_spec(spec)
    runs = [_contiguous_runs(axis) for axis in indices]
    if all(len(axis_runs) == 1 for axis_runs in runs):
        return generate_raw(spec, backend=backend, index=[(start, stop) for _, start, stop in
                                                          (axis_runs[0] for axis_runs in runs)])
    out = None
    for block in itertools.product(*runs):
        piece = generate_raw(spec, backend=backend, index=[(start, stop) for _, start, stop in block])
        if out is None:
            out = np.empty(tuple(axis.size for axis in indices), dtype=piece.dtype)
        out[tuple(slice(local, local + stop - start) for local, start, stop in block)] = piece
    return out


def _to_torch(raw: np.ndarray, dtype: str) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(raw))
    return tensor.view(torch.bfloat16) if dtype == "bfloat16" else tensor


def _contiguous_stride(shape: Sequence[int]) -> tuple[int, ...]:
    stride, step = [], 1
    for size in reversed(shape):
        stride.append(step)
        step *= max(size, 1)
    return tuple(reversed(stride))


def materialize(spec: TensorSpec | Mapping, device_mesh: DeviceMesh, placements: Sequence[Placement],
                *, backend=None, requires_grad: bool = False) -> DTensor:
    """A DTensor of ``spec`` (its shape is the global shape) laid out by ``placements`` on
    ``device_mesh``; each rank generates only its local shard, and ``full_tensor()`` equals
    ``weightinit.generate(spec)`` bit for bit."""
    spec = as_spec(spec)
    placements = tuple(placements)
    indices = local_indices(spec.shape, device_mesh, placements)
    if indices is None:
        local = torch.empty(0, dtype=_TORCH_DTYPES[spec.dtype])
    else:
        local = _to_torch(generate_local(spec, indices, backend), spec.dtype)
    local = local.to(device_mesh.device_type).requires_grad_(requires_grad)
    return DTensor.from_local(local, device_mesh, placements, run_check=False,
                              shape=torch.Size(spec.shape), stride=_contiguous_stride(spec.shape))


def fill_local_(parameter: torch.Tensor, spec: TensorSpec | Mapping, *, backend=None) -> torch.Tensor:
    """Write this rank's shard of ``spec`` into the DTensor ``parameter`` in place and return it.

    ``spec`` describes the whole (global) tensor: its shape must be ``parameter.shape``, so fans
    are the global ones; without a dtype it takes the parameter's. A plain tensor is filled whole.
    """
    if isinstance(spec, Mapping) and "dtype" not in spec and parameter.dtype in _SPEC_DTYPES:
        spec = {**spec, "dtype": _SPEC_DTYPES[parameter.dtype]}
    spec = as_spec(spec)
    if tuple(spec.shape) != tuple(parameter.shape):
        raise SpecError("shape", f"{list(spec.shape)} is not the parameter's global shape {list(parameter.shape)}")
    with torch.no_grad():
        if isinstance(parameter, DTensor):
            indices = local_indices(spec.shape, parameter.device_mesh, parameter.placements)
            if indices is None:
                return parameter
            target = parameter.to_local()
        else:
            indices, target = [np.arange(size, dtype=np.int64) for size in spec.shape], parameter
        values = _to_torch(generate_local(spec, indices, backend), spec.dtype)
        target.copy_(values.reshape(target.shape))
    return parameter


__all__ = ["fill_local_", "generate_local", "local_indices", "materialize"]
