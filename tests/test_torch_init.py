"""weightinit.torch drop-ins against torch.nn.init: statistics, exact constants, bytes of weightinit.generate,
every dtype, non-contiguous tensors, torch's own argument errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

import weightinit as wi  # noqa: E402
import weightinit.torch as winit  # noqa: E402
from torch.nn import init as tinit  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: KS p-value below which two samples are called different; torch is seeded, so each test is deterministic.
KS_ALPHA = 1e-4

# (function name, positional args after the tensor, keyword args, engine scheme, engine params)
RANDOM_CASES = [
    ("uniform_", (-0.3, 0.7), {}, "uniform", {"low": -0.3, "high": 0.7}),
    ("normal_", (0.5, 2.0), {}, "normal", {"mean": 0.5, "std": 2.0}),
    ("trunc_normal_", (0.1, 0.5, -0.4, 0.9), {}, "truncated_normal",
     {"mean": 0.1, "std": 0.5, "lower": -0.4, "upper": 0.9, "bounds": "absolute"}),
    ("xavier_uniform_", (), {"gain": 1.5}, "xavier_uniform", {"gain": 1.5}),
    ("xavier_normal_", (0.8,), {}, "xavier_normal", {"gain": 0.8}),
    ("kaiming_uniform_", (), {"a": math.sqrt(5)}, "kaiming_uniform",
     {"a": math.sqrt(5), "mode": "fan_in", "nonlinearity": "leaky_relu"}),
    ("kaiming_normal_", (), {"mode": "fan_out", "nonlinearity": "relu"}, "kaiming_normal",
     {"a": 0, "mode": "fan_out", "nonlinearity": "relu"}),
    ("orthogonal_", (), {"gain": 2.0}, "orthogonal", {"gain": 2.0}),
    ("sparse_", (0.3,), {"std": 0.05}, "sparse", {"sparsity": 0.3, "std": 0.05}),
]
#: >= 10^5 elements each; the conv shapes exercise the receptive field in the fans.
KS_SHAPES = {"2d": (512, 256), "conv": (64, 32, 7, 7)}


def _values(tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).reshape(-1).numpy()


def _storage_bits(tensor) -> bytes:
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return tensor.numpy().tobytes()


def _torch_reference(name, shape, args, kwargs, seed=1234):
    torch.manual_seed(seed)
    return getattr(tinit, name)(torch.empty(shape), *args, **kwargs)


@pytest.mark.parametrize("shape_id", KS_SHAPES)
@pytest.mark.parametrize("case", RANDOM_CASES, ids=[c[0] for c in RANDOM_CASES])
def test_statistics_match_torch(case, shape_id):
    name, args, kwargs, _, _ = case
    shape = KS_SHAPES[shape_id]
    if name == "sparse_" and len(shape) != 2:
        shape = (448, 256)
    ours = getattr(winit, name)(torch.empty(shape), *args, **kwargs, seed=3, name="w")
    theirs = _torch_reference(name, shape, args, kwargs)
    result = stats.ks_2samp(_values(ours), _values(theirs))
    assert result.pvalue > KS_ALPHA, f"{name} {shape}: KS {result.statistic:.4g}, p = {result.pvalue:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", RANDOM_CASES, ids=[c[0] for c in RANDOM_CASES])
def test_bits_equal_weightinit_generate_in_every_dtype(case, dtype):
    name, args, kwargs, scheme, params = case
    tensor = torch.empty((48, 20), dtype=DTYPES[dtype])
    address = tensor.data_ptr()
    result = getattr(winit, name)(tensor, *args, **kwargs, seed=11, name="layer.weight")
    assert result is tensor and tensor.data_ptr() == address
    want = wi.generate_raw({"scheme": scheme, "shape": [48, 20], "dtype": dtype, "seed": 11,
                            "name": "layer.weight", "params": params})
    assert _storage_bits(tensor) == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_constants_eye_dirac(dtype):
    torch_dtype = DTYPES[dtype]
    for name, shape, args in (("constant_", (5, 7), (0.3,)), ("ones_", (4, 3, 2), ()), ("zeros_", (9,), ()),
                              ("eye_", (4, 6), ()), ("eye_", (6, 4), ()), ("dirac_", (6, 3, 3), ()),
                              ("dirac_", (8, 3, 3, 5), (2,)), ("dirac_", (4, 6, 3, 3, 3), (4,))):
        ours = getattr(winit, name)(torch.full(shape, float("nan"), dtype=torch_dtype), *args)
        theirs = getattr(tinit, name)(torch.full(shape, float("nan"), dtype=torch_dtype), *args)
        assert torch.equal(ours, theirs), (name, shape, args)


@pytest.mark.parametrize("shape", [(64, 128), (128, 64), (16, 4, 3, 3), (50, 50)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    gain = 1.5
    q = winit.orthogonal_(torch.empty(shape, dtype=torch.float64), gain=gain, seed=4).reshape(shape[0], -1) / gain
    rows, cols = q.shape
    product = q @ q.T if rows < cols else q.T @ q
    assert torch.allclose(product, torch.eye(min(rows, cols), dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("sparsity,shape", [(0.1, (100, 30)), (0.35, (64, 64)), (1.0, (5, 4)), (0.0, (8, 3))])
def test_sparse_zeros_per_column_as_torch(sparsity, shape):
    ours = winit.sparse_(torch.empty(shape), sparsity, seed=2)
    theirs = tinit.sparse_(torch.empty(shape), sparsity)
    want = math.ceil(sparsity * shape[0])
    assert (ours == 0).sum(dim=0).tolist() == [want] * shape[1]
    assert (theirs == 0).sum(dim=0).tolist() == [want] * shape[1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_views_are_filled_in_logical_row_major_order(dtype):
    spec = {"scheme": "kaiming_normal", "shape": [40, 24], "dtype": dtype, "seed": 8, "name": "t",
            "params": {"a": 0, "mode": "fan_in", "nonlinearity": "leaky_relu"}}
    want = wi.generate_raw(spec).tobytes()
    transposed = torch.zeros((24, 40), dtype=DTYPES[dtype]).t()
    strided_base = torch.zeros((40, 48), dtype=DTYPES[dtype])
    strided = strided_base[:, ::2]
    for view in (transposed, strided):
        assert not view.is_contiguous()
        assert winit.kaiming_normal_(view, seed=8, name="t") is view
        assert _storage_bits(view) == want
    assert not strided_base[:, 1::2].any(), "elements outside the view were written"


def test_parameter_and_torch_keyword_names():
    parameter = torch.nn.Parameter(torch.empty(30, 10))
    assert winit.xavier_uniform_(tensor=parameter, gain=2.0, seed=5, name="p") is parameter
    assert parameter.requires_grad and parameter.grad is None
    want = wi.generate_raw({"scheme": "xavier_uniform", "shape": [30, 10], "seed": 5, "name": "p",
                            "params": {"gain": 2.0}})
    assert _storage_bits(parameter) == want.tobytes()
    winit.sparse_(tensor=parameter, sparsity=0.5, std=0.1, generator=torch.Generator(), seed=1)
    assert (parameter == 0).sum().item() == 15 * 10


def test_seed_and_name_choose_the_stream():
    a = winit.normal_(torch.empty(1000), seed=1, name="a")
    assert torch.equal(a, winit.normal_(torch.empty(1000), seed=1, name="a"))
    assert not torch.equal(a, winit.normal_(torch.empty(1000), seed=2, name="a"))
    assert not torch.equal(a, winit.normal_(torch.empty(1000), seed=1, name="b"))


def test_calculate_gain_is_torchs():
    for nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                         "conv_transpose3d", "sigmoid", "tanh", "relu", "selu"):
        assert winit.calculate_gain(nonlinearity) == tinit.calculate_gain(nonlinearity)
    for slope in (None, 0, 0.2, 3):
        assert winit.calculate_gain("leaky_relu", slope) == tinit.calculate_gain("leaky_relu", slope)


ARGUMENT_ERRORS = [
    ("xavier_uniform_", (3,), (), {}),
    ("xavier_normal_", (), (), {}),
    ("kaiming_uniform_", (3,), (), {}),
    ("kaiming_normal_", (3, 4), (), {"mode": "fan_sideways"}),
    ("kaiming_normal_", (3, 4), (), {"nonlinearity": "swish"}),
    ("kaiming_uniform_", (3, 4), ("steep",), {}),
    ("eye_", (3,), (), {}),
    ("eye_", (2, 2, 2), (), {}),
    ("dirac_", (3, 3), (), {}),
    ("dirac_", (3, 3, 3, 3, 3, 3), (), {}),
    ("dirac_", (6, 2, 3), (4,), {}),
    ("sparse_", (3, 3, 3), (0.1,), {}),
    ("orthogonal_", (5,), (), {}),
    ("uniform_", (4,), (1.0, -1.0), {}),
    ("normal_", (4,), (0.0, -1.0), {}),
    ("trunc_normal_", (4,), (0.0, 1.0, 2.0, -2.0), {}),
]


@pytest.mark.parametrize("name,shape,args,kwargs", ARGUMENT_ERRORS)
def test_argument_errors_are_torchs(name, shape, args, kwargs):
    with pytest.raises(Exception) as theirs:
        getattr(tinit, name)(torch.empty(shape), *args, **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        getattr(winit, name)(torch.empty(shape), *args, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_calculate_gain_errors_are_torchs():
    for args in (("swish",), ("leaky_relu", "x"), ("leaky_relu", True)):
        with pytest.raises(ValueError) as theirs:
            tinit.calculate_gain(*args)
        with pytest.raises(ValueError, match=str(theirs.value)):
            winit.calculate_gain(*args)


def test_zero_element_kaiming_warns_like_torch_and_other_shapes_fill():
    with pytest.warns(UserWarning, match="zero-element"):
        winit.kaiming_normal_(torch.empty(0, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert winit.xavier_uniform_(torch.empty(4, 0)).numel() == 0
        assert winit.normal_(torch.empty(())).shape == ()


def test_integer_tensors_are_refused():
    with pytest.raises(TypeError, match="int64"):
        winit.normal_(torch.empty(3, dtype=torch.int64))


def test_meta_tensors_are_left_alone():
    tensor = torch.empty(8, 4, device="meta")
    assert winit.kaiming_uniform_(tensor) is tensor


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_tensor_gets_the_same_bytes(dtype):
    for name, args in (("kaiming_normal_", ()), ("sparse_", (0.2,)), ("eye_", ())):
        on_device = getattr(winit, name)(torch.empty((64, 48), dtype=DTYPES[dtype], device="cuda"), *args, seed=6)
        on_host = getattr(winit, name)(torch.empty((64, 48), dtype=DTYPES[dtype]), *args, seed=6)
        assert _storage_bits(on_device.cpu()) == _storage_bits(on_host), name
