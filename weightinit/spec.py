"""The layer spec: one validated, immutable description of a tensor to initialize.

:func:`parse_spec` checks the fields and the rules between them; the single entry
point for untrusted input (CLI, JSON, gRPC) is :func:`weightinit.spec_from_dict`
(:mod:`weightinit.engine.validate`), which adds the checks that need the schemes.
Every rule raises :class:`SpecError` naming the offending field; element counts
beyond :class:`Limits` raise :class:`LimitError`.

This module depends on the engine's leaf modules (fans, philox, transforms) only;
``engine.schemes`` depends on it, never the other way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from .errors import LimitError, SpecError
from .engine.fans import NONLINEARITIES, FanError, compute_fans
from .engine.philox import MASK64, stream_id_from_name
from .engine.transforms import truncated_mass

DTYPES = ("float32", "float64", "float16", "bfloat16", "complex64", "complex128")
COMPLEX_DTYPES = ("complex64", "complex128")
DTYPE_ALIASES = {"fp32": "float32", "f32": "float32", "fp64": "float64", "f64": "float64",
                 "double": "float64", "fp16": "float16", "f16": "float16", "half": "float16",
                 "bf16": "bfloat16", "c64": "complex64", "c128": "complex128"}
ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "complex64": 8, "complex128": 16}
LAYOUTS = ("torch", "keras", "axes")
FAN_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal", "uniform")
TRUNCATION_BOUNDS = ("absolute", "std")
MAX_RANK = 32
MAX_NAME_LENGTH = 4096
#: Smallest probability mass a truncated normal may keep.
MIN_TRUNCATED_MASS = 1e-300


@dataclass(frozen=True)
class Limits:
    """max_elements: per tensor; max_dense_elements: for schemes that build the whole tensor at once
    (orthogonal, delta_orthogonal, sparse)."""

    max_elements: int = 1 << 32
    max_dense_elements: int = 1 << 24


DEFAULT_LIMITS = Limits()


# ---------------------------------------------------------------------------
# Scheme catalogue: parameters, defaults and shape rules.

REQUIRED = object()


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: str  # 'float' | 'int' | 'str'
    default: Any = None  # REQUIRED, None (optional, no default) or a value
    choices: tuple | None = None
    doc: str = ""
    check: Callable[[Any], str | None] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class SchemeInfo:
    name: str
    doc: str
    params: Mapping[str, ParamInfo]
    ranks: tuple[int, ...] | None = None  # allowed ranks; None = any
    min_rank: int = 0
    needs_fans: bool = False
    dense: bool = False  # whole tensor built at once: bounded by Limits.max_dense_elements
    random: bool = True


def _positive(v):
    return None if v > 0 else "must be > 0"


def _unit_interval(v):
    return None if 0.0 <= v <= 1.0 else "must be in [0, 1]"


def _at_least_one(v):
    return None if v >= 1 else "must be >= 1"


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


def _p(name, type_, default=None, choices=None, doc="", check=None) -> ParamInfo:
    return ParamInfo(name, type_, default, choices, doc, check)


_GAIN = (
    _p("gain", "float", None, doc="multiplier; default 1, or calculate_gain(nonlinearity, a)"),
    _p("nonlinearity", "str", None, NONLINEARITIES, "derive the gain as torch.nn.init.calculate_gain"),
    _p("a", "float", None, doc="negative slope for nonlinearity=leaky_relu"),
)
_KAIMING = (
    _p("a", "float", 0.0, doc="negative slope of the rectifier after this layer (leaky_relu)"),
    _p("mode", "str", "fan_in", FAN_MODES, "which fan scales the variance"),
    _p("nonlinearity", "str", "leaky_relu", NONLINEARITIES, "gain = calculate_gain(nonlinearity, a)"),
)
_NORMAL = (_p("mean", "float", 0.0), _p("std", "float", 1.0, check=_positive))


def _scheme(name, doc, params=(), **kw) -> tuple[str, SchemeInfo]:
    return name, SchemeInfo(name, doc, MappingProxyType({p.name: p for p in params}), **kw)


SCHEMES: Mapping[str, SchemeInfo] = MappingProxyType(dict([
    _scheme("zeros", "all 0", random=False),
    _scheme("ones", "all 1", random=False),
    _scheme("constant", "all `value`", (_p("value", "float", REQUIRED),), random=False),
    _scheme("uniform", "U(low, high)", (_p("low", "float", 0.0), _p("high", "float", 1.0))),
    _scheme("normal", "N(mean, std^2)", _NORMAL),
    _scheme("truncated_normal",
            "N(mean, std^2) restricted to [lower, upper]; bounds absolute (torch) or in std units (JAX/Keras)",
            _NORMAL + (_p("lower", "float", -2.0), _p("upper", "float", 2.0),
                       _p("bounds", "str", "absolute", TRUNCATION_BOUNDS))),
    _scheme("xavier_uniform", "torch: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))", _GAIN, needs_fans=True),
    _scheme("xavier_normal", "torch: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))", _GAIN, needs_fans=True),
    _scheme("kaiming_uniform", "torch: U(-b, b), b = sqrt(3) * gain / sqrt(fan)", _KAIMING, needs_fans=True),
    _scheme("kaiming_normal", "torch: N(0, std^2), std = gain / sqrt(fan)", _KAIMING, needs_fans=True),
    _scheme("lecun_uniform", "Keras/JAX: variance_scaling(1, fan_in, uniform)", needs_fans=True),
    _scheme("lecun_normal", "Keras/JAX: variance_scaling(1, fan_in, truncated_normal)", needs_fans=True),
    _scheme("glorot_uniform", "Keras/JAX: variance_scaling(1, fan_avg, uniform)", needs_fans=True),
    _scheme("glorot_normal", "Keras/JAX: variance_scaling(1, fan_avg, truncated_normal)", needs_fans=True),
    _scheme("he_uniform", "Keras/JAX: variance_scaling(2, fan_in, uniform)", needs_fans=True),
    _scheme("he_normal", "Keras/JAX: variance_scaling(2, fan_in, truncated_normal)", needs_fans=True),
    _scheme("variance_scaling",
            "Keras/JAX: n = max(1, fan); truncated_normal std = sqrt(scale/n)/0.87962566103423978 cut at "
            "+-2 std; normal std = sqrt(scale/n); uniform limit = sqrt(3 scale/n)",
            (_p("scale", "float", 1.0, check=_positive), _p("mode", "str", "fan_in", FAN_MODES),
             _p("distribution", "str", "truncated_normal", DISTRIBUTIONS)), needs_fans=True),
    _scheme("orthogonal",
            "QR of a normal matrix, q *= sign(diag(r)), times gain; torch flattening (rows = shape[0]), "
            "Keras flattening under layout=keras (columns = shape[-1]) or JAX column_axis",
            _GAIN + (_p("column_axis", "int", None, doc="JAX semantics: this axis holds the columns"),),
            min_rank=2, dense=True),
    _scheme("sparse", "torch: N(0, std^2), then ceil(sparsity * rows) rows zeroed in every column",
            (_p("sparsity", "float", REQUIRED, check=_unit_interval), _p("std", "float", 0.01, check=_positive)),
            ranks=(2,), dense=True),
    _scheme("eye", "gain * identity (2-D)", _GAIN, ranks=(2,), random=False),
    _scheme("dirac", "torch: identity at the spatial centre k // 2, per group (3-5-D)",
            (_p("groups", "int", 1, check=_at_least_one),), ranks=(3, 4, 5), random=False),
    _scheme("delta_orthogonal",
            "JAX: orthogonal (in, out) matrix at the spatial centre (k - 1) // 2, zeros elsewhere (3-5-D)",
            _GAIN, ranks=(3, 4, 5), dense=True),
    _scheme("torch_default",
            "nn.Linear/Conv default: U(-b, b), b = 1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)); "
            "for a 1-D bias give the weight's fan_in",
            (_p("fan_in", "int", None, doc="fan-in of the layer's weight (required for 1-D bias)",
                check=_non_negative),)),
]))


#: Schemes defined for complex dtypes (JAX's complex definitions: jax.random.normal's complex normal,
#: variance scaling's disc / polar truncated normal, QR of a complex normal; torch's complex normal_ for
#: xavier_normal / kaiming_normal; constants and index patterns with imaginary part 0).
COMPLEX_SCHEMES = ("zeros", "ones", "constant", "normal", "xavier_normal", "kaiming_normal", "lecun_uniform",
                   "lecun_normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "variance_scaling",
                   "orthogonal", "eye", "dirac", "delta_orthogonal")


# ---------------------------------------------------------------------------
# The spec


@dataclass(frozen=True)
class TensorSpec:
    """A validated tensor spec. Build with :func:`spec_from_dict`, not directly."""

    scheme: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    seed: int = 0
    name: str = ""
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    layout: str = "torch"
    in_axis: int | tuple[int, ...] = -2  # an int, or a tuple when a sequence was given (JAX)
    out_axis: int | tuple[int, ...] = -1
    batch_axis: tuple[int, ...] = ()
    stream: int = 0
    zero_rows: tuple[int, ...] = ()
    #: Post-multiplier applied to every float64 value before rounding to the dtype; None = 1 (absent).
    scale: float | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def key(self) -> tuple[int, int]:
        """Philox key (seed, stream)."""
        return self.seed, self.stream

    @property
    def info(self) -> SchemeInfo:
        return SCHEMES[self.scheme]

    def fans(self) -> tuple[int, int]:
        return compute_fans(self.shape, self.layout, self.in_axis, self.out_axis, self.batch_axis)

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "shape": list(self.shape), "dtype": self.dtype, "seed": self.seed,
                "name": self.name, "params": dict(self.params), "layout": self.layout,
                "in_axis": _axes_json(self.in_axis), "out_axis": _axes_json(self.out_axis),
                "batch_axis": list(self.batch_axis),
                "stream": self.stream, **({"zero_rows": list(self.zero_rows)} if self.zero_rows else {}),
                **({} if self.scale is None else {"scale": self.scale})}


def _axes_json(axes: int | tuple[int, ...]) -> int | list[int]:
    return axes if isinstance(axes, int) else list(axes)


SPEC_FIELDS = ("scheme", "shape", "dtype", "seed", "name", "params", "layout", "in_axis", "out_axis",
               "batch_axis", "stream", "zero_rows", "scale")


def _int(value, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise SpecError(field_name, f"must be an integer, got {value!r}")
    return value


def _uint64(value, field_name: str) -> int:
    value = _int(value, field_name)
    if not 0 <= value <= MASK64:
        raise SpecError(field_name, f"must be in [0, 2**64 - 1], got {value}")
    return value


def _float(value, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(field_name, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(field_name, f"must be finite, got {value}")
    return value


def _choice(value, field_name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(field_name, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


def _axes(value, field_name: str) -> int | tuple[int, ...]:
    """An axis (int) or a sequence of axes, kept as given: an int stays an int (so existing specs
    serialize unchanged), a sequence becomes a tuple (possibly empty)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (int, float, Sequence)):
        raise SpecError(field_name, f"must be an integer or a list of integers, got {value!r}")
    if isinstance(value, Sequence):
        if len(value) > MAX_RANK:
            raise SpecError(field_name, f"names {len(value)} axes, more than the maximum rank {MAX_RANK}")
        return tuple(_int(a, field_name) for a in value)
    return _int(value, field_name)


def _shape(value) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise SpecError("shape", f"must be a list of non-negative integers, got {value!r}")
    if len(value) > MAX_RANK:
        raise SpecError("shape", f"rank {len(value)} exceeds the maximum of {MAX_RANK}")
    dims = tuple(_int(d, "shape") for d in value)
    if any(d < 0 for d in dims):
        raise SpecError("shape", f"dimensions must be >= 0, got {list(dims)}")
    return dims


def _zero_rows(value, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Rows (indices along dim 0) set to 0 after the scheme, e.g. nn.Embedding's padding_idx; sorted, unique."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise SpecError("zero_rows", f"must be a list of row indices, got {value!r}")
    rows = tuple(_int(r, "zero_rows") for r in value)
    if not rows:
        return ()
    if not shape:
        raise SpecError("zero_rows", "needs a shape of at least 1 dim (rows are indices along dim 0)")
    outside = [r for r in rows if not 0 <= r < shape[0]]
    if outside:
        raise SpecError("zero_rows", f"row {outside[0]} is not in [0, {shape[0]}) (dim 0 of shape {list(shape)})")
    return tuple(sorted(set(rows)))


def _dtype(value) -> str:
    if not isinstance(value, str):
        raise SpecError("dtype", f"must be one of {', '.join(DTYPES)}; got {value!r}")
    canonical = DTYPE_ALIASES.get(value.lower(), value.lower())
    return _choice(canonical, "dtype", DTYPES)


def _params(scheme: SchemeInfo, raw) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError("params", f"must be a mapping of parameter name to value, got {raw!r}")
    unknown = sorted(set(raw) - set(scheme.params))
    if unknown:
        allowed = ", ".join(scheme.params) or "none"
        raise SpecError(f"params.{unknown[0]}", f"is not a parameter of {scheme.name} (allowed: {allowed})")
    resolved = {}
    for name, info in scheme.params.items():
        path = f"params.{name}"
        if name not in raw or raw[name] is None:
            if info.required:
                raise SpecError(path, f"is required by {scheme.name}")
            if info.default is not None:
                resolved[name] = info.default
            continue
        value = raw[name]
        if info.type == "float":
            value = _float(value, path)
        elif info.type == "int":
            value = _int(value, path)
        elif info.choices is not None:
            value = _choice(value, path, info.choices)
        elif not isinstance(value, str):
            raise SpecError(path, f"must be a string, got {value!r}")
        if info.check is not None:
            problem = info.check(value)
            if problem:
                raise SpecError(path, f"{problem}, got {value}")
        resolved[name] = value
    return resolved


def _check_scheme_rules(spec: TensorSpec) -> None:
    """Rules that relate the parameters to each other and to the shape."""
    if spec.scale is not None and spec.dtype in COMPLEX_DTYPES:
        raise SpecError("scale", f"is defined for real dtypes only, not {spec.dtype}")
    info, p, rank = spec.info, spec.params, len(spec.shape)
    if spec.layout != "axes":
        for name, value, default in (("in_axis", spec.in_axis, -2), ("out_axis", spec.out_axis, -1),
                                     ("batch_axis", spec.batch_axis, ())):
            if value != default:
                raise SpecError(name, f"is only used with layout=axes (layout is {spec.layout})")
    if spec.dtype in COMPLEX_DTYPES and spec.scheme not in COMPLEX_SCHEMES:
        raise SpecError("dtype", f"{spec.dtype} is not defined for {spec.scheme} (as in JAX, where uniform and "
                                 f"truncated_normal are real only); complex schemes: {', '.join(COMPLEX_SCHEMES)}")
    if info.ranks is not None and rank not in info.ranks:
        allowed = ", ".join(f"{r}-D" for r in info.ranks)
        raise SpecError("shape", f"{spec.scheme} needs a {allowed} shape, got {rank}-D")
    if rank < info.min_rank:
        raise SpecError("shape", f"{spec.scheme} needs at least {info.min_rank} dims, got {rank}-D")
    if info.needs_fans or (spec.scheme == "torch_default" and "fan_in" not in p):
        try:
            spec.fans()
        except FanError as error:
            hint = " (give params.fan_in for a bias)" if spec.scheme == "torch_default" else ""
            raise SpecError(error.field, f"{error}{hint}") from None
    if "gain" in p and "nonlinearity" in p:
        raise SpecError("params.gain", "give either gain or nonlinearity, not both")
    if "gain" in info.params and "a" in p and "nonlinearity" not in p:
        raise SpecError("params.a", "is the slope of nonlinearity=leaky_relu; give nonlinearity too")
    if spec.scheme == "uniform" and not p["low"] < p["high"]:
        raise SpecError("params.high", f"must be greater than low ({p['low']}), got {p['high']}")
    if spec.scheme == "truncated_normal":
        if not p["lower"] < p["upper"]:
            raise SpecError("params.upper", f"must be greater than lower ({p['lower']}), got {p['upper']}")
        alpha, beta = truncation_std_units(p)
        if truncated_mass(alpha, beta) <= MIN_TRUNCATED_MASS:
            raise SpecError("params.lower", "the interval [lower, upper] holds no probability mass of N(mean, std^2)")
    if spec.scheme == "orthogonal" and "column_axis" in p and not -rank <= p["column_axis"] < rank:
        raise SpecError("params.column_axis", f"axis {p['column_axis']} is out of range for a {rank}-D shape")
    if spec.scheme == "dirac":
        out_channels = spec.shape[0] if spec.layout == "torch" else spec.shape[-1]
        if out_channels % p["groups"]:
            raise SpecError("params.groups", f"must divide the {out_channels} output channels, got {p['groups']}")
    if spec.scheme == "delta_orthogonal":
        fan_in, fan_out = (spec.shape[1], spec.shape[0]) if spec.layout == "torch" else spec.shape[-2:]
        if fan_out < fan_in:
            raise SpecError("shape", f"delta_orthogonal needs out channels ({fan_out}) >= in channels ({fan_in})")


def _scale(value) -> float | None:
    if value is None:
        return None
    value = _float(value, "scale")
    if not value > 0:
        raise SpecError("scale", f"must be > 0 (a post-multiplier), got {value}")
    return value


def truncation_std_units(p: Mapping[str, Any]) -> tuple[float, float]:
    """The truncation interval of a truncated_normal in units of std around the mean."""
    if p["bounds"] == "std":
        return p["lower"], p["upper"]
    return (p["lower"] - p["mean"]) / p["std"], (p["upper"] - p["mean"]) / p["std"]


def check_limits(spec: TensorSpec, limits: Limits) -> None:
    if spec.numel > limits.max_elements:
        raise LimitError("shape", f"{spec.numel} elements exceed the limit of {limits.max_elements}")
    if spec.info.dense and spec.numel > limits.max_dense_elements:
        raise LimitError("shape", f"{spec.scheme} builds the whole tensor at once; {spec.numel} elements exceed "
                                  f"its limit of {limits.max_dense_elements}")


def _given(data: Mapping[str, Any], key: str, default: Any) -> Any:
    """data[key], or the default when it is missing or null (never for other falsy values)."""
    value = data.get(key)
    return default if value is None else value


def parse_spec(data: Mapping[str, Any] | TensorSpec) -> TensorSpec:
    """Check the fields of a plain mapping and the rules between them; no limits, no derived values.

    Use :func:`weightinit.spec_from_dict` (:mod:`weightinit.engine.validate`), which adds the checks that
    need the schemes' formulas and the limits."""
    if isinstance(data, TensorSpec):
        data = data.to_dict()
    if not isinstance(data, Mapping):
        raise SpecError("spec", f"must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(SPEC_FIELDS))
    if unknown:
        raise SpecError(unknown[0], f"is not a spec field (allowed: {', '.join(SPEC_FIELDS)})")
    if "scheme" not in data:
        raise SpecError("scheme", f"is required; one of {', '.join(SCHEMES)}")
    scheme = _choice(data["scheme"], "scheme", tuple(SCHEMES))
    if "shape" not in data:
        raise SpecError("shape", "is required")
    shape = _shape(data["shape"])
    name = _given(data, "name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise SpecError("name", f"must be a string of at most {MAX_NAME_LENGTH} characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError("name", "must be valid Unicode (no lone surrogates): it is hashed as UTF-8") from None
    stream = data.get("stream")
    layout = _choice(_given(data, "layout", "torch"), "layout", LAYOUTS)
    batch_axis = _axes(_given(data, "batch_axis", ()), "batch_axis")
    spec = TensorSpec(
        scheme=scheme,
        shape=shape,
        dtype=_dtype(_given(data, "dtype", "float32")),
        seed=_uint64(_given(data, "seed", 0), "seed"),
        name=name,
        params=MappingProxyType(_params(SCHEMES[scheme], data.get("params"))),
        layout=layout,
        in_axis=_axes(_given(data, "in_axis", -2), "in_axis"),
        out_axis=_axes(_given(data, "out_axis", -1), "out_axis"),
        batch_axis=(batch_axis,) if isinstance(batch_axis, int) else batch_axis,
        stream=stream_id_from_name(name) if stream is None else _uint64(stream, "stream"),
        zero_rows=_zero_rows(_given(data, "zero_rows", ()), shape),
        scale=_scale(data.get("scale")),
    )
    _check_scheme_rules(spec)
    return spec
