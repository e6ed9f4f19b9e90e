"""Writing engine output into torch tensors in place: CPU memory directly, CUDA through CuPy/DLPack.

The bytes are always those of ``weightinit.generate`` of the same spec: the
engine writes the storage words (bfloat16 as its 16-bit pattern) straight into
the tensor's memory when it is a contiguous CPU tensor; any other tensor gets
a contiguous staging copy that is then ``copy_``-ed in logical row-major order.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..backends import BackendUnavailable, get_backend
from ..engine.generate import FILL_ELEMENTS, CompiledSpec, compile_spec
from ..engine.schemes import RandomPlan
from ..engine.validate import spec_from_dict
from ..spec import SpecError, TensorSpec

DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
               torch.bfloat16: "bfloat16"}


class ParameterError(SpecError):
    """A tensor of a module that cannot be filled; ``parameter`` is its qualified name."""

    def __init__(self, parameter: str, field: str, message: str):
        super().__init__(field, message, tensor=parameter)
        self.parameter = parameter

    def in_tensor(self, tensor: str, index: int) -> "ParameterError":
        return self

    def __reduce__(self):
        return ParameterError, (self.parameter, self.field, self.message)


def dtype_name(tensor: torch.Tensor) -> str:
    name = DTYPE_NAMES.get(tensor.dtype)
    if name is None:
        raise TypeError(f"weightinit fills float32, float64, float16 and bfloat16 tensors, not {tensor.dtype}")
    return name


def tensor_spec(tensor: torch.Tensor, scheme: str, params: Mapping[str, Any] | None = None, *, seed: int = 0,
                name: str = "") -> dict:
    """The spec dict of ``tensor`` (its shape and dtype) under ``scheme``."""
    return {"scheme": scheme, "shape": list(tensor.shape), "dtype": dtype_name(tensor), "seed": seed,
            "name": name, "params": dict(params or {})}


def storage_view(tensor: torch.Tensor) -> np.ndarray | None:
    """A flat NumPy view of a contiguous CPU tensor's memory in the engine's storage dtype
    (bfloat16 as uint16 bits); None when the tensor has no such view."""
    if tensor.device.type != "cpu" or not tensor.is_contiguous():
        return None
    data = tensor.detach()
    if data.dtype == torch.bfloat16:
        array = data.view(torch.int16).numpy().view(np.uint16)
    else:
        array = data.numpy()
    if not array.flags.c_contiguous or not array.flags.writeable:
        return None
    return array.reshape(-1)


def fill_flat(compiled: CompiledSpec, flat: np.ndarray) -> None:
    """Every element of ``compiled.spec`` into ``flat``, in pieces the backends split across cores."""
    for offset in range(0, flat.size, FILL_ELEMENTS):
        compiled.fill(offset, flat[offset:offset + FILL_ELEMENTS])


def _fill_cuda(tensor: torch.Tensor, spec: TensorSpec) -> bool:
    """Random plans on the tensor's own GPU by the CuPy kernels, zero-copy through DLPack.
    False when CuPy, its device or the plan does not allow it (the caller then copies from the host)."""
    try:
        import cupy

        backend = get_backend("cupy")
    except (ImportError, BackendUnavailable):
        return False
    device = torch.cuda.current_device() if tensor.device.index is None else tensor.device.index
    if not tensor.is_contiguous() or backend.device_id != device:
        return False
    compiled = compile_spec(spec, backend, limits=None)
    plan = compiled.plan
    if not isinstance(plan, RandomPlan) or plan.mask is not None:
        return False
    data = tensor.detach()
    if data.dtype == torch.bfloat16:
        flat = cupy.from_dlpack(data.view(torch.int16)).reshape(-1).view(cupy.uint16)
    else:
        flat = cupy.from_dlpack(data).reshape(-1)
    backend.random_device(plan.kernel, spec.key, 0, spec.numel, spec.dtype, out=flat)
    compiled.fill_zero_rows(0, flat)
    cupy.cuda.get_current_stream().synchronize()
    return True


def fill_tensor_(tensor: torch.Tensor, spec: TensorSpec | Mapping[str, Any]) -> torch.Tensor:
    """Overwrite ``tensor`` in place with the bytes of ``spec`` (shape and dtype must match); returns it.

    A tensor on the meta device has no memory and is returned untouched.
    """
    if not isinstance(spec, TensorSpec):
        spec = spec_from_dict(spec, limits=None)
    if tuple(tensor.shape) != spec.shape or dtype_name(tensor) != spec.dtype:
        raise SpecError("shape", f"the spec describes {spec.dtype} {list(spec.shape)}, the tensor is "
                                 f"{dtype_name(tensor)} {list(tensor.shape)}")
    if tensor.device.type == "meta":
        return tensor
    with torch.no_grad():
        if tensor.device.type == "cuda" and _fill_cuda(tensor, spec):
            return tensor
        compiled = compile_spec(spec, limits=None)
        flat = storage_view(tensor)
        if flat is not None:
            fill_flat(compiled, flat)
            return tensor
        staging = torch.empty(spec.shape, dtype=tensor.dtype)
        fill_flat(compiled, storage_view(staging))
        tensor.copy_(staging)
    return tensor
