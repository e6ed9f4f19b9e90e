"""Requests -> validated generation jobs, and the capabilities answer.

Plain functions: no network, no servicer. Each ``plan_*`` either returns jobs
or raises :class:`~weightinit.api.errors.RequestError` listing every bad
field it found, with the request's field paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import weightinit as wi
from weightinit.v1 import initializer_service_pb2 as pb
from weightinit.v1 import spec_pb2

from weightinit.api import convert
from weightinit.api import describe
from weightinit.api import wire
from weightinit.api.errors import Violation, exhausted, invalid
from weightinit.errors import InvalidRequestError

MIB = 1 << 20
#: Most violations reported for one request.
MAX_VIOLATIONS = 100


@dataclass(frozen=True)
class Settings:
    """What the server enforces; see ``weightinit serve --help``."""

    max_elements_per_request: int = wi.DEFAULT_LIMITS.max_elements
    max_elements_per_model: int = 1 << 34
    max_tensors_per_model: int = 1 << 14  # ~6 s of per-tensor overhead at most (benchmarks/cost.py)
    max_concurrent_streams: int = 16
    max_dense_elements: int = wi.DEFAULT_LIMITS.max_dense_elements
    # 4 MiB is gRPC's default receive limit; leave room for the header fields.
    max_chunk_bytes: int = 4 * MIB - 64 * 1024
    default_chunk_bytes: int = MIB
    #: Chunks generated ahead of the one being sent, per stream.
    prefetch_chunks: int = 2
    # -- the cost model (see README "Run it on a network"; bounds measured on 2 cores) --
    #: Elements generated but not sent: [hash_from, start), or all of a digest_only request.
    max_hashed_elements: int = 1 << 27
    #: Messages one stream may take in chunks smaller than default_chunk_bytes (chunk_elements=1 over a
    #: large range costs per message; server-sized chunks carry 1 MiB each, paced by the client).
    max_chunks_per_stream: int = 1 << 14
    #: QR work rows * cols^2 (rows >= cols) of one orthogonal / delta_orthogonal tensor.
    max_dense_work: int = 1 << 32
    #: QR work summed over one manifest.
    max_dense_work_per_model: int = 1 << 33
    # -- slots --
    #: Seconds without the client taking a message before a stream is cancelled (0: never).
    stream_idle_timeout: float = 30.0
    #: Longest a stream may run, whatever the client's deadline (0: no cap).
    max_deadline: float = 3600.0
    #: Streams in flight per caller identity (0: only max_concurrent_streams applies).
    max_streams_per_identity: int = 0

    @property
    def engine_limits(self) -> wi.Limits:
        return wi.Limits(max_elements=self.max_elements_per_request, max_dense_elements=self.max_dense_elements)

    def as_proto(self) -> pb.ServerLimits:
        return pb.ServerLimits(
            max_elements_per_request=self.max_elements_per_request,
            max_elements_per_model=self.max_elements_per_model,
            max_tensors_per_model=self.max_tensors_per_model,
            max_concurrent_streams=self.max_concurrent_streams,
            max_dense_elements=self.max_dense_elements,
            max_chunk_bytes=self.max_chunk_bytes,
            max_hashed_elements=self.max_hashed_elements,
            max_chunks_per_stream=self.max_chunks_per_stream,
            max_dense_work=self.max_dense_work,
            max_dense_work_per_model=self.max_dense_work_per_model,
            stream_idle_timeout_seconds=self.stream_idle_timeout,
            max_deadline_seconds=self.max_deadline,
            max_streams_per_identity=self.max_streams_per_identity)


@dataclass(frozen=True)
class TensorJob:
    """One tensor to stream: elements [start, stop), digest over [hash_from, stop); with a region,
    positions in the region's row-major order."""

    spec: wi.TensorSpec
    start: int
    stop: int
    hash_from: int
    chunk_elements: int
    index: int = 0
    region: tuple[tuple[int, int], ...] | None = None
    digest_only: bool = False
    #: Algorithm of the final digest (``weightinit.api.wire.DIGEST_ALGORITHMS``).
    digest: str = "sha256"


class _Collector:
    """Gathers violations; ``limits`` are the RESOURCE_EXHAUSTED ones."""

    def __init__(self):
        self.invalid: list[Violation] = []
        self.limits: list[Violation] = []

    def add(self, field: str, description: str, limit: bool = False) -> None:
        target = self.limits if limit else self.invalid
        violation = Violation(field, description)
        if violation not in target and len(self.invalid) + len(self.limits) < MAX_VIOLATIONS:
            target.append(violation)

    def raise_if_any(self) -> None:
        if self.invalid:
            raise invalid(self.invalid + self.limits)
        if self.limits:
            raise exhausted(self.limits)


def _resolve(message: spec_pb2.TensorSpec, settings: Settings, prefix: str, found: _Collector,
             default_seed: int | None = None) -> wi.TensorSpec | None:
    scheme = message.WhichOneof("scheme")
    try:
        return wi.spec_from_dict(convert.spec_to_dict(message, default_seed), limits=settings.engine_limits)
    except wi.LimitError as error:
        found.add(convert.proto_field_path(error.field, scheme, prefix), error.message, limit=True)
    except wi.SpecError as error:
        found.add(convert.proto_field_path(error.field, scheme, prefix), error.message)
    return None


def _digest(value: int, found: _Collector) -> str:
    try:
        return wire.digest_name(value)
    except InvalidRequestError as error:
        found.add("digest_algorithm", error.message)
        return "sha256"


def _itemsize_hint(message: spec_pb2.TensorSpec) -> int:
    dtype = convert.PROTO_TO_DTYPE.get(message.dtype, "float32")
    return wi.storage_dtype(dtype).itemsize


def _chunk_elements(requested: int, itemsize: int, settings: Settings, field: str, found: _Collector) -> int:
    if requested < 0:
        found.add(field, f"must be >= 0 (0 lets the server choose), got {requested}")
        return 1
    if requested == 0:
        return max(1, settings.default_chunk_bytes // itemsize)
    if requested * itemsize > settings.max_chunk_bytes:
        found.add(field, f"{requested} elements of {itemsize} bytes exceed the chunk limit of "
                         f"{settings.max_chunk_bytes} bytes (at most {settings.max_chunk_bytes // itemsize})")
    return requested


def dense_work(spec: wi.TensorSpec) -> int:
    """QR work m * n^2 (m >= n) of the matrix a dense scheme factorizes; 0 for other schemes."""
    if spec.scheme == "orthogonal":
        shape = spec.shape
        cols = shape[spec.params["column_axis"] % len(shape)] if "column_axis" in spec.params else \
            spec.numel // max(shape[0], 1)
        rows = spec.numel // max(cols, 1)
    elif spec.scheme == "delta_orthogonal":
        torch_layout = spec.layout == "torch"
        rows, cols = (spec.shape[0], spec.shape[1]) if torch_layout else (spec.shape[-1], spec.shape[-2])
    else:
        return 0
    big, small = max(rows, cols), min(rows, cols)
    return big * small * small


def _small_chunks(job: TensorJob, settings: Settings) -> bool:
    """Chunks smaller than the server's default: their per-message cost is what the message limit bounds."""
    return job.chunk_elements * job.spec.itemsize < settings.default_chunk_bytes


def _check_cost(job: TensorJob, settings: Settings, spec_prefix: str, found: _Collector) -> int:
    """Adds a limit violation for each bound the job breaks (spec fields under ``spec_prefix``);
    returns its QR work."""
    hashed = (job.stop if job.digest_only else job.start) - job.hash_from
    if hashed > settings.max_hashed_elements:
        what = "digest_only hashes" if job.digest_only else "[hash_from, start) hashes"
        found.add("digest_only" if job.digest_only else "hash_from",
                  f"{what} {hashed} elements without sending them; the limit (max_hashed_elements) is "
                  f"{settings.max_hashed_elements}", limit=True)
    messages = 1 if job.digest_only else -(-(job.stop - job.start) // max(job.chunk_elements, 1))
    if messages > settings.max_chunks_per_stream and _small_chunks(job, settings):
        found.add("chunk_elements", f"{job.stop - job.start} elements in chunks of {job.chunk_elements} "
                  f"take {messages} messages; the limit (max_chunks_per_stream) is "
                  f"{settings.max_chunks_per_stream}: ask for larger chunks", limit=True)
    work = dense_work(job.spec)
    if work > settings.max_dense_work:
        found.add(spec_prefix + "shape", f"{job.spec.scheme} of this shape costs {work} QR work (rows * cols^2); the "
                  f"limit (max_dense_work) is {settings.max_dense_work}", limit=True)
    return work


def plan_generate(request: pb.GenerateRequest, settings: Settings) -> TensorJob:
    found = _Collector()
    spec = None
    if not request.HasField("spec"):
        found.add("spec", "is required")
    else:
        spec = _resolve(request.spec, settings, "spec", found)
    itemsize = spec.itemsize if spec is not None else _itemsize_hint(request.spec)
    chunk = _chunk_elements(request.chunk_elements, itemsize, settings, "chunk_elements", found)
    start = request.start if request.HasField("start") else 0
    numel = spec.numel if spec is not None else None
    region = None
    if request.region and spec is not None:
        region = _region(request.region, spec.shape, found)
        numel = math.prod(b - a for a, b in region) if region is not None else None
    stop = request.stop if request.HasField("stop") else numel
    if start < 0:
        found.add("start", f"must be >= 0, got {start}")
    if stop is not None and stop < 0:
        found.add("stop", f"must be >= 0, got {stop}")
    if numel is not None:
        if start > numel:
            found.add("start", f"must be <= the element count {numel}{' of the region' if region else ''}, "
                               f"got {start}")
        if stop > numel:
            found.add("stop", f"must be <= the element count {numel}{' of the region' if region else ''}, "
                              f"got {stop}")
    if stop is not None and 0 <= stop < start:
        found.add("stop", f"must be >= start ({start}), got {stop}")
    hash_from = request.hash_from if request.HasField("hash_from") else start
    if not 0 <= hash_from <= max(start, 0):
        found.add("hash_from", f"must be in [0, start = {start}], got {hash_from}")
    digest = _digest(request.digest_algorithm, found)
    found.raise_if_any()
    job = TensorJob(spec, start, stop, hash_from, chunk, region=region, digest_only=request.digest_only,
                    digest=digest)
    _check_cost(job, settings, "spec.", found)
    found.raise_if_any()
    return job



def _region(ranges, shape, found: _Collector) -> tuple[tuple[int, int], ...] | None:
    """[start, stop) per leading dimension, trailing dimensions whole; None when invalid."""
    if len(ranges) > len(shape):
        found.add("region", f"has {len(ranges)} ranges for a tensor of rank {len(shape)}")
        return None
    ok = True
    for d, (dim_range, size) in enumerate(zip(ranges, shape)):
        if not 0 <= dim_range.start <= dim_range.stop <= size:
            found.add(f"region[{d}]", f"[{dim_range.start}, {dim_range.stop}) is not within [0, {size}] "
                                      f"with start <= stop")
            ok = False
    if not ok:
        return None
    return tuple((r.start, r.stop) for r in ranges) + tuple((0, size) for size in shape[len(ranges):])


def plan_model(request: pb.GenerateModelRequest, settings: Settings) -> list[TensorJob]:
    found = _Collector()
    if not request.HasField("manifest"):
        found.add("manifest", "is required")
        found.raise_if_any()
    manifest = request.manifest
    count = len(manifest.tensors)
    if count == 0:
        found.add("manifest.tensors", "must list at least one tensor")
    if count > settings.max_tensors_per_model:
        found.add("manifest.tensors", f"{count} tensors exceed the limit of {settings.max_tensors_per_model}",
                  limit=True)
        found.raise_if_any()
    if request.chunk_elements < 0:
        found.add("chunk_elements", f"must be >= 0 (0 lets the server choose), got {request.chunk_elements}")
    digest = _digest(request.digest_algorithm, found)
    jobs: list[TensorJob] = []
    names: dict[str, int] = {}
    total = work = small_messages = 0
    messages = list(manifest.tensors)
    if manifest.recipe_json and count:
        try:  # docs/recipes.md: expanded over the whole list, so derived values see every tensor
            messages = [convert.spec_from_any(spec) for spec in convert.expand_recipe_manifest(manifest)]
        except wi.SpecError as error:
            found.add(error.field, error.message)
            found.raise_if_any()
    for index, message in enumerate(messages):
        prefix = f"manifest.tensors[{index}]"
        if message.name in names:
            found.add(f"{prefix}.name", f"duplicate tensor name {message.name!r} (also tensors[{names[message.name]}])")
        names.setdefault(message.name, index)
        spec = _resolve(message, settings, prefix, found, default_seed=manifest.seed)
        itemsize = spec.itemsize if spec is not None else _itemsize_hint(message)
        chunk = _chunk_elements(max(request.chunk_elements, 0), itemsize, settings, "chunk_elements", found)
        if spec is not None:
            total += spec.numel
            job = TensorJob(spec, 0, spec.numel, 0, chunk, index, digest=digest)
            work += _check_cost(job, settings, f"{prefix}.", found)
            if _small_chunks(job, settings):
                small_messages += max(1, -(-spec.numel // max(chunk, 1)))
            jobs.append(job)
    if work > settings.max_dense_work_per_model:
        found.add("manifest.tensors", f"orthogonal tensors cost {work} QR work in all; the per-model limit "
                                      f"(max_dense_work_per_model) is {settings.max_dense_work_per_model}", limit=True)
    if small_messages > settings.max_chunks_per_stream:
        found.add("chunk_elements", f"the manifest takes {small_messages} messages of small chunks; the limit "
                                    f"(max_chunks_per_stream) is {settings.max_chunks_per_stream}: ask for larger "
                                    "chunks", limit=True)
    if total > settings.max_elements_per_model:
        found.add("manifest.tensors", f"{total} elements in all exceed the per-model limit of "
                                      f"{settings.max_elements_per_model}", limit=True)
    found.raise_if_any()
    return jobs


def header_for(job: TensorJob, backend_name: str) -> pb.TensorHeader:
    return describe.tensor_header(job.spec, job.start, job.stop, job.hash_from, backend_name, job.region, job.digest)


def capabilities(settings: Settings, backend_name: str, backend_device: str,
                 backends: dict[str, str]) -> pb.GetCapabilitiesResponse:
    return describe.capabilities(settings.as_proto(), settings.default_chunk_bytes, backend_name, backend_device,
                                 backends)


__all__ = ["Settings", "TensorJob", "capabilities", "dense_work", "header_for", "plan_generate", "plan_model"]
