"""complex64 / complex128: element i from word i of substreams 0 and 2 (docs/rng.md), JAX's complex
definitions, random access, every CPU backend, the wire (gRPC) and the CLI."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine_support as support
import weightinit as wi
from weightinit.engine.philox import philox_words
from weightinit.engine.transforms import apply_kernel, normal_kernel, open_uniform, uniform01

REPO = Path(__file__).resolve().parents[1]
SQRT_HALF = math.sqrt(0.5)


def words(spec, substream):
    spec = wi.spec_from_dict(spec)
    return philox_words(spec.key, 0, spec.numel, substream)


def test_complex_normal_parts_are_the_real_normal_kernel_on_two_substreams():
    spec = {"scheme": "normal", "shape": [40, 30], "dtype": "complex128", "seed": 8, "name": "z",
            "params": {"mean": 0.5, "std": 2.0}}
    z = wi.generate(spec).reshape(-1)
    s = 2.0 * 0.70710678118654752440
    assert z.real.tobytes() == apply_kernel(normal_kernel(0.5, s), words(spec, 0)).tobytes()
    assert z.imag.tobytes() == apply_kernel(normal_kernel(0.0, s), words(spec, 2)).tobytes()
    real = wi.generate(dict(spec, dtype="float64", params={"mean": 0.5, "std": s}))
    assert z.real.tobytes() == real.reshape(-1).tobytes()   # the real part is the float64 stream


def test_complex64_is_complex128_rounded_per_part():
    spec = {"scheme": "glorot_uniform", "shape": [17, 23], "seed": 2, "layout": "keras"}
    wide = wi.generate(dict(spec, dtype="complex128"))
    narrow = wi.generate(dict(spec, dtype="complex64"))
    assert narrow.real.tobytes() == wide.real.astype(np.float32).tobytes()
    assert narrow.imag.tobytes() == wide.imag.astype(np.float32).tobytes()
    assert wi.to_le_bytes(narrow)[:8] == np.array([narrow.flat[0].real, narrow.flat[0].imag], "<f4").tobytes()


@pytest.mark.parametrize("distribution", ["uniform", "truncated_normal"])
def test_polar_forms_follow_the_documented_formulas(distribution):
    """disc: r = c sqrt(2 u0); truncated: r = c sqrt(-log(1 - (1 - e^-4) u0)), c = sqrt(scale/n) / 0.95311...;
    angle 2 pi u2 (u = uniform01 of the words); compared with libm within a few ulps."""
    spec = {"scheme": "variance_scaling", "shape": [50, 40], "dtype": "complex128", "seed": 6, "layout": "keras",
            "params": {"scale": 3.0, "mode": "fan_avg", "distribution": distribution}}
    z = wi.generate(spec).reshape(-1)
    u0, u2 = uniform01(words(spec, 0)), uniform01(words(spec, 2))
    c = math.sqrt(3.0 / 45.0)
    if distribution == "uniform":
        radius = c * np.sqrt(2 * u0)
    else:
        radius = c / 0.95311164380491208 * np.sqrt(-np.log1p(-(1 - math.exp(-4)) * u0))
    expected = radius * np.exp(2j * np.pi * u2)
    assert np.max(np.abs(z - expected)) < 1e-14
    assert open_uniform(words(spec, 0)).size == z.size


@pytest.mark.parametrize("backend", support.backend_params())
@pytest.mark.parametrize("scheme,params", [("he_normal", {}), ("variance_scaling", {"distribution": "uniform"}),
                                           ("variance_scaling", {}), ("normal", {"std": 0.1}),
                                           ("orthogonal", {}), ("eye", {"gain": 2.0})])
def test_ranges_and_backends_agree(backend, scheme, params):
    spec = {"scheme": scheme, "shape": [64, 48], "dtype": "complex64", "seed": 5, "name": "w", "params": params,
            "layout": "keras"}
    whole = wi.generate(spec, backend="numpy").reshape(-1)
    assert wi.generate(spec, backend=backend).reshape(-1).tobytes() == whole.tobytes()
    for start, stop in ((0, 1), (7, 1500), (3000, 3072)):
        assert wi.generate(spec, start=start, stop=stop, backend=backend).tobytes() == whole[start:stop].tobytes()
    chunks = [values for _, values in wi.iter_chunks(spec, chunk_elements=1001, backend=backend)]
    assert np.concatenate(chunks).tobytes() == whole.tobytes()


def test_complex_statistics_as_jax_defines_them():
    """normal: each part N(0, std^2 / 2); variance scaling: E|z|^2 = scale / n (uniform, normal)."""
    z = wi.generate({"scheme": "normal", "shape": [200000], "dtype": "complex128", "seed": 1,
                     "params": {"std": 0.4}})
    for part in (z.real, z.imag):
        assert abs(part.mean()) < 0.005 and abs(part.var() / (0.16 / 2) - 1) < 0.01
    for distribution in ("uniform", "normal"):
        w = wi.generate({"scheme": "variance_scaling", "shape": [400, 500], "dtype": "complex128", "seed": 1,
                         "layout": "keras", "params": {"scale": 2.0, "distribution": distribution}})
        assert abs(np.mean(np.abs(w) ** 2) / (2.0 / 400) - 1) < 0.01
    disc = wi.generate({"scheme": "he_uniform", "shape": [400, 500], "dtype": "complex128", "layout": "keras"})
    assert np.abs(disc).max() <= math.sqrt(2 * 2.0 / 400)


@pytest.mark.parametrize("scheme", ["uniform", "truncated_normal", "kaiming_uniform", "xavier_uniform", "sparse",
                                    "torch_default"])
def test_schemes_without_a_complex_definition_refuse(scheme):
    params = {"sparsity": 0.5} if scheme == "sparse" else {}
    with pytest.raises(wi.SpecError) as caught:
        wi.spec_from_dict({"scheme": scheme, "shape": [4, 5], "dtype": "complex64", "params": params})
    assert caught.value.field == "dtype" and "complex64" in str(caught.value)


def test_unitary_orthogonal_and_constants():
    q = wi.generate({"scheme": "orthogonal", "shape": [3, 4, 5], "dtype": "complex128", "layout": "keras"})
    m = q.reshape(-1, 5)
    assert np.max(np.abs(m.conj().T @ m - np.eye(5))) < 1e-12
    c = wi.generate({"scheme": "constant", "shape": [3], "dtype": "complex64", "params": {"value": 1.5}})
    assert c.dtype == np.complex64 and (c == 1.5 + 0j).all()


def test_the_service_streams_complex(client):
    spec = {"scheme": "glorot_normal", "shape": [31, 17], "dtype": "complex64", "seed": 4, "name": "c",
            "layout": "axes", "in_axis": [0], "out_axis": 1}
    got = client.generate(spec)
    assert got.dtype == np.complex64 and got.tobytes() == wi.generate(spec).tobytes()
    part = client.generate(spec, start=5, stop=400, chunk_elements=64)
    assert part.tobytes() == wi.generate(spec).reshape(-1)[5:400].tobytes()


def test_cli_writes_complex_npy_and_refuses_safetensors(tmp_path):
    out = tmp_path / "z.npy"
    result = subprocess.run([sys.executable, "-m", "weightinit", "generate", "--scheme", "he_normal", "--shape", "6",
                             "4", "5", "--dtype", "complex128", "--layout", "axes", "--in-axis", "0", "1",
                             "--out-axis", "2", "--seed", "3", "-o", str(out)], capture_output=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    want = wi.generate({"scheme": "he_normal", "shape": [6, 4, 5], "dtype": "complex128", "layout": "axes",
                        "in_axis": [0, 1], "out_axis": 2, "seed": 3})
    assert np.load(out).tobytes() == want.tobytes()
    bad = subprocess.run([sys.executable, "-m", "weightinit", "generate", "--scheme", "normal", "--shape", "3",
                          "--dtype", "complex64", "-o", str(tmp_path / "z.safetensors")], capture_output=True,
                         cwd=REPO, timeout=120)
    assert bad.returncode != 0 and b"dtype" in bad.stderr


@pytest.mark.parametrize("backend", support.backend_params(("numba", "cupy")))
@pytest.mark.parametrize("params", [{"distribution": "uniform"}, {"distribution": "truncated_normal"},
                                    {"distribution": "normal"}])
def test_compiled_complex_equals_the_reference_on_many_elements(backend, params):
    """Every tail of the normal, every quadrant of the angle: 2**18 elements, a range not block-aligned."""
    spec = {"scheme": "variance_scaling", "shape": [1 << 18], "dtype": "complex128", "seed": 12, "params": params,
            "layout": "axes", "in_axis": [], "out_axis": 0}
    assert wi.generate(spec, backend=backend).tobytes() == wi.generate(spec, backend="numpy").tobytes()
    assert wi.generate(spec, 5, 70001, backend=backend).tobytes() == wi.generate(spec, 5, 70001,
                                                                                  backend="numpy").tobytes()
