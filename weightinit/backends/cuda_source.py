"""The CUDA source of the GPU kernels, and the names that tie it to the engine.

Kept apart from ``cupy_backend`` so that it imports without CuPy: the host-compiled
tests and ``scripts/gpu-check`` use it too.
"""

from __future__ import annotations

from pathlib import Path

from ..engine.transforms import NORMAL, TRUNCATED_NORMAL, UNIFORM

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
HEADER = KERNEL_DIR / "weightinit_kernels.cuh"
KERNELS = KERNEL_DIR / "weightinit_kernels.cu"
HOST_DRIVER = KERNEL_DIR / "host_driver.cpp"

#: transforms.Kernel.kind -> WI_KIND_* of the header.
KIND_CODES = {UNIFORM: 0, NORMAL: 1, TRUNCATED_NORMAL: 2}
#: storage dtype name -> WI_DTYPE_* of the header.
DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
#: ndtri evaluation variants (WI_NDTRI_*): same bits, different speed on a GPU.
NDTRI_VARIANTS = {"branchy": 0, "select": 1}
DEFAULT_NDTRI = "select"
#: float64 -> float32 / float16 conversion variants (WI_CVT_*): same bits, different speed on a GPU.
CVT_VARIANTS = {"integer": 0, "hardware": 1}
DEFAULT_CVT = "integer"
#: Kernel arguments p0..p6: every kind's parameters, zero-padded.
N_PARAMS = 7

#: Options for NVRTC. CuPy appends -ftz=true itself; the kernels do no float32
#: arithmetic, so it changes nothing. --fmad=false is belt and braces: every
#: float64 operation is already an explicit __d*_rn intrinsic.
NVRTC_OPTIONS = ("--fmad=false", "-std=c++17")


def kernel_name(kind: str, dtype: str) -> str:
    """extern "C" name of the kernel for ``kind`` writing ``dtype``, e.g. ``wi_normal_float32``."""
    if kind not in KIND_CODES:
        raise ValueError(f"unknown kernel kind {kind!r}")
    if dtype not in DTYPE_CODES:
        raise ValueError(f"unknown dtype {dtype!r}")
    return f"wi_{kind}_{dtype}"


KERNEL_NAMES = tuple(kernel_name(kind, dtype) for kind in KIND_CODES for dtype in DTYPE_CODES)


def cuda_source(ndtri: str = DEFAULT_NDTRI, cvt: str = DEFAULT_CVT) -> str:
    """The .cu file with the header inlined (so NVRTC needs no include path) and the variants fixed."""
    if ndtri not in NDTRI_VARIANTS:
        raise ValueError(f"unknown ndtri variant {ndtri!r}; choose {', '.join(NDTRI_VARIANTS)}")
    if cvt not in CVT_VARIANTS:
        raise ValueError(f"unknown conversion variant {cvt!r}; choose {', '.join(CVT_VARIANTS)}")
    header = HEADER.read_text(encoding="utf-8")
    body = KERNELS.read_text(encoding="utf-8")
    include = '#include "weightinit_kernels.cuh"'
    if include not in body:  # pragma: no cover - guards an edit of the .cu file
        raise RuntimeError(f"{KERNELS.name} no longer includes {HEADER.name}")
    prelude = f"#define WI_NDTRI {NDTRI_VARIANTS[ndtri]}\n#define WI_CVT {CVT_VARIANTS[cvt]}\n"
    return prelude + body.replace(include, header, 1)


def padded_params(params) -> tuple[float, ...]:
    """A kernel's parameters as the N_PARAMS float64 kernel arguments."""
    values = tuple(float(p) for p in params)
    if len(values) > N_PARAMS:
        raise ValueError(f"a kernel takes at most {N_PARAMS} parameters, got {len(values)}")
    return values + (0.0,) * (N_PARAMS - len(values))
