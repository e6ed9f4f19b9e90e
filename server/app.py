"""The gRPC servicer (thin) and the server's lifecycle: start, health, reflection, graceful stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import weightinit as wi
from weightinit.backends import available_backends, get_backend
from weightinit.v1 import initializer_service_pb2 as pb
from weightinit.v1 import initializer_service_pb2_grpc as pb_grpc

from weightinit.api import wire

from . import jobs
from weightinit.api.errors import RequestError, Violation, exhausted, to_grpc_status
from .streaming import Prefetcher, StreamSlots, StreamStats, stream_messages

log = logging.getLogger("weightinit.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InitializerService"].full_name
#: Threads beyond the stream limit, for unary calls, health and reflection.
EXTRA_WORKERS = 8


class InitializerServicer(pb_grpc.InitializerServiceServicer):
    """Validates with :mod:`.jobs`, streams with :mod:`.streaming`; holds no other logic."""

    def __init__(self, settings: jobs.Settings, backend, backends_status: dict[str, str] | None = None):
        self.settings = settings
        self.backend = backend
        self.stats = StreamStats()
        self.slots = StreamSlots(settings.max_concurrent_streams, self.stats)
        self._capabilities = jobs.capabilities(settings, backend.name, backend.device,
                                               backends_status or {backend.name: f"ok: {backend.device}"})

    def Generate(self, request, context):
        job = self._plan(context, jobs.plan_generate, request)
        yield from self._stream(context, [job], wire.GENERATE)

    def GenerateModel(self, request, context):
        tensor_jobs = self._plan(context, jobs.plan_model, request)
        yield from self._stream(context, tensor_jobs, wire.MODEL)

    def GetCapabilities(self, request, context):
        return self._capabilities

    def _plan(self, context, planner, request):
        try:
            return planner(request, self.settings)
        except RequestError as error:
            log.info("rejected %s: %s", planner.__name__, error)
            context.abort_with_status(to_grpc_status(error))

    def _stream(self, context, tensor_jobs, layout):
        if not self.slots.acquire():
            error = exhausted([Violation("concurrent_streams", f"{self.settings.max_concurrent_streams} streams "
                                                               "are in flight; retry later")])
            context.abort_with_status(to_grpc_status(error))
        release = self.slots.releaser()
        prefetcher = Prefetcher(
            lambda should_stop: stream_messages(tensor_jobs, self.backend, layout, should_stop, self.stats),
            depth=self.settings.prefetch_chunks)
        if not context.add_callback(prefetcher.stop):  # already over
            prefetcher.stop()
        context.add_callback(release)
        completed = False
        try:
            yield from prefetcher
            completed = not prefetcher.stopped
        except Exception as error:  # a bug, not a bad request: keep serving
            log.exception("stream failed")
            context.abort(grpc.StatusCode.INTERNAL, f"generation failed: {error}")
        finally:
            prefetcher.close()
            release(completed)


def _passthrough(message) -> bytes:
    """Chunks arrive already serialized (see :mod:`.wire`); other messages serialize as usual."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def _handlers(servicer: InitializerServicer) -> dict:
    return {
        "Generate": grpc.unary_stream_rpc_method_handler(
            servicer.Generate, request_deserializer=pb.GenerateRequest.FromString,
            response_serializer=_passthrough),
        "GenerateModel": grpc.unary_stream_rpc_method_handler(
            servicer.GenerateModel, request_deserializer=pb.GenerateModelRequest.FromString,
            response_serializer=_passthrough),
        "GetCapabilities": grpc.unary_unary_rpc_method_handler(
            servicer.GetCapabilities, request_deserializer=pb.GetCapabilitiesRequest.FromString,
            response_serializer=pb.GetCapabilitiesResponse.SerializeToString),
    }


def _host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


@dataclass
class RunningServer:
    """A started server. ``stop()`` drains it gracefully."""

    server: grpc.Server
    servicer: InitializerServicer
    health: health.HealthServicer
    host: str
    port: int
    settings: jobs.Settings
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def address(self) -> str:
        return _host_port(self.host, self.port)

    @property
    def target(self) -> str:
        """A target a client on this machine can dial."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "[::]": "[::1]", "": "127.0.0.1"}.get(self.host)
        return f"{host}:{self.port}" if host else self.address

    def stop(self, grace: float | None = 5.0) -> None:
        """Health turns NOT_SERVING, new calls are refused, in-flight streams get ``grace`` seconds."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()

    def wait(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)


def create_server(host: str = "127.0.0.1", port: int = 0, backend: str = "auto",
                  settings: jobs.Settings | None = None) -> RunningServer:
    """Build, bind and start a server; raises ``wi.BackendUnavailable`` or ``OSError`` (port in use)."""
    settings = settings or jobs.Settings()
    engine = get_backend(backend)
    status = available_backends()
    servicer = InitializerServicer(settings, engine, status)
    pool = futures.ThreadPoolExecutor(max_workers=settings.max_concurrent_streams + EXTRA_WORKERS,
                                      thread_name_prefix="weightinit-rpc")
    server = grpc.server(pool, options=[
        ("grpc.so_reuseport", 0),  # a taken port is an error, not a silent second listener
        ("grpc.max_receive_message_length", 64 << 20),  # large manifests
    ])
    handlers = _handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
    health_servicer = health.HealthServicer(experimental_non_blocking=True,
                                            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server)
    address = _host_port(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {address}: {error}") from None
    if not bound:
        raise OSError(f"cannot listen on {address}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, servicer, health_servicer, host.strip("[]"), bound, settings)


def describe_start(running: RunningServer) -> str:
    s = running.settings
    backend = running.servicer.backend
    return (f"weightinit {wi.__version__} (algorithm v{wi.ALGORITHM_VERSION}) serving on {running.address}; "
            f"backend {backend.name} ({backend.device}); limits: {s.max_elements_per_request} elements/request, "
            f"{s.max_elements_per_model} elements/model, {s.max_tensors_per_model} tensors/model, "
            f"{s.max_concurrent_streams} concurrent streams, {s.max_dense_elements} dense elements, "
            f"chunks {s.default_chunk_bytes} B (max {s.max_chunk_bytes} B)")


def _warm_up_in_background(backend) -> None:
    """Compile (or load from the JIT cache) the backend's kernels while the first clients connect,
    so no request pays for it; requests that arrive sooner compile what they need themselves."""
    warmup = getattr(backend, "warmup", None)
    if warmup is None:
        return

    def run():
        began = time.perf_counter()
        log.info("backend %s: compiling kernels (first start only, tens of seconds; later starts load them from "
                 "the JIT cache)...", backend.name)
        warmup()
        log.info("backend %s warmed up in %.1f s", backend.name, time.perf_counter() - began)

    threading.Thread(target=run, name="weightinit-warmup", daemon=True).start()


def serve(host: str = "127.0.0.1", port: int = 50051, backend: str = "auto", settings: jobs.Settings | None = None,
          grace: float = 10.0, on_ready=None) -> int:
    """Run until SIGTERM or SIGINT, then drain gracefully and return 0."""
    running = create_server(host, port, backend, settings)
    log.info(describe_start(running))
    _warm_up_in_background(running.servicer.backend)
    if on_ready is not None:
        on_ready(running)
    stop = threading.Event()
    previous = {}

    def request_stop(signum, frame):
        log.info("received %s: health NOT_SERVING, draining in-flight streams for up to %.1f s",
                 signal.Signals(signum).name, grace)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, request_stop)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        running.stop(grace)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("stopped")
    return 0
