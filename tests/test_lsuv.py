"""LSUV: per-layer output variance within tol on the batch; the recorded manifest (specs with
`scale`) replays bit for bit in-process, in a fresh process and through a real server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

import weightinit as wi  # noqa: E402
from weightinit.torch.lsuv import LSUV_LAYERS, apply_manifest, lsuv  # noqa: E402

MODEL_SOURCE = textwrap.dedent("""
    import torch
    from torch import nn

    def build_model():
        torch.manual_seed(123)  # torch's own init, overwritten by LSUV / the replay
        blocks = []
        for _ in range(6):
            blocks += [nn.Linear(48, 48), nn.Tanh()]
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 48),
                             nn.ReLU(), *blocks, nn.Linear(48, 10))

    def param_digests(model):
        import hashlib
        return {name: hashlib.sha256(p.detach().contiguous().numpy().tobytes()).hexdigest()
                for name, p in model.named_parameters()}
""")
namespace: dict = {}
exec(MODEL_SOURCE, namespace)
build_model, param_digests = namespace["build_model"], namespace["param_digests"]


@pytest.fixture(scope="module")
def batch():
    return torch.randn(200, 3, 6, 6, generator=torch.Generator().manual_seed(7)) * 2.5 + 0.3


@pytest.fixture(scope="module")
def initialized(batch):
    model = build_model()
    manifest = lsuv(model, batch, seed=9, tol=0.05)
    return model, manifest


def _output_variances(model, batch) -> dict[str, float]:
    found = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: found.__setitem__(n, o.double().var().item()))
             for name, m in model.named_modules() if isinstance(m, LSUV_LAYERS)]
    with torch.no_grad():
        model(batch)
    for hook in hooks:
        hook.remove()
    return found


def test_every_layer_has_unit_output_variance(initialized, batch):
    model, _ = initialized
    variances = _output_variances(model, batch)
    assert len(variances) == 9
    for name, variance in variances.items():
        assert abs(variance - 1) < 0.05, (name, variance)
    # without LSUV (orthogonal only) the variances are far from 1: the test is not vacuous
    plain = build_model()
    apply_manifest(plain, {"seed": 9, "tensors": [dict(t, scale=None) for t in initialized[1]["tensors"]]})
    assert max(abs(v - 1) for v in _output_variances(plain, batch).values()) > 0.5


def test_manifest_records_scales_and_orthogonal_streams(initialized):
    _, manifest = initialized
    weights = [t for t in manifest["tensors"] if t["name"].endswith("weight")]
    assert all(t["scheme"] == "orthogonal" for t in weights)
    assert all(isinstance(t.get("scale"), float) and t["scale"] > 0 for t in weights)
    assert all(t["scheme"] == "zeros" for t in manifest["tensors"] if t["name"].endswith("bias"))
    assert json.loads(json.dumps(manifest)) == manifest  # plain JSON, float64 exact through repr


def test_replays_in_process(initialized):
    model, manifest = initialized
    fresh = build_model()
    apply_manifest(fresh, json.loads(json.dumps(manifest)))
    assert param_digests(fresh) == param_digests(model)
    for tensor in manifest["tensors"]:  # and equal to the engine's bytes for each spec
        assert (wi.generate(tensor) == dict(model.named_parameters())[tensor["name"]].detach().numpy()).all()


def test_replays_in_a_fresh_process(initialized, tmp_path):
    model, manifest = initialized
    path = tmp_path / "lsuv.json"
    path.write_text(json.dumps(manifest))
    script = MODEL_SOURCE + textwrap.dedent(f"""
        import json
        from weightinit.torch.lsuv import apply_manifest
        model = build_model()
        apply_manifest(model, json.load(open({str(path)!r})))
        print(json.dumps(param_digests(model)))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == param_digests(model)


@pytest.mark.service
def test_replays_through_a_server(initialized, client):
    model, manifest = initialized
    fresh = build_model()
    apply_manifest(fresh, manifest, client=client)
    assert param_digests(fresh) == param_digests(model)
    arrays = client.generate_model(manifest)  # no model code at all: the server's bytes
    for name, parameter in model.named_parameters():
        assert hashlib.sha256(arrays[name].tobytes()).digest() == hashlib.sha256(
            parameter.detach().numpy().tobytes()).digest()


def test_bad_arguments(batch):
    with pytest.raises(wi.SpecError, match="tol"):
        lsuv(build_model(), batch, tol=0)
    with pytest.raises(wi.SpecError, match="max_iter"):
        lsuv(build_model(), batch, max_iter=0)
    with pytest.raises(wi.SpecError, match="parameters without a spec"):
        apply_manifest(build_model(), {"seed": 0, "tensors": []})
