"""End to end against a real server on loopback: bytes, ranges, models, errors, health, reflection, concurrency."""

from __future__ import annotations

import math
import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import weightinit as wi
from weightinit.spec import COMPLEX_DTYPES, COMPLEX_SCHEMES
from weightinit.client import Client, field_violations
from weightinit.api import convert
from weightinit.server import SERVICE_NAME
from weightinit.v1 import initializer_service_pb2 as pb
from weightinit.v1 import spec_pb2

pytestmark = pytest.mark.service

#: A valid shape and parameters for every scheme (shapes small: the point is the bytes).
SCHEME_CASES = {
    "zeros": ([7, 5], {}), "ones": ([7, 5], {}), "constant": ([7, 5], {"value": -1.25}),
    "uniform": ([33, 17], {"low": -0.5, "high": 3.0}), "normal": ([33, 17], {"mean": 1.0, "std": 0.5}),
    "truncated_normal": ([33, 17], {"std": 0.02, "lower": -0.04, "upper": 0.04}),
    "xavier_uniform": ([16, 8, 3], {"gain": 1.3}), "xavier_normal": ([16, 8, 3], {"nonlinearity": "tanh"}),
    "kaiming_uniform": ([32, 16, 3, 3], {"a": 0.2}),
    "kaiming_normal": ([32, 16, 3, 3], {"mode": "fan_out", "nonlinearity": "relu"}),
    "lecun_uniform": ([20, 30], {}), "lecun_normal": ([20, 30], {}),
    "glorot_uniform": ([20, 30], {}), "glorot_normal": ([20, 30], {}),
    "he_uniform": ([20, 30], {}), "he_normal": ([20, 30], {}),
    "variance_scaling": ([3, 3, 16, 32], {"scale": 2.0, "mode": "fan_avg", "distribution": "truncated_normal"}),
    "orthogonal": ([24, 40], {"gain": 2.0}), "sparse": ([40, 24], {"sparsity": 0.25}),
    "eye": ([12, 20], {}), "dirac": ([8, 4, 3, 3], {"groups": 2}),
    "delta_orthogonal": ([16, 8, 3, 3], {}), "torch_default": ([64], {"fan_in": 48}),
}


def _spec(scheme: str, dtype: str = "float32", **extra) -> dict:
    shape, params = SCHEME_CASES[scheme]
    return {"scheme": scheme, "shape": shape, "params": params, "dtype": dtype, "seed": 11,
            "name": f"{scheme}.weight", **extra}


def _bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def test_cases_cover_every_scheme():
    assert set(SCHEME_CASES) == set(wi.SCHEMES)


@pytest.mark.parametrize("dtype", wi.DTYPES)
def test_every_scheme_matches_the_in_process_engine(client, dtype):
    for scheme in SCHEME_CASES:
        if dtype in COMPLEX_DTYPES and scheme not in COMPLEX_SCHEMES:
            continue  # refused with a dtype error (tests/test_engine_complex.py)
        spec = _spec(scheme, dtype)
        got = client.generate(spec)
        want = wi.generate(spec)
        assert got.shape == want.shape and got.dtype == want.dtype, scheme
        assert _bits(got) == _bits(want), f"{scheme} {dtype}: server bytes differ from the engine"


def test_keras_layout_and_axes_layout_match(client):
    for spec in ({"scheme": "he_normal", "shape": [3, 3, 8, 16], "layout": "keras", "seed": 5},
                 {"scheme": "lecun_uniform", "shape": [4, 6, 5], "layout": "axes", "in_axis": 0, "out_axis": 2,
                  "batch_axis": [1], "name": "attn"},
                 {"scheme": "normal", "shape": [], "stream": 123}, {"scheme": "ones", "shape": [0, 5]}):
        assert _bits(client.generate(spec)) == _bits(wi.generate(spec))


def test_ranges_and_chunk_sizes_agree(client):
    spec = {"scheme": "kaiming_uniform", "shape": [300, 211], "seed": 3, "name": "r"}
    whole = wi.generate(spec).reshape(-1)
    numel = whole.size
    for chunk in (1 << 0, 7, 4096, 0):
        start, stop = (0, numel) if chunk in (0, 4096) else (3, 3 + 60 * chunk + 5)
        got = client.generate(spec, start=start, stop=stop, chunk_elements=chunk)
        assert _bits(got) == _bits(whole[start:stop]), chunk
    for start, stop in ((0, 0), (5, 5), (13, 9999), (numel - 1, numel), (1000, numel)):
        got = client.generate(spec, start=start, stop=stop, chunk_elements=1000)
        assert got.shape == (stop - start,) and _bits(got) == _bits(whole[start:stop]), (start, stop)
    chunks = list(client.iter_chunks(spec, chunk_elements=10_000))
    assert [c.offset for c in chunks] == list(range(0, numel, 10_000))
    assert chunks[0].header.byte_count == numel * 4 and chunks[0].header.algorithm_version == wi.ALGORITHM_VERSION


def resnet_like_manifest(seed: int = 2024, width: int = 16) -> dict:
    """ResNet-50's parameter list (conv, batch-norm, fc) with channels scaled by width/64."""
    tensors = []

    def conv(name, out_c, in_c, k):
        tensors.append({"name": f"{name}.weight", "shape": [out_c, in_c, k, k], "scheme": "kaiming_normal",
                        "params": {"mode": "fan_out", "nonlinearity": "relu"}})

    def bn(name, c):
        tensors.append({"name": f"{name}.weight", "shape": [c], "scheme": "ones"})
        tensors.append({"name": f"{name}.bias", "shape": [c], "scheme": "zeros"})

    conv("conv1", width, 3, 7)
    bn("bn1", width)
    in_c = width
    for stage, (blocks, mid) in enumerate(((3, width), (4, 2 * width), (6, 4 * width), (3, 8 * width)), start=1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            conv(f"{prefix}.conv1", mid, in_c, 1)
            bn(f"{prefix}.bn1", mid)
            conv(f"{prefix}.conv2", mid, mid, 3)
            bn(f"{prefix}.bn2", mid)
            conv(f"{prefix}.conv3", mid * 4, mid, 1)
            bn(f"{prefix}.bn3", mid * 4)
            if block == 0:
                conv(f"{prefix}.downsample.0", mid * 4, in_c, 1)
                bn(f"{prefix}.downsample.1", mid * 4)
            in_c = mid * 4
    tensors.append({"name": "fc.weight", "shape": [1000, in_c], "scheme": "torch_default"})
    tensors.append({"name": "fc.bias", "shape": [1000], "scheme": "torch_default", "params": {"fan_in": in_c},
                    "seed": 99})
    return {"seed": seed, "name": "resnet50-ish", "tensors": tensors}


def test_generate_model_equals_per_tensor_generate(client):
    manifest = resnet_like_manifest()
    assert len(manifest["tensors"]) >= 150
    arrays = client.generate_model(manifest)
    assert list(arrays) == [t["name"] for t in manifest["tensors"]]
    for tensor in manifest["tensors"]:
        single = {**tensor, "seed": tensor.get("seed", manifest["seed"])}
        got = arrays[tensor["name"]]
        assert got.shape == tuple(tensor["shape"])
        assert _bits(got) == _bits(client.generate(single)) == _bits(wi.generate(single)), tensor["name"]


def test_model_chunks_are_tagged_and_small_chunks_work(client):
    manifest = {"seed": 1, "tensors": [{"name": "a", "scheme": "normal", "shape": [10, 10]},
                                       {"name": "empty", "scheme": "zeros", "shape": [0]},
                                       {"name": "b", "scheme": "uniform", "shape": [25]}]}
    chunks = list(client.iter_model_chunks(manifest, chunk_elements=30))
    assert [(c.index, c.name, c.offset) for c in chunks] == [
        (0, "a", 0), (0, "a", 30), (0, "a", 60), (0, "a", 90), (1, "empty", 0), (2, "b", 0)]


def test_capabilities_describe_the_server(client, server):
    info = client.capabilities()
    assert [s.name for s in info.schemes] == list(wi.SCHEMES)
    assert info.active_backend == server.servicer.backend.name
    assert info.limits.max_concurrent_streams == server.settings.max_concurrent_streams
    assert list(info.dtypes) == [convert.DTYPE_TO_PROTO[d] for d in wi.DTYPES]
    assert info.algorithm_version == wi.ALGORITHM_VERSION


def test_health_and_reflection_answer(server):
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
        from google.protobuf.descriptor_pool import DescriptorPool

        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= services
        pool = DescriptorPool(database)
        service = pool.FindServiceByName(SERVICE_NAME)
        assert {m.name for m in service.methods} == {"Generate", "GenerateModel", "GetCapabilities"}
        assert pool.FindMessageTypeByName("weightinit.v1.KaimingNormalParams").fields_by_name["mode"]


# -- bad inputs ---------------------------------------------------------------


def _tensor(scheme: str, shape, **params) -> spec_pb2.TensorSpec:
    message = spec_pb2.TensorSpec(shape=shape)
    getattr(message, scheme).SetInParent()
    for key, value in params.items():
        setattr(getattr(message, scheme), key, value)
    return message


def _gen(spec=None, **fields):
    return "Generate", pb.GenerateRequest(spec=spec, **fields)


def _model(tensors, **fields):
    return "GenerateModel", pb.GenerateModelRequest(manifest=spec_pb2.ModelManifest(seed=1, tensors=tensors),
                                                    **fields)


def _with(message, **fields):
    copy = spec_pb2.TensorSpec()
    copy.CopyFrom(message)
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(copy, key).extend(value)
        else:
            setattr(copy, key, value)
    return copy


OK = _tensor("normal", [4, 4])
INVALID, EXHAUSTED = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED
BAD_INPUTS = [
    ("missing spec", _gen(), INVALID, "spec"),
    ("no scheme", _gen(spec_pb2.TensorSpec(shape=[3])), INVALID, "spec.scheme"),
    ("negative dim", _gen(_tensor("normal", [3, -2])), INVALID, "spec.shape"),
    ("unknown dtype", _gen(_with(OK, dtype=99)), INVALID, "spec.dtype"),
    ("unknown layout", _gen(_with(OK, layout=42)), INVALID, "spec.layout"),
    ("std zero", _gen(_tensor("normal", [3], std=0.0)), INVALID, "spec.normal.std"),
    ("std nan", _gen(_tensor("normal", [3], std=math.nan)), INVALID, "spec.normal.std"),
    ("mean inf", _gen(_tensor("normal", [3], mean=math.inf)), INVALID, "spec.normal.mean"),
    ("low above high", _gen(_tensor("uniform", [3], low=2.0, high=1.0)), INVALID, "spec.uniform.high"),
    ("lower above upper", _gen(_tensor("truncated_normal", [3], lower=1.0, upper=-1.0)), INVALID,
     "spec.truncated_normal.upper"),
    ("constant without value", _gen(_tensor("constant", [3])), INVALID, "spec.constant.value"),
    ("sparsity above one", _gen(_tensor("sparse", [4, 4], sparsity=1.5)), INVALID, "spec.sparse.sparsity"),
    ("sparse 3-D", _gen(_tensor("sparse", [4, 4, 4], sparsity=0.5)), INVALID, "spec.shape"),
    ("fans of 1-D torch", _gen(_tensor("kaiming_normal", [10])), INVALID, "spec.shape"),
    ("unknown fan mode", _gen(_tensor("kaiming_normal", [4, 4], mode=9)), INVALID, "spec.kaiming_normal.mode"),
    ("gain and nonlinearity", _gen(_tensor("xavier_uniform", [4, 4], gain=2.0, nonlinearity=10)), INVALID,
     "spec.xavier_uniform.gain"),
    ("slope without nonlinearity", _gen(_tensor("eye", [4, 4], a=0.1)), INVALID, "spec.eye.a"),
    ("groups not dividing", _gen(_tensor("dirac", [8, 4, 3], groups=3)), INVALID, "spec.dirac.groups"),
    ("column axis out of range", _gen(_tensor("orthogonal", [4, 4], column_axis=5)), INVALID,
     "spec.orthogonal.column_axis"),
    ("delta_orthogonal out < in", _gen(_tensor("delta_orthogonal", [2, 8, 3])), INVALID, "spec.shape"),
    ("axis without the axes layout", _gen(_with(_tensor("lecun_normal", [4, 4]), in_axis=0)), INVALID,
     "spec.in_axis"),
    ("start past the end", _gen(OK, start=17), INVALID, "start"),
    ("stop before start", _gen(OK, start=5, stop=2), INVALID, "stop"),
    ("negative chunk", _gen(OK, chunk_elements=-1), INVALID, "chunk_elements"),
    ("chunk over 4 MiB", _gen(OK, chunk_elements=2_000_000), INVALID, "chunk_elements"),
    ("hash_from after start", _gen(OK, start=2, hash_from=3), INVALID, "hash_from"),
    ("too many elements", _gen(_tensor("zeros", [1 << 17, 1 << 16])), EXHAUSTED, "spec.shape"),
    ("dense too big", _gen(_tensor("orthogonal", [8192, 4096])), EXHAUSTED, "spec.shape"),
    ("empty manifest", _model([]), INVALID, "manifest.tensors"),
    ("duplicate names", _model([_with(OK, name="x"), _with(OK, name="x")]), INVALID, "manifest.tensors[1].name"),
    ("bad manifest tensor", _model([_with(OK, name="a"), _tensor("normal", [2], std=-1.0)]), INVALID,
     "manifest.tensors[1].normal.std"),
    ("model chunk negative", _model([OK], chunk_elements=-3), INVALID, "chunk_elements"),
    ("unknown digest algorithm", _gen(OK, digest_algorithm=99), INVALID, "digest_algorithm"),
    ("model unknown digest algorithm", _model([OK], digest_algorithm=-1), INVALID, "digest_algorithm"),
]


def test_there_are_enough_distinct_bad_inputs():
    assert len({case[0] for case in BAD_INPUTS}) >= 20


@pytest.mark.parametrize("label, call, code, field", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_code_and_field_violation_then_server_still_serves(server, label, call, code, field):
    method, request = call
    with grpc.insecure_channel(server.target) as channel:
        stub = channel.unary_stream(f"/{SERVICE_NAME}/{method}", request_serializer=type(request).SerializeToString,
                                    response_deserializer=None)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub(request, timeout=30))
    assert caught.value.code() == code, caught.value.details()
    violations = field_violations(caught.value)
    assert field in [v.field for v in violations], violations
    assert all(v.description for v in violations)
    with Client(server.target) as client:  # a valid call right after
        assert client.generate({"scheme": "ones", "shape": [3]}).tolist() == [1.0, 1.0, 1.0]


def test_unknown_method_is_unimplemented(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = channel.unary_unary(f"/{SERVICE_NAME}/Nope", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as caught:
            stub(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- concurrency ------------------------------------------------------------


def test_concurrent_clients_all_get_correct_bytes(server):
    specs = [{"scheme": scheme, "shape": [256, 1024], "seed": i, "name": f"t{i}", "dtype": dtype}
             for i, (scheme, dtype) in enumerate([("normal", "float32"), ("uniform", "float64"),
                                                  ("kaiming_normal", "float16"), ("he_normal", "bfloat16"),
                                                  ("truncated_normal", "float32"), ("xavier_uniform", "float32"),
                                                  ("lecun_normal", "float64"), ("glorot_uniform", "float16"),
                                                  ("normal", "bfloat16"), ("uniform", "float32")])]
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(specs))

    def work(i: int) -> None:
        try:
            with Client(server.target, timeout=120) as client:
                barrier.wait(30)
                results[i] = _bits(client.generate(specs[i], chunk_elements=50_000))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not errors, errors
    assert len(results) == len(specs) >= 8
    for i, spec in enumerate(specs):
        assert results[i] == _bits(wi.generate(spec)), spec
