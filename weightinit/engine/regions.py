"""N-d regions of a tensor: ``generate(spec, index=...)`` fills only the region, in O(region).

A region is one ``[start, stop)`` per dimension (fewer than the rank: the trailing dimensions are
taken whole). In row-major order it is a set of equally long *runs* of consecutive flat indices:
the trailing dimensions the region covers whole are merged into the last partial one, so a block
of whole rows is a single run. Every plan is filled run by run, straight into the output:

- random plans: each run is a word range of the stream, so the backend fills it in place;
- constant plans: a fill; index plans (eye, dirac): the values at the runs' flat indices;
- sparse masks: thresholds for the region's columns only (``SparseMask.column_thresholds``:
  rows x region-columns keys, the same tie rule as the whole matrix);
- dense plans (orthogonal, delta_orthogonal): the whole tensor exists already (bounded by
  ``Limits.max_dense_elements``), so the region is a slice of it.
"""

from __future__ import annotations

import math
import operator
from typing import Iterator, Sequence

import numpy as np

from ..spec import SpecError
from .schemes import ComplexRandomPlan, ConstantPlan, DensePlan, IndexPlan, RandomPlan
from .transforms import round_to_storage

Bounds = tuple[tuple[int, int], ...]

#: Runs shorter than this are read from the bounding word span and gathered, when that span is
#: at most SPAN_WASTE times what the runs hold: one backend call instead of many tiny ones.
SHORT_RUN = 4096
SPAN_WASTE = 4


def _as_int(value, field: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise SpecError(field, f"must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise SpecError(field, f"must be an integer, got {value!r}") from None


def _dimension_bounds(entry, size: int, field: str) -> tuple[int, int]:
    """A slice resolves like NumPy's basic indexing (negative from the end, clamped, empty when
    stop <= start); a (start, stop) pair must lie within [-size, size] with start <= stop."""
    if isinstance(entry, slice):
        if entry.step is not None and _as_int(entry.step, field) != 1:
            raise SpecError(field, f"step must be 1, got {entry.step!r}")
        start = None if entry.start is None else _as_int(entry.start, field)
        stop = None if entry.stop is None else _as_int(entry.stop, field)
        start, stop, _ = slice(start, stop).indices(size)
        return start, max(start, stop)
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        start, stop = (_as_int(value, field) for value in entry)
        resolved = [value + size if value < 0 else value for value in (start, stop)]
        if not 0 <= resolved[0] <= resolved[1] <= size:
            raise SpecError(field, f"[{start}, {stop}) is not within a dimension of size {size} "
                                   f"with start <= stop")
        return resolved[0], resolved[1]
    raise SpecError(field, f"must be a slice with step 1 or a (start, stop) pair, got {entry!r}")


def resolve_region(index, shape: Sequence[int]) -> Bounds:
    """``index`` (a slice, or a sequence of slices / (start, stop) pairs, one per leading
    dimension) -> a non-negative ``(start, stop)`` per dimension of ``shape``."""
    if isinstance(index, slice):
        entries = [index]
    elif isinstance(index, (tuple, list)):
        entries = list(index)
    else:
        raise SpecError("index", f"must be a slice or a sequence of slices / (start, stop) pairs, got {index!r}")
    if len(entries) > len(shape):
        raise SpecError("index", f"has {len(entries)} entries for a tensor of rank {len(shape)}")
    bounds = [_dimension_bounds(entry, size, f"index[{d}]") for d, (entry, size) in enumerate(zip(entries, shape))]
    bounds += [(0, size) for size in shape[len(entries):]]
    return tuple(bounds)


def region_shape(bounds: Bounds) -> tuple[int, ...]:
    return tuple(stop - start for start, stop in bounds)


def region_runs(shape: Sequence[int], bounds: Bounds) -> tuple[np.ndarray, int]:
    """Flat start of every run (int64, row-major order of the region) and the run length."""
    shape = tuple(shape)
    extents = region_shape(bounds)
    if math.prod(extents) == 0:
        return np.empty(0, dtype=np.int64), 0
    inner = len(shape)  # first dimension of the trailing block the region covers whole
    while inner > 0 and bounds[inner - 1] == (0, shape[inner - 1]):
        inner -= 1
    if inner == 0:
        return np.zeros(1, dtype=np.int64), math.prod(shape)
    last = inner - 1  # the last dimension the region cuts
    trailing = math.prod(shape[inner:])
    run_length = extents[last] * trailing
    strides = [math.prod(shape[d + 1:]) for d in range(len(shape))]
    starts = np.array([bounds[last][0] * strides[last]], dtype=np.int64)
    for d in range(last - 1, -1, -1):  # outer dimensions, innermost first
        offsets = np.arange(bounds[d][0], bounds[d][1], dtype=np.int64) * strides[d]
        starts = (offsets[:, None] + starts[None, :]).reshape(-1)
    return starts, run_length


def _run_batches(starts: np.ndarray, run_length: int, batch_elements: int) -> Iterator[tuple[int, np.ndarray]]:
    """(output offset, run starts) batches of at most batch_elements (at least one run)."""
    per_batch = max(1, batch_elements // max(run_length, 1))
    for first in range(0, starts.size, per_batch):
        yield first * run_length, starts[first:first + per_batch]


def _flat_indices(run_starts: np.ndarray, run_length: int) -> np.ndarray:
    return (run_starts[:, None] + np.arange(run_length, dtype=np.int64)[None, :]).reshape(-1)


def fill_runs(fill_range, starts: np.ndarray, run_length: int, out: np.ndarray, batch_elements: int) -> None:
    """Fill ``out`` (flat, region order) with elements at the runs, where ``fill_range(start, out)``
    writes the flat range ``[start, start + out.size)``. Long runs go straight into ``out``;
    short runs whose bounding span is dense enough come from one span read and a gather."""
    if run_length >= SHORT_RUN or starts.size == 1:
        for k, start in enumerate(starts.tolist()):
            for piece in range(0, run_length, batch_elements):
                length = min(batch_elements, run_length - piece)
                base = k * run_length + piece
                fill_range(start + piece, out[base:base + length])
        return
    for offset, batch in _run_batches(starts, run_length, batch_elements):
        count = batch.size * run_length
        first, span = int(batch[0]), int(batch[-1]) + run_length - int(batch[0])
        target = out[offset:offset + count]
        if span <= SPAN_WASTE * count:
            words = fill_range(first, np.empty(span, dtype=out.dtype))
            target[...] = words[_flat_indices(batch - first, run_length)]
        else:
            for k, start in enumerate(batch.tolist()):
                fill_range(start, target[k * run_length:(k + 1) * run_length])


def fill_region(compiled, bounds: Bounds, out: np.ndarray, batch_elements: int) -> np.ndarray:
    """Write the region ``bounds`` of ``compiled`` (a CompiledSpec) into ``out`` (flat, storage dtype),
    then zero its rows listed in ``spec.zero_rows`` (as CompiledSpec.fill does for flat ranges)."""
    _fill_plan_region(compiled, bounds, out, batch_elements)
    zero_rows = compiled.spec.zero_rows
    if zero_rows and out.size:
        (row_start, row_stop), per_row = bounds[0], out.size // (bounds[0][1] - bounds[0][0])
        for row in zero_rows:
            if row_start <= row < row_stop:
                out[(row - row_start) * per_row:(row - row_start + 1) * per_row] = 0
    return out


def _fill_plan_region(compiled, bounds: Bounds, out: np.ndarray, batch_elements: int) -> np.ndarray:
    spec, plan = compiled.spec, compiled.plan
    shape, dtype = spec.shape, spec.dtype
    if out.size == 0:
        return out
    if isinstance(plan, ConstantPlan):
        out.fill(round_to_storage(np.array([plan.value]), dtype)[0])
        return out
    if isinstance(plan, DensePlan):
        values = plan.values.reshape(shape)[tuple(slice(a, b) for a, b in bounds)]
        out[...] = round_to_storage(values, dtype).reshape(-1)
        return out
    starts, run_length = region_runs(shape, bounds)
    if isinstance(plan, IndexPlan):
        for offset, batch in _run_batches(starts, run_length, batch_elements):
            for piece in range(0, run_length, batch_elements):  # a run longer than a batch: in pieces
                length = min(batch_elements, run_length - piece)
                index = _flat_indices(batch + piece, length)  # several whole runs, or one piece of one
                out[offset + piece:offset + piece + index.size] = round_to_storage(plan.values_at(index), dtype)
        return out
    if isinstance(plan, RandomPlan):
        def fill_range(start: int, target: np.ndarray) -> np.ndarray:
            compiled.backend.random_into(plan.kernel, spec.key, start, target, dtype)
            return target

        fill_runs(fill_range, starts, run_length, out, batch_elements)
        if plan.mask is not None:
            (row_start, row_stop), (col_start, col_stop) = bounds
            zeros = plan.mask.zeros_in_region(row_start, row_stop, col_start, col_stop)
            out[zeros.reshape(-1)] = 0
        return out
    if isinstance(plan, ComplexRandomPlan):
        fill_runs(compiled.fill_values, starts, run_length, out, batch_elements)
        return out
    raise TypeError(f"unknown plan {plan!r}")  # pragma: no cover


def split_positions(extents: Sequence[int], start: int, stop: int) -> list[Bounds]:
    """Positions [start, stop) of an array of shape ``extents`` (row-major) as at most
    2 * rank - 1 boxes, in order: a partial leading slab, whole slabs, a partial trailing slab."""
    if start >= stop:
        return []
    if not extents:
        return [()]
    inner = math.prod(extents[1:])
    first, first_rest = divmod(start, inner)
    last, last_rest = divmod(stop, inner)
    whole_inner = tuple((0, size) for size in extents[1:])
    if first == last:
        return [((first, first + 1),) + box for box in split_positions(extents[1:], first_rest, last_rest)]
    boxes = []
    if first_rest:
        boxes += [((first, first + 1),) + box for box in split_positions(extents[1:], first_rest, inner)]
        first += 1
    if last > first:
        boxes.append(((first, last),) + whole_inner)
    if last_rest:
        boxes += [((last, last + 1),) + box for box in split_positions(extents[1:], 0, last_rest)]
    return boxes


def fill_region_positions(compiled, bounds: Bounds, start: int, out: np.ndarray, batch_elements: int) -> np.ndarray:
    """Write positions ``[start, start + out.size)`` of the region (its own row-major order) into
    ``out``: what a stream of the region sends, chunk by chunk."""
    position = 0
    for box in split_positions(region_shape(bounds), start, start + out.size):
        absolute = tuple((lo + a, lo + b) for (lo, _), (a, b) in zip(bounds, box))
        count = math.prod(b - a for a, b in box)
        fill_region(compiled, absolute, out[position:position + count], batch_elements)
        position += count
    return out
