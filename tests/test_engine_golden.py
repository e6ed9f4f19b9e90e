"""Golden digests: SHA-256 of the raw little-endian bytes of a matrix of specs, recomputed on every
available backend. A change to any digest is a new algorithm version (scripts/update-golden --force),
never a silent change.

QR-based entries ("exact": false) are bit-exact only per LAPACK build: for them the test compares the
stored values within the entry's "atol" (1e-6; plus one ulp of a half-precision output), and checks that
the normal matrix they factor (their "pre_qr" entry, exact) is bit-identical.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import engine_support as support
import weightinit as wi
from weightinit.engine.fans import calculate_gain
from weightinit.engine.transforms import round_to_storage
from weightinit.spec import COMPLEX_DTYPES, COMPLEX_SCHEMES, DTYPES, LAYOUTS, SCHEMES

GOLDEN = support.load_golden()
ENTRIES = GOLDEN["entries"]
BY_ID = {entry["id"]: entry for entry in ENTRIES}
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "update-golden")

entry_params = [pytest.param(entry, id=entry["id"]) for entry in ENTRIES]


# ---------------------------------------------------------------------------
# The file itself


def test_file_format():
    assert GOLDEN["format"] == support.GOLDEN_FORMAT
    assert set(GOLDEN) == {"format", "algorithm_version", "description", "entries"}
    for entry in ENTRIES:
        assert {"id", "spec", "sha256", "exact", "plan", "numel", "nbytes", "key"} <= set(entry)
        assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0
        assert entry["plan"] in ("random", "index", "dense")
        assert ("kernel" in entry) == (entry["plan"] == "random")
        assert entry["exact"] == ("values" not in entry)
    assert len(BY_ID) == len(ENTRIES), "ids are unique"


def test_algorithm_version_is_pinned():
    """Bumping weightinit.ALGORITHM_VERSION must come with regenerated digests, and vice versa."""
    assert GOLDEN["algorithm_version"] == wi.ALGORITHM_VERSION == 2


def test_file_matches_the_catalogue():
    """tests/engine_support.py's catalogue and the checked-in file list the same specs in the same order
    (after editing the catalogue, run scripts/update-golden)."""
    catalogue = support.golden_catalogue()
    assert [(c["id"], c["spec"]) for c in catalogue] == [(e["id"], e["spec"]) for e in ENTRIES]


def test_the_file_is_the_scripts_output():
    """The file is byte-for-byte what scripts/update-golden writes for its own entries (nothing hand-edited)."""
    with open(support.GOLDEN_PATH, encoding="utf-8") as handle:
        assert handle.read() == support.dump_golden(GOLDEN)


def test_coverage():
    specs = [wi.spec_from_dict(e["spec"]) for e in ENTRIES]
    assert len(ENTRIES) >= 48
    pairs = {(s.scheme, s.dtype) for s in specs}
    defined = {(scheme, dtype) for scheme, dtype in itertools.product(SCHEMES, DTYPES)
               if dtype not in COMPLEX_DTYPES or scheme in COMPLEX_SCHEMES}
    missing = defined - pairs
    assert not missing, f"scheme x dtype pairs without a digest: {sorted(missing)}"
    fan_schemes = [name for name, info in SCHEMES.items() if info.needs_fans]
    for layout in LAYOUTS:   # every fan-scaled scheme under every layout family
        covered = {s.scheme for s in specs if s.layout == layout}
        assert not set(fan_schemes) - covered, (layout, set(fan_schemes) - covered)
    for scheme in ("dirac", "delta_orthogonal", "torch_default", "orthogonal"):
        assert {s.layout for s in specs if s.scheme == scheme} >= {"torch", "keras"}, scheme
    ranks = {len(s.shape) for s in specs}
    assert {0, 1, 2, 3, 4, 5} <= ranks
    assert any(s.numel == 0 for s in specs)
    assert any(s.numel > 2 ** 18 for s in specs)                 # more than one default chunk
    assert len({s.seed for s in specs}) >= 20
    assert any(s.seed == 2 ** 64 - 1 for s in specs)
    assert len({s.name for s in specs}) >= 15
    assert any("stream" in e["spec"] for e in ENTRIES)
    assert any(e["spec"].get("params") for e in ENTRIES)
    assert any(s.layout == "axes" and s.batch_axis for s in specs)
    assert any(s.scheme == "truncated_normal" and s.params["bounds"] == "std" for s in specs)
    assert sum(not e["exact"] for e in ENTRIES) >= 8
    assert {e["plan"] for e in ENTRIES} == {"random", "index", "dense"}


def test_inexact_entries_are_exactly_the_qr_schemes():
    for entry in ENTRIES:
        spec = wi.spec_from_dict(entry["spec"])
        assert entry["exact"] == (spec.scheme not in support.QR_SCHEMES or spec.numel == 0), entry["id"]
        if not entry["exact"]:
            pre = BY_ID[entry["pre_qr"]]
            complex_values = spec.dtype in COMPLEX_DTYPES
            assert pre["exact"] and pre["spec"]["scheme"] == "normal"
            assert pre["spec"]["dtype"] == ("complex128" if complex_values else "float64")
            assert len(entry["values"]) == spec.numel * (2 if complex_values else 1)  # values are stored
            assert spec.numel <= 200
            assert entry["atol"] >= support.QR_ATOL


# ---------------------------------------------------------------------------
# Recompute every digest on every available backend


@pytest.mark.parametrize("backend", support.backend_params())
@pytest.mark.parametrize("entry", entry_params)
def test_golden_digest(entry, backend):
    spec = wi.spec_from_dict(entry["spec"])
    raw = wi.generate_raw(spec, backend=backend)
    assert raw.shape == spec.shape and raw.nbytes == entry["nbytes"] and spec.numel == entry["numel"]
    assert [str(spec.seed), str(spec.stream)] == entry["key"]
    if entry["exact"]:
        assert support.digest(raw) == entry["sha256"], "the bytes of this spec changed: a new algorithm version?"
        return
    values = support.as_float64(raw, spec.dtype).reshape(-1)
    difference = np.max(np.abs(values - np.array(entry["values"])))
    assert difference <= entry["atol"], f"QR result moved by {difference}"


@pytest.mark.parametrize("entry", entry_params)
def test_golden_plan_and_kernel_scalars(entry):
    """The plan kind and the kernel scalars (what every backend receives) are pinned too, so a digest
    change can be traced to the scalars or to the transforms."""
    compiled = wi.compile_spec(entry["spec"], backend="numpy")
    assert support.plan_kind(compiled.plan) == entry["plan"]
    if entry["plan"] == "random":
        kernel = compiled.plan.kernel
        assert kernel.kind == entry["kernel"]["kind"]
        assert list(kernel.params) == entry["kernel"]["params"]     # exact: JSON round-trips binary64
        assert (getattr(compiled.plan, "mask", None) is not None) == entry["kernel"]["sparse_mask"]


@pytest.mark.parametrize("entry", [p for p in entry_params if p.values[0]["exact"] and p.values[0]["numel"] > 1])
def test_golden_digest_in_odd_chunks(entry):
    """The same digest from iter_chunks with an odd chunk size, hashing as the chunks stream by."""
    spec = wi.spec_from_dict(entry["spec"])
    hasher = hashlib.sha256()
    expected_offset = 0
    chunk = max(1, min(7919, spec.numel // 3 + 1))
    for offset, values in wi.iter_chunks(spec, chunk_elements=chunk, backend="numpy"):
        assert offset == expected_offset
        hasher.update(wi.to_le_bytes(values))
        expected_offset += values.size
    assert expected_offset == spec.numel
    assert hasher.hexdigest() == entry["sha256"]


def gain_of(params) -> float:
    if "gain" in params:
        return params["gain"]
    if "nonlinearity" in params:
        return calculate_gain(params["nonlinearity"], params.get("a"))
    return 1.0


def signed_q(matrix: np.ndarray) -> np.ndarray:
    """Q of A = QR with columns multiplied by sign(diag(R)); A transposed first (and Q back) when wide."""
    wide = matrix.shape[0] < matrix.shape[1]
    q, r = np.linalg.qr(matrix.T if wide else matrix)
    d = np.diag(r)
    q = q * (d / np.abs(d) if np.iscomplexobj(d) else np.sign(d))   # complex: sign(d) = d / |d|
    return q.T if wide else q


def reference_qr_scheme(spec, a: np.ndarray) -> np.ndarray:
    """docs/rng.md section 7 spelled out, from the pre-QR matrix's words a (flat float64)."""
    shape, gain = spec.shape, gain_of(spec.params)
    if spec.scheme == "delta_orthogonal":
        torch_layout = spec.layout == "torch"
        out_ch, in_ch = (shape[0], shape[1]) if torch_layout else (shape[-1], shape[-2])
        q = gain * signed_q(a.reshape(out_ch, in_ch))
        w = np.zeros(shape, dtype=q.dtype)
        if torch_layout:
            w[(slice(None), slice(None)) + tuple((k - 1) // 2 for k in shape[2:])] = q
        else:
            w[tuple((k - 1) // 2 for k in shape[:-2])] = q.T
        return w
    # keras layout without column_axis: Keras' (prod(shape[:-1]), shape[-1]) flattening, i.e. column_axis -1
    column_axis = spec.params.get("column_axis", -1 if spec.layout == "keras" else None)
    if column_axis is None:
        return gain * signed_q(a.reshape(shape[0], -1)).reshape(shape)
    axis = column_axis % len(shape)
    cols = shape[axis]
    rows = spec.numel // cols
    q = signed_q(a.reshape(cols, rows)).T if rows < cols else signed_q(a.reshape(rows, cols))
    rest = tuple(d for i, d in enumerate(shape) if i != axis)
    return gain * np.moveaxis(q.reshape(rest + (cols,)), -1, axis)


@pytest.mark.parametrize("entry", [p for p in entry_params if not p.values[0]["exact"]])
def test_qr_entries_factor_their_bit_exact_normal_matrix(entry):
    """The pre-QR normal matrix is bit-exact (its own digest); in this process (one LAPACK) the result
    is exactly the documented construction from that matrix, and within atol of the stored values."""
    spec = wi.spec_from_dict(entry["spec"])
    pre = BY_ID[entry["pre_qr"]]
    a = wi.generate_raw(pre["spec"], backend="numpy")
    assert support.digest(a) == pre["sha256"]
    got = support.as_float64(wi.generate_raw(spec, backend="numpy"), spec.dtype)
    expected = support.as_float64(round_to_storage(reference_qr_scheme(spec, a.reshape(-1)), spec.dtype),
                                  spec.dtype)
    assert np.array_equal(got, expected)
    assert np.max(np.abs(expected.reshape(-1) - np.array(entry["values"]))) <= entry["atol"]


# ---------------------------------------------------------------------------
# scripts/update-golden


def run_script(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)


def test_update_golden_is_up_to_date():
    result = run_script("--output", str(support.GOLDEN_PATH))
    # On this LAPACK build the QR digests match too, so the file is reported up to date. Elsewhere the
    # script may report changed QR records; only those are allowed to differ.
    if result.returncode != 0:
        changed = [line for line in result.stdout.splitlines() if line.strip()]
        for line in changed:
            kind, _, rest = line.partition(": ")
            assert kind in ("digest changed", "record changed"), line
            assert not BY_ID[rest.split()[0]]["exact"], line
    else:
        assert "up to date" in result.stdout


def test_update_golden_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "digests.json"
    written = run_script("--output", str(target))
    assert written.returncode == 0 and "wrote" in written.stdout
    data = json.loads(target.read_text())
    assert data == support.compute_golden()
    # tamper: one digest changed, one entry removed
    victim = data["entries"][5]
    victim["sha256"] = "0" * 64
    removed = data["entries"].pop(7)
    tampered = support.dump_golden(data)
    target.write_text(tampered)
    refused = run_script("--output", str(target))
    assert refused.returncode == 1
    assert f"digest changed: {victim['id']}" in refused.stdout
    assert f"added: {removed['id']}" in refused.stdout
    assert "not overwritten" in refused.stderr
    assert target.read_text() == tampered
    forced = run_script("--output", str(target), "--force")
    assert forced.returncode == 0
    assert f"digest changed: {victim['id']}" in forced.stdout
    assert json.loads(target.read_text()) == support.compute_golden()
    again = run_script("--output", str(target))
    assert again.returncode == 0 and "up to date" in again.stdout


def test_diff_golden_reports_version_and_removals():
    old = {"algorithm_version": 1, "entries": [{"id": "a", "spec": {}, "sha256": "1"},
                                               {"id": "b", "spec": {}, "sha256": "2"}]}
    new = {"algorithm_version": 2, "entries": [{"id": "a", "spec": {}, "sha256": "3"}]}
    assert support.diff_golden(old, new) == ["algorithm_version: 1 -> 2", "digest changed: a 1 -> 3", "removed: b"]
    assert support.diff_golden(old, old) == []
