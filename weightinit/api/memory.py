"""Keep the allocator from handing message buffers back to the kernel after every message.

A stream allocates and frees a ~1 MiB buffer per message (gRPC's copy of each received
message, each encoded chunk). glibc serves such sizes with mmap/munmap, or from heaps it
trims as soon as their free top grows, so every message costs ~100 page faults of fresh,
zeroed memory: on loopback that was a third of the client's CPU time and 40 % of a raw
gRPC stream's (``benchmarks/receive_path.py`` prints the faults per MiB). Serving
allocations under 4 MiB from the heap and keeping up to 32 MiB of freed heap resident
removes the faults; arrays of 4 MiB and more are still mmapped and returned on free.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Largest allocation served from the heap: a chunk message (at most 4 MiB, gRPC's default limit).
MMAP_THRESHOLD = 4 << 20
#: Freed heap kept resident at most.
TRIM_THRESHOLD = 32 << 20
#: Set to 0 to leave the allocator as it is.
ENV = "WEIGHTINIT_MALLOC_TUNING"

_lock = threading.Lock()
_state: list[bool] = []


def keep_message_buffers() -> bool:
    """Tune glibc's malloc for streaming, once per process; True when it is tuned.

    A no-op (False) off glibc or with ``WEIGHTINIT_MALLOC_TUNING=0``. It changes two
    process-wide thresholds (``mallopt(M_MMAP_THRESHOLD, 4 MiB)``, ``mallopt(M_TRIM_THRESHOLD,
    32 MiB)``), which also turns off glibc's own adjustment of them.
    """
    with _lock:
        if not _state:
            _state.append(_tune())
        return _state[0]


def _tune() -> bool:
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc always has it
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
