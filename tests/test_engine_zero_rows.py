"""spec field zero_rows: rows set to +0 after the scheme (nn.Embedding's padding_idx), on every path."""

from __future__ import annotations

import numpy as np
import pytest

import weightinit as wi
from weightinit.api import convert

BASE = {"scheme": "normal", "shape": [9, 4, 3], "seed": 5, "name": "emb.weight"}


def test_listed_rows_are_zero_and_the_rest_unchanged():
    plain = wi.generate_raw(BASE)
    zeroed = wi.generate_raw({**BASE, "zero_rows": [7, 0]})
    assert not zeroed[[0, 7]].any() and np.signbit(zeroed[[0, 7]]).sum() == 0
    keep = [r for r in range(9) if r not in (0, 7)]
    assert zeroed[keep].tobytes() == plain[keep].tobytes()


@pytest.mark.parametrize("scheme,params", [("uniform", {}), ("ones", {}), ("eye", {}), ("orthogonal", {}),
                                           ("sparse", {"sparsity": 0.5})])
def test_every_plan_kind_and_any_element_range(scheme, params):
    spec = {"scheme": scheme, "shape": [6, 5], "seed": 2, "name": "t", "params": params, "zero_rows": [1, 4]}
    whole = wi.generate_raw(spec).reshape(-1)
    assert not whole.reshape(6, 5)[[1, 4]].any()
    for start, stop in ((0, 7), (3, 12), (9, 26), (20, 30)):
        assert wi.generate_raw(spec, start, stop).tobytes() == whole[start:stop].tobytes()


def test_resolved_spec_lists_zero_rows_only_when_given():
    assert "zero_rows" not in wi.spec_from_dict(BASE).to_dict()
    assert wi.spec_from_dict({**BASE, "zero_rows": [3, 1, 3]}).to_dict()["zero_rows"] == [1, 3]


@pytest.mark.parametrize("rows,shape,needle", [([9], [9, 2], "row 9 is not in [0, 9)"), ([-1], [4], "row -1"),
                                               (["a"], [4], "must be an integer"), ([0], [], "at least 1 dim"),
                                               ("0", [4], "list of row indices")])
def test_invalid_zero_rows_name_the_field(rows, shape, needle):
    with pytest.raises(wi.SpecError, match="zero_rows") as error:
        wi.spec_from_dict({"scheme": "zeros", "shape": shape, "zero_rows": rows})
    assert error.value.field == "zero_rows" and needle in str(error.value)


def test_proto_round_trip():
    message = convert.spec_from_any({**BASE, "zero_rows": [2, 5]})
    assert list(message.zero_rows) == [2, 5]
    assert convert.spec_to_dict(message)["zero_rows"] == [2, 5]
    assert "zero_rows" not in convert.spec_to_dict(convert.spec_from_any(BASE))


def test_server_applies_zero_rows(client):
    spec = {**BASE, "zero_rows": [3]}
    assert client.generate(spec).tobytes() == wi.generate(spec).tobytes()
