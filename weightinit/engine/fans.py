"""Fan-in / fan-out under each framework's layout, and torch's gain table."""

from __future__ import annotations

import math
from typing import Sequence


class FanError(ValueError):
    """Fans cannot be computed for this shape under this layout; ``field`` names the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _product(values: Sequence[int]) -> int:
    return math.prod(int(v) for v in values)


def torch_fans(shape: Sequence[int]) -> tuple[int, int]:
    """[out, in, *k]: rf = prod(k); (in * rf, out * rf). Fewer than 2 dims is an error."""
    if len(shape) < 2:
        raise FanError("shape", f"fans need at least 2 dims under the torch layout [out, in, *k], got {len(shape)}-D")
    receptive = _product(shape[2:])
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def keras_fans(shape: Sequence[int]) -> tuple[int, int]:
    """[*k, in, out]: rank 0 -> (1, 1); rank 1 -> (n, n); else rf = prod(k); (in * rf, out * rf)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    receptive = _product(shape[:-2])
    return int(shape[-2]) * receptive, int(shape[-1]) * receptive


Axes = int | Sequence[int]


def axes_fans(shape: Sequence[int], in_axis: Axes, out_axis: Axes,
              batch_axis: Axes) -> tuple[int | float, int | float]:
    """jax.nn.initializers._compute_fans: in/out/batch sizes are products over their axes (an int is one
    axis, an empty sequence has size 1); rf = numel / in / out / batch; (in * rf, out * rf).

    Any rank works when the axes fit it (the default in_axis=-2 needs 2 dims, as in JAX). When every
    axis is named at most once, rf is the (integer) product of the unnamed axes: the same numbers.
    An axis named twice (flax's default Embed init: out_axis=0 = in_axis=-2 on a 2-D shape) is counted
    twice, exactly as JAX does, in the same float operations, so the fans may be non-integers."""
    rank = len(shape)

    def resolve(axes: Axes, field: str) -> list[int]:
        resolved = []
        for axis in (axes,) if isinstance(axes, int) else axes:
            if not -rank <= axis < rank:
                raise FanError(field, f"axis {axis} is out of range for a {rank}-D shape")
            resolved.append(axis % rank)
        return resolved

    ins = resolve(in_axis, "in_axis")
    outs = resolve(out_axis, "out_axis")
    batch = resolve(batch_axis, "batch_axis")
    in_size = _product(shape[a] for a in ins)
    out_size = _product(shape[a] for a in outs)
    batch_size = _product(shape[a] for a in batch)
    named = ins + outs + batch
    if len(set(named)) == len(named) or in_size * out_size * batch_size == 0:
        receptive = _product(d for axis, d in enumerate(shape) if axis not in set(named))
        return in_size * receptive, out_size * receptive
    receptive_float = _product(shape) / in_size / out_size / batch_size
    return in_size * receptive_float, out_size * receptive_float


#: Fans beyond this do not convert to binary64 (sums and products of two included).
MAX_FAN = 1 << 1020


def compute_fans(shape: Sequence[int], layout: str, in_axis: Axes = -2, out_axis: Axes = -1,
                 batch_axis: Axes = ()) -> tuple[int | float, int | float]:
    if layout == "torch":
        fans = torch_fans(shape)
    elif layout == "keras":
        fans = keras_fans(shape)
    elif layout == "axes":
        fans = axes_fans(shape, in_axis, out_axis, batch_axis)
    else:
        raise FanError("layout", f"unknown layout {layout!r}")
    if max(fans) > MAX_FAN:
        raise FanError("shape", f"fans of this {len(shape)}-D shape overflow binary64 (fan_in ~2^"
                                f"{int(fans[0]).bit_length()}, fan_out ~2^{int(fans[1]).bit_length()})")
    return fans


def fan_for_mode(fan_in: int, fan_out: int, mode: str) -> float:
    """fan_in | fan_out | fan_avg = (in + out) / 2 | fan_geo_avg = sqrt(in * out)."""
    if mode == "fan_in":
        return float(fan_in)
    if mode == "fan_out":
        return float(fan_out)
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    if mode == "fan_geo_avg":
        return math.sqrt(float(fan_in) * float(fan_out))
    raise FanError("mode", f"unknown fan mode {mode!r}")


LINEAR_NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d",
                         "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")
NONLINEARITIES = LINEAR_NONLINEARITIES + ("tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """torch.nn.init.calculate_gain: linear/conv*/sigmoid 1, tanh 5/3, relu sqrt(2),
    leaky_relu sqrt(2 / (1 + slope^2)) (slope defaults to 0.01), selu 3/4."""
    if nonlinearity in LINEAR_NONLINEARITIES:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope * slope))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise FanError("nonlinearity", f"unknown nonlinearity {nonlinearity!r}")
