"""N-d regions: ``generate(spec, index=...)`` equals ``generate(spec)[index]`` bit for bit, for every
scheme family and dtype, on every backend, at O(region) memory; bad regions name the dimension."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine_support as support
import weightinit as wi
from weightinit.engine import regions
from weightinit.engine.generate import FILL_ELEMENTS
from weightinit.engine.schemes import SparseMask
from weightinit.spec import COMPLEX_DTYPES, COMPLEX_SCHEMES, DTYPES

PROPERTY = settings(derandomize=True, max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BACKENDS = support.backend_params()  # numpy, numba, cupy (skipped without a GPU)

#: One entry per family: plain random, fan-scaled random, truncated, constant, index plans, sparse
#: mask, dense (QR) plans.
FAMILIES = ["uniform", "normal", "truncated_normal", "kaiming_uniform", "he_normal", "torch_default",
            "constant", "zeros", "eye", "dirac", "sparse", "orthogonal", "delta_orthogonal"]

odd_size = st.integers(0, 6).map(lambda k: 2 * k + 1)


@st.composite
def specs(draw, scheme):
    """A valid spec of ``scheme``: ranks 1-5, odd sizes, every dtype."""
    dtypes = DTYPES if scheme in COMPLEX_SCHEMES else [d for d in DTYPES if d not in COMPLEX_DTYPES]
    spec = {"scheme": scheme, "dtype": draw(st.sampled_from(dtypes)), "seed": draw(st.integers(0, 2 ** 64 - 1)),
            "name": draw(st.sampled_from(["", "fc.weight", "layers.3.attn.qkv.weight"]))}
    if scheme in ("dirac", "delta_orthogonal"):
        rank = draw(st.integers(3, 5))
        spatial = draw(st.lists(odd_size.filter(lambda k: k <= 5), min_size=rank - 2, max_size=rank - 2))
        in_ch = draw(st.sampled_from([1, 3, 5]))
        out_ch = draw(st.sampled_from([c for c in (1, 3, 5, 7) if scheme == "dirac" or c >= in_ch]))
        spec["shape"] = [out_ch, in_ch, *spatial]
    elif scheme in ("eye", "sparse"):
        spec["shape"] = [draw(st.integers(1, 41)), draw(st.integers(1, 41))]
        if scheme == "sparse":
            spec["params"] = {"sparsity": draw(st.floats(0.01, 1))}
    elif scheme == "orthogonal":
        spec["shape"] = draw(st.lists(odd_size, min_size=2, max_size=3))
    else:
        low_rank = 1 if scheme in ("uniform", "normal", "truncated_normal", "constant", "zeros") else 2
        rank = draw(st.integers(low_rank, 5))
        shape = draw(st.lists(odd_size, min_size=rank, max_size=rank))
        while math.prod(shape) > 5000:
            shape[shape.index(max(shape))] -= 2
        spec["shape"] = shape
        if scheme == "constant":
            spec["params"] = {"value": draw(st.floats(-4, 4))}
    return spec


@st.composite
def regions_of(draw, shape):
    """(index as the user writes it, the same as a tuple of slices for NumPy)."""
    entries, numpy_index = [], []
    for size in shape[:draw(st.integers(1, len(shape)))]:
        start = draw(st.integers(0, size))
        stop = draw(st.integers(start, size))
        form = draw(st.sampled_from(["slice", "pair", "negative", "open"]))
        if form == "slice":
            entry = slice(start, stop)
        elif form == "pair":
            entry = (start, stop)
        elif form == "negative":
            entry = slice(start - size, stop - size if stop < size else None)
        else:
            entry = slice(None, stop) if draw(st.booleans()) else slice(start, None)
        entries.append(entry)
        numpy_index.append(entry if isinstance(entry, slice) else slice(*entry))
    index = entries[0] if len(entries) == 1 and isinstance(entries[0], slice) and draw(st.booleans()) else tuple(entries)
    return index, tuple(numpy_index)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", FAMILIES)
def test_region_equals_the_slice_of_the_whole(scheme, backend):
    @settings(PROPERTY, max_examples=12)
    @given(specs(scheme), st.data(), st.sampled_from([FILL_ELEMENTS, 5, 64]),
           st.booleans())
    def check(spec, data, chunk_elements, long_runs):
        whole = wi.generate_raw(spec, backend="numpy")
        index, numpy_index = data.draw(regions_of(spec["shape"]))
        saved = regions.SHORT_RUN
        regions.SHORT_RUN = 0 if long_runs else saved  # 0: every run filled in place, none gathered
        try:
            got = wi.generate_raw(spec, backend=backend, index=index, chunk_elements=chunk_elements)
        finally:
            regions.SHORT_RUN = saved
        want = whole[numpy_index]
        support.assert_same_bits(got, np.ascontiguousarray(want), f"{spec} {index}")

    check()


def test_user_arrays_and_all_dtypes_agree():
    pytest.importorskip("ml_dtypes")
    for dtype in DTYPES:
        spec = {"scheme": "normal", "shape": [9, 7, 5], "dtype": dtype, "seed": 3}
        region = wi.generate(spec, index=np.s_[2:7, -3:, 1:4])
        whole = wi.generate(spec)
        assert region.dtype == whole.dtype and region.shape == (5, 3, 3)
        assert region.tobytes() == np.ascontiguousarray(whole[2:7, -3:, 1:4]).tobytes()


@pytest.mark.parametrize("columns", [(0, 1), (3, 11), (10, 17), (0, 17)])
def test_sparse_thresholds_of_a_column_range_match_the_whole_matrix(columns):
    mask = SparseMask(key=(123, 456), rows=29, cols=17, zeros_per_column=9)
    whole = mask.zeros_in(0, 29 * 17).reshape(29, 17)
    col_start, col_stop = columns
    for rows in [(0, 29), (4, 20), (28, 29)]:
        region = mask.zeros_in_region(*rows, col_start, col_stop)
        assert np.array_equal(region, whole[rows[0]:rows[1], col_start:col_stop])
    assert whole.sum(axis=0).tolist() == [9] * 17


def test_sparse_ties_break_by_lower_row():
    mask = SparseMask(key=(0, 0), rows=4, cols=3, zeros_per_column=2)
    keys = np.array([[5, 1, 7], [5, 1, 7], [5, 0, 7], [1, 9, 7]], dtype=np.uint64)
    threshold_key, threshold_row = mask._column_thresholds(keys)
    assert threshold_key.tolist() == [5, 1, 7] and threshold_row.tolist() == [0, 0, 1]


@pytest.mark.parametrize("index, field", [
    (np.s_[0:4:2], "index[0]"),
    ((slice(0, 2), (1, 9)), "index[1]"),
    (((3, 1),), "index[0]"),
    ((slice(None), slice(None), slice(None)), "index"),
    ((slice(0, 1), "a"), "index[1]"),
    ((slice(0, 1), (0.5, 2)), "index[1]"),
    (((True, 2),), "index[0]"),
    (3, "index"),
])
def test_bad_regions_name_the_dimension(index, field):
    spec = {"scheme": "normal", "shape": [6, 5]}
    with pytest.raises(wi.SpecError) as caught:
        wi.generate(spec, index=index)
    assert field in str(caught.value)


def test_index_is_exclusive_with_a_flat_range():
    with pytest.raises(wi.SpecError, match="index"):
        wi.generate({"scheme": "normal", "shape": [6, 5]}, 0, 3, index=np.s_[0:1])


def test_regions_are_normalized_like_numpy():
    assert regions.resolve_region(np.s_[-3:], (10, 4)) == ((7, 10), (0, 4))
    assert regions.resolve_region((slice(5, 2), (-2, 4)), (10, 4)) == ((5, 5), (2, 4))
    assert regions.resolve_region(np.s_[:100, 1:], (10, 4)) == ((0, 10), (1, 4))
    starts, length = regions.region_runs((4, 5, 6), ((1, 3), (0, 5), (0, 6)))
    assert starts.tolist() == [30] and length == 60
    starts, length = regions.region_runs((4, 5, 6), ((1, 3), (2, 4), (0, 6)))
    assert starts.tolist() == [42, 72] and length == 12


def test_a_64_mib_region_of_a_16_gib_tensor_stays_o_region():
    spec = {"scheme": "normal", "shape": [65536, 65536], "dtype": "float32", "seed": 1, "name": "big"}
    region_bytes = 256 * 65536 * 4
    tracemalloc.start()
    try:
        region = wi.generate(spec, index=np.s_[0:256])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert region.shape == (256, 65536) and region.nbytes == region_bytes
    # the output plus the backend's temporaries for one fill piece; the tensor is 256 times larger
    assert peak < region_bytes + (32 << 20), f"peak {peak} bytes for a {region_bytes}-byte region"
    # the rows are elements [0, 256 * 65536) of the stream: spot-check the last 1000 against a flat range
    tail = wi.generate(spec, region_bytes // 4 - 1000, region_bytes // 4)
    assert region.reshape(-1)[-1000:].tobytes() == tail.tobytes()


@settings(PROPERTY, max_examples=40)
@given(st.lists(st.integers(0, 5), min_size=0, max_size=4), st.data())
def test_positions_of_a_region_split_into_boxes_in_order(extents, data):
    numel = math.prod(extents)
    start = data.draw(st.integers(0, numel))
    stop = data.draw(st.integers(start, numel))
    flat = np.arange(numel).reshape(extents)
    boxes = regions.split_positions(extents, start, stop)
    pieces = [flat[tuple(slice(a, b) for a, b in box)].reshape(-1) for box in boxes]
    assert np.concatenate(pieces + [np.empty(0, int)]).tolist() == list(range(start, stop))
    assert len(boxes) <= max(1, 2 * len(extents) - 1)


def test_region_positions_equal_the_flattened_region():
    spec = {"scheme": "sparse", "shape": [13, 11], "params": {"sparsity": 0.4}, "seed": 2}
    compiled = wi.compile_spec(spec, "numpy")
    bounds = ((2, 12), (3, 10))
    want = wi.generate_raw(spec)[2:12, 3:10].reshape(-1)
    for start, stop in [(0, 70), (5, 6), (6, 40), (13, 70)]:
        got = regions.fill_region_positions(compiled, bounds, start, np.empty(stop - start, np.float32), 8)
        assert got.tobytes() == want[start:stop].tobytes()
