"""Prometheus metrics (text format on ``/metrics``) and one JSON access-log line per call.

Each server has its own registry, so several servers in one process (tests) keep apart.
Nothing here ever sees tensor data or tokens.
"""

from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

access_log = logging.getLogger("weightinit.access")

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self):
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("weightinit_requests", "Finished calls by RPC and status code",
                                ("rpc", "code"), registry=registry)
        self.bytes = Counter("weightinit_sent_bytes", "Tensor bytes sent", ("scheme", "dtype", "backend"),
                             registry=registry)
        self.elements = Counter("weightinit_sent_elements", "Tensor elements sent", ("scheme", "dtype", "backend"),
                                registry=registry)
        self.in_flight = Gauge("weightinit_streams_in_flight", "Streams being served now", registry=registry)
        self.duration = Histogram("weightinit_stream_duration_seconds", "Stream duration", ("rpc",),
                                  buckets=_LATENCY_BUCKETS, registry=registry)
        self.first_byte = Histogram("weightinit_time_to_first_byte_seconds",
                                    "From the call's arrival to its first message taken by gRPC", ("rpc",),
                                    buckets=_LATENCY_BUCKETS, registry=registry)
        self.generation = Counter("weightinit_generation_seconds", "Producer time generating, hashing and "
                                  "encoding chunks", ("backend",), registry=registry)
        self.send = Counter("weightinit_send_seconds", "Time streams waited for gRPC to take a message",
                            ("rpc",), registry=registry)
        self.rejected = Counter("weightinit_rejected_requests", "Requests refused or cut off, by the limit "
                                "that did it", ("limit",), registry=registry)
        self._http = None

    def serve_http(self, port: int, host: str = "0.0.0.0") -> int:
        """Start the ``/metrics`` HTTP endpoint; returns the bound port (``port=0`` picks one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return server.server_address[1]

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def chunk(self, nbytes: int, itemsize: int, scheme: str, dtype: str, backend: str) -> None:
        self.bytes.labels(scheme, dtype, backend).inc(nbytes)
        self.elements.labels(scheme, dtype, backend).inc(nbytes // max(itemsize, 1))


def log_call(**fields) -> None:
    """One JSON object per line on the ``weightinit.access`` logger."""
    access_log.info(json.dumps(fields, separators=(",", ":"), default=str))
