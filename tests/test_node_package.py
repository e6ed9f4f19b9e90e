"""client/node as a real package: its protos equal protos/, its fixtures equal the engine's bytes, its own
tests pass against a real server without Python on PATH, and the packed tarball (npm pack) installed
into an empty directory outside the repository fetches a tensor from a real server.

Regenerate the fixtures after an intended change of bytes:
``WEIGHTINIT_UPDATE_NODE_FIXTURES=1 python -m pytest tests/test_node_package.py -k fixtures``.
"""

from __future__ import annotations

import base64
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import blake3
import numpy as np
import pytest

import weightinit as wi

REPO = Path(__file__).resolve().parents[1]
NODE_DIR = REPO / "client" / "node"
FIXTURE = NODE_DIR / "test" / "fixtures" / "tensors.json"
FIXTURE_SPECS = [
    {"scheme": "kaiming_normal", "shape": [16, 8], "dtype": "float32", "seed": 7, "name": "fc1.weight",
     "params": {"mode": "fan_out", "nonlinearity": "relu"}},
    {"scheme": "truncated_normal", "shape": [100], "dtype": "float64", "seed": 3,
     "params": {"std": 0.02, "lower": -0.04, "upper": 0.04}},
    {"scheme": "he_normal", "shape": [3, 3, 4, 8], "dtype": "bfloat16", "layout": "keras", "name": "conv"},
    {"scheme": "variance_scaling", "shape": [8, 8], "dtype": "float16", "seed": "18446744073709551615",
     "params": {"scale": 2, "mode": "fan_avg", "distribution": "uniform"}},
    {"scheme": "orthogonal", "shape": [8, 12], "name": "q", "params": {"gain": 1.5}},
    # JAX axis lists (one empty), a bare-int batch axis and a complex dtype
    {"scheme": "glorot_normal", "shape": [3, 4, 5, 6], "dtype": "complex64", "seed": 5, "layout": "axes",
     "in_axis": [], "out_axis": [1, 3], "batch_axis": 2},
    # nn.Embedding's padding row, and a post-multiplier
    {"scheme": "normal", "shape": [6, 4], "name": "emb.weight", "zero_rows": [0, 5], "scale": 0.5},
]

node = shutil.which("node")
npm = shutil.which("npm")
needs_node = pytest.mark.skipif(not (node and npm), reason="node and npm are not installed")


def _engine_fixtures() -> list[dict]:
    found = []
    for spec in FIXTURE_SPECS:
        engine_spec = {**spec, "seed": int(spec["seed"])} if "seed" in spec else spec
        data = wi.to_le_bytes(wi.generate_raw(engine_spec))
        found.append({"spec": spec, "sha256": hashlib.sha256(data).hexdigest(),
                      "blake3": blake3.blake3(data).hexdigest(), "base64": base64.b64encode(data).decode()})
    return found


def test_node_protos_are_the_repository_protos():
    ours = sorted(p.relative_to(REPO / "protos") for p in (REPO / "protos").rglob("*.proto"))
    theirs = sorted(p.relative_to(NODE_DIR / "protos") for p in (NODE_DIR / "protos").rglob("*.proto"))
    assert ours == theirs and ours
    for relative in ours:
        assert filecmp.cmp(REPO / "protos" / relative, NODE_DIR / "protos" / relative, shallow=False), (
            f"client/node/protos/{relative} differs from protos/{relative}: copy it over")


def test_node_fixtures_are_the_engine_bytes():
    expected = _engine_fixtures()
    if os.environ.get("WEIGHTINIT_UPDATE_NODE_FIXTURES"):
        FIXTURE.write_text(json.dumps(expected, indent=1) + "\n")
    assert json.loads(FIXTURE.read_text()) == expected, "regenerate: see this file's docstring"


def _npm_install(args: list[str], cwd: Path) -> None:
    """npm install from the local cache first, from the registry when something is missing."""
    base = [npm, *args, "--no-audit", "--no-fund", "--loglevel=error"]
    offline = subprocess.run([*base, "--offline"], cwd=cwd, capture_output=True, text=True, timeout=300)
    if offline.returncode != 0:
        online = subprocess.run(base, cwd=cwd, capture_output=True, text=True, timeout=300)
        assert online.returncode == 0, online.stderr


@pytest.fixture(scope="module")
def node_modules():
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        _npm_install(["ci"], NODE_DIR)


@needs_node
def test_node_tests_pass_without_python_on_path(server, node_modules, tmp_path):
    bin_dir = tmp_path / "bin"  # PATH holds node and nothing else: no python anywhere
    bin_dir.mkdir()
    (bin_dir / "node").symlink_to(node)
    env = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", str(tmp_path)), "WEIGHTINIT_SERVER": server.target}
    result = subprocess.run([node, "--test", "test/"], cwd=NODE_DIR, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # only the cross-checks that need WEIGHTINIT_PYTHON skip
    python_only = sum(path.read_text().count("needsPython, async") for path in (NODE_DIR / "test").glob("*.test.js"))
    assert "# fail 0" in result.stdout and f"# skipped {python_only}\n" in result.stdout, result.stdout[-1500:]


@needs_node
def test_packed_tarball_works_from_an_empty_directory(server, tmp_path):
    packed = subprocess.run([npm, "pack", "--pack-destination", str(tmp_path), "--loglevel=error"], cwd=NODE_DIR,
                            capture_output=True, text=True, timeout=120)
    assert packed.returncode == 0, packed.stderr
    tarball = tmp_path / packed.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    for wanted in ("index.js", "index.d.ts", "example.js", "package.json", "protos/weightinit/v1/spec.proto",
                   "protos/weightinit/v1/initializer_service.proto"):
        assert f"package/{wanted}" in names, sorted(names)
    assert not any("/test/" in name or "node_modules" in name for name in names), sorted(names)

    project = tmp_path / "project"  # outside the repository: nothing but the tarball and its dependencies
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "uses-weightinit", "version": "1.0.0",
                                                      "private": True}))
    _npm_install(["install", str(tarball)], project)
    (project / "use.js").write_text(
        "'use strict';\n"
        "const { WeightinitClient } = require('weightinit-client');\n"
        "async function main() {\n"
        "  const client = new WeightinitClient(process.argv[2]);\n"
        "  try {\n"
        "    const spec = JSON.parse(process.argv[3]);\n"
        "    const { values, digest, digestAlgorithm, dtype, data } = await client.generate(spec);\n"
        "    const { sha256 } = await client.generate(spec, { digest: 'sha256' });\n"
        "    process.stdout.write(JSON.stringify({ digest, digestAlgorithm, sha256, dtype,\n"
        "      kind: values.constructor.name, hex: data.toString('hex') }));\n"
        "  } finally { client.close(); }\n"
        "}\n"
        "main().catch((error) => { console.error(error); process.exitCode = 1; });\n")
    spec = FIXTURE_SPECS[0]
    used = subprocess.run([node, "use.js", server.target, json.dumps(spec)], cwd=project, capture_output=True,
                          text=True, timeout=120)
    assert used.returncode == 0, used.stderr
    got = json.loads(used.stdout)
    want = wi.to_le_bytes(wi.generate(spec))
    assert bytes.fromhex(got["hex"]) == want
    assert (got["digestAlgorithm"], got["digest"]) == ("blake3", blake3.blake3(want).hexdigest())  # the default
    assert got["sha256"] == hashlib.sha256(want).hexdigest()
    assert (got["dtype"], got["kind"]) == ("float32", "Float32Array")

    example = subprocess.run([node, "node_modules/weightinit-client/example.js", server.target], cwd=project,
                             capture_output=True, text=True, timeout=120)
    assert example.returncode == 0, example.stderr
    full = wi.generate({"scheme": "kaiming_normal", "shape": [512, 256], "seed": 7, "name": "fc1.weight",
                        "params": {"mode": "fan_out", "nonlinearity": "relu"}})
    assert f"blake3 {blake3.blake3(wi.to_le_bytes(full)).hexdigest()}" in example.stdout
    first = [float(v) for v in example.stdout.split("first values:")[1].split()]
    assert np.allclose(first, full.reshape(-1)[:4], atol=5e-7)
