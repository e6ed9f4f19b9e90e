"""Command-line startup: ``weightinit generate`` of an 8x8 tensor beside ``python -c "import numpy"``.

Run: python benchmarks/cli_startup.py [--runs N]

Each command runs N times as a fresh process (wall clock, median and min); the ratios to the
numpy import are printed. Rows:

- ``import numpy``: the floor every numpy program pays;
- ``import weightinit``: the package (lazy: loads nothing until used);
- ``generate 8x8``: the console script's path (``python -m weightinit``), backend ``auto`` (NumPy under
  a million elements: no JIT backend, no grpc);
- ``generate 8x8 --backend numba``: the same bytes through the JIT backend (what ``auto`` cost before);
- ``generate 1M``: just over the threshold (``auto`` loads the JIT backend).

Target (issue 12): ``generate 8x8`` under 0.4 s where importing numpy takes ~0.1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wall(command: list[str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        times.append(time.perf_counter() - began)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "w.npy")
        gen = [py, "-m", "weightinit", "generate", "--scheme", "kaiming_normal", "--seed", "7", "--name", "fc1.weight"]
        rows = [
            ("python -c 'import numpy'", [py, "-c", "import numpy"]),
            ("python -c 'import weightinit'", [py, "-c", "import weightinit"]),
            ("weightinit generate 8x8 (auto)", [*gen, "--shape", "8", "8", "-o", out]),
            ("weightinit generate 8x8 --backend numba", [*gen, "--shape", "8", "8", "--backend", "numba", "-o", out]),
            ("weightinit generate 1024x1024 (auto)", [*gen, "--shape", "1024", "1024", "-o", out]),
        ]
        wall(rows[3][1], 1)  # fill the JIT cache once, so the numba rows measure loading, not compiling
        results = [(label, *wall(command, args.runs)) for label, command in rows]
    floor = results[0][1]
    print(f"{'command':<44} {'median s':>9} {'min s':>7} {'x numpy':>8}   "
          f"({args.runs} runs each, Python {sys.version.split()[0]})")
    for label, median, best in results:
        print(f"{label:<44} {median:9.3f} {best:7.3f} {median / floor:8.2f}")


if __name__ == "__main__":
    main()
