"""The gRPC servicer (thin) and the server's lifecycle: start, health, reflection, graceful stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from pathlib import Path
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import weightinit as wi
from weightinit.backends import available_backends, get_backend
from weightinit.v1 import initializer_service_pb2 as pb
from weightinit.v1 import initializer_service_pb2_grpc as pb_grpc

from weightinit.api import memory, wire

from . import jobs
from google.protobuf.message import DecodeError
from weightinit.api.errors import RequestError, Violation, exhausted, invalid, to_grpc_status
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from .guard import IdentityLimits, TokenAuth, Watchdog, caller_identity
from .metrics import Metrics, log_call
from .streaming import Prefetcher, StreamSlots, StreamStats, stream_messages

log = logging.getLogger("weightinit.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InitializerService"].full_name
#: Threads beyond the stream limit, for unary calls, health and reflection.
EXTRA_WORKERS = 8
#: Calls in flight or queued per worker thread before gRPC refuses new ones.
MAX_QUEUED_PER_WORKER = 8


class InitializerServicer(pb_grpc.InitializerServiceServicer):
    """Admits (auth, then a stream slot), validates with :mod:`.jobs`, streams with :mod:`.streaming`,
    and accounts for every call (metrics, one access-log line); holds no other logic."""

    def __init__(self, settings: jobs.Settings, backend, backends_status: dict[str, str] | None = None,
                 auth: TokenAuth | None = None, metrics: Metrics | None = None):
        self.settings = settings
        self.backend = backend
        self.auth = auth
        self.metrics = metrics or Metrics()
        self.stats = StreamStats()
        self.stats.metrics = self.metrics
        self.slots = StreamSlots(settings.max_concurrent_streams, self.stats)
        self.identity_slots = IdentityLimits(settings.max_streams_per_identity)
        self.watchdog = Watchdog(settings.stream_idle_timeout, settings.max_deadline,
                                 on_cancel=lambda reason: self.metrics.rejected.labels(reason).inc())
        self.watchdog.start()
        self._capabilities = jobs.capabilities(settings, backend.name, backend.device,
                                               backends_status or {backend.name: f"ok: {backend.device}"})

    def Generate(self, request, context):
        yield from self._call("Generate", context, jobs.plan_generate, request, wire.GENERATE, pb.GenerateRequest)

    def GenerateModel(self, request, context):
        yield from self._call("GenerateModel", context, jobs.plan_model, request, wire.MODEL,
                              pb.GenerateModelRequest)

    def GetCapabilities(self, request, context):
        began = time.monotonic()
        record = {"rpc": "GetCapabilities", "peer": context.peer(), "code": "OK"}
        try:
            record["identity"] = self._identify(context)
            return self._capabilities
        except _Refused as refused:
            record["code"] = refused.status.code.name
            context.abort_with_status(refused.status)
        finally:
            self._account(record, began)

    # -- admission ----------------------------------------------------------

    def _identify(self, context) -> str:
        token_identity = None
        if self.auth is not None:
            token_identity = self.auth.identify(context.invocation_metadata())
            if token_identity is None:
                self.metrics.rejected.labels("authentication").inc()
                raise _Refused(_status(grpc.StatusCode.UNAUTHENTICATED,
                                       "a valid bearer token is required in the authorization metadata"))
        return caller_identity(context, token_identity)

    def _admit(self, identity: str):
        """A stream slot (global, then per identity), or _Refused naming the limit."""
        if not self.slots.acquire():
            self.metrics.rejected.labels("concurrent_streams").inc()
            raise _Refused(to_grpc_status(exhausted([Violation(
                "concurrent_streams", f"{self.settings.max_concurrent_streams} streams are in flight; retry later "
                                      "(limit max_concurrent_streams)")])))
        release_global = self.slots.releaser()
        if not self.identity_slots.acquire(identity):
            release_global(False)
            self.metrics.rejected.labels("streams_per_identity").inc()
            raise _Refused(to_grpc_status(exhausted([Violation(
                "concurrent_streams", f"{self.settings.max_streams_per_identity} streams of this caller are in "
                                      "flight; retry later (limit max_streams_per_identity)")])))
        released = []

        def release(completed: bool = False) -> None:
            if not released:
                released.append(True)
                self.identity_slots.release(identity)
            release_global(completed)

        return release

    # -- streams -------------------------------------------------------------

    def _call(self, rpc, context, planner, request, layout, message_type):
        began = time.monotonic()
        record = {"rpc": rpc, "peer": context.peer(), "code": "OK", "bytes": 0}
        release = None
        try:
            record["identity"] = identity = self._identify(context)
            release = self._admit(identity)  # before any validation work: a full server answers at once
            context.add_callback(release)
            request = _parse(message_type, request)
            try:
                planned = planner(request, self.settings)
            except RequestError as error:
                for violation in error.violations:
                    if error.quota:
                        self.metrics.rejected.labels(_limit_name(violation)).inc()
                raise _Refused(to_grpc_status(error), error) from None
            tensor_jobs = planned if isinstance(planned, list) else [planned]
            record["spec"] = _summary(tensor_jobs)
            yield from self._stream(rpc, context, tensor_jobs, layout, record, began, release)
        except _Refused as refused:
            record["code"] = refused.status.code.name
            if refused.error is not None:
                record["error"] = refused.error.message[:200]
            if release is not None:
                release(False)
            context.abort_with_status(refused.status)
        finally:
            if release is not None:
                release(False)  # no-op when the stream already released its slot
            self._account(record, began)

    def _stream(self, rpc, context, tensor_jobs, layout, record, began, release):
        watched = self.watchdog.watch(context)
        self.metrics.in_flight.inc()
        prefetcher = Prefetcher(
            lambda should_stop: stream_messages(tensor_jobs, self.backend, layout, should_stop, self.stats),
            depth=self.settings.prefetch_chunks)
        if not context.add_callback(prefetcher.stop):  # already over
            prefetcher.stop()
        completed = False
        sending = 0.0
        try:
            for message in prefetcher:
                handed = time.monotonic()
                watched.offer()
                yield message  # returns once gRPC took the message (flow control: the client read)
                watched.taken()
                sending += time.monotonic() - handed
                record["bytes"] += len(message)
            completed = not prefetcher.stopped
            if not completed:
                record["code"] = "CANCELLED"
        except Exception as error:  # a bug, not a bad request: keep serving
            log.exception("stream failed")
            record["code"] = "INTERNAL"
            context.abort(grpc.StatusCode.INTERNAL, f"generation failed: {error}")
        finally:
            if watched.reason is not None:
                record["code"] = "CANCELLED"
                record["cut_off_by"] = watched.reason
            elif not completed and record["code"] == "OK":
                record["code"] = "CANCELLED"
            self.watchdog.forget(watched)
            self.metrics.in_flight.dec()
            self.metrics.send.labels(rpc).inc(sending)
            if watched.first_byte is not None:
                self.metrics.first_byte.labels(rpc).observe(watched.first_byte - began)
            self.metrics.duration.labels(rpc).observe(time.monotonic() - began)
            prefetcher.close()
            release(completed)

    def _account(self, record: dict, began: float) -> None:
        record["duration_s"] = round(time.monotonic() - began, 6)
        self.metrics.requests.labels(record["rpc"], record["code"]).inc()
        log_call(**record)


class _Refused(Exception):
    def __init__(self, status: grpc.Status, error: RequestError | None = None):
        super().__init__(status.details)
        self.status = status
        self.error = error


def _parse(message_type, request):
    """Requests arrive as bytes (see ``_handlers``) so that undecodable ones get INVALID_ARGUMENT
    naming the request, not gRPC's generic INTERNAL."""
    if not isinstance(request, bytes):
        return request
    try:
        return message_type.FromString(request)
    except DecodeError as error:
        raise _Refused(to_grpc_status(invalid([Violation(
            "request", f"is not a valid {message_type.DESCRIPTOR.full_name} message: {error}")]))) from None


def _status(code: grpc.StatusCode, message: str) -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=getattr(code_pb2, code.name), message=message))


#: Words of a limit violation's description -> the Settings field it enforces (the metric's label).
_LIMIT_WORDS = (("max_hashed_elements", "max_hashed_elements"), ("max_chunks_per_stream", "max_chunks_per_stream"),
                ("max_dense_work_per_model", "max_dense_work_per_model"), ("max_dense_work", "max_dense_work"),
                ("builds the whole tensor at once", "max_dense_elements"),
                ("per-model limit", "max_elements_per_model"), ("tensors exceed", "max_tensors_per_model"),
                ("elements exceed the limit", "max_elements_per_request"))


def _limit_name(violation: Violation) -> str:
    """The Settings field a limit violation enforces, else its request field's last part."""
    for words, name in _LIMIT_WORDS:
        if words in violation.description:
            return name
    return violation.field.rsplit(".", 1)[-1]


def _summary(tensor_jobs) -> dict:
    """What a log line says about the request: never data, never more than a few fields."""
    first = tensor_jobs[0]
    summary = {"tensors": len(tensor_jobs), "elements": sum(job.stop - job.start for job in tensor_jobs),
               "scheme": first.spec.scheme, "dtype": first.spec.dtype, "shape": list(first.spec.shape)[:8],
               "name": first.spec.name[:64]}
    if len(tensor_jobs) == 1:
        summary.update(start=first.start, stop=first.stop, hash_from=first.hash_from,
                       digest_only=first.digest_only)
    return summary


def _passthrough(message) -> bytes:
    """Chunks arrive already serialized (see :mod:`.wire`); other messages serialize as usual."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def _handlers(servicer: InitializerServicer) -> dict:
    return {
        "Generate": grpc.unary_stream_rpc_method_handler(
            servicer.Generate, request_deserializer=None, response_serializer=_passthrough),
        "GenerateModel": grpc.unary_stream_rpc_method_handler(
            servicer.GenerateModel, request_deserializer=None, response_serializer=_passthrough),
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
    metrics_port: int | None = None
    health_port: int | None = None
    health_server: grpc.Server | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    def set_health(self, status) -> None:
        if not self._stopped.is_set():
            for name in ("", SERVICE_NAME):
                self.health.set(name, status)

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
        if self.health_server is not None:
            self.health_server.stop(0).wait()
        self.servicer.watchdog.stop()
        self.servicer.metrics.close()

    def wait(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)


#: Largest request accepted: a manifest of max_tensors_per_model (65,536) small specs fits with room.
MAX_RECEIVE_BYTES = 16 << 20
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "[::1]", "localhost")


@dataclass(frozen=True)
class Security:
    """TLS (``tls_cert`` + ``tls_key`` files), mutual TLS (``tls_client_ca``: client certificates
    must be signed by it), bearer tokens (``auth_tokens`` file, one a line), and the explicit
    opt-in to plaintext, unauthenticated serving on a non-loopback address."""

    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    auth_tokens: str | None = None
    insecure_bind_all: bool = False

    def check(self, host: str) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
        if not (loopback or self.tls_cert or self.auth_tokens or self.insecure_bind_all):
            raise ValueError(f"refusing to serve plaintext without authentication on {host}: give --tls-cert/"
                             "--tls-key or --auth-tokens, bind 127.0.0.1, or pass --insecure-bind-all")

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls_cert:
            return None
        read = lambda path: Path(path).read_bytes()  # noqa: E731
        ca = read(self.tls_client_ca) if self.tls_client_ca else None
        return grpc.ssl_server_credentials([(read(self.tls_key), read(self.tls_cert))], root_certificates=ca,
                                           require_client_auth=ca is not None)


def _connection_options(settings: jobs.Settings) -> list[tuple[str, int]]:
    """Keepalive pings find dead peers; idle and aged connections are closed (clients reconnect)."""
    return [
        ("grpc.so_reuseport", 0),  # a taken port is an error, not a silent second listener
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_connection_idle_ms", 300_000),
        ("grpc.max_connection_age_ms", int(max(settings.max_deadline, 60) * 1000) + 60_000),
        ("grpc.max_connection_age_grace_ms", int(max(settings.max_deadline, 60) * 1000)),
    ]


def create_server(host: str = "127.0.0.1", port: int = 0, backend: str = "auto",
                  settings: jobs.Settings | None = None, security: Security | None = None,
                  metrics_port: int | None = None, warm_up: bool = False,
                  health_port: int | None = None) -> RunningServer:
    """Build, bind and start a server; raises ``wi.BackendUnavailable``, ``OSError`` (port in use) or
    ``ValueError`` (unsafe or inconsistent security settings).

    With ``warm_up`` health says NOT_SERVING until the backend's kernels are compiled (readiness);
    ``metrics_port`` (0 picks one) serves Prometheus text on ``/metrics``; ``health_port`` adds a
    plaintext listener with grpc.health.v1 only, for probes that speak no TLS (Kubernetes' gRPC probes).
    """
    settings = settings or jobs.Settings()
    security = security or Security()
    memory.keep_message_buffers()
    security.check(host.strip("[]"))
    auth = TokenAuth.from_file(security.auth_tokens) if security.auth_tokens else None
    engine = get_backend(backend)
    status = available_backends()
    metrics = Metrics()
    servicer = InitializerServicer(settings, engine, status, auth=auth, metrics=metrics)
    pool = futures.ThreadPoolExecutor(max_workers=settings.max_concurrent_streams + EXTRA_WORKERS,
                                      thread_name_prefix="weightinit-rpc")
    # Handlers admit or refuse at once (no work before the slot), so a short queue drains fast; beyond
    # this backstop gRPC itself refuses calls ("Concurrent RPC limit exceeded!", RESOURCE_EXHAUSTED).
    server = grpc.server(pool, options=_connection_options(settings),
                         maximum_concurrent_rpcs=MAX_QUEUED_PER_WORKER * (settings.max_concurrent_streams
                                                                          + EXTRA_WORKERS))
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
    credentials = security.server_credentials()
    try:
        bound = (server.add_secure_port(address, credentials) if credentials is not None
                 else server.add_insecure_port(address))
    except RuntimeError as error:
        raise OSError(f"cannot listen on {address}: {error}") from None
    if not bound:
        raise OSError(f"cannot listen on {address}")
    if metrics_port is not None:
        metrics_port = metrics.serve_http(metrics_port, "127.0.0.1" if host.strip("[]") in LOOPBACK_HOSTS
                                          else "0.0.0.0")
    health_server = None
    if health_port is not None:
        health_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="weightinit-health"),
                                    options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=16)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_port = health_server.add_insecure_port(_host_port(host, health_port))
        if not health_port:
            raise OSError(f"cannot listen on {host} for health")
        health_server.start()
    server.start()
    running = RunningServer(server, servicer, health_servicer, host.strip("[]"), bound, settings,
                            metrics_port=metrics_port, health_port=health_port, health_server=health_server)
    serving = health_pb2.HealthCheckResponse.SERVING
    if warm_up and getattr(engine, "warmup", None) is not None:
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        _warm_up_in_background(engine, on_done=lambda: running.set_health(serving))
    else:
        running.set_health(serving)
    return running


def describe_start(running: RunningServer) -> str:
    s = running.settings
    backend = running.servicer.backend
    return (f"weightinit {wi.__version__} (algorithm v{wi.ALGORITHM_VERSION}) serving on {running.address}; "
            f"backend {backend.name} ({backend.device}); limits: {s.max_elements_per_request} elements/request, "
            f"{s.max_elements_per_model} elements/model, {s.max_tensors_per_model} tensors/model, "
            f"{s.max_concurrent_streams} concurrent streams, {s.max_dense_elements} dense elements, "
            f"chunks {s.default_chunk_bytes} B (max {s.max_chunk_bytes} B)")


def _warm_up_in_background(backend, on_done=None) -> None:
    """Compile (or load from the JIT cache) the backend's kernels while the first clients connect,
    so no request pays for it; requests that arrive sooner compile what they need themselves.
    ``on_done`` runs afterwards, even if the warm-up failed (health turns SERVING)."""
    warmup = getattr(backend, "warmup", None)
    if warmup is None:
        if on_done is not None:
            on_done()
        return

    def run():
        began = time.perf_counter()
        log.info("backend %s: compiling kernels (first start only, tens of seconds; later starts load them from "
                 "the JIT cache)...", backend.name)
        try:
            warmup()
            log.info("backend %s warmed up in %.1f s", backend.name, time.perf_counter() - began)
        except Exception:  # requests compile what they need themselves
            log.exception("backend warm-up failed")
        finally:
            if on_done is not None:
                on_done()

    threading.Thread(target=run, name="weightinit-warmup", daemon=True).start()


def serve(host: str = "127.0.0.1", port: int = 50051, backend: str = "auto", settings: jobs.Settings | None = None,
          grace: float = 10.0, on_ready=None, security: Security | None = None,
          metrics_port: int | None = None, health_port: int | None = None) -> int:
    """Run until SIGTERM or SIGINT, then drain gracefully and return 0. Health is NOT_SERVING
    until the backend has warmed up."""
    running = create_server(host, port, backend, settings, security=security, metrics_port=metrics_port,
                            warm_up=True, health_port=health_port)
    log.info(describe_start(running))
    security = security or Security()
    log.info("security: %s, %s, %s; streams idle for %.0f s are cancelled, none runs over %.0f s",
             "TLS" if security.tls_cert else "plaintext",
             "client certificates required" if security.tls_client_ca else "no client certificates",
             "bearer tokens required" if security.auth_tokens else "no authentication",
             running.settings.stream_idle_timeout, running.settings.max_deadline)
    if running.metrics_port is not None:
        log.info("metrics on http://%s:%d/metrics", running.host, running.metrics_port)
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
