"""Recipes: each built-in on a tiny model of its family gives the source's per-tensor std
(within sampling error) and zeros where it zeroes; errors name the tensor or rule."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import weightinit as wi
from weightinit import recipes


def _trunc_std_factor(c: float) -> float:
    """std of N(0, 1) truncated to [-c, c]."""
    phi = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(c / math.sqrt(2))
    return math.sqrt(1 - 2 * c * phi / mass)


def _generated(recipe, tensors, seed=1):
    specs = recipes.expand(recipe, tensors, seed=seed)
    return {s["name"]: wi.generate(s).astype(np.float64) for s in specs}, specs


def _assert_std(values: np.ndarray, want: float, name: str) -> None:
    """Sample std within 5 standard errors (std of the sample std is about std / sqrt(2 n))."""
    n = values.size
    got = float(values.std())
    assert abs(got - want) <= 5 * want / math.sqrt(2 * n), f"{name}: std {got} vs formula {want}"


def gpt2_tensors(n_layers=4, d=64):
    t = [("transformer.wte.weight", [256, d]), ("transformer.wpe.weight", [64, d])]
    for i in range(n_layers):
        p = f"transformer.h.{i}."
        t += [(p + "ln_1.weight", [d]), (p + "ln_1.bias", [d]), (p + "attn.c_attn.weight", [d, 3 * d]),
              (p + "attn.c_attn.bias", [3 * d]), (p + "attn.c_proj.weight", [d, d]), (p + "attn.c_proj.bias", [d]),
              (p + "ln_2.weight", [d]), (p + "ln_2.bias", [d]), (p + "mlp.c_fc.weight", [d, 4 * d]),
              (p + "mlp.c_fc.bias", [4 * d]), (p + "mlp.c_proj.weight", [4 * d, d]), (p + "mlp.c_proj.bias", [d])]
    return t + [("transformer.ln_f.weight", [d]), ("transformer.ln_f.bias", [d])]


def test_gpt2_stds_zeros_and_derived_layers():
    tensors = gpt2_tensors()
    assert recipes.resolve("gpt2", tensors) == {"recipe": "gpt2", "n_layers": 4, "std": 0.02}
    arrays, specs = _generated("gpt2", tensors)
    for name, values in arrays.items():
        if name.endswith("c_proj.weight"):
            _assert_std(values, 0.02 / math.sqrt(2 * 4), name)  # nanoGPT: 0.02 / sqrt(2 * n_layer)
        elif name.endswith(".bias"):
            assert not values.any(), name
        elif ".ln_" in name:
            assert (values == 1).all(), name
        else:
            _assert_std(values, 0.02, name)
    # an explicit n_layers and std win over the derived/default ones
    specs = recipes.expand({"recipe": "gpt2", "n_layers": 12, "std": 0.03}, tensors)
    c_proj = next(s for s in specs if s["name"].endswith("attn.c_proj.weight"))
    assert c_proj["params"]["std"] == 0.03 / math.sqrt(24)


def megatron_tensors(n=3, d=64):
    tensors = [("embedding.word_embeddings.weight", [128, d])]
    for i in range(n):
        p = f"decoder.layers.{i}."
        tensors += [(p + "input_layernorm.weight", [d]), (p + "self_attention.linear_qkv.weight", [3 * d, d]),
                    (p + "self_attention.linear_qkv.bias", [3 * d]), (p + "self_attention.linear_proj.weight", [d, d]),
                    (p + "mlp.linear_fc1.weight", [4 * d, d]), (p + "mlp.linear_fc2.weight", [d, 4 * d])]
    return tensors + [("decoder.final_layernorm.weight", [d])]


def test_megatron_scaled_output_projections():
    n = 3
    tensors = megatron_tensors(n)
    arrays, _ = _generated("megatron", tensors)
    for name, values in arrays.items():
        if name.endswith(("linear_proj.weight", "linear_fc2.weight")):
            _assert_std(values, 0.02 / math.sqrt(2.0 * n), name)  # scaled_init_method_normal
        elif "layernorm" in name:
            assert (values == 1).all()
        elif name.endswith("bias"):
            assert not values.any()
        else:
            _assert_std(values, 0.02, name)


def llama_tensors(n_layers=3, dim=64, hidden=128):
    t = [("tok_embeddings.weight", [100, dim])]
    for i in range(n_layers):
        p = f"layers.{i}."
        t += [(p + "attention.wq.weight", [dim, dim]), (p + "attention.wk.weight", [dim // 2, dim]),
              (p + "attention.wv.weight", [dim // 2, dim]), (p + "attention.wo.weight", [dim, dim]),
              (p + "feed_forward.w1.weight", [hidden, dim]), (p + "feed_forward.w2.weight", [dim, hidden]),
              (p + "feed_forward.w3.weight", [hidden, dim]), (p + "attention_norm.weight", [dim]),
              (p + "ffn_norm.weight", [dim])]
    return t + [("norm.weight", [dim]), ("output.weight", [100, dim])]


@pytest.mark.parametrize("depth_init", [1, 0])
def test_torchtitan_llama3(depth_init):
    tensors = llama_tensors()
    arrays, specs = _generated({"recipe": "torchtitan_llama3", "depth_init": depth_init}, tensors)
    assert recipes.resolve("torchtitan_llama3", tensors)["dim"] == 64
    for name, values in arrays.items():
        layer = int(name.split(".")[1]) if name.startswith("layers.") else None
        if name == "tok_embeddings.weight":
            _assert_std(values, 1.0, name)
        elif name.endswith(("wq.weight", "wk.weight", "wv.weight", "w1.weight")):
            _assert_std(values, 0.02, name)  # trunc_normal_(std=0.02), bounds +-2 are 100 std away
        elif name.endswith(("wo.weight", "w2.weight", "w3.weight")):
            want = 0.02 / math.sqrt(2 * (layer + 1)) if depth_init else 0.02 / math.sqrt(2 * 3)
            _assert_std(values, want, name)
        elif name == "output.weight":
            std = 64 ** -0.5
            assert np.abs(values).max() <= 3 * std * (1 + 1e-6)
            _assert_std(values, std * _trunc_std_factor(3.0), name)
        else:
            assert (values == 1).all(), name


def olmo_tensors(n=3, d=64, ff=256):
    tensors = [("transformer.wte.weight", [200, d])]
    for i in range(n):
        p = f"transformer.blocks.{i}."
        tensors += [(p + "att_proj.weight", [3 * d, d]), (p + "attn_out.weight", [d, d]),
                    (p + "ff_proj.weight", [2 * ff, d]), (p + "ff_out.weight", [d, ff])]
    return tensors + [("transformer.ff_out.weight", [200, d])]


def test_olmo_mitchell():
    d, ff = 64, 256
    tensors = olmo_tensors(3, d, ff)
    arrays, _ = _generated("olmo_mitchell", tensors)
    cut = _trunc_std_factor(3.0)
    for name, values in arrays.items():
        layer = int(name.split(".")[2]) if ".blocks." in name else None
        if name.endswith("attn_out.weight"):
            want = 1 / math.sqrt(2 * d * (layer + 1))
        elif ".blocks." in name and name.endswith("ff_out.weight"):
            want = 1 / math.sqrt(2 * ff * (layer + 1))
        else:
            want = 1 / math.sqrt(d)
        assert np.abs(values).max() <= 3 * want * (1 + 1e-6), name
        _assert_std(values, want * cut, name)


def deepnet_tensors(n=6, d=64):
    tensors = [("decoder.embed_tokens.weight", [100, d])]
    for i in range(n):
        p = f"decoder.layers.{i}."
        tensors += [(p + "self_attn.q_proj.weight", [d, d]), (p + "self_attn.k_proj.weight", [d, d]),
                    (p + "self_attn.v_proj.weight", [d, d]), (p + "self_attn.out_proj.weight", [d, d]),
                    (p + "self_attn_layer_norm.weight", [d]), (p + "fc1.weight", [4 * d, d]),
                    (p + "fc1.bias", [4 * d]), (p + "fc2.weight", [d, 4 * d]), (p + "final_layer_norm.weight", [d])]
    return tensors


def test_deepnet_beta():
    d, n = 64, 6
    tensors = deepnet_tensors(n, d)
    beta = (8 * n) ** -0.25
    assert recipes.resolve("deepnet", tensors)["beta"] == pytest.approx(beta, rel=1e-15)
    arrays, _ = _generated("deepnet", tensors)
    for name, values in arrays.items():
        xavier = math.sqrt(2 / (values.shape[0] + values.shape[1])) if values.ndim == 2 else None
        if name.endswith(("fc1.weight", "fc2.weight", "v_proj.weight", "out_proj.weight")):
            _assert_std(values, beta * xavier, name)
        elif name.endswith(("q_proj.weight", "k_proj.weight")):
            _assert_std(values, xavier, name)
        elif name.endswith("embed_tokens.weight"):
            _assert_std(values, d ** -0.5, name)
        elif "norm" in name:
            assert (values == 1).all()
        else:
            assert not values.any(), name


def resnet_tensors(bottleneck=False, c=32):
    """torchvision-style names, three residual branches, Fixup's scalar biases and multipliers."""
    convs = 3 if bottleneck else 2
    tensors = [("conv1.weight", [c, 3, 3, 3]), ("bias1", [1])]
    for stage, index in [(1, 0), (1, 1), (2, 0)]:
        p = f"layer{stage}.{index}."
        for k in range(1, convs + 1):
            tensors += [(p + f"conv{k}.weight", [c, c, 3, 3] if k == 2 or not bottleneck else [c, c, 1, 1]),
                        (p + f"bias{k}a", [1])]
        tensors.append((p + "scale", [1]))
    return tensors + [("layer2.0.downsample.weight", [c, c, 1, 1]), ("fc.weight", [10, c]), ("fc.bias", [10])]


@pytest.mark.parametrize("bottleneck", [False, True])
def test_fixup_resnet(bottleneck):
    convs = 3 if bottleneck else 2
    tensors = resnet_tensors(bottleneck)
    resolved = recipes.resolve("fixup", tensors)
    assert (resolved["n_branches"], resolved["branch_layers"]) == (3, convs)
    arrays, _ = _generated("fixup", tensors)
    factor = 3 ** (-1 / (2 * convs - 2))
    for name, values in arrays.items():
        if name.startswith("layer") and ".conv" in name:
            fan_out = values.shape[0] * values.shape[2] * values.shape[3]
            if name.endswith(f"conv{convs}.weight"):
                assert not values.any(), name  # last layer of each branch
            else:
                _assert_std(values, math.sqrt(2 / fan_out) * factor, name)
        elif name in ("conv1.weight", "layer2.0.downsample.weight"):
            _assert_std(values, math.sqrt(2 / (values.shape[0] * values.shape[2] * values.shape[3])), name)
        elif name.endswith("scale"):
            assert (values == 1).all()
        else:
            assert not values.any(), name  # classifier and scalar biases


def mlp_tensors(width=256):
    return [("0.weight", [width, 32]), ("0.bias", [width]), ("2.weight", [width, width]), ("2.bias", [width]),
            ("4.weight", [width, width]), ("4.bias", [width]), ("6.weight", [10, width]), ("6.bias", [10])]


def test_mup_mlp():
    width, base = 256, 64
    tensors = mlp_tensors(width)
    assert recipes.resolve("mup", tensors)["base_width"] == width  # default: the model is its own base
    arrays, _ = _generated({"recipe": "mup", "base_width": base, "std": 0.05}, tensors)
    _assert_std(arrays["0.weight"], 0.05, "input")  # one infinite dim: unchanged
    for name in ("2.weight", "4.weight"):  # two infinite dims: std / sqrt(width_mult)
        _assert_std(arrays[name], 0.05 / math.sqrt(width / base), name)
    assert not arrays["6.weight"].any()  # MuReadout, readout_zero_init
    assert not any(arrays[n].any() for n in ("0.bias", "2.bias", "4.bias", "6.bias"))


def test_custom_data_recipe_round_trips_through_json():
    recipe = {"params": {"std": 0.5},
              "rules": [{"match": "*.bias", "scheme": "zeros"},
                        {"match": "*.weight", "module": "Linear", "scheme": "kaiming_normal",
                         "params": {"mode": "fan_out", "nonlinearity": "relu"}},
                        {"match": "*.weight", "where": "rank == 2 and layer_id >= 1", "scheme": "normal",
                         "params": {"std": "std / (layer_id + 1)"}}]}
    tensors = [{"name": "blocks.0.fc.weight", "shape": [8, 4], "module": "Linear"}, ("blocks.0.fc.bias", [8]),
               ("blocks.2.emb.weight", [5, 3], "float64", "Embedding")]
    specs = recipes.expand(json.loads(json.dumps(recipe)), tensors)
    assert [s["scheme"] for s in specs] == ["kaiming_normal", "zeros", "normal"]
    assert specs[0]["params"] == {"mode": "fan_out", "nonlinearity": "relu"}
    assert specs[2]["params"] == {"std": 0.5 / 3} and specs[2]["dtype"] == "float64"


def test_unmatched_tensor_and_unused_rule_are_named():
    with pytest.raises(wi.SpecError, match="mystery.thing") as caught:
        recipes.expand("gpt2", gpt2_tensors(1) + [("mystery.thing", [3])])
    assert caught.value.field == "tensors.mystery.thing"
    recipe = {"rules": [{"match": "*.weight", "scheme": "ones"}, {"match": "*.running_mean", "scheme": "zeros"}]}
    with pytest.raises(wi.SpecError, match=r"running_mean") as caught:
        recipes.expand(recipe, [("a.weight", [2])])
    assert caught.value.field == "recipe.rules[1]"
    # gpt2's LayerNorm rule is required: a tensor list without any is an error naming it
    with pytest.raises(wi.SpecError, match="ln_"):
        recipes.expand("gpt2", [("h.0.attn.c_proj.weight", [4, 4])])


@pytest.mark.parametrize("bad, field", [
    ({"recipe": "gpt3"}, "recipe.recipe"),
    ({"recipe": "gpt2", "n_layers": 2, "std": "__import__('os')"}, "recipe.std"),
    ({"recipe": "gpt2", "n_layers": 2, "std": "std2 * 2"}, "recipe.std"),
    ({"rules": [{"match": "*", "scheme": "normal", "params": {"std": "x.__class__"}}]}, "tensors.a.params.std"),
    ({"rules": [{"match": "*", "scheme": "normal", "params": {"std": -1}}]}, "tensors.a.params.std"),
    ({"rules": [{"match": "*", "scheme": "normal", "params": {"std": "layer_id"}}]}, "tensors.a.params.std"),
    ({"rules": [{"match": "*", "scheme": "normal", "colour": 1}]}, "recipe.rules[0].colour"),
])
def test_bad_recipes_name_the_field(bad, field):
    with pytest.raises(wi.SpecError) as caught:
        recipes.expand(bad, [("a", [4, 4])])
    assert caught.value.field == field


def test_pow_uses_only_correctly_rounded_operations():
    assert recipes.exact_pow(96.0, -0.25) == 1 / math.sqrt(math.sqrt(96.0))
    assert recipes.exact_pow(64.0, -0.5) == 1 / 8
    assert recipes.exact_pow(7.0, 3) == 343.0
    assert recipes.exact_pow(5.0, -1 / 6) == pytest.approx(5.0 ** (-1 / 6), rel=1e-14)


def test_cli_generate_manifest_with_recipe(tmp_path):
    manifest = {"seed": 11, "recipe": {"recipe": "gpt2", "std": 0.01},
                "tensors": [{"name": n, "shape": s} for n, s in gpt2_tensors(2, 16)]}
    path, out = tmp_path / "model.json", tmp_path / "model.safetensors"
    path.write_text(json.dumps(manifest))
    run = subprocess.run([sys.executable, "-m", "weightinit", "generate", "--manifest", str(path), "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    from weightinit.provenance import read_safetensors_header

    header, _ = read_safetensors_header(out)
    recorded = json.loads(header["__metadata__"]["weightinit.recipe"])
    assert recorded == {"recipe": "gpt2", "n_layers": 2, "std": 0.01}
    spec = json.loads(header["__metadata__"]["weightinit.spec.transformer.h.1.mlp.c_proj.weight"])
    assert spec["params"]["std"] == 0.01 / math.sqrt(4) and spec["seed"] == 11
    expanded = recipes.expand_manifest(manifest)
    want = wi.generate(expanded["tensors"][-3] | {"seed": 11})
    assert wi.verify_safetensors(out)[-3].ok and want.shape == tuple(expanded["tensors"][-3]["shape"])


def _recipe_manifest():
    return {"seed": 21, "recipe": {"recipe": "torchtitan_llama3", "depth_init": 0},
            "tensors": [{"name": n, "shape": s} for n, s in llama_tensors(2, 16, 32)]}


def test_local_client_expands_recipe_manifests(local):
    manifest = _recipe_manifest()
    arrays = local.generate_model(manifest)
    for spec in recipes.expand(manifest["recipe"], manifest["tensors"], seed=21):
        assert arrays[spec["name"]].tobytes() == wi.generate(spec).tobytes()


FAMILIES = {  # each built-in on a tiny model of its family
    "gpt2": lambda: gpt2_tensors(2, 16), "megatron": lambda: megatron_tensors(2, 16),
    "torchtitan_llama3": lambda: llama_tensors(2, 16, 32), "olmo_mitchell": lambda: olmo_tensors(2, 16, 32),
    "deepnet": lambda: deepnet_tensors(2, 16), "fixup": lambda: resnet_tensors(True, 8), "mup": lambda: mlp_tensors(16),
}


def test_every_builtin_has_a_family_test():
    assert set(FAMILIES) == set(recipes.RECIPE_NAMES)


@pytest.mark.service
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_server_expands_recipes_and_returns_the_specs_in_headers(client, name):
    manifest = {"seed": 21, "recipe": name, "tensors": [{"name": n, "shape": s} for n, s in FAMILIES[name]()]}
    want = {s["name"]: wi.spec_from_dict(s) for s in recipes.expand(manifest["recipe"], manifest["tensors"], seed=21)}
    seen = {}
    for chunk in client.iter_model_chunks(manifest):
        if chunk.name not in seen:
            seen[chunk.name] = wi.spec_from_dict(json.loads(chunk.header.resolved_spec_json))
    assert seen == want
    arrays = client.generate_model(manifest)
    assert all(arrays[name].tobytes() == wi.generate(spec).tobytes() for name, spec in want.items())


@pytest.mark.service
def test_server_names_recipe_errors(client):
    manifest = _recipe_manifest()
    manifest["tensors"].append({"name": "mystery.weight", "shape": [3, 3]})
    with pytest.raises(wi.SpecError) as caught:
        client.generate_model(manifest)
    error = caught.value
    assert (error.tensor, error.tensor_index) == ("mystery.weight", len(manifest["tensors"]) - 1)
    assert error.violations[0].field == f"manifest.tensors[{len(manifest['tensors']) - 1}]"
    assert "no rule of recipe" in str(error) and str(error).startswith("mystery.weight: ")


def test_unknown_parameter_of_a_builtin_is_named():
    with pytest.raises(wi.SpecError, match="not a parameter of recipe .gpt2.") as caught:
        recipes.expand({"recipe": "gpt2", "n_layer": 12}, gpt2_tensors(1))
    assert caught.value.field == "recipe.n_layer"
