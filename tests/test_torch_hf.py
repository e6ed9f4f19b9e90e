"""init_module(recipe="hf") on tiny GPT-2, Llama and BERT models built offline from their config classes:
every parameter covered, each distribution the model's own _init_weights' (KS, exact for constants)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("scipy.stats")  # the KS comparisons

import weightinit as wi  # noqa: E402
from engine_support import assert_like_reference  # noqa: E402
from weightinit.torch import ParameterError, init_module  # noqa: E402

KS_ALPHA = 1e-4
TINY = {"vocab_size": 1000, "max_position_embeddings": 64, "bos_token_id": 1, "eos_token_id": 2}


def gpt2():
    config = transformers.GPT2Config(vocab_size=1000, n_positions=64, n_embd=64, n_layer=3, n_head=4,
                                     bos_token_id=1, eos_token_id=2, initializer_range=0.03)
    return transformers.GPT2LMHeadModel(config)


def llama():
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, **TINY)
    return transformers.LlamaForCausalLM(config)


def bert():
    config = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, pad_token_id=0, initializer_range=0.05, **TINY)
    return transformers.BertForMaskedLM(config)


BUILDERS = {"gpt2": gpt2, "llama": llama, "bert": bert}


def _own(build, seed):
    torch.manual_seed(seed)
    return build()


@pytest.mark.parametrize("family", BUILDERS)
def test_every_parameter_follows_the_models_own_init_weights(family):
    build = BUILDERS[family]
    model = _own(build, 100)
    manifest = init_module(model, seed=9, recipe="hf")
    assert [t["name"] for t in manifest["tensors"]] == [name for name, _ in model.named_parameters()]
    references = [dict(_own(build, seed).named_parameters()) for seed in range(1, 4)]
    for name, ours in model.named_parameters():
        theirs = torch.cat([r[name].detach().reshape(-1).double() for r in references])
        assert_like_reference(f"{family} {name}", ours.detach().reshape(-1).double().numpy(), theirs.numpy(), KS_ALPHA)
    parameters = dict(model.named_parameters())
    for spec in manifest["tensors"]:
        assert parameters[spec["name"]].detach().numpy().tobytes() == wi.generate_raw(spec).tobytes()


def test_gpt2_scales_the_residual_projections():
    model = gpt2()
    specs = {t["name"]: t for t in init_module(model, recipe="hf")["tensors"]}
    scaled = 0.03 / math.sqrt(2 * 3)
    for layer in range(3):
        assert specs[f"transformer.h.{layer}.attn.c_proj.weight"]["params"]["std"] == pytest.approx(scaled)
        assert specs[f"transformer.h.{layer}.mlp.c_proj.weight"]["params"]["std"] == pytest.approx(scaled)
        assert specs[f"transformer.h.{layer}.attn.c_attn.weight"]["params"]["std"] == 0.03
        assert specs[f"transformer.h.{layer}.attn.c_attn.weight"]["shape"] == [64, 192]  # Conv1D: [in, out]


@pytest.mark.parametrize("family,embedding", [("llama", "model.embed_tokens"),
                                              ("bert", "bert.embeddings.word_embeddings")])
def test_padding_row_is_zero_and_part_of_the_spec(family, embedding):
    model = BUILDERS[family]()
    specs = {t["name"]: t for t in init_module(model, seed=1, recipe="hf")["tensors"]}
    assert specs[f"{embedding}.weight"]["zero_rows"] == [0]
    weight = model.get_submodule(embedding).weight
    assert not weight[0].any() and weight[1:].all(dim=1).any()


def test_tied_weights_are_filled_once():
    model = gpt2()
    manifest = init_module(model, recipe="hf")
    assert "lm_head.weight" not in {t["name"] for t in manifest["tensors"]}
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()


def test_hf_recipe_needs_a_config():
    with pytest.raises(ValueError, match="config"):
        init_module(torch.nn.Linear(3, 3), recipe="hf")


def test_unknown_modules_still_name_the_parameter():
    model = llama()
    model.model.extra = torch.nn.PReLU()  # torch knows it, the HF recipe does not
    with pytest.raises(ParameterError, match=r"model\.extra\.weight.*PReLU"):
        init_module(model, recipe="hf")
    init_module(model, recipe="hf", rules=[("model.extra.weight", {"scheme": "constant", "params": {"value": 0.25}})])
    assert torch.all(model.model.extra.weight == 0.25)
