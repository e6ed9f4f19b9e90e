"""The cost bound: how long the most expensive requests the default limits admit take, end to end,
against a ``weightinit serve`` subprocess with default settings on loopback. Run:

    python benchmarks/cost.py            # every case once, one line each
    python benchmarks/cost.py --quick    # smaller float64 hash-only case

Each case sits at (not beyond) one limit of ``server.jobs.Settings``; the README quotes the output.
A first request warms the JIT up so compile time is not counted. The server runs with
OPENBLAS_NUM_THREADS=1 (as the Docker image and deploy/k8s set it): threaded BLAS spinning on a
busy machine made the same QR 5-20x slower here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def cases(settings, quick: bool):
    hashed = settings.max_hashed_elements
    dense = settings.max_dense_work
    chunks = settings.max_chunks_per_stream
    side = int(round(dense ** (1 / 3)))
    while side ** 3 > dense:
        side -= 1
    yield ("hash-only: digest_only over max_hashed_elements float32", "digest",
           {"scheme": "normal", "shape": [hashed], "name": "h"}, {})
    if not quick:
        yield ("hash-only: digest_only over max_hashed_elements float64", "digest",
               {"scheme": "normal", "shape": [hashed], "dtype": "float64", "name": "h"}, {})
    yield ("resume: hash_from=0, start = max_hashed_elements, 1 element sent", "range",
           {"scheme": "uniform", "shape": [hashed + 1], "name": "r"}, {"start": hashed})
    yield (f"tiny chunks: chunk_elements=1 x max_chunks_per_stream ({chunks})", "range",
           {"scheme": "uniform", "shape": [chunks], "name": "c"}, {"chunk_elements": 1})
    yield (f"orthogonal square {side}x{side} (work {side ** 3} <= {dense})", "generate",
           {"scheme": "orthogonal", "shape": [side, side], "name": "q"}, {})
    rows = 1 << 13
    cols = int((dense // rows) ** 0.5)
    yield (f"orthogonal {rows}x{cols} (work {rows * cols * cols})", "generate",
           {"scheme": "orthogonal", "shape": [rows, cols], "name": "q2"}, {})
    out_ch = 1 << 12
    in_ch = int((dense // out_ch) ** 0.5)
    kernel = max(1, settings.max_dense_elements // (out_ch * in_ch))
    yield (f"delta_orthogonal [{out_ch}, {in_ch}, {kernel}] (work {out_ch * in_ch * in_ch})", "generate",
           {"scheme": "delta_orthogonal", "shape": [out_ch, in_ch, kernel], "name": "d"}, {})
    rows = int(settings.max_dense_elements ** 0.5)
    yield (f"sparse {rows}x{rows} (max_dense_elements)", "generate",
           {"scheme": "sparse", "shape": [rows, rows], "params": {"sparsity": 0.5}, "name": "s"}, {})
    per_model = settings.max_dense_work_per_model // dense
    yield (f"model: {per_model} orthogonal {side}x{side} (max_dense_work_per_model)", "model",
           {"seed": 1, "tensors": [{"scheme": "orthogonal", "shape": [side, side], "name": f"q{i}"}
                                   for i in range(per_model)]}, {})
    count = min(settings.max_tensors_per_model, 1 << 16)
    yield (f"model: {count} tiny tensors (max_tensors_per_model)", "model",
           {"seed": 1, "tensors": [{"scheme": "uniform", "shape": [4], "name": f"t{i}"} for i in range(count)]}, {})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from conftest import ServerProcess
    from weightinit.api import convert
    from weightinit.client import Client
    from weightinit.v1 import initializer_service_pb2 as pb
    from weightinit.server import Settings

    server = ServerProcess(env={"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")})
    try:
        with Client(server.target, timeout=600) as client:
            client.generate({"scheme": "orthogonal", "shape": [64, 64]})
            client.generate({"scheme": "normal", "shape": [1 << 20]})
            print(f"{'case':<72} {'seconds':>8}")
            for label, kind, spec, extra in cases(Settings(), args.quick):
                began = time.perf_counter()
                if kind == "digest":
                    client.digest(spec)
                elif kind == "range":
                    request = pb.GenerateRequest(spec=convert.spec_from_any(spec), hash_from=0, **extra)
                    for _ in client._generate(request, timeout=600):  # raw messages: the data is not kept
                        pass
                elif kind == "generate":
                    client.generate(spec)
                else:
                    client.generate_model(spec)
                print(f"{label:<72} {time.perf_counter() - began:8.2f}", flush=True)
    finally:
        server.close()


if __name__ == "__main__":
    main()
