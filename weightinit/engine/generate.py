"""Spec -> bytes: compile a plan once, then fill any element range from it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator, Mapping

import numpy as np

from ..backends import Backend, get_backend, storage_dtype
from ..spec import DEFAULT_LIMITS, Limits, SpecError, TensorSpec
from .regions import fill_region, region_shape, resolve_region
from .schemes import ComplexRandomPlan, ConstantPlan, DensePlan, IndexPlan, Plan, RandomPlan, build_plan
from .transforms import COMPLEX_KINDS, Kernel, round_to_storage
from .validate import spec_from_dict

#: Bump on any change that alters output bytes; the golden digests pin it (history: docs/rng.md).
ALGORITHM_VERSION = 2
#: Chunk of a stream (iter_chunks): 1 MiB of float32.
DEFAULT_CHUNK_ELEMENTS = 1 << 18
#: Piece of an in-memory tensor (generate): large, so backends split it across cores in one go,
#: small enough to bound the temporaries of index and mask plans.
FILL_ELEMENTS = 1 << 22
#: Below this many elements ``auto`` (or no backend) uses the NumPy reference: the bytes are the same
#: on every backend, and a small tensor is done before a JIT backend would have loaded.
SMALL_TENSOR_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class CompiledSpec:
    """A spec bound to a backend with its plan built: fill any range, any number of times."""

    spec: TensorSpec
    plan: Plan
    backend: Backend

    def fill(self, start: int, out: np.ndarray) -> np.ndarray:
        """Write elements ``[start, start + out.size)`` (row-major, storage dtype) into ``out``."""
        self.fill_values(start, out)
        self.fill_zero_rows(start, out)
        return out

    def fill_values(self, start: int, out: np.ndarray) -> np.ndarray:
        """The plan's values of elements ``[start, start + out.size)``, before ``spec.zero_rows``."""
        stop = start + out.size
        plan, dtype = self.plan, self.spec.dtype
        if isinstance(plan, RandomPlan):
            self.backend.random_into(plan.kernel, self.spec.key, start, out, dtype)
            if plan.mask is not None:
                out[plan.mask.zeros_in(start, stop)] = 0
        elif isinstance(plan, ComplexRandomPlan):
            out[...] = round_to_storage(self.backend.complex_values(plan.kernel, self.spec.key, start, out.size),
                                        dtype)
        elif isinstance(plan, ConstantPlan):
            out.fill(round_to_storage(np.array([plan.value]), dtype)[0])
        elif isinstance(plan, IndexPlan):
            out[...] = round_to_storage(plan.values_at(np.arange(start, stop, dtype=np.int64)), dtype)
        elif isinstance(plan, DensePlan):
            out[...] = round_to_storage(plan.values[start:stop], dtype)
        else:  # pragma: no cover
            raise TypeError(f"unknown plan {plan!r}")
        return out

    def fill_zero_rows(self, start: int, out) -> None:
        """Set spec.zero_rows to 0: row r holds flat elements [r * row_size, (r + 1) * row_size)."""
        if not self.spec.zero_rows:
            return
        row_size = self.spec.numel // self.spec.shape[0]
        stop = start + out.size
        for row in self.spec.zero_rows:
            low, high = max(row * row_size, start), min((row + 1) * row_size, stop)
            if low < high:
                out[low - start:high - start] = 0

    def range(self, start: int, stop: int) -> np.ndarray:
        return self.fill(start, np.empty(stop - start, dtype=storage_dtype(self.spec.dtype)))


def as_spec(spec: TensorSpec | Mapping, limits: Limits | None = DEFAULT_LIMITS) -> TensorSpec:
    return spec if isinstance(spec, TensorSpec) else spec_from_dict(spec, limits)


def compile_spec(spec: TensorSpec | Mapping, backend: str | Backend | None = None,
                 limits: Limits | None = DEFAULT_LIMITS) -> CompiledSpec:
    spec = as_spec(spec, limits)
    if backend in (None, "auto") and spec.numel < SMALL_TENSOR_ELEMENTS:
        backend = "numpy"
    engine = get_backend(backend)

    def draw(kernel: Kernel, count: int) -> np.ndarray:
        if kernel.kind in COMPLEX_KINDS:
            return engine.complex_values(kernel, spec.key, 0, count)
        return engine.random(kernel, spec.key, 0, count, "float64")

    plan = build_plan(spec, draw)
    return CompiledSpec(spec, plan if spec.scale is None else scaled_plan(plan, spec.scale), engine)


def scaled_plan(plan: Plan, scale: float) -> Plan:
    """docs/rng.md section 5: every float64 value times ``scale`` before rounding. Random kernels
    carry it (each backend's ``random_into`` applies it, see backends/base.py); the other plans'
    float64 values are multiplied here. Sparse zeros are still set afterwards (+0)."""
    if isinstance(plan, RandomPlan):
        return replace(plan, kernel=replace(plan.kernel, scale=scale))
    if isinstance(plan, ConstantPlan):
        return ConstantPlan(plan.value * scale)
    if isinstance(plan, IndexPlan):
        values_at = plan.values_at
        return IndexPlan(lambda index: values_at(index) * scale)
    if isinstance(plan, DensePlan):
        return DensePlan(plan.values * scale)
    raise TypeError(f"unknown plan {plan!r}")  # pragma: no cover


def check_range(spec: TensorSpec, start: int | None, stop: int | None) -> tuple[int, int]:
    """Resolve an element range; None means the tensor's start/end."""
    start = 0 if start is None else start
    stop = spec.numel if stop is None else stop
    if isinstance(start, bool) or isinstance(stop, bool) or not isinstance(start, int) or not isinstance(stop, int):
        raise SpecError("range", "start and stop must be integers")
    if not 0 <= start <= stop <= spec.numel:
        raise SpecError("range", f"[{start}, {stop}) is not within [0, {spec.numel}] with start <= stop")
    return start, stop


def check_chunk(chunk_elements: int) -> int:
    if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int) or chunk_elements < 1:
        raise SpecError("chunk_elements", f"must be a positive integer, got {chunk_elements!r}")
    return chunk_elements


def iter_chunks(spec: TensorSpec | Mapping, start: int | None = None, stop: int | None = None,
                chunk_elements: int = DEFAULT_CHUNK_ELEMENTS, backend: str | Backend | None = None,
                limits: Limits | None = DEFAULT_LIMITS) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(offset, flat array)`` chunks covering ``[start, stop)``; memory stays O(chunk)."""
    compiled = compile_spec(spec, backend, limits)
    start, stop = check_range(compiled.spec, start, stop)
    step = check_chunk(chunk_elements)
    for offset in range(start, stop, step):
        yield offset, compiled.range(offset, min(offset + step, stop))


def generate_raw(spec: TensorSpec | Mapping, start: int | None = None, stop: int | None = None,
                 backend: str | Backend | None = None, chunk_elements: int = FILL_ELEMENTS,
                 limits: Limits | None = DEFAULT_LIMITS, *, index=None) -> np.ndarray:
    """The tensor (shaped), the flat range ``[start, stop)``, or the N-d region ``index`` (shaped),
    in storage dtype (bfloat16 as uint16)."""
    compiled = compile_spec(spec, backend, limits)
    step = check_chunk(chunk_elements)
    if index is not None:
        if start is not None or stop is not None:
            raise SpecError("index", "give either an index (N-d region) or start/stop (flat range), not both")
        bounds = resolve_region(index, compiled.spec.shape)
        shape = region_shape(bounds)
        out = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=storage_dtype(compiled.spec.dtype))
        return fill_region(compiled, bounds, out, step).reshape(shape)
    whole = start is None and stop is None
    start, stop = check_range(compiled.spec, start, stop)
    out = np.empty(stop - start, dtype=storage_dtype(compiled.spec.dtype))
    for offset in range(start, stop, step):
        compiled.fill(offset, out[offset - start:min(offset + step, stop) - start])
    return out.reshape(compiled.spec.shape) if whole else out


def as_user_array(raw: np.ndarray, dtype: str) -> np.ndarray:
    """View bfloat16 bits as ``ml_dtypes.bfloat16`` when that package is installed."""
    if dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            return raw
        return raw.view(ml_dtypes.bfloat16)
    return raw


def generate(spec: TensorSpec | Mapping, start: int | None = None, stop: int | None = None,
             backend: str | Backend | None = None, chunk_elements: int = FILL_ELEMENTS,
             limits: Limits | None = DEFAULT_LIMITS, *, index=None) -> np.ndarray:
    """Deterministic weights for ``spec``: the whole tensor, the flat element range [start, stop),
    or the N-d region ``index`` (e.g. ``np.s_[0:512, 256:512]`` or ``[(0, 512), (256, 512)]``),
    equal to ``generate(spec)[index]`` bit for bit at O(region) cost (dense schemes excepted).

    bfloat16 comes back as ``ml_dtypes.bfloat16`` if installed, else as its uint16 bits.
    """
    spec = as_spec(spec, limits)
    return as_user_array(generate_raw(spec, start, stop, backend, chunk_elements, limits, index=index), spec.dtype)


def to_le_bytes(array: np.ndarray) -> bytes:
    """Raw little-endian, row-major bytes."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()
