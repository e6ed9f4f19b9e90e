"""Memory behaviour of streams: keep message buffers from going back to the kernel after every
message, and fault fresh destination arrays in off the receive thread.

A stream allocates and frees a ~1 MiB buffer per message (gRPC's copy of each received
message, each encoded chunk). glibc serves such sizes with mmap/munmap, or from heaps it
trims as soon as their free top grows, so every message costs ~100 page faults of fresh,
zeroed memory: on loopback about a quarter of the CPU time of the client and of a raw
gRPC stream alike (``benchmarks/receive_path.py`` prints the faults per MiB). Serving
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


# -- destination arrays ---------------------------------------------------------

_MADV_POPULATE_WRITE = 23  # Linux 5.14+
_PAGE = 4096
_madvise = None


def _madvise_function():
    global _madvise
    if _madvise is None:
        try:
            function = ctypes.CDLL(None, use_errno=True).madvise
            function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
            function.restype = ctypes.c_int
            _madvise = function
        except (OSError, AttributeError):  # pragma: no cover - not a POSIX libc
            _madvise = False
    return _madvise


#: Arrays smaller than this are not worth a thread.
PREFAULT_MIN_BYTES = 16 << 20


def prefault(array) -> threading.Thread | None:
    """Fault a fresh array's pages in on a helper thread (``madvise(MADV_POPULATE_WRITE)``:
    page tables only, contents untouched, so it may race with writes into the array).

    The kernel zeroes every new page of a fresh allocation on first touch (~0.1-0.2 s/GB
    here); done while the first chunks are still in flight, the receive thread's copies
    find the pages ready. Returns the thread to join, or None where it does not apply
    (not Linux 5.14+, small arrays). The thread holds the array until it is done.
    """
    madvise = _madvise_function() if platform.system() == "Linux" else None
    if not madvise or array.nbytes < PREFAULT_MIN_BYTES:
        return None
    begin = -(-array.ctypes.data // _PAGE) * _PAGE
    end = (array.ctypes.data + array.nbytes) // _PAGE * _PAGE

    def populate(held=array) -> None:
        madvise(begin, end - begin, _MADV_POPULATE_WRITE)  # EINVAL on older kernels: nothing to do

    thread = threading.Thread(target=populate, name="weightinit-prefault", daemon=True)
    thread.start()
    return thread
