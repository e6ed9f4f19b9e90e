"""Server behaviour over time: cancellation, deadlines, stream limits, graceful shutdown on signals."""

from __future__ import annotations

import hashlib
import signal
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from weightinit.client import Client
from weightinit.api import convert, wire
from weightinit.server import SERVICE_NAME
from weightinit.v1 import initializer_service_pb2 as pb

pytestmark = pytest.mark.service

HUGE = {"scheme": "uniform", "shape": [1 << 31], "name": "huge"}  # 8 GiB: never meant to finish


def _raw_stream(channel):
    return channel.unary_stream(f"/{SERVICE_NAME}/Generate", request_serializer=pb.GenerateRequest.SerializeToString,
                                response_deserializer=None)


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_cancel_stops_server_work_promptly(make_server):
    running = make_server()
    stats = running.servicer.stats
    with grpc.insecure_channel(running.target) as channel:
        call = _raw_stream(channel)(pb.GenerateRequest(spec=convert.spec_from_any(HUGE)))
        for _ in range(3):
            next(call)
        assert stats.snapshot()["active"] == 1
        call.cancel()
        assert _wait_for(lambda: stats.snapshot()["active"] == 0), stats.snapshot()
        settled = stats.snapshot()["chunks"]
        time.sleep(0.5)
        after = stats.snapshot()
    assert after["chunks"] == settled, "the producer kept generating after the cancel"
    assert after["chunks"] < 20, after  # 3 read + a few prefetched, out of 8192
    assert after["stopped_early"] == 1


def test_deadline_stops_server_work(make_server):
    running = make_server()
    stats = running.servicer.stats
    with grpc.insecure_channel(running.target) as channel:
        call = _raw_stream(channel)(pb.GenerateRequest(spec=convert.spec_from_any(HUGE)), timeout=0.5)
        with pytest.raises(grpc.RpcError) as caught:
            for _ in call:
                time.sleep(0.05)  # a slow consumer
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _wait_for(lambda: stats.snapshot()["active"] == 0)
    settled = stats.snapshot()["chunks"]
    time.sleep(0.3)
    assert stats.snapshot()["chunks"] == settled


def test_concurrent_stream_limit_is_resource_exhausted(make_server):
    running = make_server(max_concurrent_streams=2)
    with grpc.insecure_channel(running.target) as channel:
        stub = _raw_stream(channel)
        calls = [stub(pb.GenerateRequest(spec=convert.spec_from_any(HUGE))) for _ in range(2)]
        for call in calls:
            next(call)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub(pb.GenerateRequest(spec=convert.spec_from_any({"scheme": "ones", "shape": [2]}))))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(caught.value)
        assert any(d.type_url.endswith("google.rpc.QuotaFailure") for d in status.details)
        calls[0].cancel()
        assert _wait_for(lambda: running.servicer.stats.snapshot()["active"] == 1)
        with Client(running.target) as client:
            assert client.generate({"scheme": "ones", "shape": [2]}).tolist() == [1.0, 1.0]
        calls[1].cancel()


def test_in_process_stop_drains_then_refuses(make_server):
    running = make_server()
    with Client(running.target) as client:
        assert client.health() == "SERVING"
    running.stop(grace=0.5)
    with grpc.insecure_channel(running.target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_turns_health_not_serving_drains_in_flight_and_exits_zero(server_process, signum):
    process = server_process("--backend", "numpy", "--grace", "20")
    statuses: list[int] = []
    with grpc.insecure_channel(process.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                                                          timeout=60)

        def follow():
            try:
                for reply in watch:
                    statuses.append(reply.status)
            except grpc.RpcError:
                pass

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        assert _wait_for(lambda: statuses == [health_pb2.HealthCheckResponse.SERVING], 10), statuses

        spec = {"scheme": "normal", "shape": [4, 1 << 20], "name": "in-flight"}  # 16 MiB in 16 chunks
        call = _raw_stream(channel)(pb.GenerateRequest(spec=convert.spec_from_any(spec)), timeout=60)
        hasher, received, digest = hashlib.sha256(), 0, b""
        message, data = wire.decode_generate(next(call))
        hasher.update(data)
        received += len(data)
        process.signal(signum)
        assert _wait_for(lambda: health_pb2.HealthCheckResponse.NOT_SERVING in statuses, 10), statuses
        for raw in call:  # the in-flight stream still completes
            time.sleep(0.01)
            message, data = wire.decode_generate(raw)
            hasher.update(data)
            received += len(data)
            digest = message.sha256 or digest
        assert received == 16 << 20 and digest == hasher.digest()
    assert process.wait(30) == 0
    log = process.stderr()
    assert "serving on 127.0.0.1:" in log and "backend numpy" in log and "concurrent streams" in log
    assert "NOT_SERVING" in log and "stopped" in log


def _rss_mib(pid: int) -> tuple[float, float]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def test_server_memory_does_not_grow_with_tensor_size(server_process):
    process = server_process("--backend", "auto")
    with Client(process.target, timeout=120) as client:
        client.generate({"scheme": "uniform", "shape": [1 << 20]})  # warm: JIT, thread pools, buffers
        _, warm_peak = _rss_mib(process.proc.pid)
        received = 0
        for chunk in client.iter_chunks({"scheme": "uniform", "shape": [1 << 27], "name": "512MiB"}):
            received += chunk.data.nbytes
        _, peak = _rss_mib(process.proc.pid)
    assert received == 512 << 20
    print(f"server peak RSS {warm_peak:.0f} -> {peak:.0f} MiB")
    assert peak - warm_peak < 128, f"server peak RSS grew {peak - warm_peak:.0f} MiB streaming 512 MiB"
