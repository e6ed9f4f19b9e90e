"""Multi-axis fans (JAX in_axis/out_axis/batch_axis as ints or sequences, Keras input_axes/output_axes)
and orthogonal under layout=keras (algorithm version 2).

References are written from the frameworks' definitions; where jax / keras are installed their own
fan functions are compared too.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import weightinit as wi
from weightinit.api import convert
from weightinit.engine.fans import FanError, compute_fans

os.environ.setdefault("KERAS_BACKEND", "jax")  # before any keras import


def ref_jax_fans(shape, in_axis, out_axis, batch_axis):
    """jax.nn.initializers._compute_fans: products over the axes, rf = numel / (in * out * batch)."""
    def size(axes):
        return shape[axes] if isinstance(axes, int) else math.prod(shape[a] for a in axes)

    in_size, out_size, batch_size = size(in_axis), size(out_axis), size(batch_axis)
    receptive = math.prod(shape) / in_size / out_size / batch_size
    return in_size * receptive, out_size * receptive


AXES_CASES = [
    ([3, 4, 5, 6], [0, 1], [3], 2),
    ([3, 4, 5, 6], [0, 1], [2, 3], ()),
    ([5, 7, 3], [], [1, 2], ()),
    ([5, 7, 3], [0], [], [1]),
    ([4, 6, 2, 3], [-1], [0, 2], ()),
    ([2, 3, 5, 7, 11], -2, -1, (0, 1)),
    ([2, 3, 5, 7, 11], (1, 3), (4,), 0),
    ([7], [], 0, ()),                # rank 1 with explicit axes (JAX allows it)
    ([], [], [], ()),                # rank 0: every size is an empty product
    ([9, 10], -2, -1, ()),
    # an axis named twice counts twice, as in JAX (flax's Embed default: out_axis=0 = in_axis=-2)
    ([50, 12], -2, 0, ()),
    ([5], 0, 0, ()),
    ([3, 4], [0, 0], 1, ()),
    ([3, 4, 5], [0, 1], [1, 2], ()),
    ([3, 4, 5], [0], [2], [0]),
    ([3, 4, 5, 6], 0, 1, (2, -2)),
    ([7, 0, 3], 0, 0, ()),                  # a zero size: JAX divides by zero; the int path instead
]


@pytest.mark.parametrize("shape,in_axis,out_axis,batch_axis", [c for c in AXES_CASES if math.prod(c[0])])
def test_axes_fans_equal_jax_formula(shape, in_axis, out_axis, batch_axis):
    assert compute_fans(shape, "axes", in_axis, out_axis, batch_axis) == ref_jax_fans(shape, in_axis, out_axis,
                                                                                      batch_axis)


@pytest.mark.parametrize("shape,in_axis,out_axis,batch_axis", [c for c in AXES_CASES if math.prod(c[0])])
def test_axes_fans_equal_jax_own_function(shape, in_axis, out_axis, batch_axis):
    initializers = pytest.importorskip("jax._src.nn.initializers")
    assert compute_fans(shape, "axes", in_axis, out_axis, batch_axis) == \
        initializers._compute_fans(tuple(shape), in_axis, out_axis, batch_axis)


@pytest.mark.parametrize("shape,input_axes,output_axes", [
    ([6, 4, 8], [0], [1, 2]),            # EinsumDense "abc,cde->abde"-like kernels
    ([16, 2, 8], [0], [1, 2]),           # MultiHeadAttention query kernel (dim, heads, key_dim)
    ([2, 8, 16], [0, 1], [2]),           # MultiHeadAttention output kernel
    ([3, 5, 7, 2], [1], [3]),            # axes in neither list are ignored (JAX: batch axes)
])
def test_keras_multi_axis_fans_are_axes_with_the_rest_as_batch(shape, input_axes, output_axes):
    """keras compute_fans(shape, input_axes, output_axes) = (prod(shape[input_axes]), prod(shape[output_axes])):
    layout=axes with every other axis a batch axis."""
    rest = [a for a in range(len(shape)) if a not in input_axes and a not in output_axes]
    got = compute_fans(shape, "axes", input_axes, output_axes, rest)
    assert got == (math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes))
    keras_fans = pytest.importorskip("keras.src.initializers.random_initializers").compute_fans
    assert got == keras_fans(shape, input_axes=input_axes, output_axes=output_axes)


@pytest.mark.parametrize("shape,in_axis,out_axis,batch_axis,field", [
    ([3, 4, 5], [0, 3], [2], (), "in_axis"),
    ([3, 4, 5], [0], [-4], (), "out_axis"),
    ([3, 4, 5], [0], [1], 5, "batch_axis"),
    ([5], -2, -1, (), "in_axis"),                  # JAX: the default in_axis needs 2 dims
])
def test_axes_errors_name_the_field(shape, in_axis, out_axis, batch_axis, field):
    with pytest.raises(FanError) as caught:
        compute_fans(shape, "axes", in_axis, out_axis, batch_axis)
    assert caught.value.field == field
    with pytest.raises(wi.SpecError) as caught:
        wi.spec_from_dict({"scheme": "glorot_uniform", "shape": shape, "layout": "axes", "in_axis": in_axis,
                           "out_axis": out_axis, "batch_axis": batch_axis})
    assert caught.value.field == field


def test_distinct_axes_give_integer_fans():
    assert all(isinstance(f, int) for f in compute_fans([3, 4, 5, 6], "axes", [0, 1], 3, 2))
    assert compute_fans([7, 0, 3], "axes", 0, 0, ()) == (0, 0)


def test_int_axes_serialize_as_before_and_sequences_as_lists():
    plain = wi.spec_from_dict({"scheme": "he_normal", "shape": [3, 4, 5], "layout": "axes", "in_axis": 0,
                               "out_axis": 1, "batch_axis": [2]})
    assert plain.to_dict()["in_axis"] == 0 and plain.to_dict()["out_axis"] == 1
    assert plain.to_dict()["batch_axis"] == [2]
    default = wi.spec_from_dict({"scheme": "he_normal", "shape": [3, 4]})
    assert (default.to_dict()["in_axis"], default.to_dict()["out_axis"], default.to_dict()["batch_axis"]) == \
        (-2, -1, [])
    multi = wi.spec_from_dict({"scheme": "he_normal", "shape": [3, 4, 5], "layout": "axes", "in_axis": [0],
                               "out_axis": [], "batch_axis": 2})
    data = multi.to_dict()
    assert (data["in_axis"], data["out_axis"], data["batch_axis"]) == ([0], [], [2])
    assert json.loads(json.dumps(data)) == data and wi.spec_from_dict(data) == multi
    # [0] is not 0 as a value of the field, but both name the same fans
    assert multi.fans() == compute_fans([3, 4, 5], "axes", 0, (), (2,))


def test_bare_int_batch_axis_equals_a_one_element_list():
    a = wi.spec_from_dict({"scheme": "glorot_normal", "shape": [2, 3, 8, 8], "layout": "axes", "batch_axis": 0})
    b = wi.spec_from_dict({"scheme": "glorot_normal", "shape": [2, 3, 8, 8], "layout": "axes", "batch_axis": [0]})
    assert a == b
    assert wi.generate(a).tobytes() == wi.generate(b).tobytes()


def test_sequence_axes_that_equal_int_axes_give_the_same_bytes():
    base = {"scheme": "he_uniform", "shape": [3, 3, 4, 5], "layout": "axes", "seed": 4}
    as_ints = wi.generate(dict(base, in_axis=2, out_axis=3))
    as_lists = wi.generate(dict(base, in_axis=[2], out_axis=[3]))
    assert as_ints.tobytes() == as_lists.tobytes()


def test_multi_axis_scales_the_variance():
    """he_uniform on [3, 4, 5, 6] with in_axis (0, 1), out (3,), batch 2: fan_in = 12, so bound sqrt(6 / 12)."""
    spec = {"scheme": "he_uniform", "shape": [3, 4, 5, 6], "layout": "axes", "in_axis": [0, 1],
            "out_axis": [3], "batch_axis": 2}
    compiled = wi.compile_spec(spec)
    low, width = compiled.plan.kernel.params[:2]
    assert math.isclose(-low, math.sqrt(6.0 / 12.0), rel_tol=1e-15) and math.isclose(width, -2 * low)


def test_only_layout_axes_takes_axes():
    with pytest.raises(wi.SpecError) as caught:
        wi.spec_from_dict({"scheme": "he_normal", "shape": [3, 4], "in_axis": [0]})
    assert caught.value.field == "in_axis"


@pytest.mark.parametrize("in_axis,out_axis,batch_axis", [([0, 1], [3], 2), ([], [1, 2], ()), (0, [], [1]),
                                                          (-2, -1, ())])
def test_proto_round_trip_keeps_ints_and_sequences(in_axis, out_axis, batch_axis):
    spec = {"scheme": "glorot_uniform", "shape": [3, 4, 5, 6], "layout": "axes", "in_axis": in_axis,
            "out_axis": out_axis, "batch_axis": batch_axis}
    message = convert.spec_from_any(spec)
    back = wi.spec_from_dict(convert.spec_to_dict(type(message).FromString(message.SerializeToString())))
    assert back == wi.spec_from_dict(spec)
    assert isinstance(back.in_axis, int) == isinstance(in_axis, int)


def test_proto_rejects_both_forms_of_one_axis():
    message = convert.spec_from_any({"scheme": "glorot_uniform", "shape": [3, 4], "layout": "axes", "in_axis": 0})
    message.in_axes.axes.append(1)
    with pytest.raises(wi.SpecError) as caught:
        convert.spec_to_dict(message)
    assert caught.value.field == "in_axis"


# ---------------------------------------------------------------------------
# orthogonal under layout=keras


@pytest.mark.parametrize("shape", [[5, 7, 16], [2, 3, 8], [7, 7, 4, 32], [3, 3, 4, 40], [2, 2, 2, 3, 4],
                                   [2, 3, 2, 2, 30], [9, 4]])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_keras_orthogonal_flattens_rows_by_last_axis(shape, dtype):
    """keras.initializers.Orthogonal: the (prod(shape[:-1]), shape[-1]) matrix has orthonormal columns
    (rows >= cols) or rows (rows < cols)."""
    w = wi.generate({"scheme": "orthogonal", "shape": shape, "dtype": dtype, "layout": "keras", "seed": 3,
                     "params": {"gain": 1.0}}).astype(np.float64)
    matrix = w.reshape(-1, shape[-1])
    rows, cols = matrix.shape
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    atol = 1e-12 if dtype == "float64" else 1e-5
    assert np.max(np.abs(gram - np.eye(min(rows, cols)))) < atol


@pytest.mark.parametrize("shape", [[5, 7, 16], [7, 7, 4, 32], [2, 2, 2, 3, 4]])
def test_keras_orthogonal_is_column_axis_last_and_torch_is_unchanged(shape):
    keras = wi.generate({"scheme": "orthogonal", "shape": shape, "dtype": "float64", "layout": "keras"})
    explicit = wi.generate({"scheme": "orthogonal", "shape": shape, "dtype": "float64",
                            "params": {"column_axis": -1}})
    assert keras.tobytes() == explicit.tobytes()
    torch_layout = wi.generate({"scheme": "orthogonal", "shape": shape, "dtype": "float64"})
    flat = torch_layout.reshape(shape[0], -1)
    assert np.allclose(flat @ flat.T, np.eye(shape[0]), atol=1e-12)  # torch: rows = shape[0]


def test_keras_orthogonal_matches_keras_statistics():
    """A [7, 7, 128, 160] kernel (the issue's) is orthonormal in Keras' sense; before version 2 the error was ~0.96."""
    w = wi.generate({"scheme": "orthogonal", "shape": [7, 7, 128, 160], "dtype": "float32", "layout": "keras",
                     "seed": 1}).astype(np.float64).reshape(-1, 160)
    assert np.max(np.abs(w.T @ w - np.eye(160))) < 1e-5


def test_algorithm_version_two():
    assert wi.ALGORITHM_VERSION == 2


def test_cli_takes_several_or_no_axes(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "w.npy"
    result = subprocess.run([sys.executable, "-m", "weightinit", "generate", "--scheme", "glorot_uniform", "--shape",
                             "3", "4", "5", "--layout", "axes", "--in-axis", "--out-axis", "1", "2", "--batch-axis",
                             "0", "--seed", "9", "-o", str(out)], capture_output=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    want = wi.generate({"scheme": "glorot_uniform", "shape": [3, 4, 5], "layout": "axes", "in_axis": [],
                        "out_axis": [1, 2], "batch_axis": [0], "seed": 9})
    assert np.load(out).tobytes() == want.tobytes()
