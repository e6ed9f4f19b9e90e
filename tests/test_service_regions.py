"""N-d regions over a real server (GenerateRequest.region): equal to the engine, digest over the
region's bytes, resumable, echoed in the header; bad regions are INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import hashlib

import grpc
import numpy as np
import pytest

import weightinit as wi
from weightinit.api import convert, wire
from weightinit.client import Client, LocalClient, field_violations
from weightinit.server import SERVICE_NAME
from weightinit.v1 import initializer_service_pb2 as pb

pytestmark = pytest.mark.service

CASES = [
    ({"scheme": "normal", "shape": [37, 29], "seed": 1, "name": "w"}, np.s_[5:30, 3:20]),
    ({"scheme": "kaiming_uniform", "shape": [6, 9, 5, 3], "dtype": "bfloat16", "seed": 2}, np.s_[1:4, -4:, 2:5, 1:2]),
    ({"scheme": "sparse", "shape": [40, 17], "params": {"sparsity": 0.3}, "dtype": "float64", "seed": 3},
     np.s_[7:33, 4:9]),
    ({"scheme": "eye", "shape": [20, 30], "dtype": "float16"}, [(3, 18)]),
    ({"scheme": "orthogonal", "shape": [16, 12], "seed": 4}, np.s_[:, 5:9]),
    ({"scheme": "uniform", "shape": [9, 8], "seed": 5}, np.s_[4:4, 2:6]),  # empty region
]


def _raw(array) -> bytes:
    return np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize("spec, index", CASES, ids=[case[0]["scheme"] for case in CASES])
@pytest.mark.parametrize("chunk_elements", [0, 7])
def test_region_over_the_server_equals_the_engine(client, spec, index, chunk_elements):
    want = wi.generate(spec, index=index)
    got = client.generate(spec, index=index, chunk_elements=chunk_elements)
    assert got.shape == want.shape and got.dtype == want.dtype and _raw(got) == _raw(want)
    local = LocalClient().generate(spec, index=index)
    assert local.shape == want.shape and _raw(local) == _raw(want)
    chunks = list(LocalClient().iter_chunks(spec, index=index, chunk_elements=5))
    assert b"".join(_raw(chunk.data) for chunk in chunks) == _raw(want)


def _stream(server, request: pb.GenerateRequest) -> list:
    with grpc.insecure_channel(server.target) as channel:
        stub = channel.unary_stream(f"/{SERVICE_NAME}/Generate", request_serializer=pb.GenerateRequest.SerializeToString,
                                    response_deserializer=None)
        return [wire.decode_generate(raw) for raw in stub(request, timeout=30)]


def test_header_echoes_the_region_and_the_digest_covers_its_bytes(server):
    spec, index = CASES[0]
    region = ((5, 30), (3, 20))
    request = pb.GenerateRequest(spec=convert.spec_from_any(spec), chunk_elements=50,
                                 region=convert.region_to_proto(region))
    messages = _stream(server, request)
    header = messages[0][0].header
    assert [(r.start, r.stop) for r in header.region] == list(region)
    assert (header.start, header.stop) == (0, 25 * 17) and header.byte_count == 25 * 17 * 4
    assert [message.offset for message, _ in messages] == list(range(0, 25 * 17, 50))
    want = _raw(wi.generate(spec, index=index))
    assert b"".join(bytes(data) for _, data in messages) == want
    assert messages[-1][0].sha256 == hashlib.sha256(want).digest()


def test_resumed_region_digest_covers_everything_held(server):
    """start / hash_from count positions in the region: what a client resuming at `start` sends."""
    spec = {"scheme": "normal", "shape": [37, 29], "seed": 1, "name": "w"}
    request = pb.GenerateRequest(spec=convert.spec_from_any(spec), chunk_elements=64, start=100, hash_from=40,
                                 region=convert.region_to_proto([(5, 30), (3, 20)]))
    messages = _stream(server, request)
    want = _raw(wi.generate(spec, index=np.s_[5:30, 3:20]))
    assert messages[0][0].header.hash_from == 40 and messages[0][1] is not None
    assert b"".join(bytes(data) for _, data in messages) == want[100 * 4:]
    assert messages[-1][0].sha256 == hashlib.sha256(want[40 * 4:]).digest()


def test_region_download_resumes_after_a_dropped_connection(server, dropping_proxy):
    spec = {"scheme": "normal", "shape": [4, 1 << 20], "seed": 5, "name": "big"}
    index = np.s_[1:4, 1000:(1 << 20) - 3]
    proxy = dropping_proxy(server.target, after_bytes=5 << 20)
    with Client(proxy.target, initial_backoff=0.01, timeout=60) as client:
        got = client.generate(spec, index=index)
    assert proxy.cut == 1 and proxy.connections >= 2
    assert _raw(got) == _raw(wi.generate(spec, index=index))


@pytest.mark.parametrize("ranges, field", [
    ([(0, 5), (0, 99)], "region[1]"),
    ([(4, 2)], "region[0]"),
    ([(-1, 2)], "region[0]"),
    ([(0, 1), (0, 1), (0, 1)], "region"),
])
def test_bad_regions_are_invalid_argument_naming_the_field(server, ranges, field):
    request = pb.GenerateRequest(spec=convert.spec_from_any({"scheme": "normal", "shape": [6, 5]}),
                                 region=convert.region_to_proto(ranges))
    with pytest.raises(grpc.RpcError) as caught:
        _stream(server, request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [violation.field for violation in field_violations(caught.value)]


def test_start_past_the_region_is_invalid(server):
    request = pb.GenerateRequest(spec=convert.spec_from_any({"scheme": "normal", "shape": [6, 5]}), start=11,
                                 region=convert.region_to_proto([(0, 2)]))
    with pytest.raises(grpc.RpcError) as caught:
        _stream(server, request)
    assert "start" in [violation.field for violation in field_violations(caught.value)]


def test_client_index_is_exclusive_with_start_stop(client):
    for api in (client, LocalClient()):
        with pytest.raises(wi.SpecError, match="index"):
            api.generate({"scheme": "normal", "shape": [6, 5]}, index=np.s_[0:2], start=0)
        with pytest.raises(wi.SpecError, match=r"index\[1\]"):
            api.generate({"scheme": "normal", "shape": [6, 5]}, index=np.s_[0:2, 0:5:2])


@pytest.mark.parametrize("remote", [False, True], ids=["local", "server"])
def test_cli_index_writes_the_region(tmp_path, server, remote):
    from weightinit.cli import main

    spec = {"scheme": "kaiming_normal", "shape": [64, 48], "seed": 7, "name": "fc1.weight"}
    args = ["generate", "--scheme", "kaiming_normal", "--shape", "64", "48", "--seed", "7", "--name", "fc1.weight",
            "--index", "0:40,-16:", "-o", str(tmp_path / "w.npy")]
    assert main(args + (["--server", server.target] if remote else [])) == 0
    loaded = np.load(tmp_path / "w.npy")
    assert loaded.shape == (40, 16) and _raw(loaded) == _raw(wi.generate(spec, index=np.s_[0:40, -16:]))


def test_cli_bad_index_names_the_dimension(tmp_path, capsys):
    from weightinit.cli import main

    for index, field in (("0:4,9", "index[1]"), ("0:4,2:99:", "index[1]"), ("0:4,0:2,0:1", "index"),
                         ("0:4,3:9", "index[1]")):
        assert main(["generate", "--scheme", "normal", "--shape", "6", "5", "--index", index,
                     "-o", str(tmp_path / "x.npy")]) == 2
        assert f" {field}:" in capsys.readouterr().err, index
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("spec", [
    {"scheme": "kaiming_normal", "shape": [40, 30, 3], "seed": 5, "name": "conv"},
    {"scheme": "orthogonal", "shape": [24, 16], "seed": 2, "name": "q"},  # dense: checked against the whole
])
def test_spot_checks_of_a_region_recompute_the_right_elements(server, spec):
    """spot_check counts positions in the region's own order: they must map back to flat elements."""
    index = np.s_[3:37, 5:17]
    with Client(server.target, timeout=30, spot_check=64) as checked:
        got = checked.generate(spec, index=index)
    assert got.tobytes() == np.ascontiguousarray(wi.generate(spec)[index]).tobytes()
