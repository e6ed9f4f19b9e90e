"""One short function per scheme: spec -> plan, with the formula in the docstring.

A plan says how element ``i`` of the row-major tensor is produced:

- :class:`RandomPlan`: ``kernel(word i)``, optionally zeroed by a :class:`SparseMask`;
- :class:`ConstantPlan`: one value everywhere (zeros, ones, constant);
- :class:`IndexPlan`: a deterministic function of the flat index (eye, dirac);
- :class:`DensePlan`: float64 values built whole (orthogonal), sliced on demand.

Scalars (bounds, stds, Phi of truncation points) are computed here once, in
plain Python binary64, and handed to every backend unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from ..spec import SCHEMES, TensorSpec, truncation_std_units
from .fans import calculate_gain, fan_for_mode
from .philox import SUBSTREAM_SPARSE_MASK, philox_words
from .transforms import (Kernel, complex_disc_kernel, complex_normal_kernel, complex_truncated_normal_kernel,
                         normal_kernel, truncated_normal_kernel, uniform_kernel)

#: Keras: std of a unit normal truncated to [-2, 2] (scipy.stats.truncnorm.std(-2, 2)).
KERAS_TRUNCATION_STD = 0.87962566103423978

#: JAX: std of a complex standard normal (E|z|^2 = 1) with its modulus cut at 2.
COMPLEX_TRUNCATION_STD = 0.95311164380491208

#: draw(kernel, count) -> float64 (complex128 for a complex kernel) values of words [0, count).
Draw = Callable[[Kernel, int], np.ndarray]


@dataclass(frozen=True)
class SparseMask:
    """Zeroes, in every column j of a (rows, cols) matrix, the ``zeros_per_column`` rows whose
    mask keys (substream 1, word = flat index) are smallest, ties broken by lower row."""

    key: tuple[int, int]
    rows: int
    cols: int
    zeros_per_column: int

    @cached_property
    def _thresholds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per column: the zeros_per_column-th smallest key (uint64) and its row (int64).
        Needs every key of the matrix, so it is computed once, on first use."""
        keys = philox_words(self.key, 0, self.rows * self.cols, SUBSTREAM_SPARSE_MASK).reshape(self.rows, self.cols)
        return self._column_thresholds(keys)

    def _column_thresholds(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Thresholds of the columns of ``keys`` (all rows): a stable sort makes the lower row win ties."""
        threshold_row = np.argsort(keys, axis=0, kind="stable")[self.zeros_per_column - 1]
        return keys[threshold_row, np.arange(keys.shape[1])], threshold_row.astype(np.int64)

    def column_keys(self, col_start: int, col_stop: int) -> np.ndarray:
        """Mask keys of every row for columns [col_start, col_stop): shape (rows, col_stop - col_start)."""
        width = col_stop - col_start
        if width == self.cols:
            return philox_words(self.key, 0, self.rows * self.cols, SUBSTREAM_SPARSE_MASK).reshape(self.rows, width)
        keys = np.empty((self.rows, width), dtype=np.uint64)
        for row in range(self.rows):
            keys[row] = philox_words(self.key, row * self.cols + col_start, width, SUBSTREAM_SPARSE_MASK)
        return keys

    def zeros_in_region(self, row_start: int, row_stop: int, col_start: int, col_stop: int) -> np.ndarray:
        """Boolean (row_stop - row_start, col_stop - col_start): which elements of the block are zeroed.
        Thresholds come from rows x region-columns keys only; equal to ``zeros_in`` on the same elements."""
        keys = self.column_keys(col_start, col_stop)
        threshold_key, threshold_row = self._column_thresholds(keys)
        block = keys[row_start:row_stop]
        rows = np.arange(row_start, row_stop, dtype=np.int64)[:, None]
        return (block < threshold_key) | ((block == threshold_key) & (rows <= threshold_row))

    def zeros_in(self, start: int, stop: int) -> np.ndarray:
        threshold_key, threshold_row = self._thresholds
        index = np.arange(start, stop, dtype=np.int64)
        rows, cols = np.divmod(index, self.cols)
        keys = philox_words(self.key, start, stop - start, SUBSTREAM_SPARSE_MASK)
        limit = threshold_key[cols]
        return (keys < limit) | ((keys == limit) & (rows <= threshold_row[cols]))


@dataclass(frozen=True)
class RandomPlan:
    kernel: Kernel
    mask: SparseMask | None = None


@dataclass(frozen=True)
class ComplexRandomPlan:
    """Element i = complex kernel(word i of substream 0, word i of substream 2)."""

    kernel: Kernel


@dataclass(frozen=True)
class ConstantPlan:
    value: float


@dataclass(frozen=True)
class IndexPlan:
    values_at: Callable[[np.ndarray], np.ndarray]  # int64 flat indices -> float64


@dataclass(frozen=True)
class DensePlan:
    values: np.ndarray  # float64, flat, row-major


Plan = RandomPlan | ComplexRandomPlan | ConstantPlan | IndexPlan | DensePlan


def _is_complex(spec: TensorSpec) -> bool:
    return spec.dtype in ("complex64", "complex128")


def _normal_plan(spec: TensorSpec, mean: float, std: float) -> Plan:
    """N(mean, std^2); complex: each part variance std^2 / 2 around (mean, 0)."""
    if _is_complex(spec):
        return ComplexRandomPlan(complex_normal_kernel(mean, std))
    return RandomPlan(normal_kernel(mean, std))


def _constant_plan(value: float) -> ConstantPlan:
    return ConstantPlan(float(value))


def _gain(spec: TensorSpec) -> float:
    """params.gain, else calculate_gain(params.nonlinearity, params.a), else 1."""
    p = spec.params
    if "gain" in p:
        return p["gain"]
    if "nonlinearity" in p:
        return calculate_gain(p["nonlinearity"], p.get("a"))
    return 1.0


def _fan(spec: TensorSpec, mode: str) -> float:
    fan_in, fan_out = spec.fans()
    return fan_for_mode(fan_in, fan_out, mode)


# --- constants -------------------------------------------------------------

def zeros(spec: TensorSpec, draw: Draw) -> Plan:
    """x = 0"""
    return _constant_plan(0.0)


def ones(spec: TensorSpec, draw: Draw) -> Plan:
    """x = 1"""
    return _constant_plan(1.0)


def constant(spec: TensorSpec, draw: Draw) -> Plan:
    """x = value"""
    return _constant_plan(spec.params["value"])


# --- plain distributions ---------------------------------------------------

def uniform(spec: TensorSpec, draw: Draw) -> Plan:
    """x ~ U(low, high): low + (high - low) * u, u on the 53-bit grid of [0, 1)."""
    return RandomPlan(uniform_kernel(spec.params["low"], spec.params["high"]))


def normal(spec: TensorSpec, draw: Draw) -> Plan:
    """x ~ N(mean, std^2) by inversion: mean + std * Phi^-1(u). Complex: real and imaginary parts each
    N(0, std^2 / 2), the real part shifted by mean (jax.random.normal)."""
    return _normal_plan(spec, spec.params["mean"], spec.params["std"])


def truncated_normal(spec: TensorSpec, draw: Draw) -> Plan:
    """x ~ N(mean, std^2) on [lower, upper]: Phi^-1(Phi(a) + u (Phi(b) - Phi(a))), a, b in std units.

    bounds=absolute (torch.nn.init.trunc_normal_): lower/upper are values;
    bounds=std (JAX, Keras): lower/upper count stds from the mean.
    """
    p = spec.params
    alpha, beta = truncation_std_units(p)
    if p["bounds"] == "absolute":
        return RandomPlan(truncated_normal_kernel(p["mean"], p["std"], alpha, beta, p["lower"], p["upper"]))
    return RandomPlan(truncated_normal_kernel(p["mean"], p["std"], alpha, beta))


# --- PyTorch's fan-scaled schemes -------------------------------------------

def xavier_uniform(spec: TensorSpec, draw: Draw) -> Plan:
    """U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = spec.fans()
    bound = _gain(spec) * math.sqrt(6.0 / float(fan_in + fan_out))
    return RandomPlan(uniform_kernel(-bound, bound))


def xavier_normal(spec: TensorSpec, draw: Draw) -> Plan:
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)); not truncated."""
    fan_in, fan_out = spec.fans()
    return _normal_plan(spec, 0.0, _gain(spec) * math.sqrt(2.0 / float(fan_in + fan_out)))


def _kaiming_std(spec: TensorSpec) -> float:
    p = spec.params
    return calculate_gain(p["nonlinearity"], p["a"]) / math.sqrt(_fan(spec, p["mode"]))


def kaiming_uniform(spec: TensorSpec, draw: Draw) -> Plan:
    """U(-b, b), b = sqrt(3) * gain / sqrt(fan), gain = calculate_gain(nonlinearity, a)."""
    bound = math.sqrt(3.0) * _kaiming_std(spec)
    return RandomPlan(uniform_kernel(-bound, bound))


def kaiming_normal(spec: TensorSpec, draw: Draw) -> Plan:
    """N(0, std^2), std = gain / sqrt(fan); not truncated."""
    return _normal_plan(spec, 0.0, _kaiming_std(spec))


def torch_default(spec: TensorSpec, draw: Draw) -> Plan:
    """nn.Linear / nn.ConvNd weight and bias: U(-b, b), b = 1 / sqrt(fan_in) (0 when fan_in = 0).

    For the weight this is kaiming_uniform(a=sqrt(5)): sqrt(3) * sqrt(2 / 6) / sqrt(fan_in).
    """
    fan_in = spec.params["fan_in"] if "fan_in" in spec.params else spec.fans()[0]
    if fan_in == 0:
        return _constant_plan(0.0)
    bound = 1.0 / math.sqrt(float(fan_in))
    return RandomPlan(uniform_kernel(-bound, bound))


# --- Keras / JAX variance scaling --------------------------------------------

def _variance_scaling(spec: TensorSpec, scale: float, mode: str, distribution: str) -> Plan:
    n = max(1.0, _fan(spec, mode))
    if _is_complex(spec):  # JAX: a polar truncated normal, a complex normal, a uniform disc
        if distribution == "truncated_normal":
            return ComplexRandomPlan(complex_truncated_normal_kernel(
                math.sqrt(scale / n) / COMPLEX_TRUNCATION_STD, 2.0))
        if distribution in ("normal", "untruncated_normal"):
            return ComplexRandomPlan(complex_normal_kernel(0.0, math.sqrt(scale / n)))
        return ComplexRandomPlan(complex_disc_kernel(math.sqrt(scale / n)))
    if distribution == "truncated_normal":
        std = math.sqrt(scale / n) / KERAS_TRUNCATION_STD
        return RandomPlan(truncated_normal_kernel(0.0, std, -2.0, 2.0))
    if distribution in ("normal", "untruncated_normal"):
        return RandomPlan(normal_kernel(0.0, math.sqrt(scale / n)))
    limit = math.sqrt(3.0 * scale / n)
    return RandomPlan(uniform_kernel(-limit, limit))


def variance_scaling(spec: TensorSpec, draw: Draw) -> Plan:
    """n = max(1, fan); truncated_normal: std = sqrt(scale / n) / 0.87962566103423978, cut at +-2 std;
    normal: std = sqrt(scale / n); uniform: U(-l, l), l = sqrt(3 * scale / n).
    Complex (JAX): truncated_normal: modulus-truncated complex normal (cut at 2) times
    sqrt(scale / n) / 0.95311164380491208; normal: complex normal, E|z|^2 = scale / n; uniform: uniform
    on the disc of radius sqrt(2 scale / n)."""
    p = spec.params
    return _variance_scaling(spec, p["scale"], p["mode"], p["distribution"])


def lecun_uniform(spec: TensorSpec, draw: Draw) -> Plan:
    """variance_scaling(1, fan_in, uniform)"""
    return _variance_scaling(spec, 1.0, "fan_in", "uniform")


def lecun_normal(spec: TensorSpec, draw: Draw) -> Plan:
    """variance_scaling(1, fan_in, truncated_normal)"""
    return _variance_scaling(spec, 1.0, "fan_in", "truncated_normal")


def glorot_uniform(spec: TensorSpec, draw: Draw) -> Plan:
    """variance_scaling(1, fan_avg, uniform)"""
    return _variance_scaling(spec, 1.0, "fan_avg", "uniform")


def glorot_normal(spec: TensorSpec, draw: Draw) -> Plan:
    """variance_scaling(1, fan_avg, truncated_normal)"""
    return _variance_scaling(spec, 1.0, "fan_avg", "truncated_normal")


def he_uniform(spec: TensorSpec, draw: Draw) -> Plan:
    """variance_scaling(2, fan_in, uniform)"""
    return _variance_scaling(spec, 2.0, "fan_in", "uniform")


def he_normal(spec: TensorSpec, draw: Draw) -> Plan:
    """variance_scaling(2, fan_in, truncated_normal)"""
    return _variance_scaling(spec, 2.0, "fan_in", "truncated_normal")


# --- structured schemes --------------------------------------------------------

def _orthogonal_matrix(draw: Draw, rows: int, cols: int, complex_values: bool = False) -> np.ndarray:
    """Q of a (rows, cols) N(0, 1) matrix (row-major words 0..rows*cols), transposed first when
    rows < cols, columns signed by sign(diag(R)) so the result is unique; shape (rows, cols).
    Complex: the matrix is complex normal (parts N(0, 1/2)), sign(d) = d / |d|, Q unitary."""
    kernel = complex_normal_kernel(0.0, 1.0) if complex_values else normal_kernel(0.0, 1.0)
    matrix = draw(kernel, rows * cols).reshape(rows, cols)
    wide = rows < cols
    if wide:
        matrix = matrix.T
    q, r = np.linalg.qr(matrix)
    diagonal = np.diag(r)
    q = q * (diagonal / np.abs(diagonal) if complex_values else np.sign(diagonal))
    return q.T if wide else q


def orthogonal(spec: TensorSpec, draw: Draw) -> Plan:
    """gain * Q. torch layout: rows = shape[0], cols = numel / rows (torch.nn.init.orthogonal_).
    JAX (column_axis = c given): the (numel / shape[c], shape[c]) matrix, its last axis moved back
    to c. keras layout without column_axis: keras.initializers.Orthogonal's (prod(shape[:-1]),
    shape[-1]), i.e. column_axis = -1 (since algorithm version 2)."""
    shape = spec.shape
    column_axis = spec.params.get("column_axis", -1 if spec.layout == "keras" else None)
    if column_axis is None:
        rows = shape[0]
        q = _orthogonal_matrix(draw, rows, spec.numel // rows, _is_complex(spec))
        return DensePlan((_gain(spec) * q).reshape(-1))
    axis = column_axis % len(shape)
    n_cols = shape[axis]
    n_rows = spec.numel // n_cols
    if n_rows < n_cols:
        q = _orthogonal_matrix(draw, n_cols, n_rows, _is_complex(spec)).T
    else:
        q = _orthogonal_matrix(draw, n_rows, n_cols, _is_complex(spec))
    rest = tuple(d for i, d in enumerate(shape) if i != axis)
    q = np.moveaxis(q.reshape(rest + (n_cols,)), -1, axis)
    return DensePlan((_gain(spec) * np.ascontiguousarray(q)).reshape(-1))


def delta_orthogonal(spec: TensorSpec, draw: Draw) -> Plan:
    """JAX delta_orthogonal: zeros except the spatial centre (k - 1) // 2, which holds gain * Q,
    Q the orthogonal (out, in) matrix (out >= in). torch layout [out, in, *k]; keras [*k, in, out]."""
    shape = spec.shape
    torch_layout = spec.layout == "torch"
    out_ch, in_ch = (shape[0], shape[1]) if torch_layout else (shape[-1], shape[-2])
    q = _gain(spec) * _orthogonal_matrix(draw, out_ch, in_ch, _is_complex(spec))
    weights = np.zeros(shape, dtype=q.dtype)
    if torch_layout:
        weights[(slice(None), slice(None)) + tuple((k - 1) // 2 for k in shape[2:])] = q
    else:
        weights[tuple((k - 1) // 2 for k in shape[:-2])] = q.T
    return DensePlan(weights.reshape(-1))


def eye(spec: TensorSpec, draw: Draw) -> Plan:
    """gain where row == column, else 0 (2-D, any aspect ratio)."""
    cols, gain = spec.shape[1], _gain(spec)

    def values_at(index: np.ndarray) -> np.ndarray:
        rows, columns = np.divmod(index, cols)
        return np.where(rows == columns, gain, 0.0)

    return IndexPlan(values_at)


def dirac(spec: TensorSpec, draw: Draw) -> Plan:
    """1 at [g*opg + d, d, k//2, ...] for each group g and d < min(opg, in), opg = out / groups;
    torch layout [out, in, *k] (keras [*k, in, out] holds the same pattern)."""
    shape, torch_layout = spec.shape, spec.layout == "torch"
    out_ch = shape[0] if torch_layout else shape[-1]
    per_group = out_ch // spec.params["groups"]
    spatial = shape[2:] if torch_layout else shape[:-2]
    centre = tuple(k // 2 for k in spatial)

    def values_at(index: np.ndarray) -> np.ndarray:
        coords = np.unravel_index(index, shape)
        if torch_layout:
            o, c, space = coords[0], coords[1], coords[2:]
        else:
            o, c, space = coords[-1], coords[-2], coords[:-2]
        hit = c == o % per_group
        for axis_coord, mid in zip(space, centre):
            hit &= axis_coord == mid
        return hit.astype(np.float64)

    return IndexPlan(values_at)


def sparse(spec: TensorSpec, draw: Draw) -> Plan:
    """N(0, std^2), then in every column the ceil(sparsity * rows) rows with the smallest mask
    keys are zeroed (torch.nn.init.sparse_ zeroes a random choice of that many rows per column)."""
    rows, cols = spec.shape
    zeros_per_column = int(math.ceil(spec.params["sparsity"] * rows))
    kernel = normal_kernel(0.0, spec.params["std"])
    if zeros_per_column == 0 or cols == 0:
        return RandomPlan(kernel)
    return RandomPlan(kernel, SparseMask(spec.key, rows, cols, zeros_per_column))


BUILDERS: dict[str, Callable[[TensorSpec, Draw], Plan]] = {
    fn.__name__: fn for fn in (
        zeros, ones, constant, uniform, normal, truncated_normal, xavier_uniform, xavier_normal,
        kaiming_uniform, kaiming_normal, lecun_uniform, lecun_normal, glorot_uniform, glorot_normal,
        he_uniform, he_normal, variance_scaling, orthogonal, sparse, eye, dirac, delta_orthogonal,
        torch_default)
}

assert set(BUILDERS) == set(SCHEMES), "every catalogued scheme needs a builder"


def build_plan(spec: TensorSpec, draw: Draw) -> Plan:
    if spec.numel == 0:
        return _constant_plan(0.0)
    return BUILDERS[spec.scheme](spec, draw)
