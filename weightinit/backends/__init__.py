"""Backends: where the words become floats. All give the same bytes; they differ in speed.

- ``numpy``: the reference, always available.
- ``numba``: the same transforms JIT-compiled for the CPU (``pip install numba``; a default dependency).
- ``cupy``: the same transforms as CUDA kernels on an NVIDIA GPU (``pip install '.[gpu]'`` from the checkout).

``auto`` picks cupy when it imports and a device is usable, else numba, else numpy.
"""

from __future__ import annotations

import logging
import threading

from .base import Backend, BackendUnavailable, storage_dtype
from .numpy_backend import NumpyBackend

log = logging.getLogger(__name__)

BACKEND_NAMES = ("numpy", "numba", "cupy")
_instances: dict[str, Backend] = {}
_lock = threading.Lock()


def _create(name: str) -> Backend:
    if name == "numpy":
        return NumpyBackend()
    if name == "numba":
        try:
            from .numba_backend import NumbaBackend
        except ImportError as error:
            raise BackendUnavailable(f"numba backend needs numba (pip install numba): {error}") from None
        return NumbaBackend()
    if name == "cupy":
        try:
            from .cupy_backend import CupyBackend
        except ImportError as error:
            raise BackendUnavailable(f"cupy backend needs cupy (pip install '.[gpu]' from the checkout): "
                                     f"{error}") from None
        return CupyBackend()
    raise BackendUnavailable(f"unknown backend {name!r}; choose auto, {', '.join(BACKEND_NAMES)}")


def get_backend(name: str | Backend | None = "auto") -> Backend:
    """The backend called ``name`` (one instance per process); ``auto``/None picks the fastest usable."""
    if isinstance(name, Backend):
        return name
    name = name or "auto"
    with _lock:
        if name in _instances:
            return _instances[name]
        if name == "auto":
            backend = None
            for candidate in ("cupy", "numba"):
                try:
                    backend = _create(candidate)
                    break
                except BackendUnavailable as why:
                    log.info("backend auto: %s not used: %s", candidate, why)
            backend = backend or NumpyBackend()
            log.info("backend auto: using %s (%s)", backend.name, backend.device)
        else:
            backend = _create(name)
        _instances[name] = backend
        return backend


def available_backends() -> dict[str, str]:
    """name -> 'ok: <device>' or the reason it is unavailable."""
    result = {}
    for name in BACKEND_NAMES:
        try:
            result[name] = f"ok: {get_backend(name).device}"
        except BackendUnavailable as why:
            result[name] = str(why)
    return result


__all__ = ["Backend", "BackendUnavailable", "BACKEND_NAMES", "available_backends", "get_backend", "storage_dtype"]
