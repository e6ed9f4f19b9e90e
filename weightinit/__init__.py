"""weightinit: deterministic neural-network weight initialization.

The same spec gives the same bytes on every backend, machine, chunk size and
element range::

    import weightinit as wi
    w = wi.generate({"scheme": "kaiming_normal", "shape": [512, 256], "seed": 7, "name": "fc1.weight"})

Errors: every call raises from one family, :mod:`weightinit.errors` (base :class:`WeightinitError`).

The names below load on first use (PEP 562), so ``import weightinit`` and the command line start fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("BackendUnavailable", "DeadlineExceededError", "IntegrityError", "InvalidRequestError",
                     "LimitError", "ServiceError", "SpecError", "UnavailableError", "WeightinitError"), ".errors"),
    **dict.fromkeys(("available_backends", "get_backend", "storage_dtype"), ".backends"),
    **dict.fromkeys(("ALGORITHM_VERSION", "DEFAULT_CHUNK_ELEMENTS", "CompiledSpec", "as_user_array", "compile_spec",
                     "generate", "generate_raw", "iter_chunks", "to_le_bytes"), ".engine.generate"),
    "spec_from_dict": ".engine.validate",
    **dict.fromkeys(("save_safetensors", "verify_safetensors"), ".provenance"),
    **dict.fromkeys(("DEFAULT_LIMITS", "DTYPES", "LAYOUTS", "SCHEMES", "Limits", "ParamInfo", "SchemeInfo",
                     "TensorSpec"), ".spec"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'weightinit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
