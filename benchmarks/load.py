"""Load test: 64 concurrent digest-checked clients against one ``weightinit serve`` subprocess on
loopback for a bounded time; prints throughput, latency percentiles and status codes (the
clients' and, from its /metrics endpoint, the server's).

    python benchmarks/load.py [--clients 64] [--seconds 20] [--processes 4]

Each client has its own channel and loops over a mix of tensors (16 KiB to 4 MiB); every
tensor is checked against the server's SHA-256 by ``Client.generate``, and the first of each
kind also against the local engine. Clients run as threads spread over ``--processes`` worker
processes so the client side is not limited by one interpreter's GIL.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIX = [
    {"scheme": "kaiming_normal", "shape": [64, 64], "name": "small"},
    {"scheme": "xavier_uniform", "shape": [512, 512], "name": "medium"},
    {"scheme": "normal", "shape": [1 << 20], "name": "large"},
    {"scheme": "truncated_normal", "shape": [256, 256], "dtype": "bfloat16", "name": "half"},
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _client_worker(target: str, threads: int, seconds: float, results) -> None:
    import grpc
    import numpy as np

    import weightinit as wi
    from weightinit.client import Client

    expected = {spec["name"]: np.asarray(wi.generate(spec)).tobytes() for spec in MIX}
    records = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run(seed: int) -> None:
        rng = np.random.default_rng(seed)
        local = []
        with Client(target, timeout=60) as client:
            checked = set()
            while time.monotonic() < stop_at:
                spec = MIX[rng.integers(len(MIX))]
                began = time.perf_counter()
                try:
                    array = client.generate(spec)  # the digest is checked inside
                    code = "OK"
                    if spec["name"] not in checked:
                        assert np.asarray(array).tobytes() == expected[spec["name"]], spec["name"]
                        checked.add(spec["name"])
                    size = np.asarray(array).nbytes
                except grpc.RpcError as error:
                    code, size = error.code().name, 0
                local.append((time.perf_counter() - began, size, code))
        with lock:
            records.extend(local)

    workers = [threading.Thread(target=run, args=(os.getpid() * 1000 + i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(records)


def _server_codes(metrics_port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    codes = Counter()
    rejected = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "weightinit_requests_total":
                codes[f"{sample.labels['rpc']}:{sample.labels['code']}"] += int(sample.value)
            if sample.name == "weightinit_rejected_requests_total":
                rejected[sample.labels["limit"]] += int(sample.value)
    return {"codes": dict(codes), "rejected": dict(rejected)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--max-streams", type=int, default=16)
    args = parser.parse_args()

    metrics_port = _free_port()
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # the access log, one line a call
    server = subprocess.Popen(
        [sys.executable, "-m", "weightinit", "serve", "--host", "127.0.0.1", "--port", "0",
         "--metrics-port", str(metrics_port), "--max-streams", str(args.max_streams)],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=str(REPO),
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on "), line
        target = line.split()[-1]
        from weightinit.client import Client

        with Client(target, timeout=120) as probe:
            while probe.health() != "SERVING":  # readiness: the backend is warm
                time.sleep(0.2)
        per_process = [args.clients // args.processes + (i < args.clients % args.processes)
                       for i in range(args.processes)]
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        workers = [context.Process(target=_client_worker, args=(target, n, args.seconds, results))
                   for n in per_process if n]
        began = time.perf_counter()
        for worker in workers:
            worker.start()
        records = []
        for _ in workers:
            records.extend(results.get(timeout=args.seconds + 300))
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - began
        server_side = _server_codes(metrics_port)
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        os.unlink(log.name)

    ok = [r for r in records if r[2] == "OK"]
    latencies = sorted(r[0] for r in ok)
    nbytes = sum(r[1] for r in ok)

    def percentile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    print(f"{args.clients} clients ({args.processes} processes), {elapsed:.1f} s wall, server --max-streams "
          f"{args.max_streams}, {os.cpu_count()} CPUs shared by client and server")
    print(f"calls: {len(records)}  ok: {len(ok)}  throughput: {len(ok) / elapsed:.1f} tensors/s, "
          f"{nbytes / elapsed / 1e6:.1f} MB/s (digest-checked)")
    print(f"latency per tensor (ok calls, retries included): p50 {percentile(0.5):.1f} ms  "
          f"p90 {percentile(0.9):.1f} ms  p99 {percentile(0.99):.1f} ms  "
          f"mean {statistics.fmean(latencies) * 1000 if latencies else float('nan'):.1f} ms")
    print(f"client codes: {dict(Counter(r[2] for r in records))}")
    print(f"server codes: {server_side['codes']}  refused by limit: {server_side['rejected']}")


if __name__ == "__main__":
    main()
