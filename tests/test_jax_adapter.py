"""weightinit.jax against jax.nn.initializers itself (jax installed, CPU): same names, arguments and defaults,
the same distributions (two-sample KS, exact bounds, QᵀQ = I) on odd shapes with multi-axis fans, bit
equality with weightinit.generate, and flax.linen / flax.nnx modules initialised through it."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
stats = pytest.importorskip("scipy.stats")

import weightinit as wi  # noqa: E402
import weightinit.jax as wj  # noqa: E402

reference = jax.nn.initializers
SHAPE = (17, 9, 5, 13)                         # odd sizes, 9945 elements
MULTI = {"in_axis": (0, 1), "out_axis": 3, "batch_axis": 2}       # fan_in 153, fan_out 13
EMPTY_IN = {"in_axis": (), "out_axis": (1, 3), "batch_axis": (0,)}  # fan_in 5, fan_out 585
PRESETS = ["glorot_uniform", "glorot_normal", "lecun_uniform", "lecun_normal", "he_uniform", "he_normal",
           "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]
KS_P_MIN = 1e-3


def both(builder_name, *args, key_seed=1, shape=SHAPE, dtype=jnp.float32, **kwargs):
    """(ours, JAX's) float64 samples of one initializer, each from its own key."""
    ours = getattr(wj, builder_name)(*args, **kwargs)(jax.random.key(key_seed), shape, dtype)
    theirs = getattr(reference, builder_name)(*args, **kwargs)(jax.random.key(key_seed + 1000), shape, dtype)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    return np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)


def assert_same_distribution(ours, theirs):
    result = stats.ks_2samp(ours.reshape(-1), theirs.reshape(-1))
    assert result.pvalue > KS_P_MIN, result


def test_names_and_signatures_match_jax():
    public = {n for n in dir(reference) if not n.startswith("_") and n != "Initializer"}
    assert public <= set(wj.__all__)
    for name in public:
        ours = inspect.signature(getattr(wj, name)).parameters
        theirs = inspect.signature(getattr(reference, name)).parameters
        for param, info in theirs.items():
            assert param in ours, (name, param)
            if info.default is not inspect.Parameter.empty:
                assert ours[param].default == info.default, (name, param)
        assert list(ours)[:len(theirs)] == list(theirs), name  # positional order too


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("axes", [MULTI, EMPTY_IN], ids=["multi", "empty-in"])
def test_presets_match_jax(name, axes):
    ours, theirs = both(name, **axes)
    assert_same_distribution(ours, theirs)
    if name.endswith("uniform"):
        scale = 2.0 if name.startswith(("he", "kaiming")) else 1.0
        fan_in, fan_out = wi.spec_from_dict({"scheme": "he_normal", "shape": SHAPE, "layout": "axes",
                                             **{k: list(v) if isinstance(v, tuple) else v
                                                for k, v in axes.items()}}).fans()
        fan = (fan_in + fan_out) / 2 if name.startswith(("glorot", "xavier")) else fan_in
        limit = math.sqrt(3 * scale / fan)
        assert np.abs(ours).max() <= np.float32(limit) and np.abs(ours).max() > 0.99 * limit


def test_jax_xavier_and_kaiming_normal_are_truncated():
    """Unlike torch.nn.init: JAX's xavier_normal is glorot_normal, cut at 2 stds of the corrected std."""
    ours = np.asarray(wj.xavier_normal()(jax.random.key(3), (300, 200)), dtype=np.float64)
    std = math.sqrt(1 / 250) / 0.87962566103423978
    assert np.abs(ours).max() <= 2 * std * (1 + 1e-6)
    assert abs(ours.std() - math.sqrt(1 / 250)) < 0.02 * math.sqrt(1 / 250)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
def test_variance_scaling_matches_jax(mode, distribution):
    ours, theirs = both("variance_scaling", 0.7, mode, distribution, key_seed=2, **EMPTY_IN)
    assert_same_distribution(ours, theirs)


@pytest.mark.parametrize("name,args,kwargs", [
    ("normal", (), {}), ("normal", (0.3,), {}), ("uniform", (), {}), ("uniform", (2.5,), {}),
    ("truncated_normal", (), {}), ("truncated_normal", (0.7,), {"lower": -1.5, "upper": 0.5}),
])
def test_plain_distributions_match_jax(name, args, kwargs):
    ours, theirs = both(name, *args, key_seed=4, **kwargs)
    assert_same_distribution(ours, theirs)


def test_uniform_is_zero_to_scale_and_truncated_bounds_are_in_stds():
    u = np.asarray(wj.uniform(0.5)(jax.random.key(0), (4000,)), dtype=np.float64)
    assert u.min() >= 0 and u.max() < 0.5 and u.max() > 0.49
    t = np.asarray(wj.truncated_normal(0.7, lower=-1.5, upper=0.5)(jax.random.key(0), (4000,)), dtype=np.float64)
    assert t.min() >= -1.5 * 0.7 * (1 + 1e-6) and t.max() <= 0.5 * 0.7 * (1 + 1e-6)
    assert t.min() < -1.4 * 0.7 and t.max() > 0.45 * 0.7


@pytest.mark.parametrize("name", ["zeros", "ones"])
def test_constants(name):
    ours = getattr(wj, name)(jax.random.key(0), (3, 5), jnp.float16)
    theirs = getattr(reference, name)(jax.random.key(0), (3, 5), jnp.float16)
    assert ours.dtype == theirs.dtype and np.array_equal(np.asarray(ours), np.asarray(theirs))
    c = wj.constant(-2.5)(jax.random.key(0), (2, 3))
    assert np.array_equal(np.asarray(c), np.asarray(reference.constant(-2.5)(jax.random.key(0), (2, 3))))


@pytest.mark.parametrize("shape,column_axis", [((6, 4, 5), -1), ((6, 4, 5), 0), ((3, 20), -1), ((7, 2, 3), 1)])
def test_orthogonal_structure_and_distribution(shape, column_axis):
    ours = np.asarray(wj.orthogonal(1.5, column_axis)(jax.random.key(5), shape, jnp.float64
                                                      if jax.config.jax_enable_x64 else jnp.float32),
                      dtype=np.float64)
    matrix = np.moveaxis(ours, column_axis, -1).reshape(-1, shape[column_axis]) / 1.5
    rows, cols = matrix.shape
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    assert np.max(np.abs(gram - np.eye(min(rows, cols)))) < 1e-5
    samples = [np.asarray(wj.orthogonal(1.5, column_axis)(jax.random.key(s), shape)) for s in range(40)]
    theirs = [np.asarray(reference.orthogonal(1.5, column_axis)(jax.random.key(s), shape)) for s in range(40)]
    assert_same_distribution(np.stack(samples), np.stack(theirs))


@pytest.mark.parametrize("shape", [(3, 4, 6), (3, 3, 4, 5), (2, 3, 3, 2, 2)])
def test_delta_orthogonal_structure(shape):
    ours = np.asarray(wj.delta_orthogonal(2.0)(jax.random.key(6), shape), dtype=np.float64)
    theirs = np.asarray(reference.delta_orthogonal(2.0)(jax.random.key(6), shape), dtype=np.float64)
    assert ((ours != 0) == (theirs != 0)).all()        # same support: only the (k - 1) // 2 centre
    centre = ours[tuple((k - 1) // 2 for k in shape[:-2])] / 2.0
    assert np.max(np.abs(centre @ centre.T - np.eye(shape[-2]))) < 1e-5
    with pytest.raises(ValueError):
        wj.delta_orthogonal()(jax.random.key(0), (3, 6, 4))


@pytest.mark.parametrize("builder,scheme,params", [
    (lambda n: wj.he_normal(in_axis=(0, 1), out_axis=3, batch_axis=2, name=n), "he_normal", {}),
    (lambda n: wj.variance_scaling(0.3, "fan_geo_avg", "uniform", in_axis=(), out_axis=(1, 3), name=n),
     "variance_scaling", {"scale": 0.3, "mode": "fan_geo_avg", "distribution": "uniform"}),
    (lambda n: wj.normal(0.2, name=n), "normal", {"std": 0.2}),
])
@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey], ids=["key", "PRNGKey"])
def test_named_bytes_equal_weightinit_generate(builder, scheme, params, make_key):
    shape = (5, 4, 3, 6)
    for dtype, engine_dtype in ((jnp.float32, "float32"), (jnp.bfloat16, "bfloat16"), (jnp.float16, "float16")):
        got = np.asarray(builder("block.0.kernel")(make_key(1234), shape, dtype))
        spec = {"scheme": scheme, "shape": list(shape), "dtype": engine_dtype, "seed": 1234,
                "name": "block.0.kernel", "params": params, "layout": "axes"}
        if scheme == "he_normal":
            spec.update(in_axis=[0, 1], out_axis=3, batch_axis=2)
        elif scheme == "variance_scaling":
            spec.update(in_axis=[], out_axis=[1, 3])
        want = np.asarray(wi.generate(spec))
        assert got.tobytes() == want.tobytes()


def test_key_mapping():
    assert wj.key_to_seed_stream(jax.random.key(42)) == (42, wi.spec_from_dict(
        {"scheme": "normal", "shape": [1]}).stream)
    assert wj.key_to_seed_stream(jax.random.PRNGKey(42), "x") == (42, wi.spec_from_dict(
        {"scheme": "normal", "shape": [1], "name": "x"}).stream)
    derived = jax.random.fold_in(jax.random.key(42), 3)
    words = np.asarray(jax.random.key_data(derived))
    assert wj.key_to_seed_stream(derived)[0] == int(words[0]) * 2 ** 32 + int(words[1])
    rbg = jax.random.key(9, impl="rbg")
    words = np.asarray(jax.random.key_data(rbg))
    assert wj.key_to_seed_stream(rbg) == (int(words[0]) << 32 | int(words[1]), int(words[2]) << 32 | int(words[3]))
    # unnamed, 64-bit key: weightinit.generate's default (empty-name) stream
    got = np.asarray(wj.glorot_uniform()(jax.random.key(42), (6, 7), jnp.float32))
    assert got.tobytes() == wi.generate({"scheme": "glorot_uniform", "shape": [6, 7], "seed": 42,
                                         "layout": "axes"}).tobytes()
    with pytest.raises(ValueError, match="key"):
        wj.normal()(jax.random.split(jax.random.key(0), 3), (2,))


def test_jit_gives_the_same_bits_as_eager():
    init = wj.lecun_normal(in_axis=(0, 1), out_axis=3, batch_axis=2)
    key = jax.random.fold_in(jax.random.key(3), 17)
    eager = np.asarray(init(key, SHAPE))
    jitted = np.asarray(jax.jit(lambda k: init(k, SHAPE))(key))
    assert eager.tobytes() == jitted.tobytes()


def test_vmap_over_keys_equals_each_key():
    """Stacked layers (vmap over split keys, as nnx.vmap does) give each key's own values."""
    init = wj.he_uniform(in_axis=(0, 1), out_axis=2)
    keys = jax.random.split(jax.random.key(8), 3)
    stacked = np.asarray(jax.vmap(lambda k: init(k, (3, 4, 5)))(keys))
    assert stacked.shape == (3, 3, 4, 5)
    for index in range(3):
        assert stacked[index].tobytes() == np.asarray(init(keys[index], (3, 4, 5))).tobytes()


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="params.mode"):
        wj.variance_scaling(1.0, "fan_sum", "uniform")(jax.random.key(0), (3, 4))
    with pytest.raises(ValueError, match="in_axis"):
        wj.glorot_uniform(in_axis=(0, 5))(jax.random.key(0), (3, 4))
    with pytest.raises(ValueError, match="dtype"):
        wj.normal()(jax.random.key(0), (3,), jnp.int32)


# ---------------------------------------------------------------------------
# flax


def test_flax_linen_dense_conv_embed():
    nn = pytest.importorskip("flax.linen")
    seen = {}

    def recording(init, label):
        def wrapped(key, shape, dtype=None):
            seen[label] = (key, shape)
            return init(key, shape, dtype)
        return wrapped

    class Model(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(50, 12, embedding_init=recording(
                wj.variance_scaling(1.0, "fan_in", "normal", out_axis=0), "embed"))(tokens)
            x = nn.Conv(16, (3,), kernel_init=recording(wj.he_normal(name="conv.kernel"), "conv"))(x)
            return nn.Dense(7, kernel_init=wj.glorot_uniform(), bias_init=wj.zeros)(x)

    tokens = jnp.zeros((2, 9), jnp.int32)
    params = Model().init(jax.random.key(0), tokens)["params"]
    kernel = np.asarray(params["Dense_0"]["kernel"], dtype=np.float64)
    assert kernel.shape == (16, 7) and np.abs(kernel).max() <= math.sqrt(6 / 23)
    assert not np.asarray(params["Dense_0"]["bias"]).any()
    conv = np.asarray(params["Conv_0"]["kernel"])
    key, shape = seen["conv"]
    seed, _ = wj.key_to_seed_stream(key)
    want = wi.generate({"scheme": "he_normal", "shape": list(shape), "seed": seed, "name": "conv.kernel",
                        "layout": "axes"})
    assert conv.shape == (3, 12, 16) and conv.tobytes() == want.tobytes()
    embedding = np.asarray(params["Embed_0"]["embedding"], dtype=np.float64)
    assert embedding.shape == (50, 12) and abs(embedding.std() - 1 / math.sqrt(12)) < 0.03
    jitted = jax.jit(Model().init)(jax.random.key(0), tokens)["params"]
    assert all(np.asarray(a).tobytes() == np.asarray(b).tobytes()
               for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(jitted)))


def test_flax_nnx_linear():
    nnx = pytest.importorskip("flax.nnx")
    layer = nnx.Linear(30, 20, kernel_init=wj.orthogonal(), bias_init=wj.constant(0.5), rngs=nnx.Rngs(0))
    kernel = np.asarray(layer.kernel[...], dtype=np.float64)
    assert kernel.shape == (30, 20) and np.max(np.abs(kernel.T @ kernel - np.eye(20))) < 1e-5
    assert np.array_equal(np.asarray(layer.bias[...]), np.full(20, 0.5, np.float32))


# ---------------------------------------------------------------------------
# complex dtypes: JAX's definitions


def complex_pair(builder_name, *args, shape=(40, 7, 50), **kwargs):
    ours = np.asarray(getattr(wj, builder_name)(*args, **kwargs)(jax.random.key(21), shape, jnp.complex64))
    theirs = np.asarray(getattr(reference, builder_name)(*args, **kwargs)(jax.random.key(22), shape, jnp.complex64))
    assert ours.dtype == theirs.dtype == np.complex64 and ours.shape == theirs.shape
    return ours.astype(np.complex128), theirs.astype(np.complex128)


@pytest.mark.parametrize("builder,args,kwargs", [
    ("variance_scaling", (0.8, "fan_in", "uniform"), {"in_axis": (0, 1), "out_axis": 2}),
    ("variance_scaling", (0.8, "fan_avg", "normal"), {"in_axis": (), "out_axis": (1, 2)}),
    ("variance_scaling", (0.8, "fan_geo_avg", "truncated_normal"), {"batch_axis": 0}),
    ("glorot_uniform", (), {}), ("he_normal", (), {"in_axis": (0, 1)}), ("lecun_normal", (), {}),
    ("normal", (0.3,), {}),
])
def test_complex_matches_jax(builder, args, kwargs):
    """Real parts, imaginary parts and moduli have JAX's distributions; each part's variance is half of E|z|^2."""
    ours, theirs = complex_pair(builder, *args, **kwargs)
    for part in (np.real, np.imag, np.abs):
        assert_same_distribution(part(ours), part(theirs))
    assert abs(ours.real.var() - ours.imag.var()) < 0.06 * np.mean(np.abs(ours) ** 2)
    assert abs(ours.mean()) < 0.05 * math.sqrt(np.mean(np.abs(ours) ** 2))


def test_complex_variance_scaling_scales():
    """E|z|^2 = scale / fan for uniform and normal; the disc has radius sqrt(2 scale / fan). JAX's truncated
    normal divides by 0.95311164380491208 = sqrt(1 - 5 e^-4), not by the truncated distribution's own
    sqrt(E|z|^2) = sqrt((1 - 5 e^-4) / (1 - e^-4)), so its E|z|^2 is scale / fan times their ratio; its
    modulus is at most 2 / 0.95311164380491208 sqrt(scale / fan)."""
    shape, fan = (60, 70, 30), 60 * 30
    truncated_ratio = (1 - 5 * math.exp(-4)) / (1 - math.exp(-4)) / 0.95311164380491208 ** 2
    for distribution in ("uniform", "normal", "truncated_normal"):
        z = np.asarray(wj.variance_scaling(2.0, "fan_in", distribution, in_axis=0, out_axis=1)(
            jax.random.key(3), shape, jnp.complex64)).astype(np.complex128)
        variance = 2.0 / fan * (truncated_ratio if distribution == "truncated_normal" else 1.0)
        assert abs(np.mean(np.abs(z) ** 2) / variance - 1) < 0.01, distribution
        assert abs(z.real.var() / (variance / 2) - 1) < 0.02 and abs(z.imag.var() / (variance / 2) - 1) < 0.02
        if distribution == "uniform":
            assert np.abs(z).max() <= math.sqrt(2 * 2.0 / fan) * (1 + 1e-6)
        if distribution == "truncated_normal":
            assert np.abs(z).max() <= 2 / 0.95311164380491208 * math.sqrt(2.0 / fan) * (1 + 1e-6)


def test_complex_orthogonal_is_unitary_and_uniform_refuses_complex():
    q = np.asarray(wj.orthogonal()(jax.random.key(1), (7, 4), jnp.complex64)).astype(np.complex128)
    assert np.max(np.abs(q.conj().T @ q - np.eye(4))) < 1e-5 and np.abs(q.imag).max() > 0.05
    d = np.asarray(wj.delta_orthogonal()(jax.random.key(1), (3, 3, 4), jnp.complex64)).astype(np.complex128)
    centre = d[1]
    assert np.max(np.abs(centre @ centre.conj().T - np.eye(3))) < 1e-5
    with pytest.raises(ValueError, match="dtype"):
        wj.uniform()(jax.random.key(0), (3,), jnp.complex64)
    with pytest.raises((ValueError, TypeError)):   # JAX refuses it too
        reference.uniform()(jax.random.key(0), (3,), jnp.complex64)


def test_complex_named_bytes_equal_weightinit_generate():
    got = np.asarray(wj.glorot_normal(in_axis=(0, 1), out_axis=2, name="c.kernel")(jax.random.key(5), (3, 4, 6),
                                                                                     jnp.complex64))
    want = wi.generate({"scheme": "glorot_normal", "shape": [3, 4, 6], "dtype": "complex64", "seed": 5,
                        "name": "c.kernel", "layout": "axes", "in_axis": [0, 1], "out_axis": 2})
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


# ---------------------------------------------------------------------------
# The cases of JAX's own initializer tests (tests/nn_test.py: shapes x dtypes per name), through weightinit.jax

JAX_SHAPES = [(2,), (2, 2), (2, 3), (3, 2), (2, 3, 4), (4, 3, 2), (2, 3, 4, 5)]
FLOATING = [jnp.bfloat16, jnp.float16, jnp.float32] + ([jnp.float64] if jax.config.jax_enable_x64 else [])
INEXACT = FLOATING + [jnp.complex64] + ([jnp.complex128] if jax.config.jax_enable_x64 else [])
JAX_RECORDS = [  # name, builder, dtypes, ranks
    ("uniform", wj.uniform, FLOATING, (1, 4)), ("normal", wj.normal, INEXACT, (1, 4)),
    ("he_normal", wj.he_normal, INEXACT, (2, 4)), ("he_uniform", wj.he_uniform, INEXACT, (2, 4)),
    ("glorot_normal", wj.glorot_normal, INEXACT, (2, 4)), ("glorot_uniform", wj.glorot_uniform, INEXACT, (2, 4)),
    ("lecun_normal", wj.lecun_normal, INEXACT, (2, 4)), ("lecun_uniform", wj.lecun_uniform, INEXACT, (2, 4)),
    ("orthogonal", wj.orthogonal, FLOATING, (2, 2)), ("truncated_normal", wj.truncated_normal, FLOATING, (1, 4)),
    ("delta_orthogonal", wj.delta_orthogonal, FLOATING, (4, 4)),
    ("variance_scaling_fan_geo_avg", lambda dtype=None: wj.variance_scaling(1, "fan_geo_avg", "normal",
                                                                            dtype=dtype), FLOATING, (2, 4)),
]
JAX_CASES = [pytest.param(builder, shape, dtype, id=f"{name}-{shape}-{jnp.dtype(dtype).name}")
             for name, builder, dtypes, (low, high) in JAX_RECORDS
             for shape in JAX_SHAPES if low <= len(shape) <= high for dtype in dtypes]


@pytest.mark.parametrize("builder,shape,dtype", JAX_CASES)
def test_jax_initializer_cases(builder, shape, dtype):
    """As JAX's testInitializer / testInitializerProvider: the shape and the canonical dtype, given at call
    time or to the builder."""
    for value in (builder()(jax.random.PRNGKey(0), shape, dtype), builder(dtype=dtype)(jax.random.PRNGKey(0), shape)):
        assert value.shape == shape and value.dtype == jax.dtypes.canonicalize_dtype(dtype)


def test_jax_multi_axis_batch_axis_and_rank_one_cases():
    for axes in ({"in_axis": (0, 1), "out_axis": (-2, -1)}, {"in_axis": 0, "out_axis": (2, 3), "batch_axis": 1}):
        value = wj.variance_scaling(1.0, "fan_avg", "truncated_normal", **axes)(jax.random.PRNGKey(0), (2, 3, 4, 5))
        assert value.shape == (2, 3, 4, 5)
    with pytest.raises(ValueError, match="in_axis"):   # JAX: a 1-D shape with the default in_axis
        wj.variance_scaling(1.0, "fan_avg", "truncated_normal")(jax.random.PRNGKey(0), (5,))
    scalar = jnp.array(1.0, dtype=jnp.float32)       # JAX's accidental-upcasting case
    for build in (wj.uniform, wj.normal, wj.truncated_normal):
        assert build(scalar, jnp.bfloat16)(jax.random.PRNGKey(1), (4, 4)).dtype == jnp.bfloat16


def test_the_cases_hold_with_x64(tmp_path):
    """float64 / complex128 exist only with jax_enable_x64: rerun the cases above in a process that sets it."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, JAX_ENABLE_X64="1")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                             "jax_initializer_cases or rank_one or named_bytes or complex"], capture_output=True,
                            text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout[-3000:]
