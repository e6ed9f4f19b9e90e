"""Python client of the weightinit service, and a local twin that runs the engine in-process.

>>> from weightinit.client import Client
>>> with Client("127.0.0.1:50051") as client:
...     w = client.generate({"scheme": "kaiming_normal", "shape": [512, 256], "seed": 7, "name": "fc1.weight"})

Every tensor is verified against the digest the server sends after its last
chunk (BLAKE3 unless ``Client(digest="sha256")``; :class:`IntegrityError` on
mismatch). Every failure raises from the :mod:`weightinit.errors` family
(never a raw ``grpc.RpcError``). A stream that breaks with ``UNAVAILABLE`` is
resumed from the last element received, after a backoff;
the server's digest of a resumed stream covers the elements received before
the break too (``GenerateRequest.hash_from``), so one digest still checks the
whole result.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import grpc
import numpy as np

import weightinit as wi
from weightinit.api import convert, memory, wire
from weightinit.api.describe import capabilities, tensor_header
from weightinit.api.errors import field_violations, from_rpc_error, tensor_label
from weightinit.engine.generate import FILL_ELEMENTS
from weightinit.engine.regions import fill_region_positions, region_shape, resolve_region
from weightinit.errors import IntegrityError, InvalidRequestError
from weightinit.v1 import initializer_service_pb2 as pb
from weightinit.v1 import spec_pb2

SERVICE = "/weightinit.v1.InitializerService/"

try:  # bfloat16 arrays when available, else the raw uint16 bits
    import ml_dtypes as _ml_dtypes
except ImportError:  # pragma: no cover - exercised only without ml_dtypes
    _ml_dtypes = None

#: Without ml_dtypes, bfloat16 tensors come back as numpy.uint16 holding the bits.
BFLOAT16_AS_UINT16 = _ml_dtypes is None


@dataclass(frozen=True)
class Chunk:
    """``data`` holds elements ``[offset, offset + data.size)`` of the tensor (flat, storage dtype:
    float32/float64/float16, or uint16 bits for bfloat16). ``header`` describes the tensor."""

    header: pb.TensorHeader
    offset: int
    data: np.ndarray


@dataclass(frozen=True)
class ModelChunk(Chunk):
    index: int = 0
    name: str = ""


def dtype_name(header: pb.TensorHeader) -> str:
    return convert.PROTO_TO_DTYPE[header.dtype]


def user_array(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Storage array -> the array users get (bfloat16 as ml_dtypes.bfloat16 when installed)."""
    if dtype == "bfloat16" and _ml_dtypes is not None:
        return raw.view(_ml_dtypes.bfloat16)
    return raw


def _storage(dtype: str) -> np.dtype:
    return wi.storage_dtype(dtype).newbyteorder("<")


def _tensor_identity(header: pb.TensorHeader) -> tuple:
    """The header fields a resumed stream must repeat: it has to describe the same tensor (and
    hash with the same algorithm, since the client's hash of the first part carries on)."""
    return (tuple(header.shape), header.dtype, header.stop, header.seed, header.stream, header.algorithm_version,
            tuple((r.start, r.stop) for r in header.region), header.digest_algorithm)


def _header_digest(header: pb.TensorHeader) -> str:
    """The digest algorithm a stream's header names (UNSPECIFIED: a server from before the field, SHA-256)."""
    try:
        return wire.digest_name(header.digest_algorithm)
    except InvalidRequestError:
        raise IntegrityError(f"the server hashes tensor {header.name!r} with digest algorithm "
                             f"{header.digest_algorithm}, which this client does not know") from None


def _flat_index(header: pb.TensorHeader, position: int) -> int:
    """Stream position -> flat element index: the same number, unless the stream holds an N-d
    region, whose positions count the region's own row-major order."""
    if not len(header.region):
        return position
    shape = tuple(header.shape)
    bounds = [(r.start, r.stop) for r in header.region] + [(0, size) for size in shape[len(header.region):]]
    coords = np.unravel_index(position, tuple(stop - start for start, stop in bounds))
    return int(np.ravel_multi_index(tuple(int(c) + start for c, (start, _) in zip(coords, bounds)), shape))


class _SpotCheck:
    """``count`` random elements of a tensor, recomputed by the local engine and compared with
    the bytes received: the digest proves the transport, this proves the server's arithmetic."""

    def __init__(self, count: int, rng: random.Random):
        self.count = count
        self.rng = rng
        self.wanted: list[int] = []
        self.received: dict[int, bytes] = {}

    def choose(self, header: pb.TensorHeader, first: int) -> None:
        span = header.stop - first
        if self.count > 0 and span > 0:
            self.wanted = sorted(self.rng.sample(range(first, header.stop), min(self.count, span)))

    def see(self, offset: int, data: memoryview, itemsize: int) -> None:
        stop = offset + len(data) // itemsize
        for index in self.wanted:
            if offset <= index < stop and index not in self.received:
                at = (index - offset) * itemsize
                self.received[index] = bytes(data[at:at + itemsize])

    def verify(self, header: pb.TensorHeader) -> None:
        if not self.received:
            return
        spec = wi.spec_from_dict(json.loads(header.resolved_spec_json), limits=None)
        dtype = _storage(spec.dtype)
        whole = wi.generate(spec, limits=None).reshape(-1).view(dtype) if spec.info.dense else None
        for position, got in sorted(self.received.items()):
            index = _flat_index(header, position)
            expected = whole[index] if whole is not None else wi.generate(spec, index, index + 1, limits=None).view(
                dtype)[0]
            if np.asarray(expected, dtype=dtype).tobytes() != got:
                raise IntegrityError(f"spot check failed for tensor {header.name!r} at element {index}: the server "
                                     f"sent {got.hex()}, the local engine computes "
                                     f"{np.asarray(expected, dtype=dtype).tobytes().hex()}")


class _TensorReceiver:
    """Checks one tensor's chunks: contiguous offsets, consistent header, digest at the end, in
    the algorithm the header names (and ``spot_check`` random elements against the local engine,
    when asked). The digest reads the received messages' bytes: BLAKE3 in the receive thread,
    SHA-256 on a helper thread (``wire.ThreadedHasher``)."""

    def __init__(self, start: int | None, spot_check: int = 0, rng: random.Random | None = None):
        self.header: pb.TensorHeader | None = None
        self.next_offset = start
        self.hasher: wire.ThreadedHasher | None = None
        self.done = False
        self.spot = _SpotCheck(spot_check, rng or random.Random()) if spot_check > 0 else None

    def close(self) -> None:
        """End the digest's helper thread (the stream is over or abandoned)."""
        if self.hasher is not None:
            self.hasher.close()

    def accept(self, header: pb.TensorHeader | None, offset: int, data: memoryview, digest: bytes) -> np.ndarray:
        if header is not None and header.ByteSize():
            if self.header is None:
                self.hasher = wire.ThreadedHasher(_header_digest(header))
                self.header = header
                if self.next_offset is None:
                    self.next_offset = header.start
                if self.spot is not None:
                    self.spot.choose(header, self.next_offset)
            elif _tensor_identity(header) != _tensor_identity(self.header):
                raise IntegrityError("the resumed stream describes a different tensor")
        if self.header is None:
            raise IntegrityError("stream data arrived before its header")
        if self.done:
            raise IntegrityError("data after the digest")
        if offset != self.next_offset:
            raise IntegrityError(f"expected data at element {self.next_offset}, got {offset}")
        itemsize = self.header.item_size
        if len(data) % itemsize:
            raise IntegrityError(f"chunk of {len(data)} bytes is not a whole number of {itemsize}-byte elements")
        count = len(data) // itemsize
        if offset + count > self.header.stop:
            raise IntegrityError("more data than the header announced")
        self.hasher.update(data)
        if self.spot is not None:
            self.spot.see(offset, data, itemsize)
        self.next_offset = offset + count
        if digest:
            if self.next_offset != self.header.stop:
                raise IntegrityError("digest before the last element")
            received = self.hasher.digest()
            if received != digest:
                title = wire.DIGEST_TITLES[self.hasher.algorithm]
                raise IntegrityError(f"{title} mismatch for tensor {self.header.name!r}: received bytes are "
                                     f"corrupt (expected {digest.hex()}, got {received.hex()})")
            if self.spot is not None:
                self.spot.verify(self.header)
            self.done = True
        return np.frombuffer(data, dtype=_storage(dtype_name(self.header)))


def _retryable(error: grpc.RpcError) -> bool:
    """UNAVAILABLE (server down, connection dropped), and the server's transient stream limit."""
    if not isinstance(error, grpc.RpcError):
        return False
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        return True
    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return (any(v.field == "concurrent_streams" for v in field_violations(error))
                or "Concurrent RPC limit exceeded" in (error.details() or ""))  # grpc's own backstop
    return False


ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_target(target: str | Iterable[str]) -> str:
    """One gRPC target: ``host:port``, ``dns:///name:port``, or a list of ``host:port`` replicas
    turned into the ``ipv4:``/``ipv6:`` resolver's address list (names are resolved here)."""
    if isinstance(target, str):
        return target
    addresses = []
    for item in target:
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][4][0]
        addresses.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not addresses:
        raise ValueError("target: give at least one server address")
    scheme = "ipv6" if all(a.startswith("[") for a in addresses) else "ipv4"
    return f"{scheme}:" + ",".join(addresses)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as handle:
        return handle.read()


class Client:
    """Client of a weightinit server at ``target``: ``host:port``, a ``dns:///name:port`` (every
    address it resolves to, round robin) or a list of ``host:port`` replicas (round robin).

    Security: ``tls_ca`` (CA bundle file) turns TLS on, ``tls_cert``/``tls_key`` (files) add a client
    certificate (mutual TLS), ``token`` is sent as ``authorization: Bearer <token>``.

    Retries: a call that fails with ``UNAVAILABLE`` or a full server (``RESOURCE_EXHAUSTED`` for
    concurrent streams) is retried, a broken stream resumed where it stopped, with exponential
    backoff (``initial_backoff`` to ``max_backoff`` s, jittered) for up to ``retry_seconds`` since
    the last progress (``max_attempts``, if given, also bounds the tries). ``timeout`` is the
    deadline of each RPC attempt (None: none). ``spot_check=k`` recomputes k random elements of
    each tensor with the local engine (:class:`IntegrityError` on a difference).

    Integrity: every tensor is checked against the digest the server sends after its last chunk,
    in the algorithm ``digest`` asks for: ``"blake3"`` (default; several GB/s per core) or
    ``"sha256"``. A server older than the negotiation answers SHA-256, which is checked instead.
    """

    def __init__(self, target: str | Iterable[str], *, tls_ca: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, token: str | None = None, retry_seconds: float = 30.0,
                 spot_check: int = 0, timeout: float | None = None, max_attempts: int | None = None,
                 initial_backoff: float = 0.1, max_backoff: float = 2.0, chunk_elements: int = 0,
                 credentials: grpc.ChannelCredentials | None = None, options: tuple = (),
                 channel: grpc.Channel | None = None, digest: str = wire.DEFAULT_DIGEST):
        target = target if isinstance(target, str) else list(target)
        self.target = channel_target(target)
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.max_attempts = None if max_attempts is None else max(1, max_attempts)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.chunk_elements = chunk_elements
        self.spot_check = spot_check
        self.digest_algorithm = digest
        self._digest_algorithm = wire.digest_value(digest)
        self._rng = random.Random()
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        if channel is None:
            # reconnect about as fast as we retry, so a retry after a backoff finds a fresh connection attempt
            backoff_ms = max(1, int(initial_backoff * 1000))
            base = [("grpc.max_receive_message_length", 8 << 20),
                    ("grpc.initial_reconnect_backoff_ms", backoff_ms),
                    ("grpc.min_reconnect_backoff_ms", backoff_ms),
                    ("grpc.max_reconnect_backoff_ms", max(backoff_ms, int(max_backoff * 1000))),
                    ("grpc.keepalive_time_ms", 60_000)]
            if self.target.startswith(("dns:", "ipv4:", "ipv6:")):
                base.append(("grpc.service_config", ROUND_ROBIN))
            if not isinstance(target, str):
                # TLS checks this name (the first replica's, as given) unless options override it
                base.append(("grpc.default_authority", next(iter(target))))
            options = tuple(base) + tuple(options)
            if credentials is None and (tls_ca or tls_cert or tls_key):
                credentials = grpc.ssl_channel_credentials(root_certificates=_read(tls_ca),
                                                           private_key=_read(tls_key),
                                                           certificate_chain=_read(tls_cert))
            channel = (grpc.secure_channel(self.target, credentials, options) if credentials is not None
                       else grpc.insecure_channel(self.target, options))
        memory.keep_message_buffers()
        self._channel = channel
        self._generate = channel.unary_stream(SERVICE + "Generate", request_serializer=pb.GenerateRequest.SerializeToString,
                                              response_deserializer=None, _registered_method=True)
        self._generate_model = channel.unary_stream(SERVICE + "GenerateModel",
                                                    request_serializer=pb.GenerateModelRequest.SerializeToString,
                                                    response_deserializer=None, _registered_method=True)
        self._capabilities = channel.unary_unary(SERVICE + "GetCapabilities",
                                                 request_serializer=pb.GetCapabilitiesRequest.SerializeToString,
                                                 response_deserializer=pb.GetCapabilitiesResponse.FromString,
                                                 _registered_method=True)

    # -- plumbing ---------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def local(backend: str | None = None) -> "LocalClient":
        """The same API computed by the in-process engine (no server)."""
        return LocalClient(backend)

    def _backoff(self, attempt: int) -> None:
        delay = min(self.max_backoff, self.initial_backoff * (2 ** attempt))
        time.sleep(delay * (0.5 + random.random() / 2))

    def _give_up(self, error: Exception, attempt: int, since: float) -> bool:
        """After a failed try: True when the error is final, or the retry budget (time since the
        last progress, and max_attempts when given) is spent; else sleeps the backoff."""
        if not _retryable(error):
            return True
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return True
        if time.monotonic() - since >= self.retry_seconds:
            return True
        self._backoff(attempt - 1)
        return False

    def _unary(self, method, request):
        attempt, since = 0, time.monotonic()
        while True:
            try:
                return method(request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                attempt += 1
                if self._give_up(error, attempt, since):
                    raise from_rpc_error(error) from error

    # -- single tensors ---------------------------------------------------

    def iter_chunks(self, spec: Any, *, start: int | None = None, stop: int | None = None,
                    chunk_elements: int | None = None, index: Any = None) -> Iterator[Chunk]:
        """Yield the tensor's chunks in order, each checked; the digest is checked after the last.

        With ``index`` (an N-d region, as for :func:`weightinit.generate`) the chunks hold the
        region's elements, offsets counted in its row-major order. A broken stream resumes where
        it stopped. The chunk arrays are read-only views of the received messages.
        """
        message = convert.spec_from_any(spec)
        request = pb.GenerateRequest(spec=message, digest_algorithm=self._digest_algorithm,
                                     chunk_elements=self.chunk_elements if chunk_elements is None else chunk_elements)
        if index is not None:
            request.region.extend(convert.region_to_proto(_region_bounds(index, message.shape, start, stop)))
        if start is not None:
            request.start = start
        if stop is not None:
            request.stop = stop
        yield from self._tensor_stream(request)

    def _tensor_stream(self, request: pb.GenerateRequest, receiver: _TensorReceiver | None = None) -> Iterator[Chunk]:
        first_start = request.hash_from if request.HasField("hash_from") else (
            request.start if request.HasField("start") else None)
        owned = receiver is None
        receiver = receiver or _TensorReceiver(first_start, self.spot_check, self._rng)
        try:
            yield from self._receive_tensor(request, receiver)
        finally:
            if owned:
                receiver.close()

    def _receive_tensor(self, request: pb.GenerateRequest, receiver: _TensorReceiver) -> Iterator[Chunk]:
        attempt, since = 0, time.monotonic()
        while True:
            if receiver.next_offset is not None and receiver.header is not None:
                request.start = receiver.next_offset
                request.hash_from = receiver.header.hash_from
            try:
                for raw in self._generate(request, timeout=self.timeout, metadata=self._metadata):
                    message, data = wire.decode_generate(raw)
                    header = message.header if message.HasField("header") else None
                    offset = message.offset
                    array = receiver.accept(header, offset, data, message.digest or message.sha256)
                    attempt, since = 0, time.monotonic()
                    yield Chunk(receiver.header, offset, array)
                if not receiver.done:
                    raise IntegrityError("the stream ended before the digest")
                return
            except grpc.RpcError as error:
                attempt += 1
                if self._give_up(error, attempt, since):
                    raise from_rpc_error(error) from error

    def digest(self, spec: Any, *, start: int | None = None, stop: int | None = None,
               algorithm: str = "sha256") -> bytes:
        """The server's digest of the tensor's bytes (or of elements [start, stop)), without the
        data (``GenerateRequest.digest_only``): compare it with ``hashlib.sha256`` (or
        ``blake3.blake3`` with ``algorithm="blake3"``) of a tensor you generated yourself."""
        request = pb.GenerateRequest(spec=convert.spec_from_any(spec), digest_only=True,
                                     digest_algorithm=wire.digest_value(algorithm, "algorithm"))
        if start is not None:
            request.start = request.hash_from = start
        if stop is not None:
            request.stop = stop
        attempt, since = 0, time.monotonic()
        while True:
            try:
                for raw in self._generate(request, timeout=self.timeout, metadata=self._metadata):
                    message, data = wire.decode_generate(raw)
                    if len(data):
                        raise IntegrityError("a digest_only stream carried data")
                    if message.HasField("header") and _header_digest(message.header) != algorithm:
                        raise IntegrityError(f"asked for a {algorithm} digest, the server answered with "
                                             f"{_header_digest(message.header)} (a server older than "
                                             "digest negotiation computes SHA-256 only)")
                    if message.digest or message.sha256:
                        return message.digest or message.sha256
                raise IntegrityError("the digest_only stream ended without a digest")
            except grpc.RpcError as error:
                attempt += 1
                if self._give_up(error, attempt, since):
                    raise from_rpc_error(error) from error

    def generate(self, spec: Any, *, start: int | None = None, stop: int | None = None,
                 chunk_elements: int | None = None, out: np.ndarray | None = None, index: Any = None,
                 parallel: int = 1) -> np.ndarray:
        """The whole tensor (shaped), the flat element range ``[start, stop)``, or the N-d region
        ``index`` (shaped; e.g. ``np.s_[0:512, 256:512]``), equal to ``weightinit.generate``.

        ``parallel=k`` fetches k contiguous element ranges at once (over the replicas of a
        round-robin target), each checked by its own digest.

        The array is allocated once from the header and filled in place
        (or ``out``, a C-contiguous array of the storage dtype and size).
        bfloat16 comes back as ``ml_dtypes.bfloat16`` when installed, else as
        uint16 bits (see :data:`BFLOAT16_AS_UINT16`).
        """
        if parallel > 1:
            if index is not None:
                raise wi.SpecError("parallel", "parallel fetches split flat ranges; fetch an N-d region with parallel=1")
            return self._generate_parallel(spec, start, stop, chunk_elements, out, parallel)
        flat = None
        header = None
        for chunk in self.iter_chunks(spec, start=start, stop=stop, chunk_elements=chunk_elements, index=index):
            if flat is None:
                header = chunk.header
                flat = _allocate(header, out)
            flat[chunk.offset - header.start:chunk.offset - header.start + chunk.data.size] = chunk.data
        assert header is not None and flat is not None
        return _finish(header, flat, whole=start is None and stop is None)

    def _generate_parallel(self, spec: Any, start: int | None, stop: int | None, chunk_elements: int | None,
                           out: np.ndarray | None, parallel: int) -> np.ndarray:
        message = convert.spec_from_any(spec)
        resolved = wi.spec_from_dict(convert.spec_to_dict(message), limits=None)
        first = 0 if start is None else start
        last = resolved.numel if stop is None else stop
        header = tensor_header(resolved, first, last, first, "")
        flat = _allocate(header, out)
        span = last - first
        bounds = [first + span * part // parallel for part in range(parallel + 1)]

        def fetch(part: int) -> None:
            lo, hi = bounds[part], bounds[part + 1]
            if lo == hi:
                return
            for chunk in self.iter_chunks(message, start=lo, stop=hi, chunk_elements=chunk_elements):
                flat[chunk.offset - first:chunk.offset - first + chunk.data.size] = chunk.data

        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="weightinit-range") as pool:
            for done in [pool.submit(fetch, part) for part in range(parallel)]:
                done.result()
        return _finish(header, flat, whole=start is None and stop is None)

    # -- models -----------------------------------------------------------

    def iter_model_chunks(self, manifest: Any, *, chunk_elements: int | None = None) -> Iterator[ModelChunk]:
        """Yield every tensor's chunks, tensor by tensor in manifest order, each tensor verified.

        After a break the current tensor is finished with ``Generate`` from
        the last element received, and the rest of the manifest requested anew.
        """
        manifest = convert.manifest_from_any(manifest)
        chunk = self.chunk_elements if chunk_elements is None else chunk_elements
        next_index = 0
        attempt, since = 0, time.monotonic()
        receiver: _TensorReceiver | None = None
        try:
            while next_index < len(manifest.tensors):
                rest = spec_pb2.ModelManifest(name=manifest.name, seed=manifest.seed,
                                              tensors=manifest.tensors[next_index:])
                if manifest.recipe_json:  # the server expands a recipe over the whole list
                    rest = manifest
                request = pb.GenerateModelRequest(manifest=rest, chunk_elements=chunk,
                                                  digest_algorithm=self._digest_algorithm)
                base = index = next_index
                if receiver is not None:
                    receiver.close()
                    receiver = None
                try:
                    for raw in self._generate_model(request, timeout=self.timeout, metadata=self._metadata):
                        message, data = wire.decode_model(raw)
                        index = base + message.tensor_index
                        if message.HasField("header"):
                            if receiver is not None:
                                receiver.close()
                                if not receiver.done:
                                    raise IntegrityError(f"tensor {receiver.header.name!r} ended before its digest")
                            receiver = _TensorReceiver(None, self.spot_check, self._rng)
                        if receiver is None:
                            raise IntegrityError("model stream data arrived before a header")
                        array = receiver.accept(message.header if message.HasField("header") else None,
                                                message.offset, data, message.digest or message.sha256)
                        attempt, since = 0, time.monotonic()
                        yield ModelChunk(receiver.header, message.offset, array, index, receiver.header.name)
                        if receiver.done:
                            next_index = index + 1
                    if next_index < len(manifest.tensors):
                        raise IntegrityError("the model stream ended early")
                except grpc.RpcError as error:
                    attempt += 1
                    if self._give_up(error, attempt, since):
                        raise from_rpc_error(error, manifest, base) from error
                    if manifest.recipe_json:  # resume on the specs the server expanded (the same expansion)
                        manifest = spec_pb2.ModelManifest(name=manifest.name, seed=manifest.seed,
                                                          tensors=[convert.spec_from_any(spec) for spec in
                                                                   convert.expand_recipe_manifest(manifest)])
                    if receiver is not None and not receiver.done and receiver.header is not None:
                        # finish the interrupted tensor on its own, then continue with the rest
                        tensor = spec_pb2.TensorSpec()
                        tensor.CopyFrom(manifest.tensors[index])
                        if not tensor.HasField("seed"):
                            tensor.seed = manifest.seed
                        resume = pb.GenerateRequest(spec=tensor, chunk_elements=chunk,
                                                    digest_algorithm=self._digest_algorithm)
                        try:
                            for part in self._tensor_stream(resume, receiver):
                                yield ModelChunk(part.header, part.offset, part.data, index, part.header.name)
                        except InvalidRequestError as failure:
                            raise failure.in_tensor(tensor_label(manifest, index), index) from failure
                        next_index = index + 1
        finally:
            if receiver is not None:
                receiver.close()

    def generate_model(self, manifest: Any, *, chunk_elements: int | None = None) -> dict[str, np.ndarray]:
        """Every tensor of the manifest, by name, in manifest order, each verified."""
        arrays: dict[str, np.ndarray] = {}
        flat = None
        current = -1
        header = None

        def finish():
            if flat is not None:
                arrays[header.name] = _finish(header, flat, whole=True)

        for chunk in self.iter_model_chunks(manifest, chunk_elements=chunk_elements):
            if chunk.index != current:
                finish()
                current, header = chunk.index, chunk.header
                flat = _allocate(header, None)
            flat[chunk.offset:chunk.offset + chunk.data.size] = chunk.data
        finish()
        return arrays

    # -- service information ----------------------------------------------

    def capabilities(self) -> pb.GetCapabilitiesResponse:
        return self._unary(self._capabilities, pb.GetCapabilitiesRequest())

    def describe(self) -> dict:
        """Capabilities as a plain dict (what ``weightinit describe --server`` prints)."""
        return capabilities_to_dict(self.capabilities())

    def health(self, service: str = "") -> str:
        """The grpc.health.v1 status name (``SERVING``, ``NOT_SERVING`` ...)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout or 10,
                               metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _allocate(header: pb.TensorHeader, out: np.ndarray | None) -> np.ndarray:
    count = header.stop - header.start
    dtype = _storage(dtype_name(header))
    if out is None:
        flat = np.empty(count, dtype=dtype)
        memory.prefault(flat)  # its pages are zeroed on another core while the first chunks arrive
        return flat
    flat = out.reshape(-1)
    if not out.flags.c_contiguous or flat.size != count or flat.dtype.itemsize != dtype.itemsize:
        raise ValueError(f"out must be C-contiguous with {count} elements of {dtype.itemsize} bytes")
    return flat.view(dtype)


def _region_bounds(index: Any, shape, start, stop) -> tuple[tuple[int, int], ...]:
    if start is not None or stop is not None:
        raise wi.SpecError("index", "give either an index (N-d region) or start/stop (flat range), not both")
    return resolve_region(index, tuple(shape))


def _finish(header: pb.TensorHeader, flat: np.ndarray, whole: bool) -> np.ndarray:
    if header.region:
        if whole:
            flat = flat.reshape(tuple(r.stop - r.start for r in header.region))
    elif whole and header.start == 0 and header.stop == header.element_count:
        flat = flat.reshape(tuple(header.shape))
    return user_array(flat, dtype_name(header))


def capabilities_to_dict(reply: pb.GetCapabilitiesResponse) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(reply, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


class LocalClient:
    """The :class:`Client` API computed in-process by the engine: nothing to trust but this machine."""

    def __init__(self, backend: str | None = None, limits: wi.Limits | None = wi.DEFAULT_LIMITS):
        self.backend = backend
        self.limits = limits

    def __enter__(self) -> "LocalClient":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def close(self) -> None:
        pass

    def _spec(self, spec: Any, default_seed: int | None = None) -> wi.TensorSpec:
        if isinstance(spec, wi.TensorSpec):
            return spec
        message = convert.spec_from_any(spec)
        return wi.spec_from_dict(convert.spec_to_dict(message, default_seed), limits=self.limits)

    def _header(self, spec: wi.TensorSpec, start: int, stop: int, region=None) -> pb.TensorHeader:
        return tensor_header(spec, start, stop, start, wi.get_backend(self.backend).name, region)

    def iter_chunks(self, spec: Any, *, start: int | None = None, stop: int | None = None,
                    chunk_elements: int | None = None, index: Any = None,
                    _default_seed: int | None = None) -> Iterator[Chunk]:
        spec = self._spec(spec, _default_seed)
        if index is not None:
            yield from self._region_chunks(spec, _region_bounds(index, spec.shape, start, stop), chunk_elements)
            return
        first = 0 if start is None else start
        last = spec.numel if stop is None else stop
        step = chunk_elements or max(1, (1 << 20) // spec.itemsize)
        header = None
        produced = False
        for offset, data in wi.iter_chunks(spec, first, last, step, backend=self.backend, limits=self.limits):
            header = header or self._header(spec, first, last)
            produced = True
            yield Chunk(header, offset, data)
        if not produced:
            yield Chunk(self._header(spec, first, last), first, np.empty(0, wi.storage_dtype(spec.dtype)))

    def _region_chunks(self, spec: wi.TensorSpec, region, chunk_elements: int | None) -> Iterator[Chunk]:
        compiled = wi.compile_spec(spec, self.backend, self.limits)
        count = int(np.prod(region_shape(region), dtype=np.int64))
        header = self._header(spec, 0, count, region)
        step = chunk_elements or max(1, (1 << 20) // spec.itemsize)
        for offset in range(0, count, step):
            data = np.empty(min(step, count - offset), dtype=wi.storage_dtype(spec.dtype))
            yield Chunk(header, offset, fill_region_positions(compiled, region, offset, data, FILL_ELEMENTS))
        if count == 0:
            yield Chunk(header, 0, np.empty(0, wi.storage_dtype(spec.dtype)))

    def generate(self, spec: Any, *, start: int | None = None, stop: int | None = None,
                 chunk_elements: int | None = None, out: np.ndarray | None = None, index: Any = None) -> np.ndarray:
        spec = self._spec(spec)
        if index is not None:
            region = _region_bounds(index, spec.shape, start, stop)
            array = wi.generate(spec, backend=self.backend, limits=self.limits, index=region)
            header = self._header(spec, 0, array.size, region)
        else:
            array = wi.generate(spec, start, stop, backend=self.backend, limits=self.limits)
            header = self._header(spec, start or 0, spec.numel if stop is None else stop)
        if out is not None:
            flat = _allocate(header, out)
            flat[...] = np.asarray(array).reshape(-1).view(flat.dtype)
            return user_array(flat.reshape(array.shape), spec.dtype)
        return array

    def digest(self, spec: Any, *, start: int | None = None, stop: int | None = None,
               algorithm: str = "sha256") -> bytes:
        """Digest of the tensor's bytes (or of elements [start, stop)), as :meth:`Client.digest` answers."""
        wire.digest_value(algorithm, "algorithm")  # an unknown name raises naming the argument
        hasher = wire.new_hash(algorithm)
        flat = np.asarray(self.generate(spec, start=start, stop=stop)).reshape(-1)
        hasher.update(flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes())
        return hasher.digest()

    def _manifest_specs(self, manifest: Any) -> list[wi.TensorSpec]:
        message = convert.manifest_from_any(manifest)
        specs, seen = [], set()
        tensors = convert.expand_recipe_manifest(message) if message.recipe_json else message.tensors
        for index, tensor in enumerate(tensors):
            try:
                spec = self._spec(tensor, default_seed=message.seed)
            except wi.SpecError as error:
                raise error.in_tensor(tensor_label(message, index), index) from None
            if spec.name in seen:
                raise wi.SpecError("name", f"duplicate tensor name {spec.name!r}",
                                   tensor=tensor_label(message, index), tensor_index=index)
            seen.add(spec.name)
            specs.append(spec)
        if not specs:
            raise wi.SpecError("manifest.tensors", "must list at least one tensor")
        return specs

    def iter_model_chunks(self, manifest: Any, *, chunk_elements: int | None = None) -> Iterator[ModelChunk]:
        for index, spec in enumerate(self._manifest_specs(manifest)):
            for chunk in self.iter_chunks(spec, chunk_elements=chunk_elements):
                yield ModelChunk(chunk.header, chunk.offset, chunk.data, index, spec.name)

    def generate_model(self, manifest: Any, *, chunk_elements: int | None = None) -> dict[str, np.ndarray]:
        return {spec.name: wi.generate(spec, backend=self.backend, limits=self.limits)
                for spec in self._manifest_specs(manifest)}

    def capabilities(self) -> pb.GetCapabilitiesResponse:
        backend = wi.get_backend(self.backend)
        limits = self.limits or wi.Limits(max_elements=0, max_dense_elements=0)
        answer = pb.ServerLimits(max_elements_per_request=limits.max_elements,
                                 max_dense_elements=limits.max_dense_elements)
        return capabilities(answer, 1 << 20, backend.name, backend.device, wi.available_backends())

    def describe(self) -> dict:
        return capabilities_to_dict(self.capabilities())

    def health(self, service: str = "") -> str:
        return "SERVING"


__all__ = ["BFLOAT16_AS_UINT16", "Chunk", "Client", "IntegrityError", "LocalClient", "ModelChunk",
           "capabilities_to_dict", "field_violations", "user_array"]
