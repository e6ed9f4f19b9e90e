"""Client API surface: local twin parity, out= buffers, bfloat16 handling."""

from __future__ import annotations

import numpy as np
import pytest

import weightinit as wi
from weightinit.client import Client, core

pytestmark = pytest.mark.service

SPEC = {"scheme": "xavier_normal", "shape": [64, 48], "seed": 4, "name": "enc.w", "dtype": "float16"}


def _bits(array) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def test_local_client_mirrors_the_remote_client(client, local):
    assert _bits(local.generate(SPEC)) == _bits(client.generate(SPEC))
    assert _bits(local.generate(SPEC, start=10, stop=900)) == _bits(client.generate(SPEC, start=10, stop=900))
    remote_chunks = [(c.offset, _bits(c.data)) for c in client.iter_chunks(SPEC, chunk_elements=1000)]
    local_chunks = [(c.offset, _bits(c.data)) for c in local.iter_chunks(SPEC, chunk_elements=1000)]
    assert remote_chunks == local_chunks
    manifest = {"seed": 3, "tensors": [SPEC, {"scheme": "zeros", "shape": [5], "name": "enc.b"}]}
    remote, here = client.generate_model(manifest), local.generate_model(manifest)
    assert list(remote) == list(here) == ["enc.w", "enc.b"]
    assert all(_bits(remote[k]) == _bits(here[k]) for k in remote)
    assert [s["name"] for s in local.describe()["schemes"]] == list(wi.SCHEMES)
    assert Client.local().generate(SPEC).tobytes() == local.generate(SPEC).tobytes()


def test_generate_fills_a_given_buffer_in_place(client):
    out = np.zeros((64, 48), dtype=np.float16)
    got = client.generate(SPEC, out=out)
    assert np.shares_memory(got, out) and _bits(out) == _bits(wi.generate(SPEC))
    with pytest.raises(ValueError):
        client.generate(SPEC, out=np.zeros(10, np.float16))


def test_specs_may_be_dicts_engine_specs_or_messages(client):
    from weightinit.api import convert

    engine_spec = wi.spec_from_dict(SPEC)
    message = convert.spec_from_any(SPEC)
    assert _bits(client.generate(engine_spec)) == _bits(client.generate(message)) == _bits(client.generate(SPEC))


def test_bfloat16_is_ml_dtypes_when_installed_else_uint16_bits(client, monkeypatch):
    spec = {"scheme": "normal", "shape": [8, 8], "dtype": "bfloat16"}
    got = client.generate(spec)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    assert got.dtype == ml_dtypes.bfloat16
    as_float = got.astype(np.float32)
    assert np.array_equal(as_float, wi.generate({**spec, "dtype": "float32"}).astype(ml_dtypes.bfloat16)
                          .astype(np.float32))
    monkeypatch.setattr(core, "_ml_dtypes", None)
    bits = client.generate(spec)
    assert bits.dtype == np.uint16 and _bits(bits) == _bits(got)


def test_local_client_reports_bad_specs_with_the_field(local):
    with pytest.raises(wi.SpecError) as caught:
        local.generate({"scheme": "normal", "shape": [2], "params": {"std": -1}})
    assert caught.value.field == "params.std"
    with pytest.raises(wi.SpecError) as caught:
        local.generate_model({"tensors": [{"scheme": "ones", "shape": [1], "name": "x"},
                                          {"scheme": "ones", "shape": [1], "name": "x"}]})
    assert (caught.value.field, caught.value.tensor, caught.value.tensor_index) == ("name", "x", 1)
    assert str(caught.value) == "x: name: duplicate tensor name 'x'"
