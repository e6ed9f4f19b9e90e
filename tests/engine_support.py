"""Shared helpers of the engine tests and ``scripts/update-golden``.

The golden catalogue lives here (``golden_cases``) so that the test and the
regeneration script cannot disagree about which specs are pinned; the digests
themselves live in ``tests/golden/digests.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

import weightinit as wi
from weightinit.backends import BACKEND_NAMES, BackendUnavailable, get_backend
from weightinit.backends.numpy_backend import NumpyBackend
from weightinit.engine.schemes import ComplexRandomPlan, ConstantPlan, DensePlan, IndexPlan, RandomPlan

GOLDEN_PATH = Path(__file__).resolve().parent / "golden" / "digests.json"
GOLDEN_FORMAT = 1

#: Schemes whose values go through LAPACK's QR: bit-exact only per LAPACK build.
QR_SCHEMES = ("orthogonal", "delta_orthogonal")
#: Absolute tolerance of QR-based values across LAPACK builds and backends (docs/rng.md section 7).
QR_ATOL = 1e-6

ITEM_SIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
UINT_OF = {"float32": np.uint32, "float64": np.uint64, "float16": np.uint16, "bfloat16": np.uint16,
           "complex64": np.uint32, "complex128": np.uint64}  # complex: the words of both parts


# ---------------------------------------------------------------------------
# Backends


def backend_status(name: str) -> str | None:
    """None when the backend runs here, else why not."""
    try:
        get_backend(name)
    except BackendUnavailable as why:
        return str(why)
    return None


def backend_params(names=BACKEND_NAMES):
    """pytest params over backends, unavailable ones skipped with the reason (cupy also marked gpu)."""
    import pytest

    params = []
    for name in names:
        why = backend_status(name)
        marks = [pytest.mark.skipif(why is not None, reason=f"{name} unavailable: {why}")]
        if name == "cupy":
            marks.append(pytest.mark.gpu)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def available_backend_names() -> list[str]:
    return [name for name in BACKEND_NAMES if backend_status(name) is None]


# ---------------------------------------------------------------------------
# Bytes and values


def digest(raw: np.ndarray) -> str:
    """SHA-256 (hex) of the raw little-endian, row-major bytes of a storage-dtype array."""
    return hashlib.sha256(wi.to_le_bytes(raw)).hexdigest()


def bits(raw: np.ndarray, dtype: str) -> np.ndarray:
    """The storage words of an array (exact comparison that tells +0 from -0)."""
    raw = np.ascontiguousarray(raw)
    if dtype in ("complex64", "complex128"):  # (real, imaginary) words side by side on a new last axis
        return raw.reshape(raw.shape + (1,)).view(UINT_OF[dtype])
    return raw.view(UINT_OF[dtype])


def as_float64(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Storage dtype (bfloat16 as uint16 bits) -> float64 values, exactly; complex as interleaved
    (real, imaginary) float64 pairs."""
    raw = np.asarray(raw)
    if dtype in ("complex64", "complex128"):
        part = np.float32 if dtype == "complex64" else np.float64
        return np.ascontiguousarray(raw).reshape(-1).view(part).astype(np.float64)
    if dtype == "bfloat16":
        return (raw.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    return raw.astype(np.float64)


_REFERENCE = NumpyBackend(threads=1)


def reference_random(kernel, key, start: int, count: int, dtype: str) -> np.ndarray:
    """Elements ``[start, start + count)`` of ``kernel`` from the NumPy reference backend."""
    with np.errstate(over="ignore"):  # float16 overflow to inf is part of the contract
        return _REFERENCE.random(kernel, key, start, start + count, dtype)


def first_difference(got: np.ndarray, want: np.ndarray) -> str:
    """Where two storage arrays first differ: shape or dtype, else the first differing element."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"shape/dtype {got.shape} {got.dtype} != {want.shape} {want.dtype}"
    got, want = np.ascontiguousarray(got).reshape(-1), np.ascontiguousarray(want).reshape(-1)
    differ = np.flatnonzero(got.view(np.uint8) != want.view(np.uint8))
    if differ.size == 0:
        return "identical"
    index = int(differ[0]) // got.itemsize
    return f"element {index}: {got[index]!r} != {want[index]!r}"


def assert_same_bits(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    """Same dtype, shape and bytes."""
    assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes(), \
        f"{what}: {first_difference(got, want)}"


def assert_like_reference(label: str, ours: np.ndarray, theirs: np.ndarray, alpha: float) -> None:
    """``ours`` follows the distribution of the framework's own draws ``theirs``: exactly, when
    those are one constant value; else by a two-sample KS test at level ``alpha``."""
    from scipy import stats

    if np.all(theirs == theirs[0]):
        assert np.array_equal(ours, theirs[:ours.size]), label
        return
    result = stats.ks_2samp(ours, theirs)
    assert result.pvalue > alpha, f"{label}: KS {result.statistic:.3g}, p = {result.pvalue:.3g}"


def plan_kind(plan) -> str:
    if isinstance(plan, (RandomPlan, ComplexRandomPlan)):
        return "random"
    if isinstance(plan, (IndexPlan, ConstantPlan)):  # functions of the index alone: no words consumed
        return "index"
    if isinstance(plan, DensePlan):
        return "dense"
    raise TypeError(plan)


# ---------------------------------------------------------------------------
# The golden catalogue


def _case(ident: str, scheme: str, shape, dtype: str, seed: int = 0, name: str = "", params=None, **top) -> dict:
    spec = {"scheme": scheme, "shape": list(shape), "dtype": dtype, "seed": seed, "name": name}
    if params:
        spec["params"] = dict(params)
    spec.update(top)
    return {"id": f"{scheme}/{dtype}/{ident}", "spec": spec}


F32, F64, F16, BF16 = "float32", "float64", "float16", "bfloat16"


def golden_cases() -> list[dict]:
    """Every scheme in every dtype, every layout family, ranks 0 and 1, conv kernels, zero-size
    dims, non-default parameters, several seeds and names, explicit streams."""
    c = _case
    cases = [
        # --- constants (no words consumed)
        c("2d", "zeros", [3, 5], F32),
        c("rank0", "zeros", [], F64),
        c("conv", "zeros", [2, 3, 2], F16, seed=9),
        c("empty", "zeros", [0, 4], BF16),
        c("rank1", "ones", [7], F32),
        c("2d", "ones", [2, 3], F64, name="bn.weight"),
        c("rank0", "ones", [], F16),
        c("conv", "ones", [4, 2, 3], BF16),
        c("negative", "constant", [2, 3, 4], F32, params={"value": -0.375}),
        c("tiny", "constant", [5], F64, params={"value": 1e-310}),
        c("rounding", "constant", [3], F16, params={"value": 0.1}),
        c("rounding", "constant", [3], BF16, params={"value": 1.00390625 + 2 ** -20}),
        # --- plain distributions
        c("default", "uniform", [1000], F32, seed=1, name="u"),
        c("low-high", "uniform", [257], F64, seed=2, name="u", params={"low": -0.5, "high": 2.0}),
        c("rank0", "uniform", [], F16, seed=3),
        c("2d", "uniform", [31, 17], BF16, seed=4, name="emb", params={"low": -3.0, "high": 5.0}),
        c("default", "normal", [4096], F32, seed=1, name="n"),
        c("mean-std", "normal", [1000], F64, seed=2, name="n", params={"mean": 0.25, "std": 2.0}),
        c("rank1", "normal", [333], F16, seed=3, params={"std": 0.02}),
        c("rank0", "normal", [], BF16, seed=4, name="scalar"),
        c("torch-default", "truncated_normal", [4096], F32, seed=5, name="t"),
        c("absolute-0.02", "truncated_normal", [2048], F64, seed=6, name="t",
          params={"std": 0.02, "lower": -0.04, "upper": 0.04}),
        c("std-units-mirrored", "truncated_normal", [1024], F16, seed=7,
          params={"mean": 1.0, "std": 0.5, "lower": -0.5, "upper": 3.0, "bounds": "std"}),
        c("absolute-one-sided", "truncated_normal", [1024], BF16, seed=8,
          params={"mean": 0.1, "std": 0.3, "lower": 0.0, "upper": 1.0}),
        c("far-tail-low", "truncated_normal", [512], F64, seed=9, name="tail",
          params={"lower": -8.0, "upper": -7.0, "bounds": "std"}),
        c("far-tail-high", "truncated_normal", [512], F64, seed=9, name="tail",
          params={"lower": 6.0, "upper": 7.5, "bounds": "std"}),
        c("mid-tail", "truncated_normal", [512], F32, seed=10, name="tail",
          params={"lower": 2.5, "upper": 4.0, "bounds": "std"}),
        # --- PyTorch fan schemes, one layout family per dtype
        c("torch", "xavier_uniform", [64, 32], F32, seed=11, name="fc1.weight"),
        c("keras-conv", "xavier_uniform", [3, 3, 16, 32], F64, seed=11, name="conv1/kernel", layout="keras"),
        c("axes", "xavier_uniform", [16, 8, 5], F16, seed=11, layout="axes", in_axis=0, out_axis=1,
          params={"gain": 1.5}),
        c("torch-conv-tanh", "xavier_uniform", [32, 16, 3, 3], BF16, seed=11, params={"nonlinearity": "tanh"}),
        c("torch", "xavier_normal", [64, 32], F32, seed=12, name="fc2.weight", params={"gain": 0.5}),
        c("keras", "xavier_normal", [48, 24], F64, seed=12, layout="keras"),
        c("axes-batch", "xavier_normal", [4, 6, 8, 3], F16, seed=12, layout="axes", in_axis=1, out_axis=2,
          batch_axis=[0]),
        c("torch-conv1d", "xavier_normal", [8, 4, 5], BF16, seed=12, params={"nonlinearity": "leaky_relu"}),
        c("torch-default", "kaiming_uniform", [128, 64], F32, seed=13, name="fc.weight"),
        c("keras-fan_out-relu", "kaiming_uniform", [3, 3, 8, 16], F64, seed=13, layout="keras",
          params={"mode": "fan_out", "nonlinearity": "relu"}),
        c("axes-fan_avg", "kaiming_uniform", [10, 20], F16, seed=13, layout="axes", in_axis=-1, out_axis=-2,
          params={"mode": "fan_avg", "a": 0.2}),
        c("torch-conv-geo", "kaiming_uniform", [16, 8, 3, 3], BF16, seed=13,
          params={"mode": "fan_geo_avg", "nonlinearity": "selu"}),
        c("torch-relu", "kaiming_normal", [512, 256], F32, seed=7, name="fc1.weight",
          params={"mode": "fan_out", "nonlinearity": "relu"}),
        c("keras-leaky", "kaiming_normal", [5, 5, 3, 8], F64, seed=14, layout="keras",
          params={"a": 0.1, "nonlinearity": "leaky_relu"}),
        c("axes", "kaiming_normal", [6, 10], F16, seed=14, layout="axes", params={"nonlinearity": "linear"}),
        c("torch-conv3d", "kaiming_normal", [4, 2, 3, 3, 3], BF16, seed=14, params={"nonlinearity": "sigmoid"}),
        # --- Keras / JAX presets
        c("keras", "lecun_uniform", [64, 32], F32, seed=15, layout="keras"),
        c("torch", "lecun_uniform", [32, 64], F64, seed=15),
        c("keras-rank1", "lecun_uniform", [50], F16, seed=15, layout="keras"),
        c("axes", "lecun_uniform", [3, 3, 4, 5], BF16, seed=15, layout="axes"),
        c("keras-conv", "lecun_normal", [3, 3, 16, 32], F32, seed=16, layout="keras"),
        c("torch", "lecun_normal", [64, 32], F64, seed=16, name="dense"),
        c("keras-rank0", "lecun_normal", [], F16, seed=16, layout="keras"),
        c("axes", "lecun_normal", [7, 9], BF16, seed=16, layout="axes", in_axis=0, out_axis=1),
        c("keras", "glorot_uniform", [100, 50], F32, seed=17, name="dense/kernel", layout="keras"),
        c("torch-conv", "glorot_uniform", [8, 4, 3, 3], F64, seed=17),
        c("axes", "glorot_uniform", [12, 12], F16, seed=17, layout="axes"),
        c("keras-rank1", "glorot_uniform", [64], BF16, seed=17, layout="keras"),
        c("keras", "glorot_normal", [100, 50], F32, seed=18, layout="keras"),
        c("torch", "glorot_normal", [50, 100], F64, seed=18),
        c("axes-batch", "glorot_normal", [2, 3, 8, 8], F16, seed=18, layout="axes", batch_axis=[0]),
        c("keras-conv1d", "glorot_normal", [5, 4, 6], BF16, seed=18, layout="keras"),
        c("keras", "he_uniform", [256, 128], F32, seed=19, layout="keras"),
        c("torch-conv", "he_uniform", [16, 3, 5, 5], F64, seed=19),
        c("axes", "he_uniform", [9, 4], F16, seed=19, layout="axes"),
        c("keras-rank0", "he_uniform", [], BF16, seed=19, layout="keras"),
        c("keras", "he_normal", [256, 128], F32, seed=20, name="conv", layout="keras"),
        c("torch", "he_normal", [128, 256], F64, seed=20),
        c("axes", "he_normal", [3, 3, 6, 2], F16, seed=20, layout="axes", in_axis=2, out_axis=3),
        c("keras-conv3d", "he_normal", [2, 2, 2, 3, 4], BF16, seed=20, layout="keras"),
        c("default", "variance_scaling", [64, 32], F32, seed=21, layout="keras"),
        c("normal-fan_out", "variance_scaling", [64, 32], F64, seed=21, layout="keras",
          params={"scale": 0.1, "mode": "fan_out", "distribution": "normal"}),
        c("untruncated-geo", "variance_scaling", [10, 30], F16, seed=21, layout="axes",
          params={"scale": 3.0, "mode": "fan_geo_avg", "distribution": "untruncated_normal"}),
        # JAX multi-axis fans: sequences of axes (possibly empty) and a bare-int batch_axis
        c("axes-multi", "glorot_normal", [3, 4, 5, 6], F32, seed=27, layout="axes", in_axis=[0, 1],
          out_axis=[3], batch_axis=2),
        c("axes-empty-in", "he_uniform", [5, 7, 3], F16, seed=27, layout="axes", in_axis=[], out_axis=[1, 2]),
        c("axes-multi-geo", "variance_scaling", [4, 6, 2, 3], BF16, seed=27, layout="axes", in_axis=[-1],
          out_axis=[0, 2], params={"scale": 0.5, "mode": "fan_geo_avg", "distribution": "uniform"}),
        c("uniform-fan_avg", "variance_scaling", [8, 4, 3, 3], BF16, seed=21,
          params={"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"}),
        # --- structured
        c("tall", "orthogonal", [6, 4], F32, seed=22, name="rnn.weight_hh"),
        c("wide-gain", "orthogonal", [3, 7], F64, seed=22, params={"gain": 2.0}),
        c("conv-flattened", "orthogonal", [4, 2, 3], F16, seed=22, params={"nonlinearity": "relu"}),
        c("column_axis-0", "orthogonal", [5, 2, 3], BF16, seed=22, params={"column_axis": 0}),
        c("column_axis-last", "orthogonal", [2, 3, 4], F32, seed=23, layout="keras", params={"column_axis": -1}),
        c("column_axis-wide", "orthogonal", [2, 9], F64, seed=23, params={"column_axis": -1}),
        # layout=keras flattens as keras.initializers.Orthogonal (algorithm version 2)
        c("keras-4d", "orthogonal", [3, 3, 4, 5], F32, seed=23, layout="keras"),
        c("keras-3d-wide", "orthogonal", [2, 3, 8], F64, seed=23, layout="keras", params={"gain": 1.5}),
        c("keras-5d", "orthogonal", [2, 2, 2, 3, 4], F16, seed=23, layout="keras"),
        c("2d", "sparse", [20, 8], F32, seed=24, name="sparse", params={"sparsity": 0.25}),
        c("std", "sparse", [10, 6], F64, seed=24, params={"sparsity": 0.3, "std": 0.05}),
        c("all", "sparse", [4, 3], F16, seed=24, params={"sparsity": 1.0}),
        c("none", "sparse", [16, 5], BF16, seed=24, params={"sparsity": 0.0}),
        c("wide", "eye", [3, 5], F32),
        c("tall-gain", "eye", [5, 3], F64, params={"gain": -2.5}),
        c("square-relu", "eye", [4, 4], F16, params={"nonlinearity": "relu"}),
        c("empty", "eye", [0, 3], BF16),
        c("conv1d", "dirac", [4, 2, 3], F32),
        c("groups", "dirac", [6, 3, 3, 3], F64, params={"groups": 2}),
        c("keras-even", "dirac", [2, 4, 3, 4], F16, layout="keras"),
        c("conv3d", "dirac", [2, 3, 3, 2, 3], BF16, params={"groups": 2}),
        c("keras", "delta_orthogonal", [3, 4, 6], F32, seed=25, layout="keras"),
        c("torch-square", "delta_orthogonal", [4, 4, 3, 3], F64, seed=25, params={"gain": 0.5}),
        c("keras-even", "delta_orthogonal", [4, 2, 3, 3], F16, seed=25, layout="keras"),
        c("torch-3d", "delta_orthogonal", [5, 3, 3, 1, 2], BF16, seed=25),
        c("linear-weight", "torch_default", [64, 32], F32, seed=26, name="fc.weight"),
        c("linear-bias", "torch_default", [64], F64, seed=26, name="fc.bias", params={"fan_in": 32}),
        c("conv-weight", "torch_default", [16, 8, 3, 3], F16, seed=26, name="conv.weight"),
        c("conv-bias-keras", "torch_default", [16], BF16, seed=26, name="conv.bias", layout="keras",
          params={"fan_in": 72}),
        # --- seeds, names, streams, sizes
        c("seed-max", "normal", [100], F32, seed=2 ** 64 - 1, name="fc1.weight"),
        c("seed-high-bit", "normal", [100], F32, seed=2 ** 63 + 5, name="fc1.weight"),
        c("unicode-name", "normal", [100], F32, seed=1, name="编码器.层0.权重"),
        c("long-name", "normal", [100], F32, seed=1, name="model." + "layers.0." * 40 + "weight"),
        c("stream-0", "uniform", [100], F32, seed=1, name="ignored", stream=0),
        c("stream-max", "uniform", [100], F32, seed=1, stream=2 ** 64 - 1),
        c("stream-explicit-kaiming", "kaiming_normal", [32, 16], F32, seed=3, name="a", stream=123456789),
        c("zero-conv", "kaiming_normal", [8, 0, 3, 3], F32, seed=1),
        c("zero-rank1", "normal", [0], F64),
        c("zero-keras", "he_normal", [3, 3, 0, 4], BF16, layout="keras"),
        c("zero-orthogonal", "orthogonal", [0, 5], F32),
        c("multi-block", "kaiming_normal", [600, 512], F32, seed=42, name="big.weight"),
        c("multi-block", "truncated_normal", [300001], F16, seed=42, name="big", params={"std": 0.02,
                                                                                        "lower": -0.04,
                                                                                        "upper": 0.04}),
        c("multi-block", "uniform", [140000], BF16, seed=42, name="big"),
        # --- zero_rows (nn.Embedding's padding_idx): rows set to +0 after the scheme
        c("zero_rows-embedding", "normal", [10, 6], F32, seed=27, name="emb.weight", zero_rows=[0]),
        c("zero_rows-several", "uniform", [7, 3, 2], BF16, seed=27, name="table", zero_rows=[6, 2]),
        c("zero_rows-rank1", "ones", [5], F16, zero_rows=[4]),
        c("zero_rows-sparse", "sparse", [12, 5], F64, seed=27, params={"sparsity": 0.25}, zero_rows=[3]),
        # --- the post-multiplier `scale` (docs/rng.md section 5): applied to the float64 value before rounding
        c("scaled", "normal", [257], F32, seed=5, name="lsuv.0.weight", scale=0.7316291503906248),
        c("scaled", "kaiming_uniform", [16, 8, 3], BF16, seed=5, name="conv", scale=1.0000001),
        c("scaled", "truncated_normal", [1000], F16, seed=6, name="t", params={"std": 0.02}, scale=3.5),
        c("scaled", "sparse", [20, 10], F64, seed=7, name="sp", params={"sparsity": 0.3}, scale=0.125),
        c("scaled", "constant", [3], F32, params={"value": 0.1}, scale=1.1),
        c("scaled", "dirac", [4, 4, 3], F16, scale=0.3),
    ]
    cases += _complex_cases()
    ids = [case["id"] for case in cases]
    assert len(ids) == len(set(ids)), "golden ids must be unique"
    return cases


def _complex_cases() -> list[dict]:
    """Every scheme defined for complex (JAX's definitions), in complex64 and complex128."""
    c = _case
    cases = []
    for dtype, seed in (("complex64", 30), ("complex128", 31)):
        cases += [
            c("2d", "zeros", [3, 4], dtype),
            c("rank1", "ones", [5], dtype),
            c("2d", "constant", [2, 3], dtype, params={"value": -1.5}),
            c("mean", "normal", [7, 9], dtype, seed=seed, name="c.normal", params={"mean": 0.25, "std": 0.5}),
            c("torch", "xavier_normal", [6, 10], dtype, seed=seed),
            c("conv", "kaiming_normal", [8, 4, 3], dtype, seed=seed, params={"nonlinearity": "relu"}),
            c("axes", "lecun_uniform", [5, 7], dtype, seed=seed, layout="axes", in_axis=[0], out_axis=[1]),
            c("keras", "lecun_normal", [3, 3, 4, 5], dtype, seed=seed, layout="keras"),
            c("axes-multi", "glorot_uniform", [4, 6, 2, 3], dtype, seed=seed, layout="axes", in_axis=[0, 1],
              out_axis=3, batch_axis=2),
            c("keras", "glorot_normal", [9, 11], dtype, seed=seed, layout="keras"),
            c("axes-empty-in", "he_uniform", [3, 5, 7], dtype, seed=seed, layout="axes", in_axis=[],
              out_axis=[1, 2]),
            c("keras", "he_normal", [2, 2, 3, 4], dtype, seed=seed, layout="keras"),
            c("normal-geo", "variance_scaling", [10, 30], dtype, seed=seed, layout="axes",
              params={"scale": 2.0, "mode": "fan_geo_avg", "distribution": "normal"}),
            c("uniform-out", "variance_scaling", [12, 5], dtype, seed=seed, layout="keras",
              params={"scale": 0.5, "mode": "fan_out", "distribution": "uniform"}),
            c("tall", "orthogonal", [6, 4], dtype, seed=seed),
            c("keras-wide", "orthogonal", [2, 3, 8], dtype, seed=seed, layout="keras", params={"gain": 1.5}),
            c("wide", "eye", [3, 5], dtype, params={"gain": 2.0}),
            c("conv1d", "dirac", [4, 2, 3], dtype),
            c("keras", "delta_orthogonal", [3, 4, 6], dtype, seed=seed, layout="keras"),
        ]
    return cases


def _pre_qr_case(case: dict) -> dict:
    """The normal(0, 1) float64 matrix an orthogonal/delta_orthogonal case factors, as a `normal` spec:
    same key, words 0 .. rows*cols of substream 0."""
    spec = case["spec"]
    shape = list(spec["shape"])
    if spec["scheme"] == "delta_orthogonal":
        torch_layout = spec.get("layout", "torch") == "torch"
        out_ch, in_ch = (shape[0], shape[1]) if torch_layout else (shape[-1], shape[-2])
        shape = [out_ch, in_ch]
    complex_values = spec["dtype"] in ("complex64", "complex128")  # a complex normal: parts N(0, 1/2)
    pre = {"scheme": "normal", "shape": shape, "dtype": "complex128" if complex_values else "float64",
           "seed": spec.get("seed", 0),
           "name": spec.get("name", "")}
    if "stream" in spec:
        pre["stream"] = spec["stream"]
    return {"id": case["id"] + "/pre-qr", "spec": pre}


def golden_catalogue() -> list[dict]:
    """golden_cases() plus, after every QR case, the bit-exact normal matrix it factors."""
    out = []
    for case in golden_cases():
        out.append(case)
        if case["spec"]["scheme"] in QR_SCHEMES and math.prod(case["spec"]["shape"]) > 0:
            pre = _pre_qr_case(case)
            case["pre_qr"] = pre["id"]
            out.append(pre)
    return out


def compute_entry(case: dict, backend: str = "numpy") -> dict:
    """The golden record of one case, computed with ``backend``."""
    spec = wi.spec_from_dict(case["spec"])
    compiled = wi.compile_spec(spec, backend=backend)
    raw = wi.generate_raw(spec, backend=backend)
    kind = plan_kind(compiled.plan)
    exact = not (spec.scheme in QR_SCHEMES and spec.numel > 0)
    entry = {"id": case["id"], "spec": case["spec"], "sha256": digest(raw), "exact": exact, "plan": kind,
             "numel": spec.numel, "nbytes": spec.nbytes, "key": [str(spec.seed), str(spec.stream)]}
    if kind == "random":
        entry["kernel"] = {"kind": compiled.plan.kernel.kind, "params": list(compiled.plan.kernel.params),
                           "sparse_mask": getattr(compiled.plan, "mask", None) is not None}
    if not exact:
        values = as_float64(raw, spec.dtype).reshape(-1)
        atol = QR_ATOL
        if spec.dtype in ("float16", "bfloat16"):
            # A last-bit change of the float64 Q may move a value across a rounding boundary of
            # the half type: allow one unit in its last place on top.
            atol += float(max(_half_spacing(v, spec.dtype) for v in values))
        entry["values"] = [float(v) for v in values]
        entry["atol"] = atol
        entry["pre_qr"] = case["pre_qr"]
    return entry


def _half_spacing(value: float, dtype: str) -> float:
    if dtype == "float16":
        return float(np.spacing(np.float16(abs(value))))
    # bfloat16 has float32's exponent range and 8 significand bits
    exponent = math.frexp(abs(value))[1] if value else -125
    return math.ldexp(1.0, max(exponent, -125) - 8)


def compute_golden(backend: str = "numpy") -> dict:
    return {"format": GOLDEN_FORMAT, "algorithm_version": wi.ALGORITHM_VERSION,
            "description": "SHA-256 of the raw little-endian row-major bytes of each spec; "
                           "regenerate only with scripts/update-golden --force (a new algorithm version)",
            "entries": [compute_entry(case, backend) for case in golden_catalogue()]}


def load_golden(path: Path = GOLDEN_PATH) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def golden_digests(path: Path = GOLDEN_PATH) -> dict[str, str]:
    """Pinned SHA-256 of each golden spec, keyed by the spec as JSON with sorted keys."""
    return {json.dumps(e["spec"], sort_keys=True): e["sha256"] for e in load_golden(path)["entries"]}


def dump_golden(data: dict) -> str:
    """Pretty at the top level, one entry per line (reviewable diffs: one changed line per changed spec)."""
    head = {k: v for k, v in data.items() if k != "entries"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    lines.append(' "entries": [')
    entries = [json.dumps(e, ensure_ascii=False, separators=(", ", ": ")) for e in data["entries"]]
    lines += [f"  {e}," for e in entries[:-1]] + [f"  {e}" for e in entries[-1:]]
    lines += [" ]", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == data
    return text


def diff_golden(old: dict, new: dict) -> list[str]:
    """Human-readable differences that matter: version, added/removed entries, changed digests or specs."""
    lines = []
    if old.get("algorithm_version") != new.get("algorithm_version"):
        lines.append(f"algorithm_version: {old.get('algorithm_version')} -> {new.get('algorithm_version')}")
    before = {e["id"]: e for e in old.get("entries", [])}
    after = {e["id"]: e for e in new.get("entries", [])}
    for ident in before.keys() - after.keys():
        lines.append(f"removed: {ident}")
    for ident, entry in after.items():
        if ident not in before:
            lines.append(f"added: {ident} {entry['sha256']}")
            continue
        previous = before[ident]
        if previous["spec"] != entry["spec"]:
            lines.append(f"spec changed: {ident}")
        if previous["sha256"] != entry["sha256"]:
            lines.append(f"digest changed: {ident} {previous['sha256']} -> {entry['sha256']}")
        elif {k: v for k, v in previous.items() if k != "sha256"} != {k: v for k, v in entry.items()
                                                                      if k != "sha256"}:
            lines.append(f"record changed: {ident}")
    return sorted(lines)
