"""Statistics at fixed seeds (so every result here is deterministic): moments, bounds and KS tests
against the closed-form target distributions, and the exact structure of the structured schemes.

The KS tests over 10^6 samples are marked ``slow`` (they run by default; ``-m "not slow"`` skips
them for a quick loop).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import scipy.special
from scipy import stats

import weightinit as wi
from weightinit.engine import transforms as T
from weightinit.engine.philox import SUBSTREAM_SPARSE_MASK, philox_words

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

KERAS_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def gen(scheme, shape, dtype="float64", seed=0, name="", params=None, **fields):
    data = {"scheme": scheme, "shape": list(shape), "dtype": dtype, "seed": seed, "name": name, **fields}
    if params:
        data["params"] = params
    return np.asarray(wi.generate(data), dtype=np.float64)


def truncnorm(lower, upper, mean=0.0, std=1.0):
    """scipy's truncated normal with absolute bounds."""
    return stats.truncnorm((lower - mean) / std, (upper - mean) / std, loc=mean, scale=std)


def keras_truncated(scale, fan):
    std = math.sqrt(scale / max(1.0, fan)) / KERAS_STD
    return stats.truncnorm(-2.0, 2.0, loc=0.0, scale=std)


def bound_uniform(bound):
    return stats.uniform(loc=-bound, scale=2 * bound)


# ---------------------------------------------------------------------------
# Moments and bounds for every random scheme
# (id, scheme, shape, spec fields, target distribution); shapes hold 2*10^5 .. 3*10^5 elements.

FAN_CONV = (64 * 3 * 3, 128 * 3 * 3)  # torch [128, 64, 3, 3] / keras [3, 3, 64, 128]: (fan_in, fan_out)

MOMENT_CASES = [
    ("uniform-default", "uniform", [250000], {}, stats.uniform(0.0, 1.0)),
    ("uniform-low-high", "uniform", [500, 500], {"params": {"low": -3.0, "high": 5.0}}, stats.uniform(-3.0, 8.0)),
    ("normal-default", "normal", [250000], {}, stats.norm(0.0, 1.0)),
    ("normal-mean-std", "normal", [250000], {"params": {"mean": 0.5, "std": 2.0}}, stats.norm(0.5, 2.0)),
    ("truncated-torch-default", "truncated_normal", [250000], {}, truncnorm(-2.0, 2.0)),
    ("truncated-absolute", "truncated_normal", [250000],
     {"params": {"std": 0.02, "lower": -0.04, "upper": 0.04}}, truncnorm(-0.04, 0.04, 0.0, 0.02)),
    ("truncated-absolute-shifted", "truncated_normal", [250000],
     {"params": {"mean": 0.1, "std": 0.3, "lower": 0.0, "upper": 1.0}}, truncnorm(0.0, 1.0, 0.1, 0.3)),
    ("truncated-std-units", "truncated_normal", [250000],
     {"params": {"mean": 1.0, "std": 0.5, "lower": -1.0, "upper": 3.0, "bounds": "std"}},
     stats.truncnorm(-1.0, 3.0, loc=1.0, scale=0.5)),
    ("truncated-upper-tail", "truncated_normal", [250000],
     {"params": {"lower": 2.5, "upper": 4.0, "bounds": "std"}}, stats.truncnorm(2.5, 4.0)),
    ("truncated-far-tail", "truncated_normal", [250000],
     {"params": {"lower": -8.0, "upper": -7.0, "bounds": "std"}}, stats.truncnorm(-8.0, -7.0)),
    ("xavier_uniform", "xavier_uniform", [128, 64, 3, 3], {},
     bound_uniform(math.sqrt(6.0 / sum(FAN_CONV)))),
    ("xavier_normal-gain", "xavier_normal", [500, 400], {"params": {"gain": 2.0}},
     stats.norm(0.0, 2.0 * math.sqrt(2.0 / 900))),
    ("kaiming_uniform", "kaiming_uniform", [500, 400], {},
     bound_uniform(math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(400))),
    ("kaiming_normal-fan_out-relu", "kaiming_normal", [128, 64, 3, 3],
     {"params": {"mode": "fan_out", "nonlinearity": "relu"}}, stats.norm(0.0, math.sqrt(2.0 / FAN_CONV[1]))),
    ("kaiming_normal-keras-tanh", "kaiming_normal", [3, 3, 64, 128],
     {"layout": "keras", "params": {"nonlinearity": "tanh"}}, stats.norm(0.0, (5 / 3) / math.sqrt(FAN_CONV[0]))),
    ("lecun_uniform", "lecun_uniform", [3, 3, 64, 128], {"layout": "keras"},
     bound_uniform(math.sqrt(3.0 / FAN_CONV[0]))),
    ("lecun_normal", "lecun_normal", [3, 3, 64, 128], {"layout": "keras"}, keras_truncated(1.0, FAN_CONV[0])),
    ("glorot_uniform", "glorot_uniform", [400, 600], {"layout": "keras"},
     bound_uniform(math.sqrt(3.0 / 500))),
    ("glorot_normal", "glorot_normal", [400, 600], {"layout": "keras"}, keras_truncated(1.0, 500)),
    ("he_uniform", "he_uniform", [3, 3, 64, 128], {"layout": "keras"},
     bound_uniform(math.sqrt(6.0 / FAN_CONV[0]))),
    ("he_normal", "he_normal", [3, 3, 64, 128], {"layout": "keras"}, keras_truncated(2.0, FAN_CONV[0])),
    ("he_normal-axes", "he_normal", [4, 8, 8, 1000], {"layout": "axes", "in_axis": 1, "out_axis": 2,
                                                      "batch_axis": [0]}, keras_truncated(2.0, 8 * 1000)),
    ("variance_scaling-uniform-geo", "variance_scaling", [300, 800],
     {"layout": "keras", "params": {"scale": 0.5, "mode": "fan_geo_avg", "distribution": "uniform"}},
     bound_uniform(math.sqrt(3 * 0.5 / math.sqrt(300 * 800)))),
    ("variance_scaling-normal-fan_out", "variance_scaling", [300, 800],
     {"layout": "keras", "params": {"scale": 3.0, "mode": "fan_out", "distribution": "untruncated_normal"}},
     stats.norm(0.0, math.sqrt(3.0 / 800))),
    ("variance_scaling-truncated-avg", "variance_scaling", [300, 800],
     {"layout": "keras", "params": {"scale": 2.0, "mode": "fan_avg"}}, keras_truncated(2.0, 550)),
    ("torch_default-weight", "torch_default", [500, 400], {}, bound_uniform(1.0 / math.sqrt(400))),
    ("torch_default-conv", "torch_default", [128, 64, 3, 3], {}, bound_uniform(1.0 / math.sqrt(FAN_CONV[0]))),
    ("torch_default-bias", "torch_default", [250000], {"params": {"fan_in": 1024}},
     bound_uniform(1.0 / math.sqrt(1024))),
]


@pytest.mark.parametrize("scheme,shape,fields,dist", [pytest.param(*c[1:], id=c[0]) for c in MOMENT_CASES])
def test_moments_and_bounds(scheme, shape, fields, dist):
    x = gen(scheme, shape, seed=2024, name=f"{scheme}.weight", **fields).reshape(-1)
    n = x.size
    assert np.isfinite(x).all()
    mean, std = dist.mean(), dist.std()
    assert abs(x.mean() - mean) <= 6 * std / math.sqrt(n), (x.mean(), mean)
    assert abs(x.std() / std - 1) <= 6 / math.sqrt(2 * n), (x.std(), std)
    low, high = dist.support()
    if np.isfinite(low):
        assert x.min() >= low and x.max() <= high
        # the sample reaches into both ends of the support
        assert x.min() <= dist.ppf(50 / n) and x.max() >= dist.ppf(1 - 50 / n)
    else:
        # untruncated: the tails beyond 2 std carry their 4.55 %
        beyond = np.mean(np.abs(x - mean) > 2 * std)
        assert abs(beyond - 2 * stats.norm.sf(2.0)) < 6 * math.sqrt(0.0455 / n)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_moments_hold_in_every_dtype(dtype):
    x = gen("kaiming_normal", [400, 500], dtype=dtype, seed=5)
    std = math.sqrt(2.0 / 500)
    tolerance = {"float32": 6 / math.sqrt(4e5), "float16": 0.01, "bfloat16": 0.02}[dtype]
    assert abs(x.std() / std - 1) < tolerance
    assert abs(x.mean()) < 6 * std / math.sqrt(x.size)


# ---------------------------------------------------------------------------
# KS tests, 10^6 samples

KS_N = 10 ** 6
KS_MIN_P = 1e-4


def fast_cdf(dist):
    """The CDF of a frozen norm / uniform / truncnorm, vectorised through scipy.special.ndtr
    (scipy.stats.truncnorm.cdf is several times slower on 10^6 points); checked against dist.cdf."""
    name = dist.dist.name
    shape_args, loc, scale = dist.dist._parse_args(*dist.args, **dist.kwds)
    if name == "truncnorm":
        a, b = shape_args
        lo, mass = scipy.special.ndtr(a), scipy.special.ndtr(b) - scipy.special.ndtr(a)
        if a > 0:   # upper tail: complementary form keeps precision
            lo, mass = scipy.special.ndtr(-a), scipy.special.ndtr(-a) - scipy.special.ndtr(-b)

            def cdf(x):
                return np.clip((lo - scipy.special.ndtr(-(x - loc) / scale)) / mass, 0.0, 1.0)
        else:
            def cdf(x):
                return np.clip((scipy.special.ndtr((x - loc) / scale) - lo) / mass, 0.0, 1.0)
    elif name == "norm":
        def cdf(x):
            return scipy.special.ndtr((x - loc) / scale)
    else:
        cdf = dist.cdf
    lo_q, hi_q = dist.ppf(1e-6), dist.ppf(1 - 1e-6)
    grid = np.linspace(lo_q, hi_q, 201)
    assert np.max(np.abs(cdf(grid) - dist.cdf(grid))) < 1e-9
    return cdf


def ks(x, dist):
    return stats.kstest(x, fast_cdf(dist)).pvalue


KS_CASES = [
    ("uniform", "uniform", [KS_N], {"params": {"low": -3.0, "high": 5.0}}, stats.uniform(-3.0, 8.0)),
    ("normal", "normal", [KS_N], {"params": {"mean": 0.5, "std": 2.0}}, stats.norm(0.5, 2.0)),
    ("truncated-absolute", "truncated_normal", [KS_N], {"params": {"std": 0.02, "lower": -0.04, "upper": 0.04}},
     truncnorm(-0.04, 0.04, 0.0, 0.02)),
    ("truncated-absolute-asymmetric", "truncated_normal", [KS_N],
     {"params": {"mean": 0.1, "std": 0.3, "lower": 0.0, "upper": 1.0}}, truncnorm(0.0, 1.0, 0.1, 0.3)),
    ("truncated-std-units", "truncated_normal", [KS_N],
     {"params": {"mean": 1.0, "std": 0.5, "lower": -1.0, "upper": 3.0, "bounds": "std"}},
     stats.truncnorm(-1.0, 3.0, loc=1.0, scale=0.5)),
    ("truncated-tail", "truncated_normal", [KS_N], {"params": {"lower": 2.5, "upper": 4.0, "bounds": "std"}},
     stats.truncnorm(2.5, 4.0)),
    ("he_normal-keras-truncated", "he_normal", [3, 3, 256, 435], {"layout": "keras"},
     keras_truncated(2.0, 3 * 3 * 256)),
    ("glorot_normal-keras-truncated", "glorot_normal", [1000, 1000], {"layout": "keras"},
     keras_truncated(1.0, 1000)),
    ("kaiming_normal-torch-untruncated", "kaiming_normal", [1000, 1000], {}, stats.norm(0.0, math.sqrt(2 / 1000))),
    ("kaiming_uniform-torch", "kaiming_uniform", [1000, 1000], {},
     bound_uniform(math.sqrt(3.0) * math.sqrt(2.0 / 1000))),
    ("glorot_uniform-keras", "glorot_uniform", [1000, 1000], {"layout": "keras"}, bound_uniform(math.sqrt(3 / 1000))),
]


@pytest.mark.slow
@pytest.mark.parametrize("scheme,shape,fields,dist", [pytest.param(*c[1:], id=c[0]) for c in KS_CASES])
def test_ks_against_the_target_distribution(scheme, shape, fields, dist):
    x = gen(scheme, shape, seed=7, name="ks", **fields).reshape(-1)
    assert x.size >= KS_N
    assert ks(x, dist) > KS_MIN_P


@pytest.mark.slow
def test_ks_float32_output():
    x = gen("kaiming_normal", [1000, 1000], dtype="float32", seed=8, name="ks32")
    assert ks(x.reshape(-1), stats.norm(0.0, math.sqrt(2 / 1000))) > KS_MIN_P


@pytest.mark.slow
def test_ks_tells_truncated_from_untruncated_presets():
    """Keras he_normal is truncated (with the 0.8796 correction); torch kaiming_normal is not. The KS test
    has the power to tell them apart at 10^6 samples, so the passes above mean something."""
    he = gen("he_normal", [1000, 1000], seed=9, layout="keras").reshape(-1)
    kaiming = gen("kaiming_normal", [1000, 1000], seed=9, params={"nonlinearity": "relu"}).reshape(-1)
    std = math.sqrt(2.0 / 1000)
    assert ks(he, keras_truncated(2.0, 1000)) > KS_MIN_P
    assert ks(he, stats.norm(0.0, std)) < 1e-12
    assert ks(kaiming, stats.norm(0.0, std)) > KS_MIN_P
    assert ks(kaiming, keras_truncated(2.0, 1000)) < 1e-12
    assert np.abs(he).max() <= 2 * std / KERAS_STD
    assert np.abs(kaiming).max() > 4 * std
    assert abs(he.std() / std - 1) < 0.005   # the correction restores the target std


# ---------------------------------------------------------------------------
# Truncated normal: absolute bounds are exact


def narrow_intervals(count, seed):
    r = random.Random(seed)
    cases = []
    while len(cases) < count:
        mean, std = r.uniform(-3, 3), 10 ** r.uniform(-2, 1)
        lower = r.uniform(-2, 2)
        upper = lower + 10 ** r.uniform(-14, -12)
        if max(abs((lower - mean) / std), abs((upper - mean) / std)) < 6:
            cases.append((mean, std, lower, upper))
    return cases


def test_truncated_normal_never_leaves_absolute_bounds():
    """torch.nn.init.trunc_normal_ clamps to [a, b]: no value may fall outside the given bounds, not even
    by one ulp, however narrow the interval."""
    outside = []
    for mean, std, lower, upper in narrow_intervals(60, seed=2):
        x = gen("truncated_normal", [20000], params={"mean": mean, "std": std, "lower": lower, "upper": upper})
        if x.min() < lower or x.max() > upper:
            outside.append((mean, std, lower, upper, x.min() - lower, x.max() - upper))
        single = gen("truncated_normal", [2000], dtype="float32",
                     params={"mean": mean, "std": std, "lower": lower, "upper": upper})
        assert single.min() >= float(np.float32(lower)) and single.max() <= float(np.float32(upper))
    assert not outside, outside[:3]


@pytest.mark.parametrize("lower,upper", [(-2.0, 2.0), (-0.04, 0.04), (0.0, 1.0), (-5.0, -4.9), (3.0, 3.0001)])
def test_truncated_normal_bounds(lower, upper):
    x = gen("truncated_normal", [100000], seed=3, params={"std": 0.5, "lower": lower, "upper": upper})
    assert lower <= x.min() and x.max() <= upper


# ---------------------------------------------------------------------------
# Transform accuracy (the building blocks of every normal)


def test_ndtri_matches_scipy():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.random(200000), 10.0 ** -rng.uniform(0, 300, 20000), 1 - rng.random(20000) * 1e-6,
                        [2.0 ** -53, 0.5 - 2.0 ** -53, 0.075, 0.925, 1 - 2.0 ** -53]])
    p = p[(p > 0) & (p < 1)]
    z, ref = T.ndtri(p), scipy.special.ndtri(p)
    assert np.max(np.abs(z - ref) / np.maximum(np.abs(ref), 1e-300)) < 1e-14


def test_log_matches_numpy_within_one_ulp():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.random(100000) * 4, 10.0 ** rng.uniform(-300, 300, 100000), [1.0, 2.0, 0.5]])
    got, ref = T.log_positive(x), np.log(x)
    assert np.all(np.abs(got - ref) <= np.spacing(np.abs(ref)))
    assert T.log_positive(np.array([1.0]))[0] == 0.0


def test_phi_matches_scipy():
    xs = np.concatenate([np.linspace(-37, 37, 7401), [-2.0, 2.0, -1e-300, 0.0]])
    got = np.array([T.normal_cdf_scalar(float(x)) for x in xs])
    ref = scipy.special.ndtr(xs)
    assert np.max(np.abs(got - ref) / ref) < 1e-12
    assert T.normal_cdf_scalar(0.0) == 0.5
    assert T.normal_cdf_scalar(-41.0) == 0.0


def test_uniform_grids():
    words = np.array([0, 1, 2 ** 11 - 1, 2 ** 11, 2 ** 64 - 1, 2 ** 63], dtype=np.uint64)
    assert T.uniform01(words).tolist() == [0.0, 0.0, 0.0, 2.0 ** -53, 1 - 2.0 ** -53, 0.5]
    u = T.open_uniform(words)
    assert u.min() == 2.0 ** -53 and u.max() == 1 - 2.0 ** -53
    assert np.all((u > 0) & (u < 1) & (u != 0.5))
    assert np.array_equal(1.0 - u, T.open_uniform(~words))   # symmetric: 1 - u is exact and on the grid


# ---------------------------------------------------------------------------
# Orthogonal


def orthonormal_error(q, axis):
    """max |M - I| for M = Q^T Q (columns, axis=0) or Q Q^T (rows, axis=1)."""
    m = q.T @ q if axis == 0 else q @ q.T
    return np.max(np.abs(m - np.eye(m.shape[0])))


@pytest.mark.parametrize("shape,params,matrix,axis", [
    ([64, 32], {}, lambda w: w, 0),                                   # tall: orthonormal columns
    ([32, 64], {}, lambda w: w, 1),                                   # wide: orthonormal rows
    ([40, 40], {}, lambda w: w, 0),
    ([16, 4, 3, 3], {}, lambda w: w.reshape(16, -1), 1),              # torch flattening: (16, 36)
    ([64, 2, 3], {}, lambda w: w.reshape(64, -1), 0),                 # (64, 6)
    ([3, 3, 8, 16], {"column_axis": -1}, lambda w: w.reshape(-1, 16), 0),   # JAX: (72, 16)
    ([4, 64], {"column_axis": -1}, lambda w: w, 1),                   # JAX wide: (4, 64)
    ([8, 3, 5], {"column_axis": 0}, lambda w: np.moveaxis(w, 0, -1).reshape(-1, 8), 0),  # (15, 8)
    ([20, 3, 5], {"column_axis": 0}, lambda w: np.moveaxis(w, 0, -1).reshape(-1, 20), 1),  # (15, 20): wide
    ([6, 7, 2], {"column_axis": 1}, lambda w: np.moveaxis(w, 1, -1).reshape(-1, 7), 0),   # (12, 7)
])
@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-12), ("float32", 2e-6)])
def test_orthogonal_is_orthonormal(shape, params, matrix, axis, dtype, tolerance):
    w = gen("orthogonal", shape, dtype=dtype, seed=11, name="q", params=params)
    assert orthonormal_error(matrix(w), axis) < tolerance


@pytest.mark.parametrize("params,gain", [({"gain": 2.0}, 2.0), ({"nonlinearity": "relu"}, math.sqrt(2)),
                                         ({"gain": -0.5}, -0.5)])
def test_orthogonal_gain(params, gain):
    w = gen("orthogonal", [30, 20], seed=12, params=params)
    assert np.max(np.abs(w.T @ w - gain * gain * np.eye(20))) < 1e-12
    plain = gen("orthogonal", [30, 20], seed=12)
    assert np.max(np.abs(w - gain * plain)) < 1e-14


@pytest.mark.parametrize("shape,params", [([12, 5], {}), ([5, 12], {}), ([6, 2, 2], {}), ([3, 4, 5], {"column_axis": -1}),
                                          ([2, 9], {"column_axis": -1})])
def test_orthogonal_is_the_sign_fixed_qr_of_its_normal_matrix(shape, params):
    """Q^T A = R is upper triangular with a positive diagonal (torch's q *= sign(diag(r))), where A is the
    normal(0, 1) matrix of the same key: the definition, independent of the LAPACK in use."""
    w = gen("orthogonal", shape, seed=13, name="qr", params=params)
    a = gen("normal", shape, seed=13, name="qr")
    if "column_axis" in params:
        cols = shape[params["column_axis"]]
        rows = w.size // cols
        q = np.moveaxis(w, params["column_axis"], -1).reshape(rows, cols)
        matrix = a.reshape(-1)
        # JAX draws the (rows, cols) matrix, or (cols, rows) when wide, and transposes Q back
        if rows < cols:
            a2, q2 = matrix.reshape(cols, rows), q.T
        else:
            a2, q2 = matrix.reshape(rows, cols), q
    else:
        rows = shape[0]
        a2 = a.reshape(rows, -1)
        q2 = w.reshape(rows, -1)
        if a2.shape[0] < a2.shape[1]:   # torch transposes a wide matrix before the QR
            a2, q2 = a2.T, q2.T
    r = q2.T @ a2
    assert np.max(np.abs(np.tril(r, -1))) < 1e-12
    assert np.all(np.diag(r) > 0)
    q_ref, r_ref = np.linalg.qr(a2)
    assert np.max(np.abs(q_ref * np.sign(np.diag(r_ref)) - q2)) < 1e-13


# ---------------------------------------------------------------------------
# Sparse


@pytest.mark.parametrize("rows,cols,sparsity", [(100, 64, 0.1), (10, 200, 0.3), (7, 50, 0.5), (33, 40, 0.99),
                                                (20, 10, 0.0), (20, 10, 1.0), (1, 30, 0.5)])
def test_sparse_zeros_per_column(rows, cols, sparsity):
    x = gen("sparse", [rows, cols], dtype="float32", seed=14, name="sp", params={"sparsity": sparsity})
    k = int(math.ceil(sparsity * rows))    # torch.nn.init.sparse_: num_zeros = ceil(sparsity * rows)
    assert np.array_equal((x == 0).sum(axis=0), np.full(cols, k))
    if 0 < k < rows:
        patterns = {tuple(np.flatnonzero(x[:, j] == 0)) for j in range(cols)}
        assert len(patterns) > cols // 2     # the zero rows vary from column to column


def test_sparse_ceil_follows_float_arithmetic():
    """0.28 * 25 == 7.000000000000001 in binary64, so torch zeroes 8 rows of 25; so must we."""
    assert math.ceil(0.28 * 25) == 8
    x = gen("sparse", [25, 50], seed=1, params={"sparsity": 0.28})
    assert np.all((x == 0).sum(axis=0) == 8)


def test_sparse_is_the_documented_mask_over_the_normal_stream():
    rows, cols, sparsity, std = 40, 30, 0.25, 0.05
    fields = {"seed": 15, "name": "sparse.weight"}
    x = gen("sparse", [rows, cols], params={"sparsity": sparsity, "std": std}, **fields)
    values = gen("normal", [rows, cols], params={"std": std}, **fields)
    key = wi.spec_from_dict({"scheme": "sparse", "shape": [rows, cols], "params": {"sparsity": sparsity},
                             **fields}).key
    mask_keys = philox_words(key, 0, rows * cols, SUBSTREAM_SPARSE_MASK).reshape(rows, cols)
    k = int(math.ceil(sparsity * rows))
    expected = values.copy()
    for j in range(cols):
        # the k rows with the smallest (key, row), lexicographically
        expected[sorted(range(rows), key=lambda i: (int(mask_keys[i, j]), i))[:k], j] = 0.0
    assert np.array_equal(x, expected)


def test_sparse_values_have_the_requested_std():
    x = gen("sparse", [1000, 200], seed=16, params={"sparsity": 0.5, "std": 0.01})
    nonzero = x[x != 0]
    assert nonzero.size == 1000 * 200 // 2
    assert abs(nonzero.std() / 0.01 - 1) < 6 / math.sqrt(2 * nonzero.size)


# ---------------------------------------------------------------------------
# Deterministic schemes: exact


def expected_dirac(shape, groups=1):
    """torch.nn.init.dirac_, spelled out."""
    w = np.zeros(shape)
    out_per_group = shape[0] // groups
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for d in range(min(out_per_group, shape[1])):
            w[(g * out_per_group + d, d) + centre] = 1.0
    return w


DIRAC_CASES = [([4, 2, 3], 1), ([2, 4, 3], 1), ([6, 3, 3, 3], 2), ([4, 4, 2, 2], 1), ([8, 2, 5, 4], 4),
               ([2, 3, 3, 2, 3], 2), ([3, 3, 1], 3), ([6, 1, 3, 3], 3)]


@pytest.mark.parametrize("shape,groups", DIRAC_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_dirac_exact(shape, groups, dtype):
    got = gen("dirac", shape, dtype=dtype, params={"groups": groups})
    assert np.array_equal(got, expected_dirac(shape, groups))


@pytest.mark.parametrize("shape,groups", DIRAC_CASES)
def test_dirac_keras_layout_is_the_transposed_pattern(shape, groups):
    rank = len(shape)
    keras_shape = shape[2:] + [shape[1], shape[0]]
    got = gen("dirac", keras_shape, layout="keras", params={"groups": groups})
    assert np.array_equal(got, np.transpose(expected_dirac(shape, groups), tuple(range(2, rank)) + (1, 0)))


@pytest.mark.parametrize("shape", [[3, 5], [5, 3], [4, 4], [1, 7], [0, 3]])
@pytest.mark.parametrize("params,gain", [({}, 1.0), ({"gain": -2.5}, -2.5), ({"nonlinearity": "tanh"}, 5 / 3)])
def test_eye_exact(shape, params, gain):
    got = gen("eye", shape, params=params)
    assert np.array_equal(got, gain * np.eye(*shape))


@pytest.mark.parametrize("scheme,params,value", [("zeros", {}, 0.0), ("ones", {}, 1.0),
                                                 ("constant", {"value": -0.375}, -0.375)])
def test_constants_exact(scheme, params, value):
    got = gen(scheme, [3, 4, 5], params=params)
    assert np.array_equal(got, np.full((3, 4, 5), value))
    assert not np.signbit(gen("zeros", [8])).any()    # +0, not -0


@needs_torch
@pytest.mark.parametrize("shape,groups", DIRAC_CASES)
def test_dirac_equals_torch(shape, groups):
    expected = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float64), groups=groups).numpy()
    assert np.array_equal(gen("dirac", shape, params={"groups": groups}), expected)


@needs_torch
@pytest.mark.parametrize("shape", [[3, 5], [5, 3], [4, 4]])
def test_eye_equals_torch(shape):
    expected = torch.nn.init.eye_(torch.empty(shape, dtype=torch.float64)).numpy()
    assert np.array_equal(gen("eye", shape), expected)


# ---------------------------------------------------------------------------
# delta_orthogonal


@pytest.mark.parametrize("shape,layout", [([3, 4, 6], "keras"), ([4, 4, 2, 5], "keras"), ([3, 3, 3, 2, 2], "keras"),
                                          ([3, 1, 3, 3], "keras"), ([6, 4, 3, 3], "torch"), ([6, 4, 4], "torch"),
                                          ([5, 5, 3, 2, 1], "torch")])
def test_delta_orthogonal_centre_orthogonal_zeros_elsewhere(shape, layout):
    w = gen("delta_orthogonal", shape, seed=17, name="delta", layout=layout)
    if layout == "torch":
        spatial = shape[2:]
        centre = tuple((k - 1) // 2 for k in spatial)
        q = w[(slice(None), slice(None)) + centre]           # (out, in)
        rest = w.copy()
        rest[(slice(None), slice(None)) + centre] = 0
    else:
        spatial = shape[:-2]
        centre = tuple((k - 1) // 2 for k in spatial)        # JAX: (k - 1) // 2, not dirac's k // 2
        q = w[centre].T                                      # (out, in)
        rest = w.copy()
        rest[centre] = 0
    assert np.all(rest == 0)
    assert orthonormal_error(q, 0) < 1e-12                   # out >= in: orthonormal columns
    assert np.count_nonzero(q) == q.size


def test_delta_orthogonal_gain():
    w = gen("delta_orthogonal", [3, 4, 4], seed=18, layout="keras", params={"gain": 3.0})
    assert np.max(np.abs(w[1] @ w[1].T - 9 * np.eye(4))) < 1e-12


# ---------------------------------------------------------------------------
# torch_default


@pytest.mark.parametrize("shape,params,fan_in", [([256, 128], {}, 128), ([64, 32, 3, 3], {}, 288),
                                                 ([128, 16, 5], {}, 80), ([1000], {"fan_in": 128}, 128),
                                                 ([64], {"fan_in": 288}, 288)])
def test_torch_default_bound(shape, params, fan_in):
    x = gen("torch_default", shape, seed=19, params=params)
    bound = 1.0 / math.sqrt(fan_in)
    assert np.abs(x).max() <= bound
    assert np.abs(x).max() > bound * (1 - 50 / x.size)
    if x.size > 10000:
        assert abs(x.std() / (bound / math.sqrt(3)) - 1) < 6 / math.sqrt(x.size)


# ---------------------------------------------------------------------------
# Against torch.nn.init (statistics only: its random stream is its own)


@needs_torch
@pytest.mark.parametrize("scheme,torch_init,params", [
    ("kaiming_normal", lambda t: torch.nn.init.kaiming_normal_(t), {}),
    ("kaiming_normal", lambda t: torch.nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
     {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_uniform", lambda t: torch.nn.init.kaiming_uniform_(t, a=0.2), {"a": 0.2}),
    ("xavier_uniform", lambda t: torch.nn.init.xavier_uniform_(t, gain=1.5), {"gain": 1.5}),
    ("xavier_normal", lambda t: torch.nn.init.xavier_normal_(t), {}),
    ("truncated_normal", lambda t: torch.nn.init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04),
     {"std": 0.02, "lower": -0.04, "upper": 0.04}),
    ("normal", lambda t: torch.nn.init.normal_(t, mean=0.5, std=2.0), {"mean": 0.5, "std": 2.0}),
    ("uniform", lambda t: torch.nn.init.uniform_(t, -3.0, 5.0), {"low": -3.0, "high": 5.0}),
])
def test_statistics_match_torch(scheme, torch_init, params):
    shape = [256, 128, 3, 3]
    torch.manual_seed(0)
    reference = torch_init(torch.empty(shape, dtype=torch.float64)).numpy().reshape(-1)
    ours = gen(scheme, shape, seed=20, params=params).reshape(-1)
    n = ours.size
    assert abs(ours.std() / reference.std() - 1) < 8 / math.sqrt(n)
    assert abs(ours.mean() - reference.mean()) < 8 * reference.std() / math.sqrt(n)
    if scheme in ("kaiming_uniform", "xavier_uniform", "truncated_normal", "uniform"):
        assert ours.min() >= reference.min() - 1e-3 * reference.std()
        assert ours.max() <= reference.max() + 1e-3 * reference.std()
    assert stats.ks_2samp(ours[:200000], reference[:200000]).pvalue > KS_MIN_P


@needs_torch
def test_torch_default_matches_nn_linear_and_conv():
    torch.manual_seed(0)
    linear = torch.nn.Linear(1024, 1000, dtype=torch.float64)
    conv = torch.nn.Conv2d(64, 128, 3, dtype=torch.float64)
    for module, shape in ((linear, [1000, 1024]), (conv, [128, 64, 3, 3])):
        weight = module.weight.detach().numpy().reshape(-1)
        bias = module.bias.detach().numpy()
        ours = gen("torch_default", shape, seed=21).reshape(-1)
        fan_in = math.prod(shape[1:])
        ours_bias = gen("torch_default", [shape[0]], seed=21, params={"fan_in": fan_in})
        bound = 1.0 / math.sqrt(fan_in)
        assert np.abs(weight).max() <= bound * (1 + 1e-12) and np.abs(ours).max() <= bound
        assert np.abs(bias).max() <= bound * (1 + 1e-12) and np.abs(ours_bias).max() <= bound
        assert abs(ours.std() / weight.std() - 1) < 8 / math.sqrt(weight.size)


@needs_torch
@pytest.mark.parametrize("rows,cols,sparsity", [(10, 40, 0.3), (100, 20, 0.1), (7, 9, 0.5), (25, 10, 0.28)])
def test_sparse_zero_count_equals_torch(rows, cols, sparsity):
    reference = torch.nn.init.sparse_(torch.empty(rows, cols), sparsity).numpy()
    ours = gen("sparse", [rows, cols], params={"sparsity": sparsity})
    assert np.array_equal((ours == 0).sum(axis=0), (reference == 0).sum(axis=0))


@needs_torch
@pytest.mark.parametrize("shape", [[64, 32], [32, 64], [16, 4, 3, 3]])
def test_orthogonal_structure_equals_torch(shape):
    """Same flattening as torch.nn.init.orthogonal_: both give orthonormal rows or columns of (rows, numel/rows)."""
    torch.manual_seed(0)
    reference = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64)).numpy().reshape(shape[0], -1)
    ours = gen("orthogonal", shape, seed=22).reshape(shape[0], -1)
    axis = 0 if ours.shape[0] >= ours.shape[1] else 1
    assert orthonormal_error(reference, axis) < 1e-12 and orthonormal_error(ours, axis) < 1e-12
