"""init_module(recipe="torch"): every torch.nn module type's reset_parameters distribution, rules, errors that
name the parameter, in-process vs server bytes, manifest replay, the meta-device flow."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy.stats")  # the KS comparisons

from torch import nn  # noqa: E402

import weightinit as wi  # noqa: E402
from engine_support import assert_like_reference  # noqa: E402
from weightinit.client import Client, LocalClient  # noqa: E402
from weightinit.torch import ParameterError, init_module, module_manifest  # noqa: E402

KS_ALPHA = 1e-4
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")


class EveryModule(nn.Module):
    """One of each torch.nn module type that owns parameters (recipe="torch" must cover them all)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(300, 200)
        self.bilinear = nn.Bilinear(20, 30, 40)
        self.conv1 = nn.Conv1d(16, 32, 5)
        self.conv2 = nn.Conv2d(16, 32, 3, groups=4)
        self.conv3 = nn.Conv3d(4, 8, 3)
        self.deconv1 = nn.ConvTranspose1d(16, 32, 4)
        self.deconv2 = nn.ConvTranspose2d(16, 24, 3, groups=2)
        self.deconv3 = nn.ConvTranspose3d(4, 6, 3, groups=2)
        self.embedding = nn.Embedding(500, 64, padding_idx=3)
        self.bag = nn.EmbeddingBag(400, 32, padding_idx=0)
        self.bn1 = nn.BatchNorm1d(10)
        self.bn2 = nn.BatchNorm2d(10)
        self.bn3 = nn.BatchNorm3d(10)
        self.sync_bn = nn.SyncBatchNorm(10)
        self.layer_norm = nn.LayerNorm([8, 4])
        self.group_norm = nn.GroupNorm(4, 12)
        self.in1 = nn.InstanceNorm1d(6, affine=True)
        self.in2 = nn.InstanceNorm2d(6, affine=True)
        self.in3 = nn.InstanceNorm3d(6, affine=True)
        self.rms_norm = nn.RMSNorm(16)
        self.prelu = nn.PReLU(5, init=0.3)
        self.rnn = nn.RNN(32, 48, num_layers=2, bidirectional=True)
        self.lstm = nn.LSTM(32, 40, proj_size=16)
        self.gru = nn.GRU(24, 36)
        self.rnn_cell = nn.RNNCell(32, 48)
        self.lstm_cell = nn.LSTMCell(32, 48)
        self.gru_cell = nn.GRUCell(32, 48)
        self.attention = nn.MultiheadAttention(64, 4, add_bias_kv=True)
        self.cross_attention = nn.MultiheadAttention(64, 4, kdim=32, vdim=48)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128), num_layers=2,
                                             enable_nested_tensor=False)
        self.decoder_layer = nn.TransformerDecoderLayer(64, 4, 128)
        self.transformer = nn.Transformer(32, 2, 1, 1, 64)


def _own_init(build=EveryModule, seed=0):
    torch.manual_seed(seed)
    return build()


def _bits(tensor) -> bytes:
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return tensor.numpy().tobytes()


def _same_bits(a: nn.Module, b: nn.Module) -> None:
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters()):
        assert _bits(x) == _bits(y), name


@pytest.fixture(scope="module")
def filled():
    model = _own_init(seed=99)  # torch's values, all to be overwritten
    manifest = init_module(model, seed=7)
    return model, manifest


def test_every_parameter_is_covered_once_by_name(filled):
    model, manifest = filled
    assert [t["name"] for t in manifest["tensors"]] == [name for name, _ in model.named_parameters()]
    assert all(t["seed"] == 7 and t["stream"] == wi.spec_from_dict({"scheme": "zeros", "shape": [],
                                                                      "name": t["name"]}).stream
               for t in manifest["tensors"])


def test_each_parameter_follows_its_modules_reset_parameters(filled):
    model, _ = filled
    references = [dict(_own_init(seed=seed).named_parameters()) for seed in range(1, 6)]  # 5 torch draws each
    for name, ours in model.named_parameters():
        theirs = torch.cat([r[name].detach().reshape(-1).double() for r in references])
        assert_like_reference(name, ours.detach().reshape(-1).double().numpy(), theirs.numpy(), KS_ALPHA)


def test_recipe_specs_are_pytorchs_formulas(filled):
    model, manifest = filled
    specs = {t["name"]: t for t in manifest["tensors"]}
    assert specs["linear.bias"]["params"] == {"fan_in": 300}
    assert specs["deconv2.bias"]["params"] == {"fan_in": 12 * 9}  # ConvTranspose weight [in, out/groups, *k]
    assert specs["bilinear.weight"]["params"] == specs["bilinear.bias"]["params"] == {"fan_in": 20}
    assert specs["embedding.weight"]["scheme"] == "normal" and specs["embedding.weight"]["zero_rows"] == [3]
    assert specs["bag.weight"]["zero_rows"] == [0]
    assert not model.embedding.weight[3].any() and model.embedding.weight[4].any()
    assert specs["lstm.weight_hr_l0"]["params"] == {"fan_in": 40}
    assert specs["attention.in_proj_weight"]["scheme"] == "xavier_uniform"
    assert specs["attention.bias_k"]["scheme"] == "xavier_normal"
    assert specs["attention.out_proj.bias"]["scheme"] == "zeros"
    assert specs["attention.out_proj.weight"]["scheme"] == "torch_default"
    assert specs["cross_attention.k_proj_weight"]["scheme"] == "xavier_uniform"
    assert specs["encoder.layers.1.linear1.weight"]["scheme"] == "torch_default"
    assert specs["transformer.encoder.layers.0.linear1.weight"]["scheme"] == "xavier_uniform"
    assert specs["transformer.encoder.layers.0.linear1.bias"]["scheme"] == "torch_default"
    assert specs["prelu.weight"]["params"] == {"value": pytest.approx(0.3)}


def test_bytes_are_weightinit_generate_of_the_manifest(filled):
    model, manifest = filled
    parameters = dict(model.named_parameters())
    for spec in manifest["tensors"]:
        assert _bits(parameters[spec["name"]]) == wi.generate_raw(spec).tobytes(), spec["name"]


def test_server_path_gives_the_same_bytes_and_replays_the_manifest(server, filled):
    model, manifest = filled
    over_the_wire = _own_init(seed=5)
    with Client(server.target, timeout=60) as client:
        assert init_module(over_the_wire, seed=7, client=client) == manifest
        _same_bits(over_the_wire, model)
        replayed = client.generate_model(manifest)
    local = LocalClient().generate_model(manifest)
    for name, parameter in model.named_parameters():
        assert _bits(parameter) == np.asarray(replayed[name]).tobytes() == np.asarray(local[name]).tobytes(), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_server_and_in_process_agree_in_other_dtypes(server, dtype):
    in_process = _own_init().to(dtype)
    over_the_wire = _own_init().to(dtype)
    manifest = init_module(in_process, seed=3)
    with Client(server.target, timeout=60) as client:
        init_module(over_the_wire, seed=3, client=client)
    _same_bits(in_process, over_the_wire)
    assert {t["dtype"] for t in manifest["tensors"]} == {str(dtype).removeprefix("torch.")}


@pytest.mark.parametrize("recipe", ["torch", "gpt2"])
def test_cli_replays_the_manifest(tmp_path, recipe):
    if recipe == "torch":
        model = nn.Sequential(nn.Embedding(50, 8, padding_idx=1), nn.Linear(8, 4), nn.LayerNorm(4))
    else:  # a weightinit.recipes recipe: the manifest records it beside the expanded specs
        model = _tiny_gpt2()
    manifest = init_module(model, seed=12, recipe=recipe)
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    subprocess.run([sys.executable, "-m", "weightinit", "generate", "--manifest", str(tmp_path / "m.json"),
                    "-o", str(tmp_path / "m.safetensors")], check=True, capture_output=True, timeout=120)
    data = (tmp_path / "m.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8:8 + length]), data[8 + length:]
    for name, parameter in model.named_parameters():
        start, stop = header[name]["data_offsets"]
        assert body[start:stop] == _bits(parameter), name


def test_meta_device_flow_gives_the_same_bytes():
    with torch.device("meta"):
        model = EveryModule()
    assert next(model.parameters()).is_meta
    model.to_empty(device="cpu")
    manifest = init_module(model, seed=7)
    eager = _own_init()
    assert init_module(eager, seed=7) == manifest
    _same_bits(model, eager)


def test_bytes_do_not_depend_on_the_rest_of_the_model():
    small = nn.Sequential(nn.Linear(6, 5))
    big = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 9), nn.LayerNorm(9))
    init_module(small, seed=4)
    init_module(big, seed=4)
    assert torch.equal(small[0].weight, big[0].weight) and torch.equal(small[0].bias, big[0].bias)


class Mixer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.scale = nn.Parameter(torch.empty(16))


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Mixer()
        self.head = nn.Linear(16, 4)


def test_unknown_module_is_an_error_naming_parameter_and_type():
    with pytest.raises(ParameterError, match=r"block\.scale.*Mixer") as error:
        init_module(Wrapper())
    assert error.value.parameter == "block.scale" and isinstance(error.value, ValueError)


def test_rules_first_match_wins_by_glob_and_module_type():
    model = Wrapper()
    manifest = init_module(model, seed=2, rules=[
        ("block.scale", {"scheme": "ones"}),
        (nn.Linear, {"scheme": "normal", "params": {"std": 0.02}}),
        ("*.bias", "zeros"),
    ])
    specs = {t["name"]: t for t in manifest["tensors"]}
    assert specs["block.scale"]["scheme"] == "ones" and torch.equal(model.block.scale, torch.ones(16))
    assert specs["head.bias"]["scheme"] == "normal" and specs["head.bias"]["params"]["std"] == 0.02
    assert all(t["seed"] == 2 for t in manifest["tensors"])
    assert module_manifest(model, seed=2, rules={"block.scale": "ones", nn.Linear: {"scheme": "normal",
                                                                                  "params": {"std": 0.02}},
                                                 "*.bias": "zeros"}) == manifest


def test_a_rule_matching_nothing_is_an_error_naming_it():
    with pytest.raises(wi.SpecError, match=r"rules\[1\]: 'fc\.bais' matches no parameter"):
        init_module(nn.Sequential(nn.Linear(3, 3)), rules=[("*.weight", "zeros"), ("fc.bais", "zeros")])
    model = nn.Sequential(nn.Linear(3, 3))
    before = model[0].weight.detach().clone()
    with pytest.raises(ValueError):
        init_module(model, rules=[(nn.Conv2d, "zeros")])
    assert torch.equal(model[0].weight, before), "nothing is filled when the plan fails"


def test_engine_errors_name_the_parameter():
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ParameterError, match=r"^0\.bias: shape: fans need at least 2 dims") as error:
        init_module(model, rules=[(nn.Linear, {"scheme": "kaiming_normal"})])
    assert error.value.field == "shape" and error.value.parameter == "0.bias"
    with pytest.raises(ParameterError, match=r"^0\.weight: params\.std"):
        init_module(model, rules=[("0.weight", {"scheme": "normal", "params": {"std": -1}}), ("0.bias", "zeros")])
    with pytest.raises(ValueError, match="sets seed"):
        init_module(model, rules=[("*", {"scheme": "zeros", "seed": 3})])


def test_server_errors_name_the_parameter(make_server):
    running = make_server(max_dense_elements=100)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(30, 20))
    with Client(running.target, timeout=30, max_attempts=1) as client:
        with pytest.raises(ParameterError, match=r"^1\.weight: shape: .*orthogonal") as error:
            init_module(model, rules=[("1.weight", "orthogonal")], client=client)
    assert error.value.parameter == "1.weight"


def test_client_path_fills_non_contiguous_parameters_and_skips_meta_ones():
    transposed = nn.Linear(4, 3)
    transposed.weight = nn.Parameter(torch.empty(4, 3).t())
    plain = nn.Linear(4, 3)
    init_module(transposed, seed=2, client=LocalClient())
    init_module(plain, seed=2)
    _same_bits(transposed, plain)
    with torch.device("meta"):
        on_meta = nn.Linear(4, 3)
    assert init_module(on_meta, seed=2, client=LocalClient()) == init_module(plain, seed=2)
    assert on_meta.weight.is_meta


def _tiny_gpt2():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(8)
            self.attn = nn.Module()
            self.attn.c_attn = nn.Linear(8, 24)
            self.attn.c_proj = nn.Linear(8, 8)
            self.mlp = nn.Module()
            self.mlp.c_fc = nn.Linear(8, 32)
            self.mlp.c_proj = nn.Linear(32, 8)

    model = nn.Module()
    model.wte = nn.Embedding(50, 8)
    model.h = nn.ModuleList([Block() for _ in range(3)])
    return model


def test_data_recipes_from_weightinit_recipes_fill_the_module():
    from weightinit import recipes

    model = _tiny_gpt2()
    manifest = init_module(model, seed=4, recipe={"recipe": "gpt2", "std": 0.03})
    names = [name for name, _ in model.named_parameters()]
    assert [t["name"] for t in manifest["tensors"]] == names
    assert manifest["recipe"]["recipe"] == "gpt2" and manifest["recipe"]["n_layers"] == 3  # derived, recorded
    tensors = [(name, list(p.shape), "float32", None) for name, p in model.named_parameters()]
    expected = {spec["name"]: wi.spec_from_dict(spec).to_dict()
                for spec in recipes.expand({"recipe": "gpt2", "std": 0.03}, tensors, seed=4)}
    for spec in manifest["tensors"]:
        assert spec == expected[spec["name"]]
    for name, parameter in model.named_parameters():
        assert parameter.detach().numpy().tobytes() == wi.generate(expected[name]).tobytes(), name
    # the manifest (recipe recorded, specs expanded) replays as it is, in-process and from the CLI
    replayed = LocalClient().generate_model(manifest)
    for name, parameter in model.named_parameters():
        assert parameter.detach().numpy().tobytes() == replayed[name].tobytes(), name
    proj = dict(model.named_parameters())["h.1.attn.c_proj.weight"]
    assert abs(proj.std().item() - 0.03 / (2 * 3) ** 0.5) < 0.01  # GPT-2's scaled residual projection
    # a rule takes precedence over the recipe for the parameters it matches
    manifest = init_module(model, seed=4, recipe="gpt2", rules=[("wte.weight", "zeros")])
    assert dict(model.named_parameters())["wte.weight"].abs().sum().item() == 0
    assert {t["name"]: t["scheme"] for t in manifest["tensors"]}["wte.weight"] == "zeros"


def test_a_data_recipe_that_misses_a_parameter_names_it():
    model = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(ParameterError) as caught:
        init_module(model, recipe={"rules": [{"match": "*.bias", "scheme": "zeros"}]})
    assert caught.value.parameter == "0.weight"
    with pytest.raises(wi.SpecError, match="recipe"):
        init_module(model, recipe="no-such-recipe")
