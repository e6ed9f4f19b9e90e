"""Fans, fan modes and gains equal the formulas of DESIGN.md section 3, and the schemes use them.

The references below are written from the formulas, not from the engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import weightinit as wi
from weightinit.engine.fans import FanError, calculate_gain, compute_fans, fan_for_mode
from weightinit.engine.schemes import BUILDERS, KERAS_TRUNCATION_STD
from weightinit.engine.transforms import NORMAL, TRUNCATED_NORMAL, UNIFORM

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# ---------------------------------------------------------------------------
# Reference formulas (DESIGN.md section 3)


def ref_torch_fans(shape):
    rf = math.prod(shape[2:])
    return shape[1] * rf, shape[0] * rf


def ref_keras_fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    rf = math.prod(shape[:-2])
    return shape[-2] * rf, shape[-1] * rf


def ref_axes_fans(shape, in_axis, out_axis, batch_axis):
    rank = len(shape)
    named = {in_axis % rank, out_axis % rank, *(b % rank for b in batch_axis)}
    rf = math.prod(d for axis, d in enumerate(shape) if axis not in named)
    return shape[in_axis] * rf, shape[out_axis] * rf


def ref_fan(fan_in, fan_out, mode):
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]


REF_GAIN = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "conv_transpose1d": 1.0,
            "conv_transpose2d": 1.0, "conv_transpose3d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0,
            "relu": math.sqrt(2.0), "selu": 0.75}


def ref_gain(nonlinearity, param=None):
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    return REF_GAIN[nonlinearity]


MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")


# ---------------------------------------------------------------------------
# compute_fans


@pytest.mark.parametrize("shape,expected", [
    ([4, 3], (3, 4)),                       # Linear(3, 4).weight
    ([1, 1], (1, 1)),
    ([16, 8, 3], (24, 48)),                 # Conv1d(8, 16, 3)
    ([16, 8, 3, 5], (120, 240)),            # Conv2d(8, 16, (3, 5))
    ([2, 3, 4, 5, 6], (360, 240)),          # Conv3d
    ([0, 5], (5, 0)),                       # zero dims
    ([3, 0, 2], (0, 6)),
    ([3, 4, 0], (0, 0)),
    ([7, 2, 1, 1], (2, 7)),
])
def test_torch_fans(shape, expected):
    assert compute_fans(shape, "torch") == expected == ref_torch_fans(shape)


@pytest.mark.parametrize("shape", [[], [5], [0]])
def test_torch_fans_need_two_dims(shape):
    with pytest.raises(FanError) as caught:
        compute_fans(shape, "torch")
    assert caught.value.field == "shape"
    assert "2 dims" in str(caught.value)


@pytest.mark.parametrize("shape,expected", [
    ([], (1, 1)),                           # rank 0
    ([7], (7, 7)),                          # rank 1
    ([0], (0, 0)),
    ([3, 4], (3, 4)),                       # Dense(4) on 3 inputs: kernel [in, out]
    ([3, 16, 32], (48, 96)),                # Conv1D kernel [k, in, out]
    ([3, 5, 8, 16], (120, 240)),            # Conv2D kernel [kh, kw, in, out]
    ([2, 3, 4, 5, 6], (120, 144)),          # Conv3D
    ([3, 3, 0, 4], (0, 36)),
])
def test_keras_fans(shape, expected):
    assert compute_fans(shape, "keras") == expected == ref_keras_fans(shape)


@pytest.mark.parametrize("shape,in_axis,out_axis,batch_axis,expected", [
    ([3, 4], -2, -1, (), (3, 4)),
    ([3, 4], 1, 0, (), (4, 3)),
    ([3, 5, 8, 16], -2, -1, (), (120, 240)),        # JAX default == Keras on conv kernels
    ([16, 8, 3, 5], 1, 0, (), (120, 240)),          # a torch-layout kernel described by axes
    ([4, 6, 8, 3], 1, 2, (0,), (18, 24)),           # batch axis excluded from the receptive field
    ([2, 3, 8, 8], -2, -1, (0,), (24, 24)),
    ([2, 3, 4, 5], 0, 3, (1, 2), (2, 5)),
    ([2, 3, 4, 5], -4, -1, (-3,), (8, 20)),         # negative axes
    ([5, 0, 3], 0, 2, (), (0, 0)),
    ([5, 0, 3], 0, 2, (1,), (5, 3)),               # a zero batch dim does not zero the fans
])
def test_axes_fans(shape, in_axis, out_axis, batch_axis, expected):
    got = compute_fans(shape, "axes", in_axis, out_axis, batch_axis)
    assert got == expected == ref_axes_fans(shape, in_axis, out_axis, batch_axis)


@pytest.mark.parametrize("shape,in_axis,out_axis,batch_axis,field", [
    ([], -2, -1, (), "in_axis"),                    # rank 0 has no axes
    ([5], -2, -1, (), "in_axis"),                   # rank 1: no two distinct axes
    ([3, 4], 2, -1, (), "in_axis"),
    ([3, 4], 0, -3, (), "out_axis"),
    ([3, 4, 5], 0, 1, (3,), "batch_axis"),
    ([3, 4, 5], 0, 1, (-4,), "batch_axis"),
])
def test_axes_fans_errors(shape, in_axis, out_axis, batch_axis, field):
    with pytest.raises(FanError) as caught:
        compute_fans(shape, "axes", in_axis, out_axis, batch_axis)
    assert caught.value.field == field


def test_unknown_layout():
    with pytest.raises(FanError) as caught:
        compute_fans([3, 4], "jax")
    assert caught.value.field == "layout"


shapes = st.lists(st.integers(0, 7), min_size=0, max_size=5)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(shapes)
def test_fans_match_the_formulas_for_random_shapes(shape):
    assert compute_fans(shape, "keras") == ref_keras_fans(shape)
    if len(shape) >= 2:
        assert compute_fans(shape, "torch") == ref_torch_fans(shape)
        assert compute_fans(shape, "axes", 0, 1, ()) == ref_axes_fans(shape, 0, 1, ())
        assert compute_fans(shape, "axes") == ref_keras_fans(shape)  # JAX default axes == Keras layout
    if len(shape) >= 3:
        batch = (len(shape) - 1,)
        assert compute_fans(shape, "axes", 0, 1, batch) == ref_axes_fans(shape, 0, 1, batch)


@needs_torch
@pytest.mark.parametrize("shape", [[4, 3], [16, 8, 3], [16, 8, 3, 5], [2, 3, 4, 5, 6], [1, 1], [3, 0, 2]])
def test_torch_fans_equal_torch(shape):
    from torch.nn.init import _calculate_fan_in_and_fan_out

    assert compute_fans(shape, "torch") == _calculate_fan_in_and_fan_out(torch.empty(shape))


def test_spec_fans_use_the_spec_layout_and_axes():
    spec = wi.spec_from_dict({"scheme": "kaiming_normal", "shape": [4, 6, 8, 3], "layout": "axes",
                              "in_axis": 1, "out_axis": 2, "batch_axis": [0]})
    assert spec.fans() == (18, 24)
    assert wi.spec_from_dict({"scheme": "he_normal", "shape": [3, 3, 8, 16], "layout": "keras"}).fans() == (72, 144)
    assert wi.spec_from_dict({"scheme": "kaiming_normal", "shape": [16, 8, 3, 3]}).fans() == (72, 144)


# ---------------------------------------------------------------------------
# Modes


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fans", [(3, 4), (1, 1), (120, 240), (0, 5), (0, 0), (7, 7), (2 ** 31, 3)])
def test_fan_for_mode(mode, fans):
    got = fan_for_mode(*fans, mode)
    assert isinstance(got, float)
    assert got == ref_fan(*fans, mode)


def test_fan_geo_avg_is_the_geometric_mean():
    assert fan_for_mode(2, 8, "fan_geo_avg") == 4.0
    assert fan_for_mode(2, 8, "fan_avg") == 5.0


def test_unknown_mode():
    with pytest.raises(FanError) as caught:
        fan_for_mode(3, 4, "fan_sum")
    assert caught.value.field == "mode"


# ---------------------------------------------------------------------------
# Gains


@pytest.mark.parametrize("nonlinearity", sorted(REF_GAIN))
def test_gain_table(nonlinearity):
    assert calculate_gain(nonlinearity) == REF_GAIN[nonlinearity]
    assert calculate_gain(nonlinearity, 0.3) == REF_GAIN[nonlinearity]  # param only matters for leaky_relu


@pytest.mark.parametrize("param", [None, 0.0, 0.01, 0.2, 1.0, math.sqrt(5.0), -0.5])
def test_leaky_relu_gain(param):
    assert calculate_gain("leaky_relu", param) == ref_gain("leaky_relu", param)


def test_leaky_relu_default_slope_and_special_values():
    assert calculate_gain("leaky_relu") == math.sqrt(2.0 / (1.0 + 0.01 ** 2))
    assert calculate_gain("leaky_relu", 0.0) == math.sqrt(2.0)          # == relu
    assert calculate_gain("leaky_relu", 1.0) == 1.0                     # == linear
    assert math.isclose(calculate_gain("leaky_relu", math.sqrt(5.0)), math.sqrt(1.0 / 3.0), rel_tol=1e-15)


def test_unknown_nonlinearity():
    with pytest.raises(FanError) as caught:
        calculate_gain("gelu")
    assert caught.value.field == "nonlinearity"


@needs_torch
@pytest.mark.parametrize("nonlinearity", sorted(set(REF_GAIN) | {"leaky_relu"}))
@pytest.mark.parametrize("param", [None, 0.0, 0.2, 1.0, math.sqrt(5.0)])
def test_gain_equals_torch(nonlinearity, param):
    assert calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


# ---------------------------------------------------------------------------
# The schemes' scalars follow from these formulas.

LAYOUT_CASES = [  # (layout, shape, extra spec fields, (fan_in, fan_out))
    ("torch", [64, 32], {}, (32, 64)),
    ("torch", [16, 8, 3, 3], {}, (72, 144)),
    ("keras", [3, 3, 8, 16], {}, (72, 144)),
    ("keras", [50], {}, (50, 50)),
    ("keras", [], {}, (1, 1)),
    ("axes", [4, 6, 8, 3], {"in_axis": 1, "out_axis": 2, "batch_axis": [0]}, (18, 24)),
    ("axes", [10, 20], {"in_axis": -1, "out_axis": -2}, (20, 10)),
]
LAYOUT_IDS = ["torch-2d", "torch-conv", "keras-conv", "keras-rank1", "keras-rank0", "axes-batch", "axes-swapped"]


def kernel_of(spec_dict):
    plan = wi.compile_spec(spec_dict).plan
    return plan.kernel.kind, plan.kernel.params


def close(a, b):
    return math.isclose(a, b, rel_tol=4e-16, abs_tol=0.0)


@pytest.mark.parametrize("layout,shape,extra,fans", LAYOUT_CASES, ids=LAYOUT_IDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nonlinearity,a", [("leaky_relu", 0.0), ("relu", None), ("leaky_relu", 0.2),
                                            ("tanh", None), ("selu", None), ("linear", None)])
def test_kaiming_scalars(layout, shape, extra, fans, mode, nonlinearity, a):
    if layout == "torch" and len(shape) < 2:
        pytest.skip("torch layout needs 2 dims")
    params = {"mode": mode, "nonlinearity": nonlinearity}
    if a is not None:
        params["a"] = a
    std = ref_gain(nonlinearity, a if a is not None else 0.0) / math.sqrt(ref_fan(*fans, mode))
    base = {"shape": shape, "layout": layout, "params": params, **extra}
    kind, p = kernel_of({"scheme": "kaiming_normal", **base})
    assert kind == NORMAL and p[0] == 0.0 and close(p[1], std)
    kind, p = kernel_of({"scheme": "kaiming_uniform", **base})
    bound = math.sqrt(3.0) * std
    assert kind == UNIFORM and close(p[0], -bound) and close(p[1], 2 * bound)


def test_kaiming_defaults_are_torchs():
    """torch.nn.init.kaiming_*_: a=0, mode=fan_in, nonlinearity=leaky_relu -> gain sqrt(2)."""
    _, p = kernel_of({"scheme": "kaiming_normal", "shape": [64, 32]})
    assert close(p[1], math.sqrt(2.0) / math.sqrt(32))


@pytest.mark.parametrize("layout,shape,extra,fans", LAYOUT_CASES, ids=LAYOUT_IDS)
@pytest.mark.parametrize("gain_params,gain", [({}, 1.0), ({"gain": 0.5}, 0.5), ({"nonlinearity": "tanh"}, 5 / 3),
                                              ({"nonlinearity": "leaky_relu"}, ref_gain("leaky_relu")),
                                              ({"nonlinearity": "leaky_relu", "a": 0.3},
                                               ref_gain("leaky_relu", 0.3))])
def test_xavier_scalars(layout, shape, extra, fans, gain_params, gain):
    base = {"shape": shape, "layout": layout, "params": gain_params, **extra}
    kind, p = kernel_of({"scheme": "xavier_uniform", **base})
    bound = gain * math.sqrt(6.0 / (fans[0] + fans[1]))
    assert kind == UNIFORM and close(p[0], -bound) and close(p[1], 2 * bound)
    kind, p = kernel_of({"scheme": "xavier_normal", **base})
    assert kind == NORMAL and close(p[1], gain * math.sqrt(2.0 / (fans[0] + fans[1])))


PRESETS = {"lecun_uniform": (1.0, "fan_in", "uniform"), "lecun_normal": (1.0, "fan_in", "truncated_normal"),
           "glorot_uniform": (1.0, "fan_avg", "uniform"), "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
           "he_uniform": (2.0, "fan_in", "uniform"), "he_normal": (2.0, "fan_in", "truncated_normal")}


def check_variance_scaling(spec_dict, fans, scale, mode, distribution):
    n = max(1.0, ref_fan(*fans, mode))
    kind, p = kernel_of(spec_dict)
    if distribution == "truncated_normal":
        assert KERAS_TRUNCATION_STD == 0.87962566103423978
        std = math.sqrt(scale / n) / 0.87962566103423978
        assert kind == TRUNCATED_NORMAL
        mean, got_std, p_low, p_width, sign, lo, hi = p
        assert mean == 0.0 and close(got_std, std)
        assert close(lo, -2.0 * std) and close(hi, 2.0 * std)        # cut at +-2 std
    elif distribution in ("normal", "untruncated_normal"):
        assert kind == NORMAL and close(p[1], math.sqrt(scale / n))
    else:
        limit = math.sqrt(3.0 * scale / n)
        assert kind == UNIFORM and close(p[0], -limit) and close(p[1], 2 * limit)


@pytest.mark.parametrize("layout,shape,extra,fans", LAYOUT_CASES, ids=LAYOUT_IDS)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_keras_preset_scalars(layout, shape, extra, fans, preset):
    if layout == "torch" and len(shape) < 2:
        pytest.skip("torch layout needs 2 dims")
    check_variance_scaling({"scheme": preset, "shape": shape, "layout": layout, **extra}, fans, *PRESETS[preset])


@pytest.mark.parametrize("layout,shape,extra,fans", LAYOUT_CASES, ids=LAYOUT_IDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "untruncated_normal", "uniform"])
def test_variance_scaling_scalars(layout, shape, extra, fans, mode, distribution):
    params = {"scale": 0.7, "mode": mode, "distribution": distribution}
    check_variance_scaling({"scheme": "variance_scaling", "shape": shape, "layout": layout, "params": params,
                            **extra}, fans, 0.7, mode, distribution)


def test_variance_scaling_default_is_keras():
    """keras.initializers.VarianceScaling(): scale 1, fan_in, truncated_normal."""
    check_variance_scaling({"scheme": "variance_scaling", "shape": [20, 30], "layout": "keras"},
                           (20, 30), 1.0, "fan_in", "truncated_normal")


def test_variance_scaling_guards_a_zero_fan():
    """n = max(1, fan): a zero fan gives std sqrt(scale), not a division by zero."""
    spec = wi.spec_from_dict({"scheme": "variance_scaling", "shape": [0, 4], "layout": "keras",
                              "params": {"distribution": "normal", "scale": 2.0}})
    plan = BUILDERS["variance_scaling"](spec, None)
    assert plan.kernel.params == (0.0, math.sqrt(2.0))
    assert wi.generate(spec).shape == (0, 4)


@pytest.mark.parametrize("shape,params,fan_in", [
    ([64, 32], {}, 32), ([16, 8, 3, 3], {}, 72), ([16, 8, 5], {}, 40),
    ([64], {"fan_in": 32}, 32), ([16], {"fan_in": 72}, 72), ([64, 32], {"fan_in": 10}, 10)])
def test_torch_default_bound(shape, params, fan_in):
    kind, p = kernel_of({"scheme": "torch_default", "shape": shape, "params": params})
    bound = 1.0 / math.sqrt(fan_in)
    assert kind == UNIFORM and close(p[0], -bound) and close(p[1], 2 * bound)
    # == kaiming_uniform(a=sqrt(5)), nn.Linear / nn.Conv's reset_parameters
    assert math.isclose(bound, math.sqrt(3.0) * ref_gain("leaky_relu", math.sqrt(5.0)) / math.sqrt(fan_in),
                        rel_tol=1e-15)


def test_torch_default_with_zero_fan_in_is_zeros():
    assert np.array_equal(wi.generate({"scheme": "torch_default", "shape": [5], "params": {"fan_in": 0}}),
                          np.zeros(5, np.float32))
