"""Optional torch helpers: tensors from the service, and filling a module's parameters by name.

>>> from weightinit.client import Client
>>> from weightinit.client.torch_utils import fill_module
>>> fill_module(model, Client("127.0.0.1:50051"), seed=7)   # every parameter, torch_default

torch is imported lazily; nothing here runs without it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("these helpers need torch (pip install weightinit[torch])") from error
    return torch


def to_torch(array: np.ndarray, dtype: str | None = None):
    """A torch tensor sharing nothing with ``array``; bfloat16 given as ml_dtypes or uint16 bits both work."""
    torch = _torch()
    name = dtype or ("bfloat16" if array.dtype.name == "bfloat16" else array.dtype.name)
    if name == "bfloat16":
        bits = np.ascontiguousarray(array).view(np.uint16)
        return torch.from_numpy(bits.astype(np.int16, copy=True).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.array(array, copy=True))


def _dtype_name(torch_dtype) -> str:
    torch = _torch()
    names = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
             torch.bfloat16: "bfloat16"}
    if torch_dtype not in names:
        raise TypeError(f"weightinit generates floating-point tensors only, not {torch_dtype}")
    return names[torch_dtype]


def default_rule(name: str, parameter) -> dict | None:
    """PyTorch's own default init, reproducibly: ``torch_default`` for weights, biases with the weight's fan-in
    (the caller fills ``fan_in``); None skips the parameter."""
    return {"scheme": "torch_default"}


def module_manifest(module, seed: int = 0, rule: Callable[[str, Any], Mapping | None] | Mapping | None = None,
                    layout: str = "torch") -> dict:
    """A manifest of ``module``'s parameters: ``rule(name, parameter)`` (or a mapping name -> spec)
    gives each one's scheme and params; shape, dtype, name and layout come from the parameter.

    A 1-D ``*.bias`` under ``torch_default`` gets ``fan_in`` from its sibling ``*.weight``, as nn.Linear does.
    """
    params = dict(module.named_parameters())
    tensors = []
    for name, parameter in params.items():
        if isinstance(rule, Mapping):
            base = rule.get(name)
        else:
            base = (rule or default_rule)(name, parameter)
        if base is None:
            continue
        spec = {"layout": layout, **dict(base), "name": name, "shape": list(parameter.shape),
                "dtype": _dtype_name(parameter.dtype)}
        if spec["scheme"] == "torch_default" and parameter.dim() < 2:
            extra = dict(spec.get("params") or {})
            sibling = params.get(name.rsplit(".", 1)[0] + ".weight" if "." in name else "weight")
            if "fan_in" not in extra and sibling is not None and sibling.dim() >= 2:
                extra["fan_in"] = int(np.prod(sibling.shape[1:]))
            spec["params"] = extra
        tensors.append(spec)
    return {"seed": seed, "tensors": tensors}


def fill_module(module, client, seed: int = 0, rule: Callable[[str, Any], Mapping | None] | Mapping | None = None,
                layout: str = "torch", chunk_elements: int | None = None) -> dict:
    """Overwrite ``module``'s parameters in place with weights from ``client`` (a Client or LocalClient),
    in one GenerateModel call. Returns the manifest used."""
    torch = _torch()
    manifest = module_manifest(module, seed, rule, layout)
    arrays = client.generate_model(manifest, chunk_elements=chunk_elements)
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, array in arrays.items():
            params[name].copy_(to_torch(array).reshape(params[name].shape))
    return manifest


def generate_tensor(client, spec: Any, **kwargs):
    """``client.generate(spec)`` as a torch tensor."""
    array = client.generate(spec, **kwargs)
    return to_torch(array)
