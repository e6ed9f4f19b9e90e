"""Streams that end early leave nothing behind: no helper thread, no queued chunk, on either side."""

from __future__ import annotations

import os
import subprocess
import sys
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


def _settle(predicate, timeout: float = 10.0, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def _other_threads() -> int:
    """Threads outside the servers' gRPC worker pools: those pools grow lazily up to a fixed size
    (a handler may still be finishing when the next call starts), the rest must not grow."""
    return sum(1 for thread in threading.enumerate() if not thread.name.startswith("weightinit-rpc"))


def _threads_flat(before: int, pool_before: int, pool_size: int) -> bool:
    """The issue's bound: within 10 % (at least 1 thread of slack) outside the pools, and the pools
    no larger than their size; no stream's producer or hasher thread left."""
    return (_other_threads() <= before + max(1, before // 10)
            and _threads("weightinit-rpc") <= pool_before + pool_size
            and _threads("weightinit-digest") == 0 and _threads("weightinit-stream") == 0)


def _pool_size(running) -> int:
    from weightinit.server.app import EXTRA_WORKERS

    return running.settings.max_concurrent_streams + EXTRA_WORKERS


#: The issue's counts; WEIGHTINIT_LEAK_SCALE=0.1 (say) runs fewer on a slow machine.
LEAK_SCALE = float(os.environ.get("WEIGHTINIT_LEAK_SCALE", "1"))
CANCELLED_STREAMS = max(50, int(1000 * LEAK_SCALE))
KILLED_CLIENTS = max(10, int(100 * LEAK_SCALE))

#: A client process that starts a download, takes its first chunk, says so and waits to be killed.
#: Only grpc is imported: the request arrives serialized, in hex.
KILLED_CLIENT = """
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_stream("/weightinit.v1.InitializerService/Generate")
stream = call(bytes.fromhex(sys.argv[2]))
next(stream)
print("streaming", flush=True)
sys.stdin.read()
"""


def test_hasher_thread_ends_when_closed_or_dropped():
    before = _threads("weightinit-digest")
    with wire.ThreadedHasher() as hasher:
        hasher.update(bytes(1 << 20))
        assert _threads("weightinit-digest") == before + 1
    assert _settle(lambda: _threads("weightinit-digest") == before)

    dropped = wire.ThreadedHasher()
    dropped.update(bytes(1 << 20))
    del dropped  # never closed: collection must still end its thread
    assert _settle(lambda: _threads("weightinit-digest") == before)


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
                _settle(lambda: stats.snapshot()["active"] == 0, 5.0, poll=0.002)

        cancel_some(20)  # warm up pools, allocator arenas and the JIT
        assert _settle(lambda: stats.snapshot()["active"] == 0)
        threads_before, pool_before, rss_before = _other_threads(), _threads("weightinit-rpc"), _rss_bytes()
        names_before = sorted(t.name for t in threading.enumerate())
        cancel_some(CANCELLED_STREAMS)
        assert _settle(lambda: stats.snapshot()["active"] == 0)
        assert _settle(lambda: _threads_flat(threads_before, pool_before, _pool_size(running))), \
            (names_before, sorted(t.name for t in threading.enumerate()))
        growth = _rss_bytes() - rss_before
        assert growth < 0.1 * rss_before + (32 << 20), \
            f"RSS grew by {growth >> 20} MiB over {CANCELLED_STREAMS} cancels"
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
        assert _settle(lambda: _threads("weightinit-digest") == 0), [t.name for t in threading.enumerate()]
        assert _settle(lambda: _threads("weightinit-stream") == 0)


def test_killed_client_processes_leave_no_thread_or_memory_behind(make_server):
    """Client processes start a download, take the first chunk and are SIGKILLed, ten at a time."""
    running = make_server(max_concurrent_streams=16)
    stats = running.servicer.stats
    request = pb.GenerateRequest(spec=convert.spec_from_any(BIG)).SerializeToString().hex()

    def kill_some(count: int, at_once: int = 10) -> None:
        for first in range(0, count, at_once):
            clients = [subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, running.target, request],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                       for _ in range(min(at_once, count - first))]
            for client in clients:
                assert client.stdout.readline().strip() == "streaming"
            for client in clients:
                client.kill()
                client.wait(10)
                client.stdin.close()
                client.stdout.close()
            assert _settle(lambda: stats.snapshot()["active"] == 0, 15.0)

    kill_some(10)  # warm-up
    threads_before, pool_before, rss_before = _other_threads(), _threads("weightinit-rpc"), _rss_bytes()
    kill_some(KILLED_CLIENTS)
    assert _settle(lambda: _threads_flat(threads_before, pool_before, _pool_size(running))), \
        [t.name for t in threading.enumerate()]
    growth = _rss_bytes() - rss_before
    assert growth < 0.1 * rss_before + (32 << 20), f"RSS grew by {growth >> 20} MiB over {KILLED_CLIENTS} kills"
    with Client(running.target, timeout=30) as client:
        assert client.generate({"scheme": "ones", "shape": [4]}).sum() == 4
