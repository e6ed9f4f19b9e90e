"""The spec's `scale` post-multiplier (docs/rng.md section 5): float64 value times scale, then rounded;
identical on every backend, range and entry point; absent means the spec of before."""

from __future__ import annotations

import json

import numpy as np
import pytest

import weightinit as wi
from engine_support import available_backend_names
from weightinit.api import convert
from weightinit.engine.transforms import round_to_storage

SCALE = 0.7310000000000001
CASES = [("normal", {"std": 0.3}), ("sparse", {"sparsity": 0.3}), ("truncated_normal", {}), ("orthogonal", {}),
         ("eye", {}), ("constant", {"value": 0.1}), ("uniform", {"low": -1.0, "high": 3.0})]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("scheme, params", CASES)
def test_value_times_scale_then_rounded_on_every_backend_and_range(scheme, params, dtype):
    spec = {"scheme": scheme, "shape": [40, 30], "dtype": dtype, "name": "x", "params": params, "scale": SCALE}
    unscaled = wi.generate_raw(dict(spec, scale=None, dtype="float64"), backend="numpy").reshape(-1)
    want = round_to_storage(unscaled * SCALE, dtype)
    if scheme == "sparse":
        want[unscaled == 0] = 0
    for backend in available_backend_names():
        whole = wi.generate_raw(spec, backend=backend).reshape(-1)
        assert whole.tobytes() == want.tobytes(), backend
        pieces = [wi.generate_raw(spec, start=i, stop=min(i + 333, 1200), backend=backend) for i in range(0, 1200, 333)]
        assert np.concatenate(pieces).tobytes() == want.tobytes(), backend


@pytest.mark.parametrize("backend", available_backend_names())
def test_backends_apply_a_scaled_kernel_themselves(backend):
    """Paths that call a backend with the plan's kernel directly (regions, device fills) scale too."""
    compiled = wi.compile_spec({"scheme": "kaiming_normal", "shape": [64, 32], "dtype": "bfloat16", "scale": 3.25})
    kernel = compiled.plan.kernel
    assert kernel.scale == 3.25
    engine = wi.get_backend(backend)
    values = engine.random(kernel.unscaled, compiled.spec.key, 100, 900, "float64")
    got = engine.random(kernel, compiled.spec.key, 100, 900, "bfloat16")
    assert got.tobytes() == round_to_storage(values * 3.25, "bfloat16").tobytes()


def test_absent_scale_leaves_the_spec_as_before():
    spec = wi.spec_from_dict({"scheme": "normal", "shape": [3]})
    assert "scale" not in spec.to_dict() and spec.scale is None
    scaled = wi.spec_from_dict({"scheme": "normal", "shape": [3], "scale": 2})
    assert scaled.to_dict()["scale"] == 2.0 and isinstance(scaled.scale, float)
    assert wi.spec_from_dict(json.loads(json.dumps(scaled.to_dict()))) == scaled


@pytest.mark.parametrize("value", [0, -1.5, float("inf"), "2", True])
def test_bad_scales_are_named(value):
    with pytest.raises(wi.SpecError) as caught:
        wi.spec_from_dict({"scheme": "normal", "shape": [3], "scale": value})
    assert caught.value.field == "scale"


def test_scale_that_overflows_the_dtype_is_rejected():
    with pytest.raises(wi.SpecError, match="float16"):
        wi.spec_from_dict({"scheme": "normal", "shape": [3], "dtype": "float16", "scale": 1e5})
    with pytest.raises(wi.SpecError) as caught:
        wi.spec_from_dict({"scheme": "constant", "shape": [3], "params": {"value": 1e300}, "scale": 1e10,
                           "dtype": "float64"})
    assert caught.value.field == "scale"


def test_scale_travels_through_the_proto():
    spec = {"scheme": "uniform", "shape": [4], "scale": 0.1 + 0.2}
    message = convert.spec_from_any(spec)
    assert message.HasField("scale") and message.scale == 0.1 + 0.2
    assert convert.spec_to_dict(message)["scale"] == 0.1 + 0.2
    assert not convert.spec_from_any({"scheme": "uniform", "shape": [4]}).HasField("scale")
