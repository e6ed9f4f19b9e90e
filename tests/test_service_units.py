"""Server logic without a network: wire codec, proto <-> spec conversion, request planning, error details."""

from __future__ import annotations

import numpy as np
import pytest

import weightinit as wi
from weightinit.api import convert, wire
from weightinit.server import jobs
from weightinit.api.errors import RequestError, to_status_proto
from weightinit.v1 import initializer_service_pb2 as pb
from weightinit.v1 import spec_pb2

EXAMPLE_PARAMS = {
    "constant": {"value": 0.5}, "uniform": {"low": -1.0, "high": 2.0}, "normal": {"mean": 0.1, "std": 0.2},
    "truncated_normal": {"std": 0.02, "lower": -2.0, "upper": 2.0, "bounds": "std"},
    "xavier_uniform": {"gain": 2.0}, "xavier_normal": {"nonlinearity": "leaky_relu", "a": 0.2},
    "kaiming_uniform": {"mode": "fan_out", "nonlinearity": "relu"},
    "kaiming_normal": {"a": 0.1, "mode": "fan_geo_avg"},
    "variance_scaling": {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"},
    "orthogonal": {"gain": 1.5, "column_axis": 0}, "sparse": {"sparsity": 0.3, "std": 0.05},
    "eye": {"nonlinearity": "tanh"}, "dirac": {"groups": 2}, "delta_orthogonal": {"gain": 0.5},
    "torch_default": {"fan_in": 12},
}


# -- wire -------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 1, 300, 2**40])
@pytest.mark.parametrize("with_header", [False, True])
@pytest.mark.parametrize("with_digest", [False, True])
@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_encoded_chunks_equal_the_protobuf_encoding(offset, with_header, with_digest, algorithm):
    data = np.arange(1000, dtype=np.float32) * 0.25
    header = pb.TensorHeader(name="w", shape=[10, 100], dtype=spec_pb2.DATA_TYPE_FP32, element_count=1000)
    digest = bytes(range(32)) if with_digest else None
    # SHA-256 fills the field clients from before `digest` read, too
    sha256 = digest if algorithm == "sha256" else None
    raw = wire.encode_chunk(wire.GENERATE, data=data, offset=offset,
                            header=header.SerializeToString() if with_header else None, digest=digest,
                            algorithm=algorithm)
    expected = pb.GenerateResponse(offset=offset, data=data.tobytes(), sha256=sha256 or b"", digest=digest or b"")
    if with_header:
        expected.header.CopyFrom(header)
    assert raw == expected.SerializeToString()
    message, view = wire.decode_generate(raw)
    assert bytes(view) == data.tobytes() and message.offset == offset and message.data == b""
    assert message.HasField("header") == with_header and message.digest == (digest or b"")
    assert message.sha256 == (sha256 or b"")

    model = wire.encode_chunk(wire.MODEL, data=data, offset=offset, index=7,
                              header=header.SerializeToString() if with_header else None, digest=digest,
                              algorithm=algorithm)
    expected_model = pb.GenerateModelResponse(tensor_index=7, offset=offset, data=data.tobytes(),
                                              sha256=sha256 or b"", digest=digest or b"")
    if with_header:
        expected_model.header.CopyFrom(header)
    assert model == expected_model.SerializeToString()


def test_split_handles_any_field_order_repeats_and_unknown_fields():
    first = pb.GenerateResponse(data=b"old").SerializeToString()
    tail = pb.GenerateResponse(offset=5, sha256=b"x" * 32, data=b"new bytes").SerializeToString()
    unknown = wire.varint(99 << 3 | 0) + wire.varint(12345)  # field 99, varint
    message, data = wire.decode_generate(tail[::1] + unknown + first + tail)
    assert bytes(data) == b"new bytes" and message.offset == 5 and message.sha256 == b"x" * 32
    with pytest.raises(ValueError):
        wire.split_data(tail[:-3], wire.GENERATE.data)


def test_varint_matches_protobuf_for_negative_and_large_values():
    assert wire.varint(0) == b"\x00"
    for value in (1, 127, 128, 2**35, 2**63 - 1, -1, -(2**63)):
        expected = pb.TensorHeader(start=value).SerializeToString()[1:]
        assert wire.varint(value) == expected


# -- conversion -------------------------------------------------------------


@pytest.mark.parametrize("scheme", sorted(wi.SCHEMES))
def test_dict_message_dict_round_trip_for_every_scheme(scheme):
    spec = {"scheme": scheme, "shape": [6, 4, 3], "dtype": "float16", "seed": 2**64 - 1, "name": "layer.w",
            "layout": "keras", "params": EXAMPLE_PARAMS.get(scheme, {})}
    message = convert.spec_from_any(spec)
    assert message.WhichOneof("scheme") == scheme
    back = convert.spec_to_dict(spec_pb2.TensorSpec.FromString(message.SerializeToString()))
    assert back == {**spec, "params": EXAMPLE_PARAMS.get(scheme, {})}


def test_unset_fields_take_engine_defaults_and_manifest_seed():
    message = convert.spec_from_any({"scheme": "kaiming_normal", "shape": [4, 4]})
    assert convert.spec_to_dict(message) == {"scheme": "kaiming_normal", "shape": [4, 4], "name": "", "params": {}}
    assert convert.spec_to_dict(message, default_seed=9)["seed"] == 9
    message.seed = 0  # explicitly 0 beats the manifest's seed
    assert convert.spec_to_dict(message, default_seed=9)["seed"] == 0
    axes = convert.spec_from_any({"scheme": "lecun_normal", "shape": [3, 4, 5], "layout": "axes", "in_axis": 0,
                                  "out_axis": 2, "batch_axis": [1], "stream": 77})
    assert convert.spec_to_dict(axes) == {"scheme": "lecun_normal", "shape": [3, 4, 5], "name": "", "layout": "axes",
                                          "in_axis": 0, "out_axis": 2, "batch_axis": [1], "stream": 77, "params": {}}


def test_dtype_aliases_and_kserve_names_are_accepted():
    for name in ("float32", "fp32", "FP32", "DATA_TYPE_FP32"):
        assert convert.dtype_to_proto(name) == spec_pb2.DATA_TYPE_FP32
    assert convert.dtype_to_proto("bf16") == spec_pb2.DATA_TYPE_BF16


@pytest.mark.parametrize("spec, field", [
    ({"scheme": "nope", "shape": [1]}, "scheme"),
    ({"scheme": "normal"}, "shape"),
    ({"scheme": "normal", "shape": "3"}, "shape"),
    ({"scheme": "normal", "shape": [1], "dtype": "int8"}, "dtype"),
    ({"scheme": "normal", "shape": [1], "layout": "jax"}, "layout"),
    ({"scheme": "normal", "shape": [1], "params": {"sigma": 1}}, "params.sigma"),
    ({"scheme": "kaiming_normal", "shape": [1, 1], "params": {"mode": "fan_sideways"}}, "params.mode"),
    ({"scheme": "normal", "shape": [1], "params": {"std": "wide"}}, "params.std"),
    ({"scheme": "normal", "shape": [1], "seed": -1}, "seed"),
    ({"scheme": "normal", "shape": [1], "colour": "red"}, "colour"),
])
def test_client_side_conversion_errors_name_the_field(spec, field):
    with pytest.raises(wi.SpecError) as caught:
        convert.spec_from_any(spec)
    assert caught.value.field == field


def test_unknown_enum_numbers_are_reported_by_field():
    message = convert.spec_from_any({"scheme": "kaiming_normal", "shape": [2, 2]})
    message.kaiming_normal.mode = 42
    with pytest.raises(wi.SpecError) as caught:
        convert.spec_to_dict(message)
    assert caught.value.field == "params.mode"
    message = convert.spec_from_any({"scheme": "zeros", "shape": [2]})
    message.dtype = 17
    with pytest.raises(wi.SpecError) as caught:
        convert.spec_to_dict(message)
    assert caught.value.field == "dtype"


def test_engine_field_paths_map_onto_request_fields():
    assert convert.proto_field_path("params.std", "normal") == "spec.normal.std"
    assert convert.proto_field_path("params", "normal") == "spec.normal"
    assert convert.proto_field_path("shape", "normal") == "spec.shape"
    assert convert.proto_field_path("scheme", None) == "spec.scheme"
    assert convert.proto_field_path("spec", None) == "spec"
    assert convert.proto_field_path("params.mode", "he_normal", "manifest.tensors[3]") == \
        "manifest.tensors[3].he_normal.mode"


def test_manifest_from_mapping_of_names():
    manifest = convert.manifest_from_any({"seed": 3, "tensors": {"a": {"scheme": "ones", "shape": [2]},
                                                                 "b": {"scheme": "zeros", "shape": [1]}}})
    assert [t.name for t in manifest.tensors] == ["a", "b"] and manifest.seed == 3
    with pytest.raises(wi.SpecError) as caught:
        convert.manifest_from_any({"tensors": [{"scheme": "ones", "shape": [1]}, {"scheme": "x", "shape": [1]}]})
    assert (caught.value.field, caught.value.tensor_index) == ("scheme", 1)


# -- planning ---------------------------------------------------------------


def _request(spec: dict, **fields) -> pb.GenerateRequest:
    return pb.GenerateRequest(spec=convert.spec_from_any(spec), **fields)


def test_plan_resolves_defaults_chunk_size_and_range():
    settings = jobs.Settings()
    job = jobs.plan_generate(_request({"scheme": "normal", "shape": [10, 10], "dtype": "float16"}), settings)
    assert (job.start, job.stop, job.hash_from) == (0, 100, 0)
    assert job.chunk_elements == settings.default_chunk_bytes // 2
    job = jobs.plan_generate(_request({"scheme": "normal", "shape": [10, 10]}, start=20, stop=30, hash_from=5,
                                      chunk_elements=3), settings)
    assert (job.start, job.stop, job.hash_from, job.chunk_elements) == (20, 30, 5, 3)


def test_plan_reports_every_bad_field_at_once():
    request = pb.GenerateRequest(spec=convert.spec_from_any({"scheme": "normal", "shape": [4]}),
                                 start=-1, chunk_elements=-5, hash_from=3)
    with pytest.raises(RequestError) as caught:
        jobs.plan_generate(request, jobs.Settings())
    fields = {v.field for v in caught.value.violations}
    assert fields == {"start", "chunk_elements", "hash_from"}
    assert caught.value.code.name == "INVALID_ARGUMENT"


def test_limit_errors_are_resource_exhausted_with_quota_details():
    settings = jobs.Settings(max_elements_per_request=100)
    with pytest.raises(RequestError) as caught:
        jobs.plan_generate(_request({"scheme": "normal", "shape": [11, 10]}), settings)
    assert caught.value.code.name == "RESOURCE_EXHAUSTED"
    assert caught.value.violations[0].field == "spec.shape"
    status = to_status_proto(caught.value)
    type_urls = [d.type_url for d in status.details]
    assert any(u.endswith("google.rpc.BadRequest") for u in type_urls)
    assert any(u.endswith("google.rpc.QuotaFailure") for u in type_urls)


def test_model_plan_checks_names_counts_and_totals():
    tensors = [{"scheme": "ones", "shape": [5], "name": "a"}, {"scheme": "ones", "shape": [5], "name": "a"},
               {"scheme": "normal", "shape": [5], "name": "c", "params": {"std": 0.0}}]
    request = pb.GenerateModelRequest(manifest=convert.manifest_from_any({"seed": 1, "tensors": tensors}))
    with pytest.raises(RequestError) as caught:
        jobs.plan_model(request, jobs.Settings())
    assert {v.field for v in caught.value.violations} == {"manifest.tensors[1].name", "manifest.tensors[2].normal.std"}
    ok = pb.GenerateModelRequest(manifest=convert.manifest_from_any({"seed": 1, "tensors": tensors[:1]}))
    assert jobs.plan_model(ok, jobs.Settings())[0].spec.seed == 1
    with pytest.raises(RequestError) as caught:
        jobs.plan_model(ok, jobs.Settings(max_elements_per_model=4))
    assert caught.value.code.name == "RESOURCE_EXHAUSTED"


def test_capabilities_come_from_the_engine_catalogue():
    reply = jobs.capabilities(jobs.Settings(), "numpy", "cpu", {"numpy": "ok: cpu", "cupy": "no GPU"})
    assert [s.name for s in reply.schemes] == list(wi.SCHEMES)
    kaiming = next(s for s in reply.schemes if s.name == "kaiming_normal")
    mode = next(p for p in kaiming.params if p.name == "mode")
    assert mode.default_json == '"fan_in"' and "fan_geo_avg" in mode.choices
    constant = next(s for s in reply.schemes if s.name == "constant")
    assert constant.params[0].required
    assert reply.algorithm_version == wi.ALGORITHM_VERSION
    assert [(b.name, b.available) for b in reply.backends] == [("numpy", True), ("cupy", False)]
