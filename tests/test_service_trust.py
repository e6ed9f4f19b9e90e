"""Trust beyond the transport: digest-only requests, client spot checks against the local engine,
and a download that survives kill -9 and a restart of its server 3 s later."""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import numpy as np
import pytest

import weightinit as wi
from weightinit.api import convert
from weightinit.backends.numpy_backend import NumpyBackend
from weightinit.client import Client, IntegrityError
from weightinit.server import create_server
from weightinit.v1 import initializer_service_pb2 as pb

pytestmark = pytest.mark.service


class DriftingBackend(NumpyBackend):
    """A server whose arithmetic is off by one unit in the last place on every 4th element: its
    stream digest still matches the bytes it sends, so only a recomputation can notice."""

    name = "drifting"

    def random_into(self, kernel, key, start, out, dtype):
        super().random_into(kernel, key, start, out, dtype)
        bits = out.view(np.uint32 if out.itemsize == 4 else np.uint64 if out.itemsize == 8 else np.uint16)
        bits[(-start) % 4::4] ^= 1  # 64 spot checks all miss with probability 0.75^64 ~ 1e-8


def test_digest_only_matches_local_bytes(server):
    spec = {"scheme": "truncated_normal", "shape": [256, 100], "seed": 11, "name": "enc.0"}
    local = wi.generate(spec)
    with Client(server.target, timeout=30) as client, Client.local() as twin:
        assert client.digest(spec) == hashlib.sha256(local.tobytes()).digest() == twin.digest(spec)
        assert client.digest(spec, start=1000, stop=5000) == \
            hashlib.sha256(local.reshape(-1)[1000:5000].tobytes()).digest()
        request = pb.GenerateRequest(spec=convert.spec_from_any(spec), digest_only=True)
        raw = list(client._generate(request, timeout=30))
    assert len(raw) == 1 and len(raw[0]) < 2048  # header and digest, no data


def test_spot_check_passes_on_an_honest_server(server):
    specs = [{"scheme": "kaiming_uniform", "shape": [128, 64], "name": "a"},
             {"scheme": "orthogonal", "shape": [40, 30], "name": "q"},
             {"scheme": "normal", "shape": [5000], "dtype": "bfloat16", "name": "b"}]
    with Client(server.target, timeout=30, spot_check=16) as client:
        for spec in specs:
            assert np.array_equal(np.asarray(client.generate(spec)).view(np.uint8),
                                  np.asarray(wi.generate(spec)).view(np.uint8))
        arrays = client.generate_model({"seed": 2, "tensors": specs})
        assert set(arrays) == {"a", "q", "b"}


def test_spot_check_catches_a_server_whose_bytes_are_wrong():
    running = create_server("127.0.0.1", 0, backend=DriftingBackend())
    spec = {"scheme": "normal", "shape": [100_000], "seed": 1, "name": "w"}
    try:
        with Client(running.target, timeout=30) as trusting:  # the stream digest cannot see it
            drifted = trusting.generate(spec)
        assert not np.array_equal(drifted, wi.generate(spec))
        with Client(running.target, timeout=30, spot_check=64) as careful:
            with pytest.raises(IntegrityError, match="spot check failed"):
                careful.generate(spec)
            with pytest.raises(IntegrityError, match="spot check failed"):
                careful.generate_model({"seed": 1, "tensors": [spec]})
    finally:
        running.stop(0.5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_default_client_resumes_across_kill_9_and_a_restart_3_s_later(server_process):
    port = _free_port()
    first = server_process("--port", str(port))
    spec = {"scheme": "normal", "shape": [1 << 23], "seed": 21, "name": "big"}  # 32 MiB
    restarted = []

    def restart_later():
        time.sleep(3)
        restarted.append(server_process("--port", str(port)))

    with Client(f"127.0.0.1:{port}") as client:  # default retry budget: 30 s
        assert client.retry_seconds >= 30
        flat = np.empty(1 << 23, dtype=np.float32)
        chunks = client.iter_chunks(spec)
        received = 0
        for chunk in chunks:
            flat[chunk.offset:chunk.offset + chunk.data.size] = chunk.data
            received += 1
            if received == 3:
                first.proc.kill()
                first.proc.wait(10)
                threading.Thread(target=restart_later, daemon=True).start()
        assert restarted, "the download finished before the restart"
    assert np.array_equal(flat, wi.generate(spec).reshape(-1))
