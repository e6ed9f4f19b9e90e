#!/usr/bin/env python3
"""weightinit.torch beside PyTorch's own initialization, in one run on one machine and thread count.

    python benchmarks/torch_init.py [--threads 2] [--layers 10] [--repeat 5] [--size 8192]

1. A ~100 M-parameter transformer (Embedding 32000x768 + nn.TransformerEncoderLayer(768, 12, 3072) x layers):
   torch builds it on the CPU with its construction-time init (allocation + every reset_parameters), against
   building on the meta device, ``to_empty(device="cpu")`` and ``init_module`` in-process, and the same with
   the bytes from a local server (``python -m weightinit serve`` subprocess, one GenerateModel call).
2. ``kaiming_normal_`` on an 8192x8192 float32 and bfloat16 tensor: weightinit.torch vs torch.nn.init.
Ratios are wall-clock speeds relative to torch (> 1: weightinit faster); "its CPU" is the CPU time this
process spent in that best run (all threads; the server's own is not included).
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import weightinit.torch as winit  # noqa: E402
from weightinit.client import Client  # noqa: E402


def best_seconds(fns: dict, repeat: int) -> dict:
    """Best wall time of each function, and the CPU time (all threads of this process) of that run; the
    functions run in turn within every round, so that load from other processes falls on all of them alike."""
    best = {label: (float("inf"), 0.0) for label in fns}
    for _ in range(repeat):
        for label, fn in fns.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
            if wall < best[label][0]:
                best[label] = (wall, cpu)
    return best


class Transformer(nn.Module):
    def __init__(self, layers: int, vocab: int = 32000, width: int = 768):
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(width, 12, 4 * width, batch_first=True)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(width)


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-m", "weightinit", "serve", "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            if line.startswith("listening on "):
                return proc, line.split()[-1]
    proc.kill()
    raise RuntimeError("the server did not start")


def row(label: str, impl: str, seconds: tuple[float, float], reference: tuple[float, float], unit: str) -> None:
    wall, cpu = seconds
    print(f"{label:34s} {impl:44s} {wall:8.3f} s {cpu:8.3f} s {unit:>14s} {reference[0] / wall:8.2f}x")
    sys.stdout.flush()


def model_cases(args) -> None:
    with torch.device("meta"):
        meta = Transformer(args.layers)
    count = sum(p.numel() for p in meta.parameters())
    label = f"transformer {count / 1e6:.1f} M params"
    unit = f"{count / 1e6:.0f} M params"

    def torch_init():
        return Transformer(args.layers)

    def meta_then(client=None):
        with torch.device("meta"):
            model = Transformer(args.layers)
        model.to_empty(device="cpu")
        winit.init_module(model, seed=1, client=client)
        return model

    model = meta_then()
    proc, target = start_server(args.threads)
    try:
        with Client(target, timeout=600) as client:
            meta_then(client)  # warm the server's JIT
            times = best_seconds({
                "torch: construct on CPU (own init)": torch_init,
                "weightinit: meta -> to_empty -> init_module": meta_then,
                "  of which init_module alone": lambda: winit.init_module(model, seed=1),
                "weightinit via local server (GenerateModel)": lambda: meta_then(client),
            }, args.repeat)
    finally:
        proc.terminate()
        proc.wait(30)
    reference = times["torch: construct on CPU (own init)"]
    for impl, seconds in times.items():
        row(label, impl, seconds, reference, unit)


def kaiming_cases(args) -> None:
    numel = args.size * args.size
    for dtype in (torch.float32, torch.bfloat16):
        tensor = torch.empty(args.size, args.size, dtype=dtype)
        label = f"kaiming_normal_ {args.size}x{args.size} {str(dtype)[6:]}"
        unit = f"{numel / 1e6:.0f} M values"
        winit.kaiming_normal_(torch.empty(8, 8, dtype=dtype))  # compile the JIT kernels first
        times = best_seconds({"torch.nn.init.kaiming_normal_": lambda: torch.nn.init.kaiming_normal_(tensor),
                              "weightinit.torch.kaiming_normal_": lambda: winit.kaiming_normal_(tensor)},
                             args.repeat)
        reference = times["torch.nn.init.kaiming_normal_"]
        for impl, seconds in times.items():
            row(label, impl, seconds, reference, unit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} torch threads, "
          f"{len(os.sched_getaffinity(0))} cores visible to weightinit")
    print(f"{'case':34s} {'implementation':44s} {'best time':>10s} {'its CPU':>10s} {'size':>14s} {'vs torch':>9s}")
    kaiming_cases(args)
    model_cases(args)


if __name__ == "__main__":
    main()
