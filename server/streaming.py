"""Lazy chunk generation a little ahead of the send.

Each stream owns one producer thread that generates, hashes and encodes
chunks into a bounded queue (``Settings.prefetch_chunks`` deep) while the
gRPC worker thread sends the previous one, so a stream holds a few chunks in
memory whatever the tensor size. Setting the stop flag (the RPC's
termination callback does it on cancel, deadline or shutdown) ends the
producer within one chunk.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Callable, Iterable, Iterator

import numpy as np

import weightinit as wi
from weightinit.engine.generate import FILL_ELEMENTS
from weightinit.engine.regions import fill_region_positions

from . import jobs as jobs_mod
from weightinit.api import wire

_POLL_SECONDS = 0.05
#: How long closing a stream waits for its producer to finish the step it is in.
_CLOSE_WAIT_SECONDS = 5.0


class StreamStats:
    """Counters the tests and logs read; all updates under one lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self.active = 0
        self.started = 0
        self.finished = 0
        self.stopped_early = 0
        self.chunks = 0
        self.bytes = 0

    #: Optional sinks (the server's Metrics): ``chunk(nbytes, itemsize, scheme, dtype, backend)``
    #: and ``generation`` seconds per backend.
    metrics = None

    def chunk(self, nbytes: int, spec: wi.TensorSpec | None = None, backend: str = "") -> None:
        with self._lock:
            self.chunks += 1
            self.bytes += nbytes
        if self.metrics is not None and spec is not None:
            self.metrics.chunk(nbytes, spec.itemsize, spec.scheme, spec.dtype, backend)

    def generated(self, seconds: float, backend: str) -> None:
        if self.metrics is not None:
            self.metrics.generation.labels(backend).inc(seconds)

    def snapshot(self) -> dict:
        with self._lock:
            return {"active": self.active, "started": self.started, "finished": self.finished,
                    "stopped_early": self.stopped_early, "chunks": self.chunks, "bytes": self.bytes}


class StreamSlots:
    """At most ``limit`` streams at once; ``acquire`` never blocks."""

    def __init__(self, limit: int, stats: StreamStats):
        self.limit = limit
        self.stats = stats

    def acquire(self) -> bool:
        with self.stats._lock:
            if self.stats.active >= self.limit:
                return False
            self.stats.active += 1
            self.stats.started += 1
            return True

    def releaser(self) -> Callable[[bool], None]:
        """A release function that acts once, whoever calls it first (callback or generator exit)."""
        done = threading.Lock()
        released = []

        def release(completed: bool = False) -> None:
            with done:
                if released:
                    return
                released.append(True)
            with self.stats._lock:
                self.stats.active -= 1
                if completed:
                    self.stats.finished += 1
                else:
                    self.stats.stopped_early += 1

        return release


def _little_endian(view: np.ndarray) -> np.ndarray:
    if sys.byteorder == "little":
        return view
    return view.byteswap()  # pragma: no cover - big-endian hosts only


def tensor_messages(job: jobs_mod.TensorJob, backend, layout, should_stop: Callable[[], bool],
                    stats: StreamStats | None = None) -> Iterator[bytes]:
    """Serialized response messages of one tensor: header on the first, digest on the last."""
    compiled = wi.compile_spec(job.spec, backend, limits=None)
    spec = compiled.spec
    if job.region is None:
        fill = compiled.fill
    else:  # offsets are positions in the region's row-major order
        def fill(offset: int, out: np.ndarray) -> np.ndarray:
            return fill_region_positions(compiled, job.region, offset, out, FILL_ELEMENTS)
    header = jobs_mod.header_for(job, backend.name).SerializeToString()
    with wire.ThreadedHasher(job.digest) as hasher:  # its helper thread ends on every exit path
        chunk = job.chunk_elements
        span = max(job.stop - job.hash_from, 1)
        scratch = np.empty(min(chunk, span), dtype=wi.storage_dtype(spec.dtype))
        hashed_stop = job.stop if job.digest_only else job.start
        began = time.perf_counter()
        for offset in range(job.hash_from, hashed_stop, chunk):  # hashed, not sent (resumed downloads)
            if should_stop():
                return
            view = scratch[:min(chunk, hashed_stop - offset)]
            hasher.update(_little_endian(fill(offset, view)).tobytes())  # a copy: scratch is reused
        if stats is not None:
            stats.generated(time.perf_counter() - began, backend.name)
        if job.start == job.stop or job.digest_only:
            yield wire.encode_chunk(layout, header=header, offset=job.start, digest=hasher.digest(),
                                    algorithm=job.digest, index=job.index)
            return
        first = True
        for offset in range(job.start, job.stop, chunk):
            if should_stop():
                return
            count = min(chunk, job.stop - offset)
            began = time.perf_counter()
            view = _little_endian(fill(offset, scratch[:count]))
            message = wire.encode_chunk(layout, data=view, offset=offset, header=header if first else None,
                                        index=job.index)
            # data is the message's last field: hash it there (immutable) while the next chunk is generated
            hasher.update(memoryview(message)[len(message) - view.nbytes:])
            if offset + count == job.stop:
                message += wire.digest_field(layout, hasher.digest(), job.digest)
            first = False
            if stats is not None:
                stats.generated(time.perf_counter() - began, backend.name)
                stats.chunk(view.nbytes, spec, backend.name)
            yield message


def stream_messages(tensor_jobs: Iterable[jobs_mod.TensorJob], backend, layout, should_stop: Callable[[], bool],
                    stats: StreamStats | None = None) -> Iterator[bytes]:
    for job in tensor_jobs:
        if should_stop():
            return
        yield from tensor_messages(job, backend, layout, should_stop, stats)


class Prefetcher:
    """Runs ``produce(should_stop)`` in a background thread, at most ``depth`` items ahead.

    Iterating yields the items in order and re-raises the producer's
    exception, if any. ``stop()`` makes both sides return within one poll.
    """

    def __init__(self, produce: Callable[[Callable[[], bool]], Iterable], depth: int = 2,
                 name: str = "weightinit-stream"):
        self._queue: queue.Queue = queue.Queue(max(1, depth))
        self._stop = threading.Event()
        self._produce = produce
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the producer, drop the chunks it queued and wait for it to end (its generator is
        closed in its own thread, so the producer's ``finally`` blocks run there)."""
        self.stop()
        self._drain()
        self._thread.join(_CLOSE_WAIT_SECONDS)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _run(self) -> None:
        items = None
        try:
            items = iter(self._produce(self._stop.is_set))
            for item in items:
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except BaseException as error:  # handed to the consumer
            self._put((False, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        while True:
            try:
                is_item, value = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if is_item:
                yield value
            elif value is None:
                return
            else:
                raise value
