"""Service benchmark over loopback; prints one table. Run: python benchmarks/service.py [--quick]

1. Throughput: a 256 MiB float32 kaiming_uniform tensor via Client.generate (decode,
   copy into a fresh array, digest check) with each wire digest (BLAKE3, SHA-256) beside
   no-op grpcio streams of the same chunk size in the same run, and the ratios to the
   raw one: "raw" yields one prebuilt serialized message and the client only counts
   bytes (the ceiling); "protobuf" builds a GenerateResponse per chunk and the client
   parses it (plain grpcio usage). Also: Client.generate from a no-op server sending
   prebuilt valid streams (the client's cost alone), parallel range streams, and the
   engine alone (no I/O). Best and median of the repetitions. This process tunes glibc
   malloc as every Client does (weightinit.api.memory), which makes the raw stream itself
   faster; "plain" is the same raw stream in a fresh process that never imported the client
   (what a plain grpcio program gets), and "x plain" the ratio to it. CPU seconds per GB
   of each side come from the process' CPU time.
2. Latency of small tensors (one Generate call each).
3. A 161-tensor ResNet-50-like manifest: one GenerateModel vs 161 Generate calls.
4. Server peak RSS (VmHWM) while streaming 2 GiB, against the same after 256 MiB.

Servers run as subprocesses (``weightinit serve`` and this file's ``--noop-server``), so
each side has its own interpreter as in production; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
MIB = 1 << 20
SERVICE = "/weightinit.v1.InitializerService/Raw"


def noop_server(chunk_bytes: int, count: int) -> None:
    """A Generate look-alike without generation: ``Raw`` streams one prebuilt message ``count``
    times; ``Generate`` sends a valid zero tensor (header, offsets, precomputed digest) that
    ``Client.generate`` accepts, encoding each message as the real server does."""
    import grpc

    import weightinit as wi
    from weightinit.api import wire
    from weightinit.server import jobs
    from weightinit.v1 import initializer_service_pb2 as pb

    payload = bytes(chunk_bytes)
    message = wire.encode_chunk(wire.GENERATE, data=payload, offset=1 << 20)
    elements = chunk_bytes // 4
    spec = wi.spec_from_dict({"scheme": "zeros", "shape": [count * elements]}, limits=None)
    streams = {}  # digest algorithm -> the prebuilt messages of a valid stream, so sending costs what Raw does
    for algorithm in wire.DIGEST_ALGORITHMS:
        hasher = wire.new_hash(algorithm)
        for _ in range(count):
            hasher.update(payload)
        job = jobs.TensorJob(spec, 0, spec.numel, 0, elements, digest=algorithm)
        header = jobs.header_for(job, "noop").SerializeToString()
        streams[wire.DIGEST_ALGORITHMS[algorithm]] = [
            wire.encode_chunk(wire.GENERATE, data=payload, offset=i * elements, header=header if i == 0 else None,
                              digest=hasher.digest() if i == count - 1 else None, algorithm=algorithm)
            for i in range(count)]

    def raw(request, context):
        for _ in range(count):
            yield message

    def proto(request, context):  # the textbook way: a message object per chunk, protobuf serializes it
        for i in range(count):
            yield pb.GenerateResponse(offset=i * elements, data=payload)

    def valid(request, context):
        algorithm = pb.GenerateRequest.FromString(request).digest_algorithm or pb.DIGEST_ALGORITHM_SHA256
        yield from streams[algorithm]

    handler = grpc.method_handlers_generic_handler("weightinit.v1.InitializerService", {
        "Raw": grpc.unary_stream_rpc_method_handler(raw), "Generate": grpc.unary_stream_rpc_method_handler(valid),
        "Proto": grpc.unary_stream_rpc_method_handler(proto, response_serializer=pb.GenerateResponse.SerializeToString)})
    server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


def plain_raw_stream(target: str) -> None:
    """Prints the rate of one raw no-op stream received by a process that never imported
    weightinit's client (glibc malloc as a plain grpcio program has it), after a warm-up."""
    import grpc

    with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stream = channel.unary_stream(SERVICE, request_serializer=None, response_deserializer=None)
        sum(len(message) for message in stream(b""))
        began = time.perf_counter()
        received = sum(len(message) for message in stream(b""))
        print(received / (time.perf_counter() - began) / 1e9)


class Proc:
    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"server failed to start: {line!r}")
        self.target = line.split()[-1]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (all threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self) -> tuple[int, int]:
        """(current RSS, peak RSS) in bytes."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
        return values["VmRSS"], values["VmHWM"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def weightinit_server(backend: str) -> Proc:
    return Proc([sys.executable, "-m", "weightinit", "serve", "--port", "0", "--backend", backend,
                 "--log-level", "WARNING"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--chunk-mib", type=float, default=1.0)
    parser.add_argument("--noop-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--plain-raw-stream", metavar="TARGET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    chunk_bytes = int(args.chunk_mib * MIB)
    if args.noop_server:
        noop_server(chunk_bytes, args.count)
        return
    if args.plain_raw_stream:
        plain_raw_stream(args.plain_raw_stream)
        return

    import grpc

    import weightinit as wi
    from test_service_e2e import resnet_like_manifest
    from weightinit.client import Client

    reps = 2 if args.quick else 5
    total = (64 if args.quick else 256) * MIB
    chunk_elements = chunk_bytes // 4
    spec = {"scheme": "kaiming_uniform", "shape": [total // 4 // 4096, 4096], "seed": 1, "name": "big"}
    print(f"machine: {os.cpu_count()} CPUs; backend {args.backend}; chunk {chunk_bytes / MIB:g} MiB; "
          f"tensor {total / MIB:.0f} MiB float32")

    # -- 1. throughput -----------------------------------------------------
    noop = Proc([sys.executable, __file__, "--noop-server", "--chunk-mib", str(args.chunk_mib),
                 "--count", str(total // chunk_bytes)])
    server = weightinit_server(args.backend)
    noop_clients, clients = {}, {}
    try:
        with grpc.insecure_channel(noop.target, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
            stream = channel.unary_stream(SERVICE, request_serializer=None, response_deserializer=None)

            def run_noop() -> float:
                began, received = time.perf_counter(), 0
                for message in stream(b""):
                    received += len(message)
                return received / (time.perf_counter() - began) / 1e9

            from weightinit.v1 import initializer_service_pb2 as pb

            proto_stream = channel.unary_stream(SERVICE.replace("Raw", "Proto"), request_serializer=None,
                                                response_deserializer=pb.GenerateResponse.FromString)

            def run_noop_proto() -> float:
                began, received = time.perf_counter(), 0
                for message in proto_stream(b""):
                    received += len(message.data)
                return received / (time.perf_counter() - began) / 1e9

            run_noop()  # warm up
            run_noop_proto()
            digests = ("blake3", "sha256")
            noop_clients.update({d: Client(noop.target, digest=d) for d in digests})
            clients.update({d: Client(server.target, digest=d) for d in digests})
            client = clients["blake3"]
            zeros = {"scheme": "zeros", "shape": [total // 4]}

            def rate_of(fetch) -> Callable[[], float]:
                def run() -> float:
                    began = time.perf_counter()
                    array = fetch()
                    return array.nbytes / (time.perf_counter() - began) / 1e9
                return run

            def run_plain_raw() -> float:
                done = subprocess.run([sys.executable, __file__, "--plain-raw-stream", noop.target],
                                      capture_output=True, text=True, cwd=REPO, check=True)
                return float(done.stdout)

            runs = {"raw": run_noop, "plain raw": run_plain_raw, "protobuf": run_noop_proto}
            for d in digests:
                runs[f"noop client {d}"] = rate_of(lambda d=d: noop_clients[d].generate(zeros))
                runs[f"client {d}"] = rate_of(lambda d=d: clients[d].generate(spec, chunk_elements=chunk_elements))
            for k in (2, 3):
                runs[f"client blake3 parallel={k}"] = rate_of(
                    lambda k=k: client.generate(spec, chunk_elements=chunk_elements, parallel=k))
            for run in runs.values():  # warm up (JIT, connections, first-touch of fresh memory)
                run()
            rates: dict[str, list[float]] = {name: [] for name in runs}
            cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}  # (client, server) s/GB
            for _ in range(reps):  # interleaved, so all see the same machine state
                for name, run in runs.items():
                    source = server if name.startswith("client") else noop
                    if name == "plain raw":  # another process: its own rate only
                        rates[name].append(run())
                        cpu[name].append((float("nan"), float("nan")))
                        continue
                    mine, theirs, began = time.process_time(), source.cpu_seconds(), time.perf_counter()
                    rates[name].append(run())
                    gigabytes = rates[name][-1] * (time.perf_counter() - began)
                    cpu[name].append(((time.process_time() - mine) / gigabytes,
                                      (source.cpu_seconds() - theirs) / gigabytes))
            wi.generate(spec, stop=chunk_elements)  # JIT warm-up
            compiled = wi.compile_spec(spec)
            scratch = np.empty(chunk_elements, np.float32)
            began, mine = time.perf_counter(), time.process_time()
            for offset in range(0, total // 4, chunk_elements):
                compiled.fill(offset, scratch)
            engine_rate = total / (time.perf_counter() - began) / 1e9
            engine_cpu = (time.process_time() - mine) / (total / 1e9)
            local = wi.generate(spec)
            assert client.generate(spec).tobytes() == local.tobytes()

            # -- 2. small-tensor latency -------------------------------------
            small = {"scheme": "kaiming_normal", "shape": [64, 64], "name": "small"}
            for _ in range(20):
                client.generate(small)
            latencies = []
            for i in range(300 if not args.quick else 100):
                began = time.perf_counter()
                client.generate({**small, "seed": i})
                latencies.append((time.perf_counter() - began) * 1e3)

            # -- 3. one GenerateModel vs per-tensor Generate calls -----------
            manifest = resnet_like_manifest(width=16)
            count = len(manifest["tensors"])
            numel = sum(int(np.prod(t["shape"])) for t in manifest["tensors"])
            model_times, single_times = [], []
            for _ in range(reps):
                began = time.perf_counter()
                arrays = client.generate_model(manifest)
                model_times.append(time.perf_counter() - began)
                began = time.perf_counter()
                for tensor in manifest["tensors"]:
                    client.generate({**tensor, "seed": tensor.get("seed", manifest["seed"])})
                single_times.append(time.perf_counter() - began)
            assert len(arrays) == count
    finally:
        for each in (*noop_clients.values(), *clients.values()):
            each.close()
        noop.close()
        server.close()

    # -- 4. server memory while streaming 2 GiB ----------------------------
    rss_rows = []
    fresh = weightinit_server(args.backend)
    try:
        with Client(fresh.target) as client:
            idle = fresh.rss()[0]
            for size in (256 * MIB, (512 if args.quick else 2048) * MIB):
                big = {"scheme": "uniform", "shape": [size // 4], "name": f"stream{size}"}
                began, received = time.perf_counter(), 0
                for chunk in client.iter_chunks(big):
                    received += chunk.data.nbytes
                rate = received / (time.perf_counter() - began) / 1e9
                rss_rows.append((size, fresh.rss()[1], rate))
    finally:
        fresh.close()

    raw_best, raw_med = max(rates["raw"]), statistics.median(rates["raw"])
    plain_best = max(rates["plain raw"])
    print()
    print(f"{'measurement':<58} {'best / median':>14}  {'x raw no-op':>11}  {'x plain':>7}  "
          f"{'CPU s/GB client + server':>24}")
    print("-" * 122)
    labels = {"raw": "no-op grpcio stream, pre-serialized bytes (GB/s)",
              "plain raw": "  the same in a plain grpcio process, malloc untuned (GB/s)",
              "protobuf": "no-op grpcio stream, protobuf messages (GB/s)"}
    for d in digests:
        labels[f"noop client {d}"] = f"Client.generate from the no-op server, {d} (GB/s)"
        labels[f"client {d}"] = f"Client.generate end to end, {d} (GB/s)"
    for k in (2, 3):
        labels[f"client blake3 parallel={k}"] = f"  the same, blake3, parallel={k} streams (GB/s)"
    for name, label in labels.items():
        best, med = max(rates[name]), statistics.median(rates[name])
        mine, theirs = (statistics.median(side) for side in zip(*cpu[name]))
        print(f"{label:<58} {best:>6.2f} / {med:<5.2f}  {best / raw_best:>5.2f} / {med / raw_med:<4.2f}  "
              f"{best / plain_best:>7.2f}  {mine:>10.2f} + {theirs:<.2f}")
    print(f"{'engine alone, same tensor and chunks, no I/O (GB/s)':<58} {engine_rate:>14.2f}  {'':>11}  "
          f"{engine_cpu:>10.2f}")
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"{'small tensor 64x64 f32 Generate latency p50 / p99 (ms)':<58} {p50:>6.2f} / {p99:<5.2f}")
    print(f"{f'{count}-tensor model ({numel / 1e6:.1f} M values): GenerateModel (s)':<58} {min(model_times):>14.3f}")
    print(f"{f'{count}-tensor model: {count} Generate calls (s)':<58} {min(single_times):>14.3f}")
    print(f"{'  speed-up of one GenerateModel':<58} {min(single_times) / min(model_times):>13.1f}x")
    print(f"{'server RSS idle (MiB)':<58} {idle / MIB:>14.1f}")
    for size, peak, rate in rss_rows:
        print(f"{f'server peak RSS after streaming {size / MIB:.0f} MiB (MiB), at GB/s':<58} "
              f"{peak / MIB:>7.1f} @ {rate:.2f}")


if __name__ == "__main__":
    main()
