"""LSUV (Mishkin & Matas 2015, "All you need is a good init", arXiv 1511.06422) with a replayable result.

Every Linear/Conv weight starts as weightinit's ``orthogonal`` (its own per-name stream), biases 0;
then, layer by layer in forward order, the weight is divided by sqrt(Var(output)) on the user's
batch until |Var(output) - 1| < tol (at most ``max_iter`` passes). The divisions are accumulated in
one float64 ``scale`` per weight and the weight is always regenerated as ``orthogonal * scale``
(docs/rng.md section 5), so the returned manifest replays bit for bit with no data and no model code:
:func:`apply_manifest` in-process, ``weightinit generate --manifest`` or a server's GenerateModel.
(orthogonal is bit-exact for one LAPACK build; see docs/rng.md section 7.)
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

import weightinit as wi

#: Modules whose weight LSUV rescales.
LSUV_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
                torch.bfloat16: "bfloat16"}


def _dtype_name(tensor: torch.Tensor) -> str:
    if tensor.dtype not in _DTYPE_NAMES:
        raise wi.SpecError("dtype", f"parameter dtype {tensor.dtype} is not one of float32, float64, float16, bfloat16")
    return _DTYPE_NAMES[tensor.dtype]


def _as_torch(raw: np.ndarray, dtype: str) -> torch.Tensor:
    raw = np.ascontiguousarray(raw)
    if dtype == "bfloat16":
        return torch.from_numpy(raw.view(np.uint16).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(raw)


@torch.no_grad()
def fill_parameter(parameter: torch.Tensor, spec: Mapping[str, Any] | wi.TensorSpec) -> None:
    """Copy the engine's bytes for ``spec`` into ``parameter`` (any device)."""
    spec = wi.spec_from_dict(spec)
    raw = wi.generate_raw(spec)
    parameter.copy_(_as_torch(raw, spec.dtype).reshape(parameter.shape))


def _initial_spec(name: str, parameter: torch.Tensor, module: nn.Module, seed: int) -> dict:
    """orthogonal for LSUV weights and other >= 2-D parameters; 1-D weights 1; biases and the rest 0."""
    spec = {"name": name, "shape": list(parameter.shape), "dtype": _dtype_name(parameter), "seed": seed}
    leaf = name.rsplit(".", 1)[-1]
    if parameter.dim() >= 2:
        return {**spec, "scheme": "orthogonal"}
    if leaf == "weight":
        return {**spec, "scheme": "ones"}
    return {**spec, "scheme": "zeros"}


def _forward_order(model: nn.Module, batch) -> list[str]:
    """Names of LSUV layers in the order the forward pass first calls them."""
    order: list[str] = []
    hooks = [module.register_forward_hook(lambda m, i, o, n=name: order.append(n) if n not in order else None)
             for name, module in model.named_modules() if isinstance(module, LSUV_LAYERS)]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return order


class _Reached(Exception):
    """Stops the forward pass once the layer of interest has produced its output."""


def _output_variance(model: nn.Module, module: nn.Module, batch) -> float:
    captured = []

    def capture(m, inputs, output):
        captured.append(output.detach().double().var().item())
        raise _Reached

    hook = module.register_forward_hook(capture)
    try:
        with torch.no_grad():
            model(batch)
    except _Reached:
        pass
    finally:
        hook.remove()
    return captured[0]


def lsuv(model: nn.Module, batch, seed: int = 0, tol: float = 0.1, max_iter: int = 10) -> dict:
    """Initialize ``model`` in place with LSUV on ``batch``; return the manifest that replays it.

    W <- orthogonal (weightinit, stream from the parameter's name, ``seed``); then per layer in forward
    order: scale <- scale / sqrt(Var(out)), W <- orthogonal * scale, until |Var(out) - 1| < tol or
    ``max_iter`` passes. Returns ``{"seed": seed, "tensors": [spec, ...]}`` in ``named_parameters`` order;
    rescaled weights carry ``scale``.
    """
    if not tol > 0:
        raise wi.SpecError("tol", f"must be > 0, got {tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise wi.SpecError("max_iter", f"must be a positive integer, got {max_iter!r}")
    modules = dict(model.named_modules())
    specs: dict[str, dict] = {}
    for name, parameter in model.named_parameters():
        owner = modules[name.rsplit(".", 1)[0]] if "." in name else model
        specs[name] = _initial_spec(name, parameter, owner, seed)
        fill_parameter(parameter, specs[name])
    parameters = dict(model.named_parameters())
    was_training = model.training
    model.eval()
    try:
        for layer in _forward_order(model, batch):
            weight_name = f"{layer}.weight" if layer else "weight"
            module, weight = modules[layer], parameters[weight_name]
            scale = 1.0
            for _ in range(max_iter):
                variance = _output_variance(model, module, batch)
                if abs(variance - 1.0) < tol:
                    break
                if not variance > 0 or not math.isfinite(variance):
                    raise wi.SpecError(weight_name, f"output variance {variance} on the batch cannot be normalised")
                scale = scale / math.sqrt(variance)
                specs[weight_name] = {**specs[weight_name], "scale": scale}
                fill_parameter(weight, specs[weight_name])
    finally:
        model.train(was_training)
    return {"seed": seed, "tensors": [wi.spec_from_dict(specs[name]).to_dict() for name in parameters]}


@torch.no_grad()
def apply_manifest(model: nn.Module, manifest: Mapping, client=None) -> None:
    """Fill ``model``'s parameters from a manifest's specs, by name: the in-process engine, or
    ``client.generate_model`` (a server) when given. Every parameter must have a spec."""
    parameters = dict(model.named_parameters())
    tensors = list(manifest["tensors"])
    names = [t["name"] for t in tensors]
    missing = sorted(set(parameters) - set(names))
    unknown = sorted(set(names) - set(parameters))
    if missing or unknown:
        raise wi.SpecError("manifest.tensors", f"parameters without a spec: {missing}; specs without a "
                                               f"parameter: {unknown}")
    if client is None:
        for tensor in tensors:
            fill_parameter(parameters[tensor["name"]], dict(tensor, seed=tensor.get("seed", manifest.get("seed", 0))))
        return
    arrays = client.generate_model(manifest)
    for tensor in tensors:
        spec = wi.spec_from_dict(tensor)
        raw = np.asarray(arrays[spec.name])
        if spec.dtype == "bfloat16":
            raw = raw.view(np.uint16)
        parameters[spec.name].copy_(_as_torch(raw, spec.dtype).reshape(parameters[spec.name].shape))


__all__ = ["LSUV_LAYERS", "apply_manifest", "fill_parameter", "lsuv"]
