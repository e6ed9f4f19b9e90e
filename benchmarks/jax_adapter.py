#!/usr/bin/env python3
"""weightinit.jax beside jax.nn.initializers, in one run on one machine (CPU).

    python benchmarks/jax_adapter.py [--size 2048] [--repeat 3]

For each case it prints values/s of JAX's own initializer (jitted, block_until_ready) and of the
weightinit.jax initializer of the same name (the engine's default backend, host to device copy
included), and weightinit's ratio to JAX. Complex cases use complex64.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import weightinit.jax as wj  # noqa: E402
from engine import best_seconds  # noqa: E402  (benchmarks/engine.py, beside this script)


CASES = [
    ("he_normal f32", "he_normal", (), jnp.float32),
    ("glorot_uniform f32", "glorot_uniform", (), jnp.float32),
    ("normal(0.02) f32", "normal", (0.02,), jnp.float32),
    ("variance_scaling normal c64", "variance_scaling", (1.0, "fan_in", "normal"), jnp.complex64),
    ("variance_scaling uniform c64", "variance_scaling", (1.0, "fan_in", "uniform"), jnp.complex64),
    ("variance_scaling trunc c64", "variance_scaling", (1.0, "fan_in", "truncated_normal"), jnp.complex64),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="square matrix side")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shape = (args.size, args.size)
    numel = args.size * args.size
    key = jax.random.key(0)
    print(f"# jax {jax.__version__} on {jax.devices()[0].platform}; shape {shape}")
    print(f"{'case':32s} {'impl':22s} {'M values/s':>11s} {'vs jax':>8s}")
    for label, name, builder_args, dtype in CASES:
        theirs = jax.jit(lambda k, f=getattr(jax.nn.initializers, name)(*builder_args): f(k, shape, dtype))
        ours = getattr(wj, name)(*builder_args)
        theirs(key).block_until_ready()
        ours(key, shape, dtype).block_until_ready()
        rates = {
            "jax.nn.initializers": numel / best_seconds(lambda: theirs(key).block_until_ready(), args.repeat),
            "weightinit.jax": numel / best_seconds(lambda: ours(key, shape, dtype).block_until_ready(), args.repeat),
        }
        for impl, rate in rates.items():
            print(f"{label:32s} {impl:22s} {rate / 1e6:11.1f} {rate / rates['jax.nn.initializers']:7.2f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
