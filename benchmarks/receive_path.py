#!/usr/bin/env python3
"""Where the client should hash: the receive path's options measured side by side in one run.

    python benchmarks/receive_path.py [--mib 256] [--repeat 5]

A no-op server (``benchmarks/service.py --noop-server``) streams a valid 256 MiB tensor of
prebuilt 1 MiB messages. The client side, each variant written out here in a few lines:

- ``raw``: only counts the bytes (the ceiling);
- ``copy only``: splits each message without copying its data and writes it once into a
  fresh array (no digest); ``copy into a touched array``: the same into an array written
  before (no page faults); ``copy, array faulted in by a helper``: a helper thread faults
  the fresh array's pages in meanwhile;
- ``hash on helper``: copy, and the digest of each received message on a helper thread
  (what ``Client`` does for SHA-256);
- ``copy+hash on helper``: the receive thread only splits; a helper copies and hashes;
- ``hash inline``: copy and hash in the receive thread (what ``Client`` does for BLAKE3);
- ``hash blocks of the array``: copy in the receive thread, a helper hashes the destination
  array in 8 MiB blocks behind it.

Each digest variant runs with BLAKE3 and with SHA-256; ratios are to ``raw``. Also printed:
the client's CPU seconds and minor page faults per GB/MiB received. The allocator is tuned as
``Client`` tunes it (``weightinit.api.memory``) unless ``--untuned``.
"""

from __future__ import annotations

import argparse
import queue
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weightinit.api import memory, wire  # noqa: E402
from weightinit.v1 import initializer_service_pb2 as pb  # noqa: E402

MIB = 1 << 20


class Helper:
    """One worker thread running ``work(*item)`` for each queued item, two items ahead at most."""

    def __init__(self, work):
        self._queue: queue.Queue = queue.Queue(2)
        self._work = work
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._work(*item)

    def put(self, *item) -> None:
        self._queue.put(item)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()


def variants(stream, total: int):
    def receive():
        for raw in stream():
            yield wire.decode_generate(raw)[1]

    def copy_only(algorithm):
        out, at = np.empty(total, np.uint8), 0
        for data in receive():
            out[at:at + len(data)] = np.frombuffer(data, np.uint8)
            at += len(data)
        return at

    touched = np.ones(total, np.uint8)

    def copy_into_touched(algorithm):
        at = 0
        for data in receive():
            touched[at:at + len(data)] = np.frombuffer(data, np.uint8)
            at += len(data)
        return at

    def copy_prefaulted(algorithm):
        out, at = np.empty(total, np.uint8), 0
        faulted = threading.Thread(target=lambda: out[::4096].fill(0))
        faulted.start()
        for data in receive():
            out[at:at + len(data)] = np.frombuffer(data, np.uint8)
            at += len(data)
        faulted.join()
        return at

    def hash_on_helper(algorithm):
        out, at, hasher = np.empty(total, np.uint8), 0, wire.new_hash(algorithm)
        helper = Helper(hasher.update)
        for data in receive():
            helper.put(data)
            out[at:at + len(data)] = np.frombuffer(data, np.uint8)
            at += len(data)
        helper.finish()
        hasher.digest()
        return at

    def copy_and_hash_on_helper(algorithm):
        out, at, hasher = np.empty(total, np.uint8), 0, wire.new_hash(algorithm)

        def work(data, at):
            out[at:at + len(data)] = np.frombuffer(data, np.uint8)
            hasher.update(data)

        helper = Helper(work)
        for data in receive():
            helper.put(data, at)
            at += len(data)
        helper.finish()
        hasher.digest()
        return at

    def hash_inline(algorithm):
        out, at, hasher = np.empty(total, np.uint8), 0, wire.new_hash(algorithm)
        for data in receive():
            out[at:at + len(data)] = np.frombuffer(data, np.uint8)
            hasher.update(data)
            at += len(data)
        hasher.digest()
        return at

    def hash_array_blocks(algorithm):
        out, at, hashed, hasher = np.empty(total, np.uint8), 0, 0, wire.new_hash(algorithm)
        helper = Helper(lambda begin, end: hasher.update(out[begin:end]))
        for data in receive():
            out[at:at + len(data)] = np.frombuffer(data, np.uint8)
            at += len(data)
            if at - hashed >= 8 * MIB:
                helper.put(hashed, at)
                hashed = at
        helper.put(hashed, at)
        helper.finish()
        hasher.digest()
        return at

    return {"copy only": copy_only, "copy into a touched array": copy_into_touched,
            "copy, array faulted in by a helper": copy_prefaulted, "hash on helper": hash_on_helper,
            "copy+hash on helper": copy_and_hash_on_helper, "hash inline": hash_inline,
            "hash blocks of the array": hash_array_blocks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="tensor size in MiB (1 MiB messages)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--untuned", action="store_true", help="leave glibc malloc's thresholds as they are")
    args = parser.parse_args()
    tuned = False if args.untuned else memory.keep_message_buffers()
    total = args.mib * MIB
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("service.py")), "--noop-server",
                               "--count", str(args.mib)], stdout=subprocess.PIPE, text=True)
    try:
        target = server.stdout.readline().split()[-1]
        channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 8 << 20)])
        raw = channel.unary_stream("/weightinit.v1.InitializerService/Raw", request_serializer=None,
                                   response_deserializer=None)
        generate = channel.unary_stream("/weightinit.v1.InitializerService/Generate",
                                        request_serializer=pb.GenerateRequest.SerializeToString,
                                        response_deserializer=None)
        runs = {"raw": lambda: sum(len(message) for message in raw(b""))}
        for algorithm in ("blake3", "sha256"):
            request = pb.GenerateRequest(digest_algorithm=wire.DIGEST_ALGORITHMS[algorithm])
            for name, variant in variants(lambda request=request: generate(request), total).items():
                plain = name.startswith("copy") and "hash" not in name
                if plain and algorithm != "blake3":
                    continue
                label = name if plain else f"{name}, {algorithm}"
                runs[label] = lambda variant=variant, algorithm=algorithm: variant(algorithm)
        rates: dict[str, list[float]] = {name: [] for name in runs}
        costs: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}  # (CPU s/GB, faults/MiB)
        for run in runs.values():
            run()
        for _ in range(args.repeat):  # interleaved: every variant sees the same machine state
            for name, run in runs.items():
                cpu, faults, began = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt, \
                    time.perf_counter()
                count = run()
                rates[name].append(count / (time.perf_counter() - began) / 1e9)
                costs[name].append(((time.process_time() - cpu) / (count / 1e9),
                                    (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (count / MIB)))
        channel.close()
    finally:
        server.kill()
    raw_best = max(rates["raw"])
    print(f"{total // MIB} MiB in 1 MiB messages over loopback, best / median of {args.repeat}; "
          f"malloc {'tuned' if tuned else 'untuned'}")
    print(f"{'client side':<40} {'GB/s':>14}  {'x raw (best)':>12}  {'CPU s/GB':>8}  {'faults/MiB':>10}")
    for name, values in rates.items():
        cpu, faults = (statistics.median(column) for column in zip(*costs[name]))
        print(f"{name:<40} {max(values):>6.2f} / {statistics.median(values):<5.2f}  {max(values) / raw_best:>12.2f}  "
              f"{cpu:>8.2f}  {faults:>10.1f}")


if __name__ == "__main__":
    main()
