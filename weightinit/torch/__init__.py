"""``torch.nn.init``, reproducibly: same names, arguments and defaults, bytes from weightinit's engine.

>>> import weightinit.torch as winit
>>> winit.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu", seed=7, name="fc1.weight")
>>> manifest = winit.init_module(model, seed=7)     # every parameter, each module's own default

Each function fills the tensor in place and returns it; the result is
bit-identical to ``weightinit.generate`` of the spec it builds (tensor shape
and dtype, keyword-only ``seed`` and ``name``; the name selects the stream).
``generator`` is accepted for signature compatibility and not used: the
values come from (seed, name) alone. Install with ``pip install 'weightinit[torch]'``.
"""

from __future__ import annotations

import warnings

try:
    import torch
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("weightinit.torch needs PyTorch: pip install 'weightinit[torch]'") from error

from ..engine.fans import NONLINEARITIES
from ..engine.fans import calculate_gain as _engine_gain
from ._fill import ParameterError, fill_tensor_, tensor_spec
from .lsuv import apply_manifest, lsuv
from .modules import init_module, module_manifest
from .report import signal_report

__all__ = [
    "ParameterError", "apply_manifest", "calculate_gain", "constant_", "dirac_", "eye_", "fill_tensor_", "init_module",
    "kaiming_normal_", "kaiming_uniform_", "lsuv", "module_manifest", "normal_", "ones_", "orthogonal_",
    "signal_report", "sparse_",
    "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]

_FAN_MODES = ("fan_in", "fan_out")


def _fill(tensor: torch.Tensor, scheme: str, params: dict | None, seed: int, name: str) -> torch.Tensor:
    return fill_tensor_(tensor, tensor_spec(tensor, scheme, params, seed=seed, name=name))


def _require_fans(tensor: torch.Tensor) -> None:
    """torch.nn.init._calculate_fan_in_and_fan_out's check."""
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")


def _check_slope(nonlinearity: str, param) -> None:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"Unsupported nonlinearity {nonlinearity}")
    if nonlinearity == "leaky_relu" and param is not None and (
            isinstance(param, bool) or not isinstance(param, (int, float))):
        raise ValueError(f"negative_slope {param} not a valid number")


def calculate_gain(nonlinearity, param=None) -> float:
    """torch.nn.init.calculate_gain: linear/conv*/sigmoid 1, tanh 5/3, relu sqrt(2),
    leaky_relu sqrt(2 / (1 + slope^2)) (slope 0.01 unless given), selu 3/4."""
    _check_slope(nonlinearity, param)
    return _engine_gain(nonlinearity, param)


def uniform_(tensor, a=0.0, b=1.0, generator=None, *, seed=0, name=""):
    """U(a, b) (torch.nn.init.uniform_)."""
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a:g} > to={b:g}")
    if a == b:
        return _fill(tensor, "constant", {"value": a}, seed, name)
    return _fill(tensor, "uniform", {"low": a, "high": b}, seed, name)


def normal_(tensor, mean=0.0, std=1.0, generator=None, *, seed=0, name=""):
    """N(mean, std^2) (torch.nn.init.normal_); std = 0 gives mean everywhere, as torch does."""
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
    if std == 0:
        return _fill(tensor, "constant", {"value": mean}, seed, name)
    return _fill(tensor, "normal", {"mean": mean, "std": std}, seed, name)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None, *, seed=0, name=""):
    """N(mean, std^2) restricted to the values [a, b] (absolute bounds, torch.nn.init.trunc_normal_)."""
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a:g} > to={b:g}")
    return _fill(tensor, "truncated_normal",
                 {"mean": mean, "std": std, "lower": a, "upper": b, "bounds": "absolute"}, seed, name)


def constant_(tensor, val, *, seed=0, name=""):
    """val everywhere (torch.nn.init.constant_)."""
    return _fill(tensor, "constant", {"value": val}, seed, name)


def ones_(tensor, *, seed=0, name=""):
    """1 everywhere (torch.nn.init.ones_)."""
    return _fill(tensor, "ones", None, seed, name)


def zeros_(tensor, *, seed=0, name=""):
    """0 everywhere (torch.nn.init.zeros_)."""
    return _fill(tensor, "zeros", None, seed, name)


def eye_(tensor, *, seed=0, name=""):
    """The identity matrix, 2-D only (torch.nn.init.eye_)."""
    if tensor.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, "eye", None, seed, name)


def dirac_(tensor, groups=1, *, seed=0, name=""):
    """1 at each group's [o, o, k // 2 ...], 3- to 5-D (torch.nn.init.dirac_)."""
    if tensor.dim() not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if tensor.size(0) % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    return _fill(tensor, "dirac", {"groups": groups}, seed, name)


def xavier_uniform_(tensor, gain=1.0, generator=None, *, seed=0, name=""):
    """U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) (torch.nn.init.xavier_uniform_, Glorot & Bengio 2010)."""
    _require_fans(tensor)
    return _fill(tensor, "xavier_uniform", {"gain": gain}, seed, name)


def xavier_normal_(tensor, gain=1.0, generator=None, *, seed=0, name=""):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (torch.nn.init.xavier_normal_)."""
    _require_fans(tensor)
    return _fill(tensor, "xavier_normal", {"gain": gain}, seed, name)


def _kaiming(tensor, scheme, a, mode, nonlinearity, seed, name):
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return tensor
    _require_fans(tensor)
    mode = mode.lower()
    if mode not in _FAN_MODES:
        raise ValueError(f"Mode {mode} not supported, please use one of {list(_FAN_MODES)}")
    _check_slope(nonlinearity, a)
    return _fill(tensor, scheme, {"a": a, "mode": mode, "nonlinearity": nonlinearity}, seed, name)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=0, name=""):
    """U(-b, b), b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a)
    (torch.nn.init.kaiming_uniform_, He et al. 2015)."""
    return _kaiming(tensor, "kaiming_uniform", a, mode, nonlinearity, seed, name)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=0, name=""):
    """N(0, std^2), std = gain / sqrt(fan) (torch.nn.init.kaiming_normal_)."""
    return _kaiming(tensor, "kaiming_normal", a, mode, nonlinearity, seed, name)


def orthogonal_(tensor, gain=1, generator=None, *, seed=0, name=""):
    """gain * Q of the (shape[0], numel / shape[0]) normal matrix's QR, sign-corrected
    (torch.nn.init.orthogonal_, Saxe et al. 2013)."""
    if tensor.dim() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    return _fill(tensor, "orthogonal", {"gain": gain}, seed, name)


def sparse_(tensor, sparsity, std=0.01, generator=None, *, seed=0, name=""):
    """N(0, std^2) with ceil(sparsity * rows) zeros in every column, 2-D (torch.nn.init.sparse_, Martens 2010)."""
    if tensor.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, "sparse", {"sparsity": sparsity, "std": std}, seed, name)

