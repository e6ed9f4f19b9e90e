#!/usr/bin/env python3
"""Sharded initialization of one [size, size] float32 weight at world size N (gloo, processes).

    python benchmarks/sharded.py [--size 8192] [--world 4] [--backend auto]

Per rank, for a Shard(0) DTensor on a 1-D mesh:
  (a) weightinit.torch.distributed.materialize: only the rank's shard is generated;
  (b) generate the whole tensor, keep the rank's rows (Megatron's CPU init, use_cpu_initialization);
  (c) torch.nn.init.normal_ on a DTensor (DTensor's RNG; not equal across layouts, shown for speed).
Reports elements generated (counted at the backend), seconds and peak RSS growth over the rank's
RSS before the call (each variant in its own process group, so peaks do not mask each other),
and the ratios the issue targets: (a) elements = numel / world, peak <= 1.2 x shard,
time <= 0.35 x (b).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

MIB = 1 << 20


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _count_elements(backend) -> list:
    """Wrap the backend's random_into so every generated element is counted."""
    counted = [0]
    original = backend.random_into

    def counting(kernel, key, start, out, dtype):
        counted[0] += out.size
        return original(kernel, key, start, out, dtype)

    backend.random_into = counting
    return counted


def _worker(rank: int, world: int, port: int, variant: str, size: int, backend_name: str, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard

    import weightinit as wi
    from weightinit.torch.distributed import materialize

    dist.init_process_group("gloo", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    spec = {"scheme": "normal", "shape": [size, size], "dtype": "float32", "seed": 1, "name": "bench.weight"}
    backend = wi.get_backend(backend_name)
    if hasattr(backend, "warmup"):
        backend.warmup(("float32",))

    def run(spec):
        rows = torch.arange(spec["shape"][0]).chunk(world)[rank]
        if variant == "materialize":
            return materialize(spec, mesh, [Shard(0)], backend=backend)
        if variant == "whole-then-slice":
            whole = wi.generate(spec, backend=backend)
            local = torch.from_numpy(whole[int(rows[0]):int(rows[-1]) + 1].copy())
            del whole
            return DTensor.from_local(local, mesh, [Shard(0)], run_check=False)
        tensor = torch.distributed.tensor.empty(*spec["shape"], device_mesh=mesh, placements=[Shard(0)])
        return torch.nn.init.normal_(tensor)

    run({**spec, "shape": [4 * world, 64]})  # first DTensor / RNG-tracker calls are slow: not measured
    counted = _count_elements(backend)
    dist.barrier()
    rss_before = _rss_bytes()
    began = time.perf_counter()
    result = run(spec)
    if variant == "torch-normal_":
        counted[0] = result.to_local().numel()  # torch's own RNG: every local element is drawn once
    seconds = time.perf_counter() - began
    peak = _peak_rss_bytes() - rss_before
    shard_bytes = result.to_local().numel() * 4
    assert np.isfinite(result.to_local().numpy()).all()
    dist.barrier()
    queue.put((variant, rank, counted[0], seconds, peak, shard_bytes))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_variant(variant: str, world: int, size: int, backend: str) -> list:
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(_worker, args=(world, _free_port(), variant, size, backend, queue), nprocs=world,
                       join=True, start_method="spawn")
    return sorted(queue.get() for _ in range(world))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--world", type=int, default=4)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    numel = args.size * args.size
    print(f"[{args.size}, {args.size}] float32 ({numel * 4 / MIB:.0f} MiB) at world {args.world}, "
          f"Shard(0), gloo, backend {args.backend}, {os.cpu_count()} CPUs")
    print(f"{'variant':18} {'rank':>4} {'elements':>12} {'x numel/world':>13} {'seconds':>8} "
          f"{'peak RSS MiB':>12} {'x shard':>7}")
    summary = {}
    for variant in ("materialize", "whole-then-slice", "torch-normal_"):
        rows = run_variant(variant, args.world, args.size, args.backend)
        for _, rank, elements, seconds, peak, shard_bytes in rows:
            print(f"{variant:18} {rank:>4} {elements:>12} {elements / (numel / args.world):>13.2f} {seconds:>8.3f} "
                  f"{peak / MIB:>12.1f} {peak / shard_bytes:>7.2f}")
        summary[variant] = (max(r[3] for r in rows), max(r[4] / r[5] for r in rows),
                            max(r[2] for r in rows) / (numel / args.world))
    a, b, c = summary["materialize"], summary["whole-then-slice"], summary["torch-normal_"]
    print(f"slowest rank: materialize {a[0]:.3f} s = {a[0] / b[0]:.2f} x whole-then-slice ({b[0]:.3f} s), "
          f"{a[0] / c[0]:.2f} x torch normal_ ({c[0]:.3f} s)")
    print(f"materialize: elements {a[2]:.2f} x numel/world (target 1.00), peak RSS {a[1]:.2f} x shard "
          f"(target <= 1.2), time {a[0] / b[0]:.2f} x (b) (target <= 0.35)")


if __name__ == "__main__":
    main()
