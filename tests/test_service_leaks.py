"""Streams that end early leave nothing behind: no helper thread, no queued chunk, on either side."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from weightinit.api import convert, wire
from weightinit.client import Client
from weightinit.server import SERVICE_NAME
from weightinit.v1 import initializer_service_pb2 as pb

pytestmark = pytest.mark.service

BIG = {"scheme": "uniform", "shape": [1 << 26], "name": "big"}  # 256 MiB: never read to the end here


def _threads(prefix: str) -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith(prefix))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def _settle(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_hasher_thread_ends_when_closed_or_dropped():
    before = _threads("weightinit-sha256")
    with wire.ThreadedHasher() as hasher:
        hasher.update(bytes(1 << 20))
        assert _threads("weightinit-sha256") == before + 1
    assert _settle(lambda: _threads("weightinit-sha256") == before)

    dropped = wire.ThreadedHasher()
    dropped.update(bytes(1 << 20))
    del dropped  # never closed: collection must still end its thread
    assert _settle(lambda: _threads("weightinit-sha256") == before)


def test_hasher_digest_is_unchanged_by_the_helper_thread():
    import hashlib

    pieces = [bytes([i]) * (300 * 1024) for i in range(5)] + [b"tail"]
    with wire.ThreadedHasher() as hasher:
        for piece in pieces:
            hasher.update(piece)
        assert hasher.digest() == hashlib.sha256(b"".join(pieces)).digest()


def test_cancelled_streams_leave_no_thread_or_memory_behind(make_server):
    """Each stream is cancelled after its first 1 MiB chunk (the size that starts a hasher thread)."""
    running = make_server(max_concurrent_streams=4)
    stats = running.servicer.stats
    request = pb.GenerateRequest(spec=convert.spec_from_any(BIG))
    with grpc.insecure_channel(running.target) as channel:
        call_stream = channel.unary_stream(f"/{SERVICE_NAME}/Generate",
                                           request_serializer=pb.GenerateRequest.SerializeToString,
                                           response_deserializer=None)

        def cancel_some(count: int) -> None:
            for _ in range(count):
                call = call_stream(request)
                next(call)
                call.cancel()
                _settle(lambda: stats.snapshot()["active"] == 0, 5.0)

        cancel_some(20)  # warm up pools, allocator arenas and the JIT
        assert _settle(lambda: stats.snapshot()["active"] == 0)
        threads_before, rss_before = threading.active_count(), _rss_bytes()
        cancel_some(300)
        assert _settle(lambda: stats.snapshot()["active"] == 0)
        assert _settle(lambda: threading.active_count() <= threads_before + 1), \
            [t.name for t in threading.enumerate()]
        assert _threads("weightinit-sha256") == 0
        assert _threads("weightinit-stream") == 0
        growth = _rss_bytes() - rss_before
        assert growth < 0.1 * rss_before + (32 << 20), f"RSS grew by {growth >> 20} MiB over 300 cancels"
        # the server still serves
        with Client(running.target, timeout=30) as client:
            assert client.generate({"scheme": "ones", "shape": [4]}).sum() == 4


def test_client_iterators_abandoned_midway_end_their_threads(server):
    with Client(server.target, timeout=60) as client:
        for _ in range(30):
            chunks = client.iter_chunks(BIG)
            next(chunks)
            next(chunks)  # the receiver's hasher thread now runs
            chunks.close()
            model = client.iter_model_chunks({"seed": 1, "tensors": [dict(BIG, name="a"), dict(BIG, name="b")]})
            next(model)
            next(model)
            model.close()
        # server and client share this process: neither side may keep a hasher or producer thread
        assert _settle(lambda: _threads("weightinit-sha256") == 0), [t.name for t in threading.enumerate()]
        assert _settle(lambda: _threads("weightinit-stream") == 0)
