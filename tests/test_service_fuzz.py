"""Hostile requests against a real server (hypothesis): every field kind with extreme values,
random and truncated bytes, oversized messages. Each gets INVALID_ARGUMENT or RESOURCE_EXHAUSTED
with field violations (or is served); a valid call succeeds right after each; the server's
threads and RSS stay flat. One server subprocess for the module (its /proc entry gives its threads and
RSS), raw channel calls, ~2,100 requests.
"""

from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import weightinit as wi  # noqa: E402
from weightinit.api.errors import field_violations  # noqa: E402
from weightinit.server import SERVICE_NAME  # noqa: E402
from weightinit.v1 import initializer_service_pb2 as pb  # noqa: E402
from weightinit.v1 import spec_pb2  # noqa: E402

pytestmark = pytest.mark.service

FUZZ = settings(max_examples=500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
VALID = {"scheme": "normal", "shape": [8, 8], "seed": 3, "name": "probe"}
SCHEMES = [field.name for field in spec_pb2.TensorSpec.DESCRIPTOR.oneofs_by_name["scheme"].fields]
INT64 = st.one_of(st.integers(-(1 << 63), (1 << 63) - 1), st.sampled_from([0, 1, -1, 2, 3, 1 << 31, 1 << 62]),
                  st.integers(-4, 4096))
UINT64 = st.one_of(st.integers(0, (1 << 64) - 1), st.sampled_from([0, 1, (1 << 64) - 1]))
INT32 = st.integers(-(1 << 31), (1 << 31) - 1)
DOUBLE = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf, 1.0, 0.5]))
NAME = st.one_of(st.text(max_size=40), st.text(min_size=3000, max_size=5000, alphabet="ab\u00e9\u4e2d"),
                 st.just(""))
SHAPE = st.one_of(st.lists(st.integers(-3, 70), max_size=5), st.lists(INT64, max_size=20),
                  st.just([1] + [2 ** 63 - 1] * 17), st.lists(st.integers(0, 3), min_size=30, max_size=64))


def _field_value(field: FieldDescriptor):
    if field.type == FieldDescriptor.TYPE_DOUBLE or field.type == FieldDescriptor.TYPE_FLOAT:
        return DOUBLE
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), INT32)
    if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return UINT64
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return INT32
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_STRING:
        return NAME
    return INT64


@st.composite
def params(draw, scheme: str):
    message_type = spec_pb2.TensorSpec.DESCRIPTOR.fields_by_name[scheme].message_type
    values = {}
    for field in message_type.fields:
        if draw(st.booleans()):
            strategy = _field_value(field)
            values[field.name] = draw(st.lists(strategy, max_size=6) if field.is_repeated
                                      else strategy)
    return values


@st.composite
def tensor_specs(draw):
    scheme = draw(st.sampled_from(SCHEMES))
    message = spec_pb2.TensorSpec(name=draw(NAME), shape=draw(SHAPE))
    getattr(message, scheme).SetInParent()
    for key, value in draw(params(scheme)).items():
        target = getattr(message, scheme)
        if isinstance(value, list):
            getattr(target, key).extend(value)
        else:
            setattr(target, key, value)
    for field in ("dtype", "layout"):
        if draw(st.booleans()):
            setattr(message, field, draw(_field_value(spec_pb2.TensorSpec.DESCRIPTOR.fields_by_name[field])))
    for field in ("in_axis", "out_axis"):
        if draw(st.booleans()):
            setattr(message, field, draw(INT64))
    for field in ("seed", "stream"):
        if draw(st.booleans()):
            setattr(message, field, draw(UINT64))
    if draw(st.booleans()):
        message.batch_axis.extend(draw(st.lists(INT64, max_size=5)))
    return message


@st.composite
def generate_requests(draw):
    request = pb.GenerateRequest(chunk_elements=draw(INT64), digest_only=draw(st.booleans()))
    if draw(st.integers(0, 9)):
        request.spec.CopyFrom(draw(tensor_specs()))
    for field in ("start", "stop", "hash_from"):
        if draw(st.booleans()):
            setattr(request, field, draw(INT64))
    return request


@st.composite
def model_requests(draw):
    tensors = draw(st.lists(tensor_specs(), max_size=6))
    if tensors and draw(st.booleans()):
        tensors.append(tensors[0])  # a duplicate name
    manifest = spec_pb2.ModelManifest(name=draw(NAME), seed=draw(UINT64), tensors=tensors)
    request = pb.GenerateModelRequest(chunk_elements=draw(INT64))
    if draw(st.integers(0, 9)):
        request.manifest.CopyFrom(manifest)
    return request


def big_payloads(limits: pb.ServerLimits) -> list[tuple[str, bytes]]:
    """A manifest over the tensor limit (parsed: under the 16 MiB receive limit, then refused for its
    count), undecodable bytes, bytes over the receive limit (gRPC refuses them), a 5 MiB name."""
    many = spec_pb2.ModelManifest(seed=1, tensors=[
        spec_pb2.TensorSpec(name=f"layer.{i}.weight" + "x" * 300, shape=[4, 4], normal=spec_pb2.NormalParams())
        for i in range(limits.max_tensors_per_model + 10)])
    giant_name = pb.GenerateRequest(spec=spec_pb2.TensorSpec(name="n" * (5 << 20), shape=[2],
                                                             ones=spec_pb2.OnesParams()))
    return [("GenerateModel", pb.GenerateModelRequest(manifest=many).SerializeToString()),
            ("Generate", bytes(6 << 20)), ("Generate", b"\x0a" * (17 << 20)),
            ("Generate", giant_name.SerializeToString())]


class Harness:
    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target)
        self.calls = {name: self.channel.unary_stream(f"/{SERVICE_NAME}/{name}")  # raw bytes both ways
                      for name in ("Generate", "GenerateModel")}
        self.valid = pb.GenerateRequest(spec=spec_pb2.TensorSpec(
            name=VALID["name"], shape=VALID["shape"], seed=VALID["seed"], normal=spec_pb2.NormalParams()))
        self.expected = wi.generate(VALID).tobytes()
        self.count = 0
        capabilities = self.channel.unary_unary(f"/{SERVICE_NAME}/GetCapabilities",
                                                request_serializer=pb.GetCapabilitiesRequest.SerializeToString,
                                                response_deserializer=pb.GetCapabilitiesResponse.FromString)
        self.limits = capabilities(pb.GetCapabilitiesRequest(), timeout=30).limits

    def send(self, method: str, payload: bytes) -> None:
        """One hostile call: refused with violations, or served (then cancelled after a message);
        then a valid call must succeed."""
        self.count += 1
        stream = self.calls[method](payload, timeout=30)
        try:
            first = next(stream, None)
            assert first is not None or method == "GenerateModel"
        except grpc.RpcError as error:
            assert error.code() in REFUSALS, (error.code(), error.details()[:300])
            assert field_violations(error) or "larger than max" in (error.details() or ""), error.details()
        finally:
            stream.cancel()
        self.check_valid()

    def wait_until_serving(self, timeout: float = 180) -> None:
        import time

        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout
        while stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.2)

    def check_valid(self) -> None:
        from weightinit.api import wire

        data = b""
        for raw in self.calls["Generate"](self.valid.SerializeToString(), timeout=30):
            data += bytes(wire.decode_generate(raw)[1])
        assert data == self.expected


def _server_threads_and_rss(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) * 1024


@pytest.fixture(scope="module")
def harness():
    from conftest import ServerProcess

    # WARNING: nobody reads its stderr pipe here, and ~2,000 access-log lines would fill it
    process = ServerProcess("--stream-idle-timeout", "5", "--log-level", "WARNING")
    try:
        harness = Harness(process.target)
        harness.wait_until_serving()  # the backend's kernels are compiled: no request pays for that
        for _ in range(20):
            harness.check_valid()
        for method, payload in big_payloads(harness.limits):  # the allocator's high-water mark, once
            harness.send(method, payload)
        threads, rss = _server_threads_and_rss(process.proc.pid)
        yield harness
        print(f"\n{harness.count} hostile requests")
        harness.channel.close()
        # flat: no thread or memory growth attributable to ~2,000 hostile calls
        after_threads, after_rss = _server_threads_and_rss(process.proc.pid)
        assert after_threads <= threads + max(2, threads // 10), (threads, after_threads)
        assert after_rss - rss < 0.1 * rss + (32 << 20), f"server RSS grew by {(after_rss - rss) >> 20} MiB"
    finally:
        process.close()


@FUZZ
@given(request=generate_requests())
def test_hostile_generate_requests(harness, request):
    harness.send("Generate", request.SerializeToString())


@settings(FUZZ, max_examples=400)
@given(request=model_requests())
def test_hostile_model_requests(harness, request):
    harness.send("GenerateModel", request.SerializeToString())


@settings(FUZZ, max_examples=700)
@given(method=st.sampled_from(["Generate", "GenerateModel"]), payload=st.binary(max_size=300))
def test_random_bytes(harness, method, payload):
    harness.send(method, payload)


@settings(FUZZ, max_examples=500)
@given(request=generate_requests(), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_requests(harness, request, cut):
    payload = request.SerializeToString()
    harness.send("Generate", payload[:int(len(payload) * cut)])


def test_messages_over_4_mib(harness):
    payloads = big_payloads(harness.limits)
    assert all(len(payload) > 4 << 20 for _, payload in payloads)
    for method, payload in payloads:
        harness.send(method, payload)
