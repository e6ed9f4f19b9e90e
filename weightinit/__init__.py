"""weightinit: deterministic neural-network weight initialization.

The same spec gives the same bytes on every backend, machine, chunk size and
element range::

    import weightinit as wi
    w = wi.generate({"scheme": "kaiming_normal", "shape": [512, 256], "seed": 7, "name": "fc1.weight"})
"""

from .backends import BackendUnavailable, available_backends, get_backend, storage_dtype
from .engine.generate import (ALGORITHM_VERSION, DEFAULT_CHUNK_ELEMENTS, CompiledSpec, as_user_array,
                              compile_spec, generate, generate_raw, iter_chunks, to_le_bytes)
from .engine.schemes import BUILDERS as _BUILDERS
from .provenance import save_safetensors, verify_safetensors
from .spec import (DEFAULT_LIMITS, DTYPES, LAYOUTS, SCHEMES, LimitError, Limits, ParamInfo, SchemeInfo,
                   SpecError, TensorSpec, spec_from_dict)

assert set(_BUILDERS) == set(SCHEMES), "every catalogued scheme needs a builder"

__version__ = "0.1.0"

__all__ = [
    "ALGORITHM_VERSION", "BackendUnavailable", "CompiledSpec", "DEFAULT_CHUNK_ELEMENTS", "DEFAULT_LIMITS", "DTYPES",
    "LAYOUTS", "LimitError", "Limits", "ParamInfo", "SCHEMES", "SchemeInfo", "SpecError", "TensorSpec",
    "as_user_array", "available_backends", "compile_spec", "generate", "generate_raw", "get_backend",
    "iter_chunks", "save_safetensors", "spec_from_dict", "storage_dtype", "to_le_bytes", "verify_safetensors",
]
