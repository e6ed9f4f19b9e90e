"""The validating entry point for untrusted specs: fields and rules (:func:`weightinit.spec.parse_spec`),
then the values the scheme's formulas derive, then the limits.

Lives in the engine because the derived-values check runs the scheme builders; ``weightinit.spec``
does not import the schemes, so the dependency runs one way (spec -> engine).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import SpecError
from ..spec import DEFAULT_LIMITS, Limits, TensorSpec, check_limits, parse_spec
from .schemes import BUILDERS, ComplexRandomPlan, RandomPlan
from .transforms import complex_kernel_magnitude, kernel_magnitude

#: Largest finite value of each dtype (of each part, for complex).
DTYPE_MAX = {"float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308,
             "float16": 65504.0, "bfloat16": 3.3895313892515355e38,
             "complex64": 3.4028234663852886e38, "complex128": 1.7976931348623157e308}


class _NeedsDraws(Exception):
    """Raised by the stand-in ``draw`` when a scheme wants random values to build its plan."""


def _no_draws(kernel, count):
    raise _NeedsDraws


def check_values_fit(spec: TensorSpec) -> None:
    """Finite parameters can still derive scalars whose values overflow (a uniform of width
    2e308, std 1e39 in float32): reject those rather than hand out inf or NaN weights.
    Plans that need draws to be built (the QR schemes) are bounded by their gain and skipped.
    A post-multiplier ``scale`` multiplies every bound."""
    scale = 1.0 if spec.scale is None else spec.scale
    if spec.scheme in ("constant", "ones") and spec.scale is not None:
        value = abs(spec.params.get("value", 1.0)) * scale
        if not value <= DTYPE_MAX[spec.dtype]:
            raise SpecError("scale", f"value times scale is {value:g}, beyond the largest finite {spec.dtype}")
    if not spec.info.random or spec.numel == 0:
        return
    try:
        plan = BUILDERS[spec.scheme](spec, _no_draws)
    except _NeedsDraws:
        return
    if isinstance(plan, ComplexRandomPlan):
        magnitude = complex_kernel_magnitude(plan.kernel) * scale
    elif isinstance(plan, RandomPlan):
        magnitude = kernel_magnitude(plan.kernel) * scale
    else:
        return
    if not math.isfinite(magnitude):
        raise SpecError("params", "the scale or bounds derived from these parameters overflow binary64")
    if magnitude > DTYPE_MAX[spec.dtype]:
        raise SpecError("params", f"these parameters give values up to {magnitude:g} in magnitude, beyond the "
                                  f"largest finite {spec.dtype} ({DTYPE_MAX[spec.dtype]:g})")


def spec_from_dict(data: Mapping[str, Any] | TensorSpec, limits: Limits | None = DEFAULT_LIMITS) -> TensorSpec:
    """Validate a plain mapping (JSON, CLI, gRPC) into a :class:`TensorSpec`."""
    spec = parse_spec(data)
    check_values_fit(spec)
    if limits is not None:
        check_limits(spec, limits)
    return spec
