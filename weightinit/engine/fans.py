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


def axes_fans(shape: Sequence[int], in_axis: int, out_axis: int, batch_axis: Sequence[int]) -> tuple[int, int]:
    """JAX: rf = numel / (shape[in] * shape[out] * prod(shape[batch])); (shape[in] * rf, shape[out] * rf)."""
    rank = len(shape)

    def resolve(axis: int, field: str) -> int:
        if not -rank <= axis < rank:
            raise FanError(field, f"axis {axis} is out of range for a {rank}-D shape")
        return axis % rank

    i = resolve(in_axis, "in_axis")
    o = resolve(out_axis, "out_axis")
    batch = [resolve(b, "batch_axis") for b in batch_axis]
    if i == o:
        raise FanError("out_axis", "in_axis and out_axis must differ")
    if i in batch or o in batch or len(set(batch)) != len(batch):
        raise FanError("batch_axis", "batch axes must be distinct from each other and from in_axis/out_axis")
    named = {i, o, *batch}
    receptive = _product(d for axis, d in enumerate(shape) if axis not in named)
    return int(shape[i]) * receptive, int(shape[o]) * receptive


#: Fans beyond this do not convert to binary64 (sums and products of two included).
MAX_FAN = 1 << 1020


def compute_fans(shape: Sequence[int], layout: str, in_axis: int = -2, out_axis: int = -1,
                 batch_axis: Sequence[int] = ()) -> tuple[int, int]:
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
                                f"{fans[0].bit_length()}, fan_out ~2^{fans[1].bit_length()})")
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
