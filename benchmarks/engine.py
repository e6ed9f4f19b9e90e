#!/usr/bin/env python3
"""Engine throughput beside its anchors, in one run on one machine and thread count.

    python benchmarks/engine.py [--size 8192] [--repeat 3] [--threads N] [--dtype float32]

--threads N sets the threads of torch and of the weightinit CPU backends alike
(--threads 1: one core against one core).

For each case it prints values/s of every weightinit CPU backend, of
torch.nn.init (when torch is installed) filling a tensor of the same dtype and
of NumPy's own Generator.standard_normal / .random (float64 for float64, else
float32), and the ratios to torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import weightinit as wi  # noqa: E402
from weightinit.backends import BackendUnavailable, get_backend  # noqa: E402


def best_seconds(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def cases(size: int):
    shape = [size, size]
    yield "kaiming_normal", {"scheme": "kaiming_normal", "shape": shape}, \
        lambda t: __import__("torch").nn.init.kaiming_normal_(t), "normal"
    yield "kaiming_uniform", {"scheme": "kaiming_uniform", "shape": shape}, \
        lambda t: __import__("torch").nn.init.kaiming_uniform_(t), "uniform"
    yield "trunc_normal std=0.02 [-0.04, 0.04]", \
        {"scheme": "truncated_normal", "shape": shape, "params": {"std": 0.02, "lower": -0.04, "upper": 0.04}}, \
        lambda t: __import__("torch").nn.init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04), "normal"
    yield "orthogonal 1024x1024", {"scheme": "orthogonal", "shape": [1024, 1024]}, \
        lambda t: __import__("torch").nn.init.orthogonal_(t), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192, help="square matrix side for the elementwise cases")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for torch and the weightinit CPU backends (default: all cores)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64", "float16", "bfloat16"),
                        help="output dtype of every implementation")
    args = parser.parse_args()

    threads = args.threads or wi.backends.base.cpu_threads()
    try:
        import torch
        torch.set_num_threads(threads)
        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = "not installed"
    backends = []
    for name in ("numpy", "numba"):
        try:
            backend = get_backend(name)
        except BackendUnavailable as why:
            print(f"# {name}: {why}")
            continue
        backends.append(type(backend)(threads=args.threads) if args.threads else backend)
    print(f"# cores/threads: {threads}; numpy {np.__version__}; torch {torch_version}; dtype {args.dtype}")
    numpy_dtype = np.float64 if args.dtype == "float64" else np.float32
    numpy_label = "f64" if args.dtype == "float64" else "f32"
    print(f"{'case':38s} {'impl':28s} {'M values/s':>11s} {'vs torch':>9s}")
    rng = np.random.default_rng(0)
    for label, spec, torch_fn, numpy_kind in cases(args.size):
        spec = dict(spec, dtype=args.dtype)
        numel = int(np.prod(spec["shape"]))
        rates: dict[str, float] = {}
        if torch is not None:
            tensor = torch.empty(spec["shape"], dtype=getattr(torch, args.dtype))
            try:
                rates["torch.nn.init"] = numel / best_seconds(lambda: torch_fn(tensor), args.repeat)
            except RuntimeError as why:  # e.g. no CPU QR for float16
                print(f"# {label}: torch.nn.init on {args.dtype}: {str(why).splitlines()[0]}")
        if numpy_kind == "normal":
            rates[f"numpy standard_normal {numpy_label}"] = numel / best_seconds(
                lambda: rng.standard_normal(numel, dtype=numpy_dtype), args.repeat)
        elif numpy_kind == "uniform":
            rates[f"numpy random {numpy_label}"] = numel / best_seconds(
                lambda: rng.random(numel, dtype=numpy_dtype), args.repeat)
        for backend in backends:
            wi.generate(dict(spec, shape=[8, 8] if spec["scheme"] != "orthogonal" else [16, 16]), backend=backend)
            rates[f"weightinit[{backend.name}]"] = numel / best_seconds(
                lambda: wi.generate(spec, backend=backend), args.repeat)
        reference = rates.get("torch.nn.init")
        for impl, rate in rates.items():
            ratio = f"{rate / reference:8.2f}x" if reference else "      n/a"
            print(f"{label:38s} {impl:28s} {rate / 1e6:11.1f} {ratio}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
