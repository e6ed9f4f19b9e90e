"""Invariance properties (hypothesis, derandomized so runs are reproducible):

- any element range equals the same slice of the whole tensor, bit for bit;
- chunked output (any chunk size) concatenates to the whole;
- float16 / bfloat16 are the float32 result rounded to nearest even; float32 is the float64 result rounded;
- other tensors (added, removed, reordered) change nothing; different names give different streams;
- every available backend gives the NumPy reference's bytes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine_support as support
import weightinit as wi
from weightinit.backends.base import BLOCK_ELEMENTS
from weightinit.spec import COMPLEX_DTYPES, COMPLEX_SCHEMES, DTYPES, SCHEMES

ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (test extra) is the independent bfloat16 rounding")

PROPERTY = settings(derandomize=True, max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Per-scheme properties: every scheme gets its own examples (23 schemes x PER_SCHEME).
PER_SCHEME = settings(PROPERTY, max_examples=20)
FEW = settings(PROPERTY, max_examples=40)
ALL_SCHEMES = sorted(SCHEMES)

MAX_NUMEL = 4000
NAMES = ["", "fc1.weight", "fc1.bias", "conv1.weight", "layers.0.attn.q_proj.weight", "层", "x" * 100]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def bounded_dims(draw, rank: int, low: int, high: int, max_numel: int) -> list[int]:
    dims = draw(st.lists(st.integers(low, high), min_size=rank, max_size=rank))
    while math.prod(dims) > max_numel:
        i = dims.index(max(dims))
        dims[i] = max(low, dims[i] // 2)
    return dims


finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def specs(draw, schemes=tuple(sorted(SCHEMES)), dtypes=DTYPES, max_numel=MAX_NUMEL):
    """A valid spec dict: any scheme, dtype, layout, rank and size its rules allow (zero dims included)."""
    scheme = draw(st.sampled_from(schemes))
    info = SCHEMES[scheme]
    dtypes = [d for d in dtypes if d not in COMPLEX_DTYPES or scheme in COMPLEX_SCHEMES]  # complex: JAX's schemes
    spec = {"scheme": scheme, "dtype": draw(st.sampled_from(dtypes)),
            "seed": draw(st.one_of(st.integers(0, 3), st.integers(0, 2 ** 64 - 1))),
            "name": draw(st.sampled_from(NAMES))}
    params = {}
    layout = draw(st.sampled_from(["torch", "keras", "axes"]))
    if scheme in ("dirac", "delta_orthogonal"):
        layout = draw(st.sampled_from(["torch", "keras"]))
        rank = draw(st.integers(3, 5))
        spatial = draw(st.lists(st.integers(1, 4), min_size=rank - 2, max_size=rank - 2))
        in_ch = draw(st.integers(1, 4))
        out_ch = draw(st.integers(in_ch if scheme == "delta_orthogonal" else 1, 8))
        shape = [out_ch, in_ch, *spatial] if layout == "torch" else [*spatial, in_ch, out_ch]
        if scheme == "dirac":
            params["groups"] = draw(st.sampled_from(divisors(out_ch)))
    elif scheme in ("eye", "sparse"):
        shape = bounded_dims(draw, 2, 0, 40, max_numel)
        if scheme == "sparse":
            params["sparsity"] = draw(st.floats(0, 1))
    elif scheme == "orthogonal":
        shape = bounded_dims(draw, draw(st.integers(2, 3)), 1, 12, 600)
        if draw(st.booleans()):
            params["column_axis"] = draw(st.integers(-len(shape), len(shape) - 1))
    else:
        needs_two = (info.needs_fans and layout != "keras") or (scheme == "torch_default" and layout != "keras")
        rank = draw(st.integers(2 if needs_two else 0, 4))
        shape = bounded_dims(draw, rank, 0, 24, max_numel)
        if scheme == "torch_default" and (rank < 2 or draw(st.booleans())):
            params["fan_in"] = draw(st.integers(0, 500))
            if rank < 2:
                layout = "torch"
    spec["shape"] = shape
    spec["layout"] = layout
    if scheme == "constant":
        params["value"] = draw(finite)
    elif scheme == "uniform" and draw(st.booleans()):
        low = draw(finite)
        params.update(low=low, high=low + draw(st.floats(1e-3, 10)))
    elif scheme in ("normal", "truncated_normal") and draw(st.booleans()):
        params.update(mean=draw(finite), std=draw(st.floats(1e-3, 10)))
    if scheme == "truncated_normal" and ("mean" in params or draw(st.booleans())):
        bounds = draw(st.sampled_from(["absolute", "std"]))
        centre = params.get("mean", 0.0) if bounds == "absolute" else 0.0
        scale = params.get("std", 1.0) if bounds == "absolute" else 1.0
        lower = centre + scale * draw(st.floats(-5, 4.5))
        params.update(bounds=bounds, lower=lower, upper=lower + scale * draw(st.floats(0.01, 5)))
    if scheme in ("kaiming_uniform", "kaiming_normal") and draw(st.booleans()):
        params.update(mode=draw(st.sampled_from(["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])),
                      nonlinearity=draw(st.sampled_from(["relu", "leaky_relu", "tanh", "selu"])))
    if scheme == "variance_scaling":
        params.update(scale=draw(st.floats(0.1, 3)),
                      distribution=draw(st.sampled_from(["truncated_normal", "normal", "uniform"])))
    if "gain" in info.params and draw(st.booleans()):
        params["gain"] = draw(st.floats(-3, 3))
    if params:
        spec["params"] = params
    return spec


def run(scheme, body, dtypes=DTYPES, with_data=True):
    """Run a property over PER_SCHEME examples of one scheme."""
    strategies = (specs(schemes=(scheme,), dtypes=dtypes), st.data()) if with_data else (
        specs(schemes=(scheme,), dtypes=dtypes),)
    PER_SCHEME(given(*strategies)(body))()


def whole(spec) -> np.ndarray:
    return wi.generate_raw(spec, backend="numpy").reshape(-1)


def same_bits(a: np.ndarray, b: np.ndarray, dtype: str) -> bool:
    return a.shape == b.shape and np.array_equal(support.bits(a, dtype), support.bits(b, dtype))


# ---------------------------------------------------------------------------
# Ranges and chunks


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_the_strategy_gives_valid_specs(scheme):
    seen = []

    @PER_SCHEME
    @given(specs(schemes=(scheme,)))
    def check(data):
        seen.append(wi.spec_from_dict(data))

    check()
    assert seen and all(spec.scheme == scheme for spec in seen)


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_range_equals_slice_of_whole(scheme):
    run(scheme, _test_range_equals_slice_of_whole)


def _test_range_equals_slice_of_whole(data, draw):
    spec = wi.spec_from_dict(data)
    full = whole(spec)
    start = draw.draw(st.integers(0, spec.numel), label="start")
    stop = draw.draw(st.integers(start, spec.numel), label="stop")
    part = wi.generate_raw(spec, start, stop, backend="numpy")
    assert same_bits(part, full[start:stop], spec.dtype)
    # generate() (user dtype view) agrees too
    assert np.array_equal(support.bits(np.asarray(wi.generate(spec, start, stop, backend="numpy")), spec.dtype),
                          support.bits(full[start:stop], spec.dtype))


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_random_pieces_concatenate_to_whole(scheme):
    run(scheme, _test_random_pieces_concatenate_to_whole)


def _test_random_pieces_concatenate_to_whole(data, draw):
    spec = wi.spec_from_dict(data)
    full = whole(spec)
    cuts = sorted(draw.draw(st.lists(st.integers(0, spec.numel), max_size=6), label="cuts"))
    edges = [0, *cuts, spec.numel]
    compiled = wi.compile_spec(spec, backend="numpy")
    pieces = [compiled.range(a, b) for a, b in zip(edges, edges[1:])]
    assert same_bits(np.concatenate(pieces) if pieces else full[:0], full, spec.dtype)


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_iter_chunks_concatenate_to_whole(scheme):
    run(scheme, _test_iter_chunks_concatenate_to_whole)


def _test_iter_chunks_concatenate_to_whole(data, draw):
    spec = wi.spec_from_dict(data)
    full = whole(spec)
    start = draw.draw(st.integers(0, spec.numel), label="start")
    stop = draw.draw(st.integers(start, spec.numel), label="stop")
    chunk = draw.draw(st.integers(1, max(1, stop - start) + 3), label="chunk_elements")
    offsets, parts = [], []
    for offset, values in wi.iter_chunks(spec, start, stop, chunk_elements=chunk, backend="numpy"):
        offsets.append(offset)
        parts.append(values)
        assert values.ndim == 1 and 0 < values.size <= chunk
    assert offsets == list(range(start, stop, chunk))
    got = np.concatenate(parts) if parts else full[:0]
    assert same_bits(got, full[start:stop], spec.dtype)
    # generate_raw's own chunking does not matter either
    assert same_bits(wi.generate_raw(spec, backend="numpy", chunk_elements=chunk).reshape(-1), full, spec.dtype)


@pytest.mark.parametrize("scheme,shape,params", [
    ("kaiming_normal", [600, 500], {}),
    ("truncated_normal", [300000], {"std": 0.02, "lower": -0.04, "upper": 0.04}),
    ("uniform", [3, 100001], {}),
    ("sparse", [700, 400], {"sparsity": 0.3}),
])
@pytest.mark.parametrize("backend", support.backend_params())
def test_ranges_across_block_and_chunk_boundaries(scheme, shape, params, backend):
    """Ranges straddling the backend's blocks (2**16), the default chunk (2**18) and the thread split."""
    spec = wi.spec_from_dict({"scheme": scheme, "shape": shape, "seed": 5, "name": "big", "params": params})
    full = wi.generate_raw(spec, backend="numpy").reshape(-1)
    reference = wi.generate_raw(spec, backend=backend).reshape(-1)
    assert same_bits(reference, full, spec.dtype)
    edges = [BLOCK_ELEMENTS, 2 * BLOCK_ELEMENTS, wi.DEFAULT_CHUNK_ELEMENTS, spec.numel // 2]
    for edge in edges:
        for start, stop in [(edge - 3, edge + 5), (edge - 1, edge), (edge, edge + 1), (edge - 70000, edge + 1)]:
            start, stop = max(0, start), min(spec.numel, stop)
            assert same_bits(wi.generate_raw(spec, start, stop, backend=backend), full[start:stop], spec.dtype)
    for chunk in (BLOCK_ELEMENTS - 1, 100003, wi.DEFAULT_CHUNK_ELEMENTS + 1):
        parts = [v for _, v in wi.iter_chunks(spec, 17, spec.numel, chunk_elements=chunk, backend=backend)]
        assert same_bits(np.concatenate(parts), full[17:], spec.dtype)


# ---------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_half_types_are_the_float32_result_rounded_to_nearest_even(scheme):
    run(scheme, _test_half_types_are_the_float32_result_rounded_to_nearest_even, dtypes=("float32",), with_data=False)


def _test_half_types_are_the_float32_result_rounded_to_nearest_even(data):
    single = whole(data)
    half = whole({**data, "dtype": "float16"})
    brain = whole({**data, "dtype": "bfloat16"})
    assert np.array_equal(half.view(np.uint16), single.astype(np.float16).view(np.uint16))
    assert np.array_equal(brain, single.astype(ml_dtypes.bfloat16).view(np.uint16))


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_float32_is_the_float64_result_rounded(scheme):
    run(scheme, _test_float32_is_the_float64_result_rounded, dtypes=("float64",), with_data=False)


def _test_float32_is_the_float64_result_rounded(data):
    double = whole(data)
    single = whole({**data, "dtype": "float32"})
    assert np.array_equal(single.view(np.uint32), double.astype(np.float32).view(np.uint32))


def test_bfloat16_rounding_ties_go_to_even():
    cases = {1.0 + 2 ** -8: 0x3F80,                 # halfway between 1 and 1 + 2**-7: even (1.0)
             1.0 + 3 * 2 ** -8: 0x3F82,             # halfway, rounds up to even
             1.0 + 2 ** -8 + 2 ** -20: 0x3F81,      # just above halfway
             -(1.0 + 2 ** -8): 0xBF80}
    for value, expected in cases.items():
        raw = wi.generate_raw({"scheme": "constant", "shape": [1], "dtype": "bfloat16", "params": {"value": value}})
        assert int(raw[0]) == expected, hex(int(raw[0]))
        assert int(np.float32(value).astype(ml_dtypes.bfloat16).view(np.uint16)) == expected


def test_float16_is_rounded_once_from_float32_not_from_float64():
    """A float64 just above a float16 tie rounds down to the tie in float32, then to even in float16."""
    value = 1.0 + 2 ** -11 + 2 ** -40        # float32: 1 + 2**-11 (a float16 tie) -> float16 1.0
    raw = wi.generate_raw({"scheme": "constant", "shape": [1], "dtype": "float16", "params": {"value": value}})
    assert float(raw[0]) == 1.0
    assert float(np.float16(value)) != 1.0   # direct float64 -> float16 would have rounded up


# ---------------------------------------------------------------------------
# Streams: other tensors do not matter; names separate tensors


@FEW
@given(st.lists(specs(schemes=("kaiming_normal", "normal", "uniform", "truncated_normal", "he_normal", "sparse",
                                "orthogonal", "xavier_uniform", "torch_default"), max_numel=500),
                min_size=2, max_size=5), st.randoms(use_true_random=False))
def test_other_tensors_do_not_change_a_tensor(models, rng):
    """A model's tensors are generated alone, shuffled, with one removed and with a new one inserted:
    each tensor's bytes depend only on its own spec."""
    for index, spec in enumerate(models):
        spec["name"] = f"layers.{index}.weight"
    alone = {spec["name"]: support.digest(wi.generate_raw(spec)) for spec in models}
    shuffled = list(models)
    rng.shuffle(shuffled)
    extra = {"scheme": "normal", "shape": [64], "name": "inserted.weight", "seed": models[0]["seed"]}
    variants = [shuffled, shuffled[1:], [extra] + shuffled, shuffled[:1] + [extra] + shuffled[1:]]
    for variant in variants:
        together = {}
        for spec in variant:
            together[spec.get("name")] = support.digest(wi.generate_raw(spec))
        for name, value in together.items():
            if name in alone:
                assert value == alone[name]


@PROPERTY
@given(specs(schemes=tuple(name for name, info in SCHEMES.items() if info.random)),
       st.text(max_size=20), st.text(max_size=20))
def test_different_names_give_different_streams(data, first, second):
    if first == second:
        second = first + "'"
    a = wi.spec_from_dict({**data, "name": first})
    b = wi.spec_from_dict({**data, "name": second})
    assert a.stream != b.stream
    if a.numel >= 8:
        va, vb = whole(a), whole(b)
        assert not np.array_equal(support.bits(va, a.dtype), support.bits(vb, b.dtype))
        c = wi.spec_from_dict({**data, "name": first, "seed": (a.seed + 1) % 2 ** 64})
        assert not np.array_equal(support.bits(whole(c), c.dtype), support.bits(va, a.dtype))


def test_layer_order_and_count_do_not_shift_streams():
    """The sequential-seeding failure mode: inserting a layer must not change later layers."""
    layer = {"scheme": "kaiming_normal", "shape": [32, 16], "seed": 7}
    before = [wi.generate({**layer, "name": f"layers.{i}.weight"}) for i in range(4)]
    after = [wi.generate({**layer, "name": f"layers.{i}.weight"}) for i in (0, 1, 99, 2, 3)]
    for i, j in zip(range(4), (0, 1, 3, 4)):
        assert np.array_equal(before[i], after[j])
    assert len({support.digest(a) for a in before}) == 4


# ---------------------------------------------------------------------------
# Backends


OTHER_BACKENDS = [p for p in support.backend_params() if p.values[0] != "numpy"]


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_backend_matches_numpy_reference(backend):
    @PROPERTY
    @given(specs(), st.data())
    def check(data, draw):
        spec = wi.spec_from_dict(data)
        full = whole(spec)
        got = wi.generate_raw(spec, backend=backend).reshape(-1)
        if spec.scheme in support.QR_SCHEMES:
            assert np.max(np.abs(support.as_float64(got, spec.dtype) - support.as_float64(full, spec.dtype)),
                          initial=0.0) <= 1e-6 + (2e-2 if spec.dtype in ("float16", "bfloat16") else 0.0)
            return
        assert same_bits(got, full, spec.dtype)
        start = draw.draw(st.integers(0, spec.numel))
        stop = draw.draw(st.integers(start, spec.numel))
        assert same_bits(wi.generate_raw(spec, start, stop, backend=backend), full[start:stop], spec.dtype)

    check()
