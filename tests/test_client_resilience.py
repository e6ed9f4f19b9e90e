"""The Python client against real failures: dropped connections, corrupted chunks, late servers."""

from __future__ import annotations

import socket
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest

import weightinit as wi
from weightinit.client import Client, IntegrityError
from weightinit.client.core import _TensorReceiver
from weightinit.api import wire
from weightinit.server import SERVICE_NAME

pytestmark = pytest.mark.service

BIG = {"scheme": "normal", "shape": [4, 1 << 20], "seed": 5, "name": "big"}  # 16 MiB float32


def _bits(array) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def test_resume_after_a_dropped_connection_is_bit_identical(server, dropping_proxy):
    proxy = dropping_proxy(server.target, after_bytes=5 << 20)
    with Client(proxy.target, initial_backoff=0.01, timeout=60) as client:
        got = client.generate(BIG)
    assert proxy.cut == 1 and proxy.connections >= 2
    assert _bits(got) == _bits(wi.generate(BIG))


def test_resumed_range_download_is_verified_whole(server, dropping_proxy):
    proxy = dropping_proxy(server.target, after_bytes=3 << 20, drops=2)
    with Client(proxy.target, initial_backoff=0.01, timeout=60) as client:
        got = client.generate(BIG, start=12345, stop=(3 << 20) + 7, chunk_elements=100_000)
    assert proxy.cut == 2
    assert _bits(got) == _bits(wi.generate(BIG).reshape(-1)[12345:(3 << 20) + 7])


def test_model_resume_after_a_dropped_connection(server, dropping_proxy):
    manifest = {"seed": 8, "tensors": [
        {"name": "a", "scheme": "kaiming_normal", "shape": [1024, 1024]},
        {"name": "b", "scheme": "uniform", "shape": [3, 1 << 20]},
        {"name": "c", "scheme": "he_uniform", "shape": [512, 512], "seed": 1}]}
    proxy = dropping_proxy(server.target, after_bytes=9 << 20)  # inside tensor b
    with Client(proxy.target, initial_backoff=0.01, timeout=60) as client:
        got = client.generate_model(manifest)
    assert proxy.cut == 1
    for tensor in manifest["tensors"]:
        spec = {**tensor, "seed": tensor.get("seed", manifest["seed"])}
        assert _bits(got[tensor["name"]]) == _bits(wi.generate(spec)), tensor["name"]


def test_recipe_model_resumes_on_the_expanded_specs(server, dropping_proxy):
    """A recipe is expanded by the server over the whole list; after a break the client finishes
    on the same expansion, done locally, and every tensor equals the recipe's specs."""
    from weightinit import recipes

    tensors = [{"name": f"h.{layer}.{part}.weight", "shape": [1024, 1024]}
               for layer in range(2) for part in ("attn.c_attn", "attn.c_proj")]
    tensors += [{"name": f"h.{layer}.ln_1.weight", "shape": [1024]} for layer in range(2)]
    manifest = {"seed": 3, "recipe": "gpt2", "tensors": tensors}
    proxy = dropping_proxy(server.target, after_bytes=6 << 20)  # inside the second tensor
    with Client(proxy.target, initial_backoff=0.01, timeout=60) as client:
        got = client.generate_model(manifest)
    assert proxy.cut == 1
    for spec in recipes.expand("gpt2", tensors, seed=3):
        assert _bits(got[spec["name"]]) == _bits(wi.generate(spec)), spec["name"]


def test_gives_up_after_max_attempts_with_unavailable():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Client(f"127.0.0.1:{port}", max_attempts=2, initial_backoff=0.01, timeout=2) as client:
        with pytest.raises(wi.UnavailableError) as caught:
            client.generate({"scheme": "ones", "shape": [2]})
    assert caught.value.code == "UNAVAILABLE"


def test_retries_until_a_late_server_comes_up(make_server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from weightinit.server import create_server

    started = []

    def start_later():
        time.sleep(0.7)
        started.append(create_server("127.0.0.1", port))

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        with Client(f"127.0.0.1:{port}", max_attempts=8, initial_backoff=0.1, timeout=10) as client:
            got = client.generate({"scheme": "uniform", "shape": [100], "seed": 2})
        assert _bits(got) == _bits(wi.generate({"scheme": "uniform", "shape": [100], "seed": 2}))
    finally:
        thread.join()
        for running in started:
            running.stop(0)


class CorruptingProxy:
    """A gRPC relay in front of the real server that flips one byte in the data of message ``target_index``."""

    def __init__(self, upstream: str, target_index: int = 1):
        self._channel = grpc.insecure_channel(upstream)
        self._upstream = self._channel.unary_stream(f"/{SERVICE_NAME}/Generate", request_serializer=None,
                                                    response_deserializer=None)
        self.target_index = target_index

        def relay(request: bytes, context):
            for index, raw in enumerate(self._upstream(request)):
                if index == 0:
                    self.algorithm = wire.decode_generate(raw)[0].header.digest_algorithm
                if index == self.target_index:
                    message, data = wire.decode_generate(raw)
                    damaged = bytearray(data)
                    damaged[len(damaged) // 2] ^= 0x01
                    header = message.header.SerializeToString() if message.HasField("header") else None
                    raw = wire.encode_chunk(wire.GENERATE, data=bytes(damaged), offset=message.offset,
                                            header=header, digest=message.digest or None,
                                            algorithm=wire.digest_name(self.algorithm))
                yield raw

        handler = grpc.method_handlers_generic_handler(SERVICE_NAME, {
            "Generate": grpc.unary_stream_rpc_method_handler(relay)})
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers((handler,))
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def close(self):
        self.server.stop(0)
        self._channel.close()


@pytest.mark.parametrize("algorithm, title", [("blake3", "BLAKE3"), ("sha256", "SHA-256")])
def test_digest_detects_a_corrupted_chunk(server, algorithm, title):
    proxy = CorruptingProxy(server.target, target_index=1)
    try:
        with Client(proxy.target, timeout=30, digest=algorithm) as client:
            with pytest.raises(IntegrityError, match=f"{title} mismatch"):
                client.generate({"scheme": "normal", "shape": [1000, 100]}, chunk_elements=10_000)
            proxy.target_index = -1  # relay untouched: the same call passes
            assert client.generate({"scheme": "ones", "shape": [3]}).tolist() == [1.0, 1.0, 1.0]
    finally:
        proxy.close()


def test_receiver_rejects_gaps_overruns_and_missing_headers():
    from weightinit.v1 import initializer_service_pb2 as pb

    header = pb.TensorHeader(name="t", shape=[4], dtype=1, element_count=4, start=0, stop=4, item_size=4)
    with pytest.raises(IntegrityError, match="before its header"):
        _TensorReceiver(None).accept(None, 0, memoryview(b"\0" * 4), b"")
    receiver = _TensorReceiver(None)
    receiver.accept(header, 0, memoryview(b"\0" * 8), b"")
    with pytest.raises(IntegrityError, match="expected data at element 2"):
        receiver.accept(None, 3, memoryview(b"\0" * 4), b"")
    with pytest.raises(IntegrityError, match="more data"):
        receiver.accept(None, 2, memoryview(b"\0" * 12), b"")
    with pytest.raises(IntegrityError, match="whole number"):
        receiver.accept(None, 2, memoryview(b"\0" * 3), b"")


def test_waits_out_a_full_server_with_backoff(make_server):
    from weightinit.api import convert
    from weightinit.v1 import initializer_service_pb2 as pb

    running = make_server(max_concurrent_streams=1)
    with grpc.insecure_channel(running.target) as channel:
        stub = channel.unary_stream(f"/{SERVICE_NAME}/Generate",
                                    request_serializer=pb.GenerateRequest.SerializeToString,
                                    response_deserializer=None)
        hog = stub(pb.GenerateRequest(spec=convert.spec_from_any({"scheme": "uniform", "shape": [1 << 31]})))
        next(hog)
        threading.Timer(0.6, hog.cancel).start()
        with Client(running.target, max_attempts=10, initial_backoff=0.1, timeout=30) as client:
            assert client.generate({"scheme": "ones", "shape": [2]}).tolist() == [1.0, 1.0]
        with Client(running.target, max_attempts=1) as impatient:
            hog2 = stub(pb.GenerateRequest(spec=convert.spec_from_any({"scheme": "uniform", "shape": [1 << 31]})))
            next(hog2)
            with pytest.raises(wi.UnavailableError) as caught:
                impatient.generate({"scheme": "ones", "shape": [2]})
            assert caught.value.code == "RESOURCE_EXHAUSTED" and "streams" in caught.value.details
            hog2.cancel()
