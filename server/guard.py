"""What keeps one caller from holding or costing the server too much: who is calling (tokens,
client certificates), per-identity stream limits, and a watchdog that cancels streams whose client
stopped reading (``stream_idle_timeout``) or that outlived the deadline cap (``max_deadline``)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("weightinit.server")


class TokenAuth:
    """Bearer tokens from a file, one a line (blank lines and ``#`` comments ignored).

    A caller is authenticated when its ``authorization`` metadata is ``Bearer <token>`` for one
    of them; every token is compared with :func:`hmac.compare_digest` (constant time, and all of
    them each time, so timing tells nothing about which one nearly matched). The identity a token
    gives is ``token:`` plus the first 12 hex digits of its SHA-256: logs never hold the token.
    """

    def __init__(self, tokens: list[str]):
        self._tokens = [token.encode() for token in tokens]
        if not self._tokens:
            raise ValueError("the token file lists no token")

    @classmethod
    def from_file(cls, path: str | Path) -> "TokenAuth":
        lines = Path(path).read_text().splitlines()
        return cls([line.strip() for line in lines if line.strip() and not line.strip().startswith("#")])

    def identify(self, metadata) -> str | None:
        presented = b""
        for key, value in metadata or ():
            if key == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                if text[:7].lower() == "bearer ":
                    presented = text[7:].strip().encode()
        found = None
        for token in self._tokens:
            if hmac.compare_digest(token, presented) and found is None:
                found = token
        return None if found is None else "token:" + hashlib.sha256(found).hexdigest()[:12]


def caller_identity(context, token_identity: str | None) -> str:
    """Token identity, else the client certificate's common name (mTLS), else the peer's address."""
    if token_identity:
        return token_identity
    names = context.auth_context().get("x509_common_name") if hasattr(context, "auth_context") else None
    if names:
        return "cert:" + names[0].decode(errors="replace")
    peer = context.peer() or "unknown"
    host = peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer
    return "peer:" + host


class IdentityLimits:
    """At most ``limit`` streams in flight per identity (0: no per-identity limit)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}

    def acquire(self, identity: str) -> bool:
        with self._lock:
            count = self._active.get(identity, 0)
            if self.limit and count >= self.limit:
                return False
            self._active[identity] = count + 1
            return True

    def release(self, identity: str) -> None:
        with self._lock:
            count = self._active.get(identity, 0) - 1
            if count > 0:
                self._active[identity] = count
            else:
                self._active.pop(identity, None)


@dataclass
class WatchedStream:
    """``offered`` is when the stream handed gRPC a message the client has not taken yet (None while
    the producer is generating: only the client's slowness counts towards the idle timeout)."""

    context: object
    started: float
    offered: float | None = None
    reason: str | None = None  # why the watchdog cancelled it
    first_byte: float | None = None

    def offer(self) -> None:
        self.offered = time.monotonic()

    def taken(self) -> None:
        if self.first_byte is None:
            self.first_byte = time.monotonic()
        self.offered = None


@dataclass
class Watchdog:
    """One thread for all streams: cancels a stream when its client has not taken the message
    offered to it for ``idle_timeout`` seconds, or when it has run ``max_age`` seconds (0 disables
    either)."""

    idle_timeout: float
    max_age: float
    on_cancel: object = None  # called with the reason ("stream_idle_timeout" or "max_deadline")
    _by_id: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None and (self.idle_timeout > 0 or self.max_age > 0):
            self._thread = threading.Thread(target=self._run, name="weightinit-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def watch(self, context) -> WatchedStream:
        now = time.monotonic()
        stream = WatchedStream(context, now)
        with self._lock:
            self._by_id[id(stream)] = stream
        return stream

    def forget(self, stream: WatchedStream) -> None:
        with self._lock:
            self._by_id.pop(id(stream), None)

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            streams = list(self._by_id.values())
        for stream in streams:
            if stream.reason is not None:
                continue
            offered = stream.offered
            if self.idle_timeout > 0 and offered is not None and now - offered > self.idle_timeout:
                stream.reason = "stream_idle_timeout"
            elif self.max_age > 0 and now - stream.started > self.max_age:
                stream.reason = "max_deadline"
            else:
                continue
            log.info("cancelling a stream: %s", stream.reason)
            if self.on_cancel is not None:
                self.on_cancel(stream.reason)
            stream.context.cancel()

    def _run(self) -> None:
        period = min(1.0, max(0.05, min(t for t in (self.idle_timeout, self.max_age) if t > 0) / 4))
        while not self._stop.wait(period):
            self.check()
