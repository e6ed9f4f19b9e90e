"""Bad specs: one case per rule, each naming the offending field in ``SpecError.field``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import weightinit as wi
from weightinit import LimitError, Limits, SpecError, spec_from_dict

OK = {"scheme": "normal", "shape": [4, 3]}


def spec(**fields):
    return {**OK, **fields}


def bad(scheme, shape, params=None, **fields):
    data = {"scheme": scheme, "shape": shape, **fields}
    if params is not None:
        data["params"] = params
    return data


# (id, spec dict, expected field)
RULES = [
    # scheme
    ("unknown scheme", spec(scheme="he_normalish"), "scheme"),
    ("scheme not a string", spec(scheme=3), "scheme"),
    ("missing scheme", {"shape": [3]}, "scheme"),
    # shape
    ("missing shape", {"scheme": "normal"}, "shape"),
    ("negative dim", spec(shape=[3, -1]), "shape"),
    ("non-int dim", spec(shape=[3, 2.5]), "shape"),
    ("string dim", spec(shape=[3, "4"]), "shape"),
    ("bool dim", spec(shape=[True, 3]), "shape"),
    ("shape a string", spec(shape="3,4"), "shape"),
    ("shape a number", spec(shape=12), "shape"),
    ("rank too high", spec(shape=[1] * 33), "shape"),
    # dtype
    ("bad dtype", spec(dtype="int8"), "dtype"),
    ("dtype not a string", spec(dtype=32), "dtype"),
    # seed
    ("seed negative", spec(seed=-1), "seed"),
    ("seed 2**64", spec(seed=2 ** 64), "seed"),
    ("seed fractional", spec(seed=1.5), "seed"),
    ("seed string", spec(seed="7"), "seed"),
    ("seed bool", spec(seed=True), "seed"),
    # stream
    ("stream negative", spec(stream=-1), "stream"),
    ("stream 2**64", spec(stream=2 ** 64), "stream"),
    ("stream string", spec(stream="fc1"), "stream"),
    # name
    ("name not a string", spec(name=5), "name"),
    ("name too long", spec(name="x" * 4097), "name"),
    # unknown fields and params
    ("unknown spec field", spec(initializer="normal"), "initializer"),
    ("params not a mapping", spec(params=[1, 2]), "params"),
    ("unknown param", bad("normal", [3], {"stddev": 0.1}), "params.stddev"),
    ("param of another scheme", bad("uniform", [3], {"std": 0.1}), "params.std"),
    ("param on a parameterless scheme", bad("zeros", [3], {"value": 1.0}), "params.value"),
    # required params
    ("constant without value", bad("constant", [3]), "params.value"),
    ("sparse without sparsity", bad("sparse", [3, 4]), "params.sparsity"),
    # numbers
    ("NaN param", bad("normal", [3], {"mean": math.nan}), "params.mean"),
    ("inf param", bad("uniform", [3], {"high": math.inf}), "params.high"),
    ("-inf param", bad("truncated_normal", [3], {"lower": -math.inf}), "params.lower"),
    ("NaN constant", bad("constant", [3], {"value": math.nan}), "params.value"),
    ("NaN gain", bad("xavier_normal", [3, 4], {"gain": math.nan}), "params.gain"),
    ("string number", bad("normal", [3], {"std": "0.1"}), "params.std"),
    ("bool number", bad("normal", [3], {"mean": False}), "params.mean"),
    ("std zero", bad("normal", [3], {"std": 0.0}), "params.std"),
    ("std negative", bad("truncated_normal", [3], {"std": -1.0}), "params.std"),
    ("sparse std zero", bad("sparse", [3, 4], {"sparsity": 0.5, "std": 0.0}), "params.std"),
    ("variance_scaling scale zero", bad("variance_scaling", [3, 4], {"scale": 0.0}), "params.scale"),
    # intervals
    ("uniform low == high", bad("uniform", [3], {"low": 1.0, "high": 1.0}), "params.high"),
    ("uniform low > high", bad("uniform", [3], {"low": 2.0, "high": 1.0}), "params.high"),
    ("truncated lower == upper", bad("truncated_normal", [3], {"lower": 0.5, "upper": 0.5}), "params.upper"),
    ("truncated lower > upper", bad("truncated_normal", [3], {"lower": 1.0, "upper": -1.0, "bounds": "std"}),
     "params.upper"),
    ("truncated interval without mass", bad("truncated_normal", [3], {"lower": 50.0, "upper": 60.0,
                                                                      "bounds": "std"}), "params.lower"),
    ("sparsity below 0", bad("sparse", [3, 4], {"sparsity": -0.1}), "params.sparsity"),
    ("sparsity above 1", bad("sparse", [3, 4], {"sparsity": 1.01}), "params.sparsity"),
    # choices
    ("bad mode", bad("kaiming_normal", [3, 4], {"mode": "fan_sum"}), "params.mode"),
    ("bad variance_scaling mode", bad("variance_scaling", [3, 4], {"mode": "avg"}), "params.mode"),
    ("bad nonlinearity", bad("kaiming_uniform", [3, 4], {"nonlinearity": "gelu"}), "params.nonlinearity"),
    ("bad xavier nonlinearity", bad("xavier_uniform", [3, 4], {"nonlinearity": "swish"}), "params.nonlinearity"),
    ("bad distribution", bad("variance_scaling", [3, 4], {"distribution": "gaussian"}), "params.distribution"),
    ("bad bounds", bad("truncated_normal", [3], {"bounds": "sigma"}), "params.bounds"),
    ("choice not a string", bad("kaiming_normal", [3, 4], {"mode": 1}), "params.mode"),
    ("bad layout", spec(layout="tf"), "layout"),
    # gain
    ("gain with nonlinearity", bad("xavier_uniform", [3, 4], {"gain": 2.0, "nonlinearity": "relu"}),
     "params.gain"),
    ("orthogonal gain with nonlinearity", bad("orthogonal", [3, 4], {"gain": 2.0, "nonlinearity": "tanh"}),
     "params.gain"),
    ("slope without nonlinearity", bad("xavier_normal", [3, 4], {"a": 0.2}), "params.a"),
    # fans
    ("torch fans of 1-D", bad("kaiming_normal", [5]), "shape"),
    ("torch fans of 0-D", bad("xavier_uniform", []), "shape"),
    ("torch fans of 1-D preset", bad("he_normal", [5]), "shape"),
    ("axes in_axis out of range", bad("kaiming_normal", [3, 4], layout="axes", in_axis=2), "in_axis"),
    ("axes out_axis out of range", bad("lecun_normal", [3, 4], layout="axes", out_axis=-3), "out_axis"),
    ("batch axis out of range", bad("he_uniform", [3, 4, 5], layout="axes", batch_axis=[3]), "batch_axis"),
    ("batch_axis not a list", bad("he_uniform", [3, 4, 5], layout="axes", batch_axis="0"), "batch_axis"),
    ("batch_axis entry not an int", bad("he_uniform", [3, 4, 5], layout="axes", batch_axis=[0.5]), "batch_axis"),
    ("in_axis not an int", bad("he_uniform", [3, 4], layout="axes", in_axis="0"), "in_axis"),
    # ranks of structured schemes
    ("eye 1-D", bad("eye", [3]), "shape"),
    ("eye 3-D", bad("eye", [3, 3, 3]), "shape"),
    ("sparse 3-D", bad("sparse", [3, 4, 5], {"sparsity": 0.5}), "shape"),
    ("dirac 2-D", bad("dirac", [3, 3]), "shape"),
    ("dirac 6-D", bad("dirac", [2, 2, 1, 1, 1, 1]), "shape"),
    ("delta_orthogonal 2-D", bad("delta_orthogonal", [4, 4]), "shape"),
    ("delta_orthogonal 6-D", bad("delta_orthogonal", [1, 1, 1, 1, 4, 4]), "shape"),
    ("orthogonal 1-D", bad("orthogonal", [4]), "shape"),
    ("orthogonal 0-D", bad("orthogonal", []), "shape"),
    ("orthogonal column_axis out of range", bad("orthogonal", [3, 4], {"column_axis": 2}), "params.column_axis"),
    ("orthogonal column_axis not an int", bad("orthogonal", [3, 4], {"column_axis": 1.5}), "params.column_axis"),
    # structured scheme parameters
    ("dirac groups not dividing", bad("dirac", [6, 3, 3], {"groups": 4}), "params.groups"),
    ("dirac groups not dividing keras", bad("dirac", [3, 3, 6], {"groups": 4}, layout="keras"), "params.groups"),
    ("dirac groups zero", bad("dirac", [6, 3, 3], {"groups": 0}), "params.groups"),
    ("dirac groups not an int", bad("dirac", [6, 3, 3], {"groups": 1.5}), "params.groups"),
    ("delta_orthogonal out < in", bad("delta_orthogonal", [3, 6, 4], layout="keras"), "shape"),
    ("delta_orthogonal out < in torch", bad("delta_orthogonal", [4, 6, 3]), "shape"),
    ("torch_default 1-D without fan_in", bad("torch_default", [64]), "shape"),
    ("torch_default negative fan_in", bad("torch_default", [64], {"fan_in": -1}), "params.fan_in"),
]


@pytest.mark.parametrize("data,field", [pytest.param(d, f, id=i) for i, d, f in RULES])
def test_bad_spec_names_the_field(data, field):
    with pytest.raises(SpecError) as caught:
        spec_from_dict(data)
    error = caught.value
    assert error.field == field, f"{error!s}"
    assert str(error).startswith(f"{field}: "), str(error)
    assert error.message and error.message in str(error)
    assert not isinstance(error, LimitError)
    # generate() applies the same validation
    with pytest.raises(SpecError) as again:
        wi.generate(data)
    assert again.value.field == field


def test_every_rule_case_is_valid_once_fixed():
    """The base specs used above are themselves valid, so each case fails for its one reason."""
    for data in [OK, bad("eye", [3, 3]), bad("dirac", [6, 3, 3], {"groups": 3}), bad("delta_orthogonal", [3, 4, 6],
                                                                                   layout="keras"),
                 bad("he_uniform", [3, 4, 5], layout="axes", batch_axis=[0]), bad("torch_default", [64],
                                                                                 {"fan_in": 3}),
                 bad("sparse", [3, 4], {"sparsity": 0.5}), bad("constant", [3], {"value": 1.0})]:
        spec_from_dict(data)


def test_spec_error_is_a_value_error_with_field_and_message():
    error = SpecError("params.std", "must be > 0, got 0.0")
    assert isinstance(error, ValueError)
    assert (error.field, error.message, str(error)) == ("params.std", "must be > 0, got 0.0",
                                                        "params.std: must be > 0, got 0.0")


def test_spec_not_a_mapping():
    with pytest.raises(SpecError) as caught:
        spec_from_dict(["normal", [3]])
    assert caught.value.field == "spec"


@pytest.mark.parametrize("field,value", [("seed", ""), ("seed", False), ("seed", []), ("dtype", ""),
                                         ("layout", ""), ("batch_axis", 5), ("batch_axis", ""),
                                         ("in_axis", ""), ("out_axis", [None])])
def test_falsy_values_are_not_silently_defaults(field, value):
    """Only a missing (or null) field takes the default; a wrong value of any kind is an error."""
    data = bad("he_uniform", [3, 4, 5], layout="axes") if field.endswith("_axis") else spec()
    data[field] = value
    with pytest.raises(SpecError) as caught:
        spec_from_dict(data)
    assert caught.value.field == field


def test_missing_or_null_fields_take_defaults():
    base = spec_from_dict(OK)
    nulls = spec_from_dict({**OK, "seed": None, "dtype": None, "layout": None, "name": None, "stream": None,
                            "params": None, "batch_axis": None, "in_axis": None, "out_axis": None})
    assert nulls == base
    assert (base.dtype, base.seed, base.layout, base.name, base.batch_axis) == ("float32", 0, "torch", "", ())


def test_name_must_be_encodable():
    """A lone surrogate (legal in a Python str or a JSON string) cannot be hashed as UTF-8."""
    with pytest.raises(SpecError) as caught:
        spec_from_dict(spec(name="layer\ud800"))
    assert caught.value.field == "name"


# ---------------------------------------------------------------------------
# Limits


def test_element_limit_is_configurable():
    limits = Limits(max_elements=100)
    spec_from_dict(spec(shape=[10, 10]), limits)
    with pytest.raises(LimitError) as caught:
        spec_from_dict(spec(shape=[10, 11]), limits)
    assert caught.value.field == "shape"
    assert str(caught.value).startswith("shape: ")
    assert isinstance(caught.value, SpecError)
    with pytest.raises(LimitError):
        wi.generate(spec(shape=[101]), limits=limits)
    assert wi.generate(spec(shape=[101]), limits=None).shape == (101,)   # limits=None disables the check


def test_default_element_limit():
    assert wi.DEFAULT_LIMITS.max_elements == 2 ** 32
    spec_from_dict(spec(shape=[2 ** 16, 2 ** 16]))
    with pytest.raises(LimitError) as caught:
        spec_from_dict(spec(shape=[2 ** 16, 2 ** 16 + 1]))
    assert caught.value.field == "shape"
    with pytest.raises(LimitError):
        spec_from_dict(spec(shape=[2 ** 40] * 3))   # no overflow of the element count


@pytest.mark.parametrize("scheme,shape,params", [("orthogonal", [20, 20], {}), ("delta_orthogonal", [7, 4, 3], {}),
                                                 ("sparse", [20, 20], {"sparsity": 0.1})])
def test_dense_limit(scheme, shape, params):
    """Schemes built whole are bounded by max_dense_elements; streamed schemes are not."""
    limits = Limits(max_elements=10 ** 6, max_dense_elements=80)
    spec_from_dict({"scheme": "normal", "shape": shape}, limits)
    with pytest.raises(LimitError) as caught:
        spec_from_dict({"scheme": scheme, "shape": shape, "params": params}, limits)
    assert caught.value.field == "shape"
    assert scheme in str(caught.value)
    ok = Limits(max_elements=10 ** 6, max_dense_elements=math.prod(shape))
    spec_from_dict({"scheme": scheme, "shape": shape, "params": params}, ok)


# ---------------------------------------------------------------------------
# Ranges and chunk sizes


@pytest.mark.parametrize("start,stop", [(5, 3), (-1, 4), (0, 13), (13, 13), (2, None), (None, -1), (1.0, 3),
                                        (0, "3"), (True, 3)])
def test_bad_range(start, stop):
    if start == 2 and stop is None:   # [2, numel) is fine: control case
        assert wi.generate(spec(), start, stop).shape == (10,)
        return
    with pytest.raises(SpecError) as caught:
        wi.generate(spec(), start, stop)
    assert caught.value.field == "range"
    assert str(caught.value).startswith("range: ")
    with pytest.raises(SpecError):
        list(wi.iter_chunks(spec(), start, stop))


def test_empty_and_full_ranges_are_fine():
    assert wi.generate(spec(), 12, 12).shape == (0,)
    assert wi.generate(spec(), 0, 12).shape == (12,)
    assert wi.generate(spec(shape=[0, 3]), 0, 0).shape == (0,)


@pytest.mark.parametrize("chunk", [0, -5, 2.5, True, "8"])
def test_bad_chunk_elements(chunk):
    with pytest.raises(SpecError) as caught:
        list(wi.iter_chunks(spec(), chunk_elements=chunk))
    assert caught.value.field == "chunk_elements"


def test_valid_edge_values_are_accepted():
    """Boundaries of each rule that must not be errors."""
    assert spec_from_dict(spec(seed=2 ** 64 - 1)).seed == 2 ** 64 - 1
    assert spec_from_dict(spec(seed=3.0)).seed == 3
    assert spec_from_dict(spec(stream=0)).stream == 0
    assert spec_from_dict(spec(shape=[1] * 32)).numel == 1
    assert spec_from_dict(spec(shape=[])).numel == 1
    assert spec_from_dict(spec(shape=[0, 5])).numel == 0
    assert spec_from_dict(spec(dtype="BF16")).dtype == "bfloat16"
    assert spec_from_dict(spec(name="x" * 4096)).name == "x" * 4096
    for sparsity in (0.0, 1.0):
        spec_from_dict(bad("sparse", [3, 4], {"sparsity": sparsity}))
    spec_from_dict(bad("delta_orthogonal", [3, 4, 4], layout="keras"))      # out == in
    spec_from_dict(bad("kaiming_normal", [5], layout="keras"))               # keras rank 1: (n, n)
    spec_from_dict(bad("kaiming_normal", [], layout="keras"))                # keras rank 0: (1, 1)
    spec_from_dict(bad("torch_default", [64], {"fan_in": 0}))
    spec_from_dict(bad("truncated_normal", [3], {"lower": 30.0, "upper": 30.5, "bounds": "std"}))
    spec_from_dict(bad("orthogonal", [3, 4], {"column_axis": -2}))
    assert np.isfinite(wi.generate(bad("truncated_normal", [64], {"lower": 30.0, "upper": 30.5, "bounds": "std"},
                                       dtype="float64"))).all()


@pytest.mark.parametrize("spec", [
    {"scheme": "uniform", "shape": [3], "params": {"low": -1e308, "high": 1e308}},
    {"scheme": "normal", "shape": [3], "params": {"std": 1e39}},
    {"scheme": "normal", "shape": [3], "dtype": "float16", "params": {"std": 1e4}},
    {"scheme": "variance_scaling", "shape": [3, 3], "params": {"scale": 1e308, "distribution": "uniform"}},
    {"scheme": "sparse", "shape": [4, 4], "dtype": "float16", "params": {"sparsity": 0.5, "std": 1e5}},
], ids=["uniform-width-overflow", "float32-std-overflow", "float16-std-overflow", "scale-overflow",
        "sparse-float16-std-overflow"])
def test_parameters_whose_values_overflow_the_dtype_are_rejected(spec):
    with pytest.raises(wi.SpecError) as caught:
        wi.spec_from_dict(spec)
    assert caught.value.field == "params"


def test_large_but_representable_parameters_are_accepted():
    assert wi.generate({"scheme": "normal", "shape": [64], "dtype": "float16", "params": {"std": 1000.0}}).max() < 65504
    assert np.isfinite(wi.generate({"scheme": "normal", "shape": [64], "params": {"std": 1e37}})).all()


@pytest.mark.parametrize("field, value", [("in_axis", 0), ("out_axis", 1), ("batch_axis", [0])])
def test_axis_fields_without_axes_layout_are_rejected(field, value):
    with pytest.raises(wi.SpecError) as caught:
        wi.spec_from_dict({"scheme": "kaiming_normal", "shape": [4, 4, 3], "layout": "torch", field: value})
    assert caught.value.field == field


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True])
def test_generate_rejects_bad_chunk_sizes_like_iter_chunks(chunk):
    with pytest.raises(wi.SpecError) as caught:
        wi.generate({"scheme": "normal", "shape": [8]}, chunk_elements=chunk)
    assert caught.value.field == "chunk_elements"
