"""``keras.initializers`` by the same class names and arguments, computed by the weightinit engine.

Each class subclasses the Keras class of its name (so Keras treats it as one: EinsumDense and
MultiHeadAttention hand a ``VarianceScaling`` their ``input_axes``/``output_axes``), takes Keras'
arguments plus ``name=``, round-trips through ``get_config``/``from_config`` and is registered
serializable as ``weightinit>ClassName``. Calls return backend tensors (any Keras backend).

Semantics are Keras 3's (``keras/src/initializers``): fans under the ``[*k, in, out]`` layout, or, with
``input_axes`` and ``output_axes``, the products over those axes (the engine's ``layout=axes`` with
every other axis a batch axis); ``VarianceScaling`` divides by ``max(1, fan)`` and its "normal" is the
truncated normal; ``TruncatedNormal`` cuts at 2 stddev around the mean; ``Orthogonal`` flattens to
``(prod(shape[:-1]), shape[-1])``.

Seeds: an integer ``seed`` is the engine seed, and the stream is ``name``'s (empty name when none),
so the values equal ``weightinit.generate`` of that seed and name. ``seed=None`` is Keras' "unseeded":
a random seed drawn when the initializer is built. A ``keras.random.SeedGenerator`` is refused.
bfloat16 is the float32 result cast by the backend (round to nearest even, the engine's own rule).
"""

from __future__ import annotations

import keras
import numpy as np

from .engine.generate import generate

__all__ = ["Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity", "LecunNormal",
           "LecunUniform", "Ones", "Orthogonal", "RandomNormal", "RandomUniform", "TruncatedNormal",
           "VarianceScaling", "Zeros"]

_ENGINE_DTYPES = ("float32", "float64", "float16")
_register = keras.saving.register_keras_serializable(package="weightinit")


def _values(spec: dict, dtype) -> object:
    """The engine's values for ``spec`` as a backend tensor of ``dtype`` (floatx when None)."""
    dtype = keras.backend.standardize_dtype(dtype)
    engine_dtype = "float32" if dtype == "bfloat16" else dtype
    if engine_dtype not in _ENGINE_DTYPES:
        raise ValueError(f"dtype: weightinit.keras supports float32, float64, float16 and bfloat16; got {dtype}")
    values = np.asarray(generate(dict(spec, dtype=engine_dtype)))
    tensor = keras.ops.convert_to_tensor(values, dtype=engine_dtype)
    return keras.ops.cast(tensor, dtype) if dtype != engine_dtype else tensor


class _Engine:
    """Mixin: ``__call__`` from the engine spec of ``_scheme(shape)``; ``name`` in the config."""

    name: str | None = None

    def _scheme(self, shape) -> tuple[str, dict, dict]:
        """(engine scheme, params, layout fields) for this shape."""
        raise NotImplementedError

    def _seed_and_name(self) -> dict:
        seed = getattr(self, "seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed: weightinit.keras needs an integer seed (or None), got {seed!r}")
        return {"seed": seed % (1 << 64), "name": self.name or ""}

    def __call__(self, shape, dtype=None):
        shape = [int(d) for d in shape]
        scheme, params, layout = self._scheme(shape)
        spec = {"scheme": scheme, "shape": shape, "params": params, **layout}
        if getattr(self, "seed", None) is not None:
            spec.update(self._seed_and_name())
        return _values(spec, dtype)

    def get_config(self):
        config = super().get_config()
        if hasattr(self, "input_axes"):  # Keras before input_axes existed leaves them out
            config.setdefault("input_axes", self.input_axes)
            config.setdefault("output_axes", self.output_axes)
        if self.name is not None:
            config["name"] = self.name
        return config


def _fan_layout(shape, input_axes, output_axes) -> dict:
    """Keras compute_fans: products over input_axes/output_axes when both are given, else [*k, in, out]."""
    if input_axes is None or output_axes is None:
        return {"layout": "keras"}
    rank = len(shape)
    named = {a % rank for a in input_axes} | {a % rank for a in output_axes}
    return {"layout": "axes", "in_axis": list(input_axes), "out_axis": list(output_axes),
            "batch_axis": [a for a in range(rank) if a not in named]}


@_register
class VarianceScaling(_Engine, keras.initializers.VarianceScaling):
    """n = max(1, fan); truncated_normal ("normal"): std sqrt(scale / n) / 0.87962566103423978 cut at
    +-2 std; untruncated_normal: std sqrt(scale / n); uniform: U(-l, l), l = sqrt(3 scale / n)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, input_axes=None,
                 output_axes=None, name=None):
        super().__init__(scale=scale, mode=mode, distribution=distribution, seed=seed)
        self.input_axes, self.output_axes, self.name = input_axes, output_axes, name

    def _scheme(self, shape):
        params = {"scale": float(self.scale), "mode": self.mode, "distribution": self.distribution}
        return "variance_scaling", params, _fan_layout(shape, self.input_axes, self.output_axes)


def _preset(class_name: str, scheme: str, doc: str):
    base = getattr(keras.initializers, class_name)

    def __init__(self, seed=None, input_axes=None, output_axes=None, name=None):
        base.__init__(self, seed=seed)  # the axes are kept here: older Keras 3 releases do not take them
        self.input_axes, self.output_axes, self.name = input_axes, output_axes, name

    def _scheme(self, shape):
        return scheme, {}, _fan_layout(shape, self.input_axes, self.output_axes)

    cls = type(class_name, (_Engine, base), {"__init__": __init__, "_scheme": _scheme, "__doc__": doc,
                                             "__module__": __name__})
    return _register(cls)


GlorotUniform = _preset("GlorotUniform", "glorot_uniform", "VarianceScaling(1, fan_avg, uniform).")
GlorotNormal = _preset("GlorotNormal", "glorot_normal", "VarianceScaling(1, fan_avg, truncated_normal).")
HeUniform = _preset("HeUniform", "he_uniform", "VarianceScaling(2, fan_in, uniform).")
HeNormal = _preset("HeNormal", "he_normal", "VarianceScaling(2, fan_in, truncated_normal).")
LecunUniform = _preset("LecunUniform", "lecun_uniform", "VarianceScaling(1, fan_in, uniform).")
LecunNormal = _preset("LecunNormal", "lecun_normal", "VarianceScaling(1, fan_in, truncated_normal).")


@_register
class Orthogonal(_Engine, keras.initializers.Orthogonal):
    """gain * Q of the (prod(shape[:-1]), shape[-1]) flattening (orthonormal columns, or rows when fewer)."""

    def __init__(self, gain=1.0, seed=None, name=None):
        super().__init__(gain=gain, seed=seed)
        self.name = name

    def _scheme(self, shape):
        return "orthogonal", {"gain": float(self.gain)}, {"layout": "keras"}


@_register
class TruncatedNormal(_Engine, keras.initializers.TruncatedNormal):
    """N(mean, stddev^2) cut to mean +- 2 stddev (no std correction)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None, name=None):
        super().__init__(mean=mean, stddev=stddev, seed=seed)
        self.name = name

    def _scheme(self, shape):
        return "truncated_normal", {"mean": float(self.mean), "std": float(self.stddev), "lower": -2.0,
                                    "upper": 2.0, "bounds": "std"}, {}


@_register
class RandomNormal(_Engine, keras.initializers.RandomNormal):
    """N(mean, stddev^2)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None, name=None):
        super().__init__(mean=mean, stddev=stddev, seed=seed)
        self.name = name

    def _scheme(self, shape):
        return "normal", {"mean": float(self.mean), "std": float(self.stddev)}, {}


@_register
class RandomUniform(_Engine, keras.initializers.RandomUniform):
    """U[minval, maxval)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None, name=None):
        super().__init__(minval=minval, maxval=maxval, seed=seed)
        self.name = name

    def _scheme(self, shape):
        return "uniform", {"low": float(self.minval), "high": float(self.maxval)}, {}


@_register
class Identity(_Engine, keras.initializers.Identity):
    """gain on the diagonal of a 2-D matrix (any aspect ratio), 0 elsewhere."""

    def _scheme(self, shape):
        return "eye", {"gain": float(self.gain)}, {}

    def get_config(self):
        return {"gain": self.gain}  # keras 3.15's Identity leaves gain out of its config


@_register
class Constant(_Engine, keras.initializers.Constant):
    """All ``value``."""

    def _scheme(self, shape):
        return "constant", {"value": float(self.value)}, {}


@_register
class Zeros(_Engine, keras.initializers.Zeros):
    """All 0."""

    def _scheme(self, shape):
        return "zeros", {}, {}


@_register
class Ones(_Engine, keras.initializers.Ones):
    """All 1."""

    def _scheme(self, shape):
        return "ones", {}, {}
