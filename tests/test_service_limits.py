"""Slot hogs, deadline cap, admission before validation, the cost model, readiness, capped error
details and overflowing fans: each against a real server on loopback."""

from __future__ import annotations

import hashlib
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import weightinit as wi
from weightinit.api import convert
from weightinit.api.errors import field_violations
from weightinit.client import Client
from weightinit.server import SERVICE_NAME, Settings, create_server
from weightinit.v1 import initializer_service_pb2 as pb

pytestmark = pytest.mark.service

BIG = {"scheme": "uniform", "shape": [1 << 26], "name": "big"}  # 256 MiB: the hogs never read it all
EXHAUSTED, INVALID = grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT


def _generate_call(channel):
    return channel.unary_stream(f"/{SERVICE_NAME}/Generate", request_serializer=pb.GenerateRequest.SerializeToString,
                                response_deserializer=None)


def _model_call(channel):
    return channel.unary_stream(f"/{SERVICE_NAME}/GenerateModel",
                                request_serializer=pb.GenerateModelRequest.SerializeToString,
                                response_deserializer=None)


def _request(spec: dict, **fields) -> pb.GenerateRequest:
    return pb.GenerateRequest(spec=convert.spec_from_any(spec), **fields)


def _refusal(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        list(call(request, timeout=60))
    return caught.value


def _settle(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_clients_that_stop_reading_are_cut_off_and_their_slots_freed(make_server):
    streams = 2
    running = make_server(max_concurrent_streams=streams, stream_idle_timeout=1.5)
    with grpc.insecure_channel(running.target) as channel:
        call = _generate_call(channel)
        hogs = [call(_request(BIG)) for _ in range(streams)]
        for hog in hogs:
            next(hog)  # then never read again
        assert running.servicer.stats.snapshot()["active"] == streams
        assert _refusal(call, _request({"scheme": "ones", "shape": [4]})).code() == EXHAUSTED
        began = time.monotonic()
        assert _settle(lambda: running.servicer.stats.snapshot()["active"] == 0, 15)
        waited = time.monotonic() - began
        assert waited < 1.5 + 5, waited
        for hog in hogs:
            with pytest.raises(grpc.RpcError) as caught:
                for _ in hog:
                    pass
            assert caught.value.code() == grpc.StatusCode.CANCELLED
    with Client(running.target, timeout=30) as client:
        assert client.generate({"scheme": "ones", "shape": [4]}).sum() == 4


def test_the_deadline_cap_ends_a_slowly_read_stream(make_server):
    running = make_server(stream_idle_timeout=0, max_deadline=1.0)
    with grpc.insecure_channel(running.target) as channel:
        stream = _generate_call(channel)(_request(BIG))
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stream:
                time.sleep(0.2)  # always progressing, never finishing in time
        assert caught.value.code() == grpc.StatusCode.CANCELLED
    assert _settle(lambda: running.servicer.stats.snapshot()["active"] == 0, 5)


def test_a_full_server_refuses_before_validating(make_server):
    running = make_server(max_concurrent_streams=1, stream_idle_timeout=0)
    with grpc.insecure_channel(running.target) as channel:
        hog = _generate_call(channel)(_request(BIG))
        next(hog)
        # an invalid spec, and a manifest the size of the limit: both refused for the slot, unread
        bad = _refusal(_generate_call(channel), _request({"scheme": "normal", "shape": [3, -1]}))
        assert bad.code() == EXHAUSTED and [v.field for v in field_violations(bad)] == ["concurrent_streams"]
        manifest = {"seed": 1, "tensors": [{"scheme": "uniform", "shape": [4], "name": f"t{i}"}
                                           for i in range(running.settings.max_tensors_per_model)]}
        request = pb.GenerateModelRequest(manifest=convert.manifest_from_any(manifest))
        assert _refusal(_model_call(channel), request).code() == EXHAUSTED
        hog.cancel()


def _limit_refusal(server, request, field: str, limit: str, call=_generate_call):
    with grpc.insecure_channel(server.target) as channel:
        error = _refusal(call(channel), request)
    assert error.code() == EXHAUSTED, error.details()
    found = {v.field: v.description for v in field_violations(error)}
    assert field in found and limit in found[field], found
    return error


def test_hashing_far_before_start_is_bounded(server):
    limit = server.settings.max_hashed_elements
    spec = {"scheme": "uniform", "shape": [limit + 2]}
    _limit_refusal(server, _request(spec, start=limit + 1, hash_from=0), "hash_from", "max_hashed_elements")
    _limit_refusal(server, _request(spec, digest_only=True), "digest_only", "max_hashed_elements")


def test_tiny_chunks_over_a_large_range_are_bounded(server):
    limit = server.settings.max_chunks_per_stream
    spec = {"scheme": "uniform", "shape": [limit + 1]}
    _limit_refusal(server, _request(spec, chunk_elements=1), "chunk_elements", "max_chunks_per_stream")
    # server-sized chunks are never refused for their count: each carries a full chunk of data
    from weightinit.server.jobs import plan_generate

    settings = Settings(max_chunks_per_stream=100)
    per_chunk = settings.default_chunk_bytes // 4
    job = plan_generate(_request({"scheme": "uniform", "shape": [101 * per_chunk]}), settings)
    assert -(-job.stop // job.chunk_elements) == 101


def test_qr_work_is_bounded_per_tensor_and_per_model(server):
    settings = server.settings
    side = 1
    while (2 * side) ** 3 <= settings.max_dense_work:
        side *= 2
    too_much = 2 * side
    assert too_much * too_much <= settings.max_dense_elements  # refused for work, not for size
    assert jobs_dense_work([too_much, too_much]) > settings.max_dense_work
    _limit_refusal(server, _request({"scheme": "orthogonal", "shape": [too_much, too_much]}), "spec.shape",
                   "max_dense_work")
    per_model = settings.max_dense_work_per_model // (side ** 3) + 1
    manifest = {"seed": 3, "tensors": [{"scheme": "orthogonal", "shape": [side, side], "name": f"q{i}"}
                                       for i in range(per_model)]}
    _limit_refusal(server, pb.GenerateModelRequest(manifest=convert.manifest_from_any(manifest)),
                   "manifest.tensors", "max_dense_work_per_model", call=_model_call)


def jobs_dense_work(shape):
    from weightinit.server.jobs import dense_work

    return dense_work(wi.spec_from_dict({"scheme": "orthogonal", "shape": shape}, limits=None))


def test_requests_at_the_cost_limits_are_served_and_correct(make_server):
    running = make_server(max_hashed_elements=1000, max_chunks_per_stream=50, max_dense_work=64 ** 3)
    spec = {"scheme": "normal", "shape": [2000], "name": "w", "seed": 5}
    expected = wi.generate(spec)
    with Client(running.target, timeout=30) as client:
        assert (client.generate(spec, start=1000, chunk_elements=20) == expected[1000:]).all()
        small = {"scheme": "normal", "shape": [1000], "seed": 5}
        assert client.digest(small) == hashlib.sha256(wi.generate(small).tobytes()).digest()
        orthogonal = {"scheme": "orthogonal", "shape": [64, 64]}
        assert (client.generate(orthogonal) == wi.generate(orthogonal)).all()


@pytest.mark.parametrize("scheme", ["kaiming_normal", "xavier_uniform", "lecun_normal", "variance_scaling"])
def test_fans_overflowing_binary64_are_invalid_argument_naming_shape(server, scheme):
    request = _request({"scheme": scheme, "shape": [1] + [2 ** 63 - 1] * 17})
    with grpc.insecure_channel(server.target) as channel:
        error = _refusal(_generate_call(channel), request)
    assert error.code() == INVALID, error.details()
    assert "spec.shape" in [v.field for v in field_violations(error)]


def test_error_details_fit_the_client_metadata_limit(server):
    long_name = "n" * 3000
    many_bad = {"seed": 1, "tensors": [{"scheme": "normal", "shape": [4], "name": long_name} for _ in range(60)]}
    request = pb.GenerateModelRequest(manifest=convert.manifest_from_any(many_bad))
    with grpc.insecure_channel(server.target) as channel:  # default client options: 8 KiB metadata
        error = _refusal(_model_call(channel), request)
    assert error.code() == INVALID, (error.code(), error.details())
    violations = field_violations(error)
    assert violations[0].field == "manifest.tensors[1].name"
    assert all(len(v.description) <= 300 for v in violations)
    assert violations[-1].field == "violations_left_out"
    left_out = int(violations[-1].description.split()[0])
    assert left_out + len(violations) - 1 == 59  # every duplicate, listed or counted
    with Client(server.target) as client:  # the bundled client: one error of the family, naming the tensor
        with pytest.raises(wi.SpecError) as caught:
            client.generate_model(many_bad)
        assert caught.value.__cause__.code() == INVALID
        assert caught.value.tensor_index == 1 and caught.value.field == "name"
        assert len(str(caught.value)) < 500, "a long tensor name is shortened in the message"


def test_health_is_not_serving_until_the_backend_warmed_up(monkeypatch):
    from weightinit.server import app

    released = threading.Event()
    real = app.get_backend

    class SlowWarmup:
        def __init__(self, backend):
            self._backend = backend

        def __getattr__(self, name):
            return getattr(self._backend, name)

        def warmup(self):
            released.wait(30)

    monkeypatch.setattr(app, "get_backend", lambda name: SlowWarmup(real(name)))
    running = create_server("127.0.0.1", 0, settings=Settings(), warm_up=True)
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            status = lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status  # noqa: E731
            assert status() == health_pb2.HealthCheckResponse.NOT_SERVING
            released.set()
            assert _settle(lambda: status() == health_pb2.HealthCheckResponse.SERVING, 10)
    finally:
        released.set()
        running.stop(0.5)


def test_capabilities_report_the_new_limits(server):
    with Client(server.target, timeout=30) as client:
        limits = client.capabilities().limits
    s = server.settings
    assert (limits.max_hashed_elements, limits.max_chunks_per_stream, limits.max_dense_work,
            limits.max_dense_work_per_model) == (s.max_hashed_elements, s.max_chunks_per_stream, s.max_dense_work,
                                                 s.max_dense_work_per_model)
    assert limits.stream_idle_timeout_seconds == s.stream_idle_timeout


def test_watchdog_counts_only_time_a_message_waits_for_the_client():
    from weightinit.server.guard import Watchdog

    class Call:
        cancelled = False

        def cancel(self):
            self.cancelled = True

    reasons = []
    watchdog = Watchdog(idle_timeout=10, max_age=100, on_cancel=reasons.append)
    unread, generating = Call(), Call()
    waiting = watchdog.watch(unread)
    busy = watchdog.watch(generating)
    waiting.offer()
    watchdog.check(now=waiting.offered + 9)
    assert not unread.cancelled
    watchdog.check(now=waiting.offered + 11)
    assert unread.cancelled and not generating.cancelled  # the producer's own time never counts
    watchdog.check(now=busy.started + 101)
    assert generating.cancelled and reasons == ["stream_idle_timeout", "max_deadline"]
    watchdog.forget(waiting)
    watchdog.forget(busy)


def test_connections_get_keepalive_idle_and_age_limits():
    from weightinit.server.app import MAX_RECEIVE_BYTES, _connection_options

    options = dict(_connection_options(Settings(max_deadline=120)))
    assert options["grpc.keepalive_time_ms"] > 0 and options["grpc.keepalive_timeout_ms"] > 0
    assert options["grpc.max_connection_idle_ms"] > 0
    assert options["grpc.max_connection_age_ms"] > 120_000  # a stream at the deadline cap is never cut short
    assert options["grpc.max_connection_age_grace_ms"] >= 120_000
    assert options["grpc.max_receive_message_length"] == MAX_RECEIVE_BYTES <= 16 << 20
