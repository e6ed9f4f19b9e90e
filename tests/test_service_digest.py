"""Digest negotiation end to end: each algorithm over a real server, what old clients and old
servers see, and bad names on either side."""

from __future__ import annotations

import hashlib
from concurrent import futures

import blake3
import grpc
import numpy as np
import pytest

import weightinit as wi
from weightinit.api import convert, wire
from weightinit.client import Client, LocalClient
from weightinit.errors import IntegrityError, InvalidRequestError
from weightinit.server import SERVICE_NAME
from weightinit.v1 import initializer_service_pb2 as pb

pytestmark = pytest.mark.service

SPEC = {"scheme": "kaiming_normal", "shape": [300, 700], "seed": 5, "name": "w"}
HASHES = {"sha256": hashlib.sha256, "blake3": blake3.blake3}


def _local_bytes(spec=SPEC, start=None, stop=None) -> bytes:
    return np.ascontiguousarray(wi.generate(spec, start, stop)).tobytes()


def _raw_stream(target: str, request: pb.GenerateRequest) -> list[tuple[pb.GenerateResponse, bytes]]:
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_stream(f"/{SERVICE_NAME}/Generate",
                                    request_serializer=pb.GenerateRequest.SerializeToString, response_deserializer=None)
        return [(message, bytes(data)) for message, data in map(wire.decode_generate, stub(request, timeout=30))]


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_each_algorithm_end_to_end_gives_the_engine_bytes_and_their_digest(server, algorithm):
    request = pb.GenerateRequest(spec=convert.spec_from_any(SPEC),
                                 digest_algorithm=wire.DIGEST_ALGORITHMS[algorithm], chunk_elements=50_000)
    messages = _raw_stream(server.target, request)
    header = messages[0][0].header
    assert header.digest_algorithm == wire.DIGEST_ALGORITHMS[algorithm]
    data = b"".join(chunk for _, chunk in messages)
    assert data == _local_bytes()
    last = messages[-1][0]
    assert last.digest == HASHES[algorithm](data).digest()
    assert last.sha256 == (last.digest if algorithm == "sha256" else b"")  # sha256 only for SHA-256
    assert all(not m.digest and not m.sha256 for m, _ in messages[:-1])
    with Client(server.target, digest=algorithm) as client:
        assert client.generate(SPEC).tobytes() == data


def test_a_request_without_the_field_gets_sha256_in_both_fields(server):
    """What clients written before negotiation send and read."""
    request = pb.GenerateRequest(spec=convert.spec_from_any(SPEC))
    messages = _raw_stream(server.target, request)
    assert messages[0][0].header.digest_algorithm == pb.DIGEST_ALGORITHM_SHA256
    expected = hashlib.sha256(_local_bytes()).digest()
    assert messages[-1][0].sha256 == expected == messages[-1][0].digest


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_model_streams_resumed_ranges_and_digest_only_use_the_algorithm(server, algorithm):
    manifest = {"seed": 3, "tensors": [{"scheme": "uniform", "shape": [64, 64], "name": "a"},
                                       {"scheme": "normal", "shape": [1000], "name": "b", "dtype": "bfloat16"}]}
    with Client(server.target, digest=algorithm) as client:
        got = client.generate_model(manifest)
        headers = [c.header for c in client.iter_model_chunks(manifest) if c.offset == 0]
        assert [h.digest_algorithm for h in headers] == [wire.DIGEST_ALGORITHMS[algorithm]] * 2
        assert client.digest(SPEC, algorithm=algorithm) == HASHES[algorithm](_local_bytes()).digest()
        assert client.digest(SPEC, start=100, stop=5000, algorithm=algorithm) == \
            LocalClient().digest(SPEC, start=100, stop=5000, algorithm=algorithm)
    local = LocalClient().generate_model(manifest)
    assert all(np.asarray(got[k]).tobytes() == np.asarray(local[k]).tobytes() for k in local)
    # a resumed download: the server hashes [hash_from, start) unsent, one digest covers both parts
    request = pb.GenerateRequest(spec=convert.spec_from_any(SPEC), start=120_000, hash_from=1000,
                                 digest_algorithm=wire.DIGEST_ALGORITHMS[algorithm])
    messages = _raw_stream(server.target, request)
    assert messages[-1][0].digest == HASHES[algorithm](_local_bytes(stop=SPEC["shape"][0] * 700)[4000:]).digest()


def test_capabilities_list_the_algorithms(client):
    assert set(client.capabilities().digest_algorithms) == set(wire.DIGEST_ALGORITHMS.values())


def test_unknown_algorithm_names_are_refused_on_the_client_side(server):
    with pytest.raises(InvalidRequestError, match="digest") as caught:
        Client(server.target, digest="md5")
    assert caught.value.field == "digest"
    with Client(server.target) as client, pytest.raises(InvalidRequestError) as caught:
        client.digest(SPEC, algorithm="crc32")
    assert caught.value.field == "algorithm"
    with pytest.raises(InvalidRequestError) as caught:
        LocalClient().digest(SPEC, algorithm="md5")
    assert caught.value.field == "algorithm"


class OldServer:
    """A relay in front of the real server that behaves like a server from before negotiation:
    it drops the request's digest_algorithm (an unknown field there) and answers as such a server
    did: SHA-256 in ``sha256`` only, no algorithm in the header (or ``header_algorithm``: a
    server from the future, or a rogue one)."""

    def __init__(self, upstream: str, header_algorithm: int = pb.DIGEST_ALGORITHM_UNSPECIFIED):
        self._channel = grpc.insecure_channel(upstream)
        stub = self._channel.unary_stream(f"/{SERVICE_NAME}/Generate", request_serializer=None,
                                          response_deserializer=None)

        def relay(request: bytes, context):
            message = pb.GenerateRequest.FromString(request)
            message.ClearField("digest_algorithm")
            for raw in stub(message.SerializeToString()):
                response, data = wire.decode_generate(raw)
                old = pb.GenerateResponse(offset=response.offset, data=bytes(data), sha256=response.sha256)
                if response.HasField("header"):
                    old.header.CopyFrom(response.header)
                    old.header.digest_algorithm = header_algorithm
                yield old.SerializeToString()

        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {
            "Generate": grpc.unary_stream_rpc_method_handler(relay)}),))
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def close(self):
        self.server.stop(0)
        self._channel.close()


def test_an_old_server_answering_sha256_is_still_checked(server):
    old = OldServer(server.target)
    try:
        with Client(old.target, digest="blake3", timeout=30) as client:
            assert client.generate(SPEC).tobytes() == _local_bytes()
            with pytest.raises(IntegrityError, match="older than digest negotiation"):
                client.digest(SPEC, algorithm="blake3")
            assert client.digest(SPEC) == hashlib.sha256(_local_bytes()).digest()
    finally:
        old.close()


def test_hashers_agree_with_the_libraries_whatever_the_pieces():
    data = np.random.default_rng(0).bytes(3 << 20)
    for algorithm, reference in HASHES.items():
        with wire.ThreadedHasher(algorithm) as hasher:
            for begin in range(0, len(data), 700_001):  # large pieces go to the helper thread
                hasher.update(memoryview(data)[begin:begin + 700_001])
            assert hasher.digest() == reference(data).digest()


def test_a_header_naming_an_unknown_algorithm_is_an_integrity_error(server):
    rogue = OldServer(server.target, header_algorithm=77)
    try:
        with Client(rogue.target, timeout=30, max_attempts=1) as client:
            with pytest.raises(IntegrityError, match="digest algorithm 77, which this client does not know"):
                client.generate(SPEC)
    finally:
        rogue.close()
