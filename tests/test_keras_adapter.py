"""weightinit.keras against keras.initializers itself (Keras 3 on the JAX backend here; torch and numpy
backends in subprocesses): same classes and arguments, the same distributions (two-sample KS, exact
bounds, QᵀQ = I) on odd shapes and multi-axis fans, bit equality with weightinit.generate, config round
trips, and EinsumDense / MultiHeadAttention / a saved model initialised through it."""

from __future__ import annotations

import inspect
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported
keras = pytest.importorskip("keras")
stats = pytest.importorskip("scipy.stats")

import weightinit as wi  # noqa: E402
import weightinit.keras as wk  # noqa: E402

#: The JAX backend holds float64 only with jax_enable_x64 (else Keras itself truncates to float32).
FLOAT64 = keras.backend.backend() != "jax" or bool(__import__("jax").config.jax_enable_x64)
SHAPE = (3, 5, 7, 13)          # keras layout: rf 15, fan_in 105, fan_out 195
AXES = {"input_axes": [0, 2], "output_axes": [3]}   # fan_in 21, fan_out 13 (axis 1 ignored)
KS_P_MIN = 1e-3
RANDOM_PRESETS = ["GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform"]


def as_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


def both(class_name, *args, shape=SHAPE, **kwargs):
    ours = getattr(wk, class_name)(*args, seed=11, **kwargs)(shape)
    theirs = getattr(keras.initializers, class_name)(*args, seed=12, **kwargs)(shape)
    return as_numpy(ours), as_numpy(theirs)


def assert_same_distribution(ours, theirs):
    result = stats.ks_2samp(ours.reshape(-1), theirs.reshape(-1))
    assert result.pvalue > KS_P_MIN, result


def test_classes_subclass_keras_and_keep_its_arguments():
    for class_name in wk.__all__:
        ours, theirs = getattr(wk, class_name), getattr(keras.initializers, class_name)
        assert issubclass(ours, theirs) and issubclass(ours, keras.initializers.Initializer)
        their_params = inspect.signature(theirs.__init__).parameters
        our_params = inspect.signature(ours.__init__).parameters
        for name, info in their_params.items():
            if info.kind in (info.VAR_POSITIONAL, info.VAR_KEYWORD):
                continue
            assert name in our_params and our_params[name].default == info.default, (class_name, name)


@pytest.mark.parametrize("class_name", RANDOM_PRESETS)
@pytest.mark.parametrize("axes", [{}, AXES], ids=["layout", "axes"])
def test_presets_match_keras(class_name, axes):
    ours, theirs = both(class_name, **axes)
    assert_same_distribution(ours, theirs)
    if class_name.endswith("Uniform"):
        fan_in, fan_out = (21, 13) if axes else (105, 195)
        scale = 2.0 if class_name.startswith("He") else 1.0
        fan = (fan_in + fan_out) / 2 if class_name.startswith("Glorot") else fan_in
        limit = math.sqrt(3 * scale / fan)
        assert np.abs(ours).max() <= np.float32(limit) and np.abs(ours).max() > 0.99 * limit
    else:
        std = math.sqrt((2.0 if class_name.startswith("He") else 1.0) /
                        ((21 + 13) / 2 if class_name.startswith("Glorot") else 21)
                        if axes else (2.0 if class_name.startswith("He") else 1.0) /
                        ((105 + 195) / 2 if class_name.startswith("Glorot") else 105))
        assert np.abs(ours).max() <= 2 * std / 0.87962566103423978 * (1 + 1e-6)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "untruncated_normal", "uniform"])
def test_variance_scaling_matches_keras(mode, distribution):
    ours, theirs = both("VarianceScaling", 0.4, mode, distribution, **AXES)
    assert_same_distribution(ours, theirs)


@pytest.mark.parametrize("class_name,args", [("RandomNormal", (0.5, 0.2)), ("RandomUniform", (-0.3, 0.7)),
                                             ("TruncatedNormal", (0.5, 0.2))])
def test_plain_distributions_match_keras(class_name, args):
    ours, theirs = both(class_name, *args)
    assert_same_distribution(ours, theirs)
    if class_name == "RandomUniform":
        assert ours.min() >= -0.3 and ours.max() < 0.7
    if class_name == "TruncatedNormal":
        assert ours.min() >= 0.5 - 0.4 - 1e-6 and ours.max() <= 0.5 + 0.4 + 1e-6


@pytest.mark.parametrize("shape", [(5, 7, 16), (3, 3, 4, 20), (2, 2, 2, 3, 4), (4, 30)])
def test_orthogonal_flattens_as_keras(shape):
    dtype = "float64" if FLOAT64 else "float32"
    ours = as_numpy(wk.Orthogonal(gain=1.5, seed=1)(shape, dtype)) / 1.5
    matrix = ours.reshape(-1, shape[-1])
    rows, cols = matrix.shape
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    assert np.max(np.abs(gram - np.eye(min(rows, cols)))) < (1e-12 if FLOAT64 else 1e-5)
    theirs = as_numpy(keras.initializers.Orthogonal(gain=1.5, seed=2)(shape, dtype)) / 1.5
    their_matrix = theirs.reshape(-1, shape[-1])
    their_gram = their_matrix.T @ their_matrix if rows >= cols else their_matrix @ their_matrix.T
    assert np.max(np.abs(their_gram - np.eye(min(rows, cols)))) < 1e-5  # the same structure in Keras


def test_constants_and_identity_equal_keras():
    for ours, theirs, shape in ((wk.Zeros(), keras.initializers.Zeros(), (3, 4)),
                                (wk.Ones(), keras.initializers.Ones(), (2, 5)),
                                (wk.Constant(-1.25), keras.initializers.Constant(-1.25), (4,)),
                                (wk.Identity(2.5), keras.initializers.Identity(2.5), (3, 5)),
                                (wk.Identity(), keras.initializers.Identity(), (6, 2))):
        assert np.array_equal(as_numpy(ours(shape)), as_numpy(theirs(shape)))


@pytest.mark.parametrize("initializer,scheme,params,layout", [
    (wk.HeNormal(seed=7, name="dense.kernel"), "he_normal", {}, {"layout": "keras"}),
    (wk.VarianceScaling(0.4, "fan_avg", "uniform", seed=7, name="dense.kernel", **AXES), "variance_scaling",
     {"scale": 0.4, "mode": "fan_avg", "distribution": "uniform"},
     {"layout": "axes", "in_axis": [0, 2], "out_axis": [3], "batch_axis": [1]}),
    (wk.TruncatedNormal(0.0, 0.02, seed=7, name="dense.kernel"), "truncated_normal",
     {"std": 0.02, "bounds": "std"}, {}),
    (wk.Orthogonal(seed=7, name="dense.kernel"), "orthogonal", {}, {"layout": "keras"}),
])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_bytes_equal_weightinit_generate(initializer, scheme, params, layout, dtype):
    if dtype == "float64" and not FLOAT64:
        pytest.skip("the JAX backend without jax_enable_x64 has no float64 (the torch/numpy subprocess test has)")
    got = keras.ops.convert_to_numpy(initializer(SHAPE, dtype))
    want = wi.generate({"scheme": scheme, "shape": list(SHAPE), "dtype": dtype, "seed": 7, "name": "dense.kernel",
                        "params": params, **layout})
    assert str(got.dtype) == dtype and got.tobytes() == np.asarray(want).tobytes()


def test_unnamed_uses_the_empty_name_stream_and_unseeded_is_random():
    got = as_numpy(wk.GlorotNormal(seed=3)((4, 6)))
    assert np.array_equal(got, wi.generate({"scheme": "glorot_normal", "shape": [4, 6], "seed": 3,
                                            "layout": "keras"}).astype(np.float64))
    first, second = wk.GlorotNormal(), wk.GlorotNormal()
    assert not np.array_equal(as_numpy(first((4, 6))), as_numpy(second((4, 6))))   # Keras: unseeded
    assert np.array_equal(as_numpy(first((4, 6))), as_numpy(first((4, 6))))         # but stateless
    with pytest.raises(ValueError, match="seed"):
        wk.HeNormal(seed=keras.random.SeedGenerator(1))((3, 3))


@pytest.mark.parametrize("initializer", [
    wk.VarianceScaling(0.4, "fan_out", "untruncated_normal", seed=5, name="x", input_axes=[0], output_axes=[1]),
    wk.GlorotUniform(seed=5, name="x"), wk.HeNormal(seed=9), wk.Orthogonal(2.0, seed=5, name="o"),
    wk.TruncatedNormal(0.1, 0.3, seed=5), wk.RandomNormal(seed=5, name="n"), wk.RandomUniform(-1, 2, seed=5),
    wk.Identity(3.0), wk.Constant(0.5), wk.Zeros(), wk.Ones(),
])
def test_config_round_trip(initializer):
    shape = (6, 4)
    clone = type(initializer).from_config(initializer.get_config())
    assert clone.get_config() == initializer.get_config()
    serialized = keras.saving.serialize_keras_object(initializer)
    assert serialized["registered_name"] == f"weightinit>{type(initializer).__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(initializer)
    for other in (clone, restored, keras.initializers.get(serialized)):
        assert as_numpy(other(shape)).tobytes() == as_numpy(initializer(shape)).tobytes()


def test_einsum_dense_gets_multi_axis_fans():
    """EinsumDense hands a VarianceScaling its input/output axes: kernel (16, 4, 8), fan_in 16, fan_out 32."""
    layer = keras.layers.EinsumDense("ab,bcd->acd", output_shape=(4, 8), kernel_initializer=wk.HeUniform(seed=1,
                                                                                                      name="e"))
    layer.build((2, 16))
    assert isinstance(layer.kernel_initializer, wk.HeUniform)
    kernel = as_numpy(layer.kernel)
    want = wi.generate({"scheme": "he_uniform", "shape": [16, 4, 8], "seed": 1, "name": "e", "layout": "axes",
                        "in_axis": [0], "out_axis": [1, 2], "batch_axis": []})
    assert kernel.tobytes() == want.astype(np.float64).tobytes()
    reference = keras.layers.EinsumDense("ab,bcd->acd", output_shape=(4, 8),
                                         kernel_initializer=keras.initializers.HeUniform(seed=1))
    reference.build((2, 16))
    assert_same_distribution(kernel, as_numpy(reference.kernel))


def test_multi_head_attention_and_a_saved_model(tmp_path):
    inputs = keras.Input((5, 16))
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, kernel_initializer=wk.GlorotUniform(seed=4),
                                                bias_initializer=wk.Zeros())
    outputs = keras.layers.Dense(3, kernel_initializer=wk.Orthogonal(seed=2, name="head"))(attention(inputs, inputs))
    model = keras.Model(inputs, outputs)
    query_kernel = as_numpy(attention.query_dense.kernel)    # (16, 2, 8): fans 16 and 16
    assert query_kernel.shape == (16, 2, 8) and np.abs(query_kernel).max() <= math.sqrt(6 / 32) * (1 + 1e-6)
    output_kernel = as_numpy(attention.output_dense.kernel)  # (2, 8, 16): fans 16 and 16
    assert output_kernel.shape == (2, 8, 16) and np.abs(output_kernel).max() > 0.9 * math.sqrt(6 / 32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(model.weights, loaded.weights):
        assert as_numpy(a).tobytes() == as_numpy(b).tobytes()
    config = loaded.layers[-1].get_config()["kernel_initializer"]
    assert config["registered_name"] == "weightinit>Orthogonal" and config["config"]["name"] == "head"


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_other_backends_give_the_same_values(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    script = textwrap.dedent("""
        import sys, numpy as np, keras, weightinit as wi, weightinit.keras as wk
        layer = keras.layers.Dense(7, kernel_initializer=wk.GlorotNormal(seed=3, name="d"),
                                   bias_initializer=wk.Constant(0.25))
        layer.build((None, 9))
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        want = wi.generate({"scheme": "glorot_normal", "shape": [9, 7], "seed": 3, "name": "d", "layout": "keras"})
        half = keras.ops.convert_to_numpy(keras.ops.cast(wk.HeUniform(seed=1)((4, 5), "bfloat16"), "float32"))
        want_half = wi.generate({"scheme": "he_uniform", "shape": [4, 5], "seed": 1, "layout": "keras",
                                 "dtype": "bfloat16"}).astype(np.float32)
        assert keras.backend.backend() == sys.argv[1]
        assert kernel.tobytes() == want.tobytes(), "kernel"
        assert half.tobytes() == want_half.tobytes(), "bfloat16"
        assert (keras.ops.convert_to_numpy(layer.bias) == 0.25).all()
        wide = keras.ops.convert_to_numpy(wk.Orthogonal(seed=2, name="o")((3, 4, 6), "float64"))
        assert wide.dtype == np.float64 and wide.tobytes() == wi.generate(
            {"scheme": "orthogonal", "shape": [3, 4, 6], "dtype": "float64", "seed": 2, "name": "o",
             "layout": "keras"}).tobytes(), "float64"
        print("ok")
    """)
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run([sys.executable, "-c", script, backend], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
