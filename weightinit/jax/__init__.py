"""``jax.nn.initializers`` by the same names, arguments and defaults, computed by the weightinit engine.

Each builder returns ``init(key, shape, dtype=None) -> jax.Array`` with the distribution JAX gives that
name (jax 0.10 ``jax/_src/nn/initializers.py``): ``uniform(scale)`` is U[0, scale); ``normal(stddev)``
is N(0, stddev^2); ``truncated_normal(stddev, lower, upper)`` cuts at lower/upper *stds*;
``variance_scaling`` and its presets take ``in_axis``/``out_axis``/``batch_axis`` as ints or sequences;
``xavier_*``/``kaiming_*`` are JAX's aliases of ``glorot_*``/``he_*`` (so ``*_normal`` is truncated,
unlike torch.nn.init); ``orthogonal``/``delta_orthogonal`` take ``column_axis``.
``dtype=None`` means JAX's default float dtype. Complex dtypes follow JAX's complex definitions (normal:
each part variance stddev^2 / 2; variance_scaling: a uniform disc, a complex normal, or a normal truncated
in modulus; orthogonal: unitary); ``uniform``/``truncated_normal`` refuse complex, as JAX does.
Usable as ``kernel_init=`` in flax.linen and flax.nnx.

Key -> (seed, stream). The key's data (``jax.random.key_data``: uint32 words ``w0, w1, ...``) gives
``seed = w0 * 2**32 + w1``, so ``jax.random.key(s)`` and ``jax.random.PRNGKey(s)`` mean seed ``s``
(for ``s < 2**32``; any ``s < 2**64`` with ``jax_enable_x64``), and a derived key (``split``,
``fold_in``: what flax hands each parameter) is simply another seed. The stream is the tensor
``name``'s when ``name=`` is given, so the result is bit-identical to ``weightinit.generate`` of that
name and seed; without a name it is the stream of the empty name (again ``weightinit.generate``'s
default) for a 64-bit key, and ``w2 * 2**32 + w3`` for a 128-bit key (``impl="rbg"``).

Fans are JAX's ``_compute_fans`` (an axis named twice counts twice, as in flax's default ``Embed``
init). One difference: the engine divides by ``max(1, fan)`` (Keras' guard); JAX divides by the fan
itself, which differs only when a repeated axis makes a fan smaller than 1.

Under ``jax.jit`` (or ``jax.vmap``: stacked layers) the key is a tracer: the values are computed on the
host through ``jax.pure_callback``, one key at a time under vmap (the spec is validated first, so bad
arguments raise before tracing ends).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..engine.generate import generate
from ..engine.philox import stream_id_from_name
from ..engine.validate import spec_from_dict

from .sharding import materialize  # noqa: E402  (jax.make_array_from_callback, each device its region)

__all__ = [
    "constant", "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
    "kaiming_normal", "kaiming_uniform", "key_to_seed_stream", "lecun_normal", "lecun_uniform", "materialize",
    "normal", "ones",
    "orthogonal", "truncated_normal", "uniform", "variance_scaling", "xavier_normal", "xavier_uniform", "zeros",
]

Axes = int | Sequence[int]
#: JAX dtype name -> the engine's dtype name.
_ENGINE_DTYPES = {"float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16",
                  "complex64": "complex64", "complex128": "complex128"}


def key_to_seed_stream(key: Any, name: str | None = None) -> tuple[int, int]:
    """The (seed, stream) a concrete JAX key stands for (see the module docstring)."""
    return _seed_stream(np.asarray(_key_words(key)), name)


def _key_words(key: Any) -> jax.Array:
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if getattr(key, "dtype", None) != jnp.uint32 or key.ndim != 1 or key.shape[0] not in (2, 4):
        raise ValueError(f"key: expected one JAX PRNG key (jax.random.key or PRNGKey), got "
                         f"{getattr(key, 'dtype', type(key).__name__)}{list(getattr(key, 'shape', []))}")
    return key


def _seed_stream(words: np.ndarray, name: str | None) -> tuple[int, int]:
    w = [int(x) for x in words.astype(np.uint32)]
    seed = (w[0] << 32) | w[1]
    if name is not None:
        return seed, stream_id_from_name(name)
    if len(w) == 4:
        return seed, (w[2] << 32) | w[3]
    return seed, stream_id_from_name("")


def _dtype_name(dtype: Any) -> str:
    canonical = jax.dtypes.canonicalize_dtype(jnp.float_ if dtype is None else dtype)
    name = jnp.dtype(canonical).name
    if name not in _ENGINE_DTYPES:
        raise ValueError(f"dtype: weightinit.jax supports {', '.join(_ENGINE_DTYPES)}; got {name}")
    return _ENGINE_DTYPES[name]


def _initializer(scheme: str, params: dict | None = None, default_dtype: Any = None, name: str | None = None,
                 **layout: Any):
    """init(key, shape, dtype) for one engine scheme; ``layout`` holds layout/in_axis/out_axis/batch_axis."""
    layout = layout or {"layout": "axes"}

    def init(key, shape, dtype=default_dtype, out_sharding=None) -> jax.Array:
        shape = tuple(int(d) for d in shape)
        dtype = _dtype_name(dtype)
        spec = {"scheme": scheme, "shape": list(shape), "dtype": dtype, "params": dict(params or {}), **layout}
        spec_from_dict(spec)  # validate now: a bad argument raises here, naming the field
        words = _key_words(key)

        def host(words: np.ndarray) -> np.ndarray:
            seed, stream = _seed_stream(np.asarray(words), name)
            return np.asarray(generate(dict(spec, seed=seed, name=name or "", stream=stream)))

        try:
            concrete = np.asarray(words)
        except jax.errors.TracerArrayConversionError:
            values = jax.pure_callback(host, jax.ShapeDtypeStruct(shape, jnp.dtype(dtype)), words,
                                       vmap_method="sequential")
        else:
            values = jnp.asarray(host(concrete))
        return values if out_sharding is None else jax.device_put(values, out_sharding)

    init.__qualname__ = init.__name__ = scheme
    return init


def _axes(in_axis: Axes, out_axis: Axes, batch_axis: Axes) -> dict:
    def plain(axes):
        return axes if isinstance(axes, int) else [int(a) for a in axes]

    return {"layout": "axes", "in_axis": plain(in_axis), "out_axis": plain(out_axis),
            "batch_axis": plain(batch_axis)}


def zeros(key, shape, dtype=None, out_sharding=None) -> jax.Array:
    """All 0 (jax.nn.initializers.zeros)."""
    return _initializer("zeros")(key, shape, dtype, out_sharding)


def ones(key, shape, dtype=None, out_sharding=None) -> jax.Array:
    """All 1 (jax.nn.initializers.ones)."""
    return _initializer("ones")(key, shape, dtype, out_sharding)


def constant(value, dtype=None, *, name: str | None = None):
    """All ``value``."""
    return _initializer("constant", {"value": float(value)}, dtype, name)


def uniform(scale=1e-2, dtype=None, *, name: str | None = None):
    """U[0, scale)."""
    return _initializer("uniform", {"low": 0.0, "high": float(scale)}, dtype, name)


def normal(stddev=1e-2, dtype=None, *, name: str | None = None):
    """N(0, stddev^2)."""
    return _initializer("normal", {"mean": 0.0, "std": float(stddev)}, dtype, name)


def truncated_normal(stddev=1e-2, dtype=None, lower=-2.0, upper=2.0, *, name: str | None = None):
    """N(0, stddev^2) cut to [lower * stddev, upper * stddev] (bounds in std units, no std correction)."""
    return _initializer("truncated_normal", {"mean": 0.0, "std": float(stddev), "lower": float(lower),
                                             "upper": float(upper), "bounds": "std"}, dtype, name)


def variance_scaling(scale, mode, distribution, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                     dtype=None, *, name: str | None = None):
    """n = fan by mode (fan_in, fan_out, fan_avg, fan_geo_avg) over the axes; truncated_normal: std
    sqrt(scale / n) / 0.87962566103423978 cut at +-2 std; normal: std sqrt(scale / n) (untruncated);
    uniform: U(-l, l), l = sqrt(3 scale / n)."""
    return _initializer("variance_scaling", {"scale": float(scale), "mode": mode, "distribution": distribution},
                        dtype, name, **_axes(in_axis, out_axis, batch_axis))


def _preset(scheme: str, doc: str):
    def builder(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, *,
                name: str | None = None):
        return _initializer(scheme, None, dtype, name, **_axes(in_axis, out_axis, batch_axis))

    builder.__name__ = builder.__qualname__ = scheme
    builder.__doc__ = doc
    return builder


glorot_uniform = _preset("glorot_uniform", "variance_scaling(1, 'fan_avg', 'uniform').")
glorot_normal = _preset("glorot_normal", "variance_scaling(1, 'fan_avg', 'truncated_normal').")
lecun_uniform = _preset("lecun_uniform", "variance_scaling(1, 'fan_in', 'uniform').")
lecun_normal = _preset("lecun_normal", "variance_scaling(1, 'fan_in', 'truncated_normal').")
he_uniform = _preset("he_uniform", "variance_scaling(2, 'fan_in', 'uniform').")
he_normal = _preset("he_normal", "variance_scaling(2, 'fan_in', 'truncated_normal').")
xavier_uniform, xavier_normal = glorot_uniform, glorot_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal


def orthogonal(scale=1.0, column_axis: int = -1, dtype=None, *, name: str | None = None):
    """scale * Q, Q with orthonormal columns along ``column_axis`` (or rows, when they are fewer)."""
    return _initializer("orthogonal", {"gain": float(scale), "column_axis": int(column_axis)}, dtype, name,
                        layout="axes")


def delta_orthogonal(scale=1.0, column_axis: int = -1, dtype=None, *, name: str | None = None):
    """Zeros except the spatial centre (k - 1) // 2 of a [*k, in, out] kernel (3-5-D, in <= out), which
    holds scale * an orthogonal (in, out) matrix. ``column_axis`` must name one of the last two axes."""
    if column_axis not in (-2, -1, 0, 1):
        raise ValueError(f"column_axis: delta_orthogonal's matrix is the last two axes (-2 or -1), got {column_axis}")
    return _initializer("delta_orthogonal", {"gain": float(scale)}, dtype, name, layout="keras")
